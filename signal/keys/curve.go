package keys

import (
	"crypto/ecdh"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"
)

// TypeDJB is libsignal's type byte for a Curve25519 public key.
const TypeDJB = 0x05

// Sizes of Curve25519 keys and XEdDSA signatures.
const (
	PublicKeySize     = 32
	SerializedKeySize = 1 + PublicKeySize
	PrivateKeySize    = 32
	SignatureSize     = 64
	SharedSecretSize  = 32
)

var (
	// ErrInvalidKey reports a malformed, wrongly typed or wrongly sized key.
	ErrInvalidKey = errors.New("keys: invalid key")
	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("keys: bad signature")
)

// PublicKey is a Curve25519 public key.
type PublicKey struct {
	b [PublicKeySize]byte
}

// ParsePublicKey parses libsignal's serialized form 0x05 || 32 bytes.
// Like libsignal, trailing bytes after the 33 are ignored.
func ParsePublicKey(b []byte) (PublicKey, error) {
	if len(b) == 0 {
		return PublicKey{}, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if b[0] != TypeDJB {
		return PublicKey{}, fmt.Errorf("%w: type byte %#x", ErrInvalidKey, b[0])
	}
	if len(b) < SerializedKeySize {
		return PublicKey{}, fmt.Errorf("%w: length %d", ErrInvalidKey, len(b))
	}
	var k PublicKey
	copy(k.b[:], b[1:SerializedKeySize])
	return k, nil
}

// PublicKeyFromBytes makes a key from its raw 32 bytes (no type byte).
func PublicKeyFromBytes(b []byte) (PublicKey, error) {
	if len(b) != PublicKeySize {
		return PublicKey{}, fmt.Errorf("%w: length %d", ErrInvalidKey, len(b))
	}
	var k PublicKey
	copy(k.b[:], b)
	return k, nil
}

// Serialize returns 0x05 || the 32 key bytes.
func (k PublicKey) Serialize() []byte {
	out := make([]byte, SerializedKeySize)
	out[0] = TypeDJB
	copy(out[1:], k.b[:])
	return out
}

// AppendSerialized appends the serialized key to dst.
func (k PublicKey) AppendSerialized(dst []byte) []byte {
	dst = append(dst, TypeDJB)
	return append(dst, k.b[:]...)
}

// Bytes returns the raw 32 bytes (no type byte).
func (k PublicKey) Bytes() []byte {
	out := k.b
	return out[:]
}

// IsZero reports whether k is the zero value (no key).
func (k PublicKey) IsZero() bool { return k.b == [PublicKeySize]byte{} }

// Equal compares two keys in constant time.
func (k PublicKey) Equal(o PublicKey) bool {
	return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// String returns a short hexadecimal form, for diagnostics.
func (k PublicKey) String() string { return fmt.Sprintf("PublicKey(%x)", k.b[:8]) }

// Verify checks an XEdDSA signature over the concatenation of msg parts,
// exactly as libsignal does.
func (k PublicKey) Verify(sig []byte, msg ...[]byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	return xeddsaVerify(&k.b, sig, msg)
}

// PrivateKey is a Curve25519 private key. It never prints its value.
//
// crypto/ecdh derives the public key whenever a private key is made, which
// costs a full scalar multiplication; a key parsed from storage is often
// never used (a ratchet key that only sends), so that work is deferred to
// the first Agree or PublicKey.
type PrivateKey struct {
	s *privateState
}

type privateState struct {
	raw  [PrivateKeySize]byte // clamped
	once sync.Once
	k    *ecdh.PrivateKey
	err  error
}

func (st *privateState) key() (*ecdh.PrivateKey, error) {
	st.once.Do(func() {
		st.k, st.err = ecdh.X25519().NewPrivateKey(st.raw[:])
	})
	return st.k, st.err
}

// ParsePrivateKey parses 32 raw bytes; like libsignal it clamps them.
func ParsePrivateKey(b []byte) (PrivateKey, error) {
	if len(b) != PrivateKeySize {
		return PrivateKey{}, fmt.Errorf("%w: private key length %d", ErrInvalidKey, len(b))
	}
	st := &privateState{}
	copy(st.raw[:], b)
	clamp(&st.raw)
	return PrivateKey{s: st}, nil
}

func clamp(b *[32]byte) {
	b[0] &= 248
	b[31] &= 127
	b[31] |= 64
}

// Bytes returns the 32 private bytes (clamped). Handle with care.
func (p PrivateKey) Bytes() []byte {
	if p.s == nil {
		return nil
	}
	out := p.s.raw
	return out[:]
}

// PublicKey derives the public key.
func (p PrivateKey) PublicKey() PublicKey {
	var k PublicKey
	if p.s == nil {
		return k
	}
	if ek, err := p.s.key(); err == nil {
		copy(k.b[:], ek.PublicKey().Bytes())
	}
	return k
}

// Agree computes the X25519 shared secret with a public key.
func (p PrivateKey) Agree(pub PublicKey) ([]byte, error) {
	if p.s == nil {
		return nil, fmt.Errorf("%w: empty private key", ErrInvalidKey)
	}
	ek, err := p.s.key()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	pk, err := ecdh.X25519().NewPublicKey(pub.b[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	s, err := ek.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("keys: agreement: %w", err)
	}
	return s, nil
}

// Sign makes an XEdDSA signature over the concatenation of msg parts, as
// libsignal does (Edwards sign bit stored in the top bit of the last byte).
func (p PrivateKey) Sign(rand io.Reader, msg ...[]byte) ([]byte, error) {
	if p.s == nil {
		return nil, fmt.Errorf("%w: empty private key", ErrInvalidKey)
	}
	var nonce [64]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return nil, fmt.Errorf("keys: reading randomness: %w", err)
	}
	priv := p.s.raw
	sig := xeddsaSign(priv[:], &nonce, msg)
	clear(priv[:])
	clear(nonce[:])
	return sig, nil
}

// String never reveals key material.
func (p PrivateKey) String() string { return "PrivateKey(redacted)" }

// GoString never reveals key material.
func (p PrivateKey) GoString() string { return "keys.PrivateKey{redacted}" }

// Format never reveals key material, whatever the verb.
func (p PrivateKey) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, "PrivateKey(redacted)") }

// KeyPair is a Curve25519 key pair.
type KeyPair struct {
	Public  PublicKey
	Private PrivateKey
}

// GenerateKeyPair makes a new key pair from rand (32 bytes read, clamped).
func GenerateKeyPair(rand io.Reader) (KeyPair, error) {
	var b [32]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return KeyPair{}, fmt.Errorf("keys: reading randomness: %w", err)
	}
	priv, err := ParsePrivateKey(b[:])
	clear(b[:])
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Public: priv.PublicKey(), Private: priv}, nil
}

// NewKeyPair rebuilds a key pair from a private key.
func NewKeyPair(priv PrivateKey) KeyPair {
	return KeyPair{Public: priv.PublicKey(), Private: priv}
}
