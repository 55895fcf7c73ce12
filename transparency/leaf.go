package transparency

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// BindingKind says what a binding does to the username's identity key.
type BindingKind uint8

const (
	// KindAdd binds the first identity key to a new username (enrollment).
	KindAdd BindingKind = 1
	// KindReplace replaces the username's identity key.
	KindReplace BindingKind = 2
)

const (
	leafVersion     = 1
	leafVersionCert = 2 // with the organization's identity certificate
	// MaxUsername, MaxIdentityKey and MaxCertificate bound a binding's fields.
	MaxUsername    = 255
	MaxIdentityKey = 1024
	MaxCertificate = 4096
)

// ErrBadLeaf is returned for a malformed binding.
var ErrBadLeaf = errors.New("transparency: bad binding")

// Binding is one leaf of the log: from TimestampMS on, Username's identity
// key is IdentityKey.
type Binding struct {
	Kind        BindingKind
	Username    string
	IdentityKey []byte
	TimestampMS int64
	// Certificate is the organization's identity certificate for the
	// binding (orgcert), opaque here; empty in a version 1 leaf.
	Certificate []byte
}

func (b *Binding) check() error {
	switch {
	case b.Kind != KindAdd && b.Kind != KindReplace:
		return fmt.Errorf("%w: kind %d", ErrBadLeaf, b.Kind)
	case len(b.Username) == 0 || len(b.Username) > MaxUsername || !utf8.ValidString(b.Username):
		return fmt.Errorf("%w: username", ErrBadLeaf)
	case len(b.IdentityKey) == 0 || len(b.IdentityKey) > MaxIdentityKey:
		return fmt.Errorf("%w: identity key of %d bytes", ErrBadLeaf, len(b.IdentityKey))
	case b.TimestampMS < 0:
		return fmt.Errorf("%w: timestamp", ErrBadLeaf)
	case len(b.Certificate) > MaxCertificate:
		return fmt.Errorf("%w: certificate of %d bytes", ErrBadLeaf, len(b.Certificate))
	}
	return nil
}

// Encode returns the canonical leaf: version (1), kind (1), timestamp
// (8, big endian, Unix ms), username length (1), username (UTF-8), identity
// key length (2, big endian), identity key; with a certificate, the version
// is 2 and certificate length (2, big endian) and certificate follow.
func (b *Binding) Encode() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, 15+len(b.Username)+len(b.IdentityKey)+len(b.Certificate))
	v := byte(leafVersion)
	if len(b.Certificate) > 0 {
		v = leafVersionCert
	}
	out = append(out, v, byte(b.Kind))
	out = binary.BigEndian.AppendUint64(out, uint64(b.TimestampMS))
	out = append(out, byte(len(b.Username)))
	out = append(out, b.Username...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.IdentityKey)))
	out = append(out, b.IdentityKey...)
	if v == leafVersionCert {
		out = binary.BigEndian.AppendUint16(out, uint16(len(b.Certificate)))
		out = append(out, b.Certificate...)
	}
	return out, nil
}

// DecodeBinding parses a canonical leaf; it accepts exactly what Encode
// produces.
func DecodeBinding(leaf []byte) (Binding, error) {
	var b Binding
	if len(leaf) < 11 || (leaf[0] != leafVersion && leaf[0] != leafVersionCert) {
		return b, fmt.Errorf("%w: header", ErrBadLeaf)
	}
	b.Kind = BindingKind(leaf[1])
	ts := binary.BigEndian.Uint64(leaf[2:])
	if ts > 1<<62 {
		return b, fmt.Errorf("%w: timestamp", ErrBadLeaf)
	}
	b.TimestampMS = int64(ts)
	n := int(leaf[10])
	rest := leaf[11:]
	if len(rest) < n+2 {
		return b, fmt.Errorf("%w: truncated", ErrBadLeaf)
	}
	b.Username = string(rest[:n])
	rest = rest[n:]
	k := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if leaf[0] == leafVersionCert {
		if len(rest) < k+2 {
			return b, fmt.Errorf("%w: truncated", ErrBadLeaf)
		}
		b.IdentityKey = append([]byte(nil), rest[:k]...)
		rest = rest[k:]
		c := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if len(rest) != c || c == 0 {
			return b, fmt.Errorf("%w: certificate length", ErrBadLeaf)
		}
		b.Certificate = append([]byte(nil), rest...)
	} else {
		if len(rest) != k {
			return b, fmt.Errorf("%w: identity key length", ErrBadLeaf)
		}
		b.IdentityKey = append([]byte(nil), rest...)
	}
	if err := b.check(); err != nil {
		return Binding{}, err
	}
	return b, nil
}
