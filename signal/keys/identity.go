package keys

import (
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// IdentityKeyPair is a long-term identity key pair. It never prints its
// private half.
type IdentityKeyPair struct {
	pair KeyPair
}

// GenerateIdentityKeyPair makes a new identity key pair.
func GenerateIdentityKeyPair(rand io.Reader) (*IdentityKeyPair, error) {
	kp, err := GenerateKeyPair(rand)
	if err != nil {
		return nil, err
	}
	return &IdentityKeyPair{pair: kp}, nil
}

// NewIdentityKeyPair wraps an existing key pair.
func NewIdentityKeyPair(kp KeyPair) *IdentityKeyPair { return &IdentityKeyPair{pair: kp} }

// PublicKey returns the public identity key.
func (k *IdentityKeyPair) PublicKey() PublicKey { return k.pair.Public }

// PrivateKey returns the private identity key.
func (k *IdentityKeyPair) PrivateKey() PrivateKey { return k.pair.Private }

// KeyPair returns the underlying key pair.
func (k *IdentityKeyPair) KeyPair() KeyPair { return k.pair }

// Sign signs msg with the identity key (XEdDSA).
func (k *IdentityKeyPair) Sign(rand io.Reader, msg ...[]byte) ([]byte, error) {
	return k.pair.Private.Sign(rand, msg...)
}

// Serialize encodes the pair as libsignal's IdentityKeyPairStructure
// protobuf: public_key (1, serialized) and private_key (2, raw 32 bytes).
func (k *IdentityKeyPair) Serialize() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, k.pair.Public.Serialize())
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, k.pair.Private.Bytes())
	return b
}

// ParseIdentityKeyPair decodes Serialize's output and checks that the public
// key matches the private key.
func ParseIdentityKeyPair(b []byte) (*IdentityKeyPair, error) {
	var pub, priv []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: identity key pair encoding", ErrInvalidKey)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, fmt.Errorf("%w: identity key pair encoding", ErrInvalidKey)
			}
			if num == 1 {
				pub = v
			} else {
				priv = v
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, fmt.Errorf("%w: identity key pair encoding", ErrInvalidKey)
		}
		b = b[m:]
	}
	p, err := ParsePrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pk, err := ParsePublicKey(pub)
	if err != nil {
		return nil, err
	}
	kp := NewKeyPair(p)
	if !kp.Public.Equal(pk) {
		return nil, fmt.Errorf("%w: identity public key does not match private key", ErrInvalidKey)
	}
	return &IdentityKeyPair{pair: kp}, nil
}

// String never reveals the private key.
func (k *IdentityKeyPair) String() string {
	return "IdentityKeyPair(" + k.pair.Public.String() + ")"
}

// GoString never reveals the private key.
func (k *IdentityKeyPair) GoString() string { return k.String() }

// Format never reveals the private key.
func (k *IdentityKeyPair) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, k.String()) }
