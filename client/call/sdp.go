package call

// What a call reads and trims in SDP text.

import "strings"

// withoutHost drops the host candidates of sdp (Manager.noDirect: a test
// network where no direct path exists).
func withoutHost(sdp string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(sdp, "\n") {
		if !strings.HasPrefix(line, "a=candidate:") || !strings.Contains(line, " typ host") {
			b.WriteString(line)
			b.WriteString("\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// sdpFingerprint extracts the sha-256 certificate fingerprint of an SDP.
func sdpFingerprint(sdp string) string {
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "a=fingerprint:sha-256 "); ok {
			return strings.ToUpper(strings.TrimSpace(v))
		}
	}
	return ""
}
