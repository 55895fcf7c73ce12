package agent

import (
	"crypto/subtle"
	"errors"
	"strings"
)

// What the agent reads in the SDP of a call whose media runs in a browser:
// its DTLS certificate fingerprint, the one thing of the SDP the call's
// security rests on (the certificate the peer's DTLS presents must be the
// one the end-to-end encrypted SDP names).

// maxSDP bounds an SDP the agent accepts (a browser's audio offer with
// every candidate is a few kilobytes).
const maxSDP = 64 << 10

var (
	errNoFingerprint   = errors.New("agent: the SDP has no sha-256 DTLS fingerprint")
	errTwoFingerprints = errors.New("agent: the SDP names more than one DTLS certificate")
	errBadFingerprint  = errors.New("agent: the SDP's DTLS fingerprint is malformed")
	errSDPTooLong      = errors.New("agent: the SDP is too long")
)

// sdpFingerprint returns the one sha-256 DTLS fingerprint of sdp, upper
// case ("AB:CD:..."). An SDP may repeat it (session and media level); a
// second, different certificate, a fingerprint of another hash only, or a
// malformed one is refused: the browser would accept a certificate that
// matches any of them.
func sdpFingerprint(sdp string) (string, error) {
	if len(sdp) > maxSDP {
		return "", errSDPTooLong
	}
	var fp string
	for line := range strings.SplitSeq(sdp, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=fingerprint:")
		if !ok {
			continue
		}
		alg, val, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok || !strings.EqualFold(alg, "sha-256") {
			return "", errTwoFingerprints // another hash: another certificate it may name
		}
		val = strings.ToUpper(strings.TrimSpace(val))
		if !wellFormedFingerprint(val) {
			return "", errBadFingerprint
		}
		if fp != "" && fp != val {
			return "", errTwoFingerprints
		}
		fp = val
	}
	if fp == "" {
		return "", errNoFingerprint
	}
	return fp, nil
}

// wellFormedFingerprint: 32 bytes as upper-case hex pairs joined by colons.
func wellFormedFingerprint(s string) bool {
	if len(s) != 32*3-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// sameFingerprint compares two fingerprints in constant time, ignoring case.
func sameFingerprint(a, b string) bool {
	a, b = strings.ToUpper(strings.TrimSpace(a)), strings.ToUpper(strings.TrimSpace(b))
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
