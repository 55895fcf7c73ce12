// Package fingerprint computes Signal safety numbers exactly as libsignal's
// NumericFingerprintGenerator does: the 60-digit displayable form and the
// scannable (QR code) protobuf.
package fingerprint

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Defaults used by Signal clients.
const (
	Version    = 2
	Iterations = 5200
)

var (
	// ErrInvalid reports bad arguments or a malformed scannable fingerprint.
	ErrInvalid = errors.New("fingerprint: invalid")
	// ErrVersionMismatch reports a scanned fingerprint of another version.
	ErrVersionMismatch = errors.New("fingerprint: version mismatch")
)

// Fingerprint is the safety number of a pair of identities, seen from the
// local side.
type Fingerprint struct {
	version       int
	local, remote []byte // 64-byte iterated digests
}

// New computes the fingerprint. IDs are the stable identifiers (for Signal,
// the ACI or phone number bytes); keys are serialized identity keys
// (0x05 || 32 bytes).
func New(version, iterations int, localID, localIdentityKey, remoteID, remoteIdentityKey []byte) (*Fingerprint, error) {
	if iterations <= 1 || iterations > 1000000 {
		return nil, fmt.Errorf("%w: iteration count %d", ErrInvalid, iterations)
	}
	if version < 0 || version > 0xffffffff {
		return nil, fmt.Errorf("%w: version %d", ErrInvalid, version)
	}
	return &Fingerprint{
		version: version,
		local:   digest(iterations, localID, localIdentityKey),
		remote:  digest(iterations, remoteID, remoteIdentityKey),
	}, nil
}

func digest(iterations int, id, key []byte) []byte {
	h := sha512.New()
	h.Write([]byte{0, 0}) // fingerprint format version 0
	h.Write(key)
	h.Write(id)
	h.Write(key)
	buf := h.Sum(nil)
	for i := 1; i < iterations; i++ {
		h.Reset()
		h.Write(buf)
		h.Write(key)
		buf = h.Sum(buf[:0])
	}
	return buf
}

func encode(d []byte) string {
	out := make([]byte, 0, 30)
	for i := 0; i < 6; i++ {
		var x uint64
		for _, c := range d[i*5 : i*5+5] {
			x = x<<8 | uint64(c)
		}
		out = fmt.Appendf(out, "%05d", x%100000)
	}
	return string(out)
}

// Displayable returns the 60 digits, the same on both sides.
func (f *Fingerprint) Displayable() string {
	l, r := encode(f.local), encode(f.remote)
	if l < r {
		return l + r
	}
	return r + l
}

// Scannable returns libsignal's CombinedFingerprints protobuf.
func (f *Fingerprint) Scannable() ([]byte, error) {
	return combined(uint64(f.version), f.local[:32], f.remote[:32]), nil
}

func combined(version uint64, local, remote []byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, version)
	for i, fp := range [][]byte{local, remote} {
		var inner []byte
		inner = protowire.AppendTag(inner, 1, protowire.BytesType)
		inner = protowire.AppendBytes(inner, fp)
		b = protowire.AppendTag(b, protowire.Number(2+i), protowire.BytesType)
		b = protowire.AppendBytes(b, inner)
	}
	return b
}

// CompareScanned reports whether scanned (the other side's Scannable) matches
// this fingerprint: their local is our remote and vice versa.
func (f *Fingerprint) CompareScanned(scanned []byte) (bool, error) {
	version, local, remote, err := parseCombined(scanned)
	if err != nil {
		return false, err
	}
	if version != uint64(f.version) {
		return false, fmt.Errorf("%w: theirs %d, ours %d", ErrVersionMismatch, version, f.version)
	}
	same1 := subtle.ConstantTimeCompare(local, f.remote[:32])
	same2 := subtle.ConstantTimeCompare(remote, f.local[:32])
	return same1&same2 == 1, nil
}

func parseCombined(b []byte) (version uint64, local, remote []byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, nil, fmt.Errorf("%w: bad tag", ErrInvalid)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			version, n = protowire.ConsumeVarint(b)
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				c, cerr := parseLogical(v)
				if cerr != nil {
					return 0, nil, nil, cerr
				}
				if num == 2 {
					local = c
				} else {
					remote = c
				}
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return 0, nil, nil, fmt.Errorf("%w: bad field", ErrInvalid)
		}
		b = b[n:]
	}
	if local == nil || remote == nil {
		return 0, nil, nil, fmt.Errorf("%w: missing fingerprint", ErrInvalid)
	}
	return version, local, remote, nil
}

func parseLogical(b []byte) ([]byte, error) {
	var content []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: bad tag", ErrInvalid)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			content, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, fmt.Errorf("%w: bad field", ErrInvalid)
		}
		b = b[n:]
	}
	if content == nil {
		return nil, fmt.Errorf("%w: missing content", ErrInvalid)
	}
	return content, nil
}
