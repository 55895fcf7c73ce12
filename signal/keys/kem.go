package keys

import (
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/kyber/kyber1024"
)

// TypeKyber1024 is libsignal's type byte for Kyber-1024 (round 3) keys and
// ciphertexts. libsignal 0.90 builds without its optional ML-KEM-1024 (0x0A)
// feature, so ML-KEM keys are not accepted here either.
const TypeKyber1024 = 0x08

// Sizes of serialized Kyber-1024 objects, type byte included.
const (
	KEMPublicKeySize  = 1 + kyber1024.PublicKeySize
	KEMPrivateKeySize = 1 + kyber1024.PrivateKeySize
	KEMCiphertextSize = 1 + kyber1024.CiphertextSize
)

// KEMPublicKey is a Kyber-1024 public key.
type KEMPublicKey struct {
	pk  *kyber1024.PublicKey
	ser []byte // 0x08 || key
}

// ParseKEMPublicKey parses 0x08 || 1568 bytes.
func ParseKEMPublicKey(b []byte) (*KEMPublicKey, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty kem key", ErrInvalidKey)
	}
	if b[0] != TypeKyber1024 {
		return nil, fmt.Errorf("%w: kem key type %#x", ErrInvalidKey, b[0])
	}
	if len(b) != KEMPublicKeySize {
		return nil, fmt.Errorf("%w: kem key length %d", ErrInvalidKey, len(b))
	}
	pk := new(kyber1024.PublicKey)
	pk.Unpack(b[1:])
	return &KEMPublicKey{pk: pk, ser: append([]byte(nil), b...)}, nil
}

// Serialize returns 0x08 || the key bytes.
func (k *KEMPublicKey) Serialize() []byte { return append([]byte(nil), k.ser...) }

// Equal compares two keys in constant time.
func (k *KEMPublicKey) Equal(o *KEMPublicKey) bool {
	return k != nil && o != nil && subtle.ConstantTimeCompare(k.ser, o.ser) == 1
}

// Encapsulate makes a fresh shared secret for k. The ciphertext is
// serialized as libsignal does: 0x08 || 1568 bytes.
func (k *KEMPublicKey) Encapsulate(rand io.Reader) (ciphertext, secret []byte, err error) {
	var seed [kyber1024.EncapsulationSeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, nil, fmt.Errorf("keys: reading randomness: %w", err)
	}
	ct := make([]byte, KEMCiphertextSize)
	ct[0] = TypeKyber1024
	ss := make([]byte, kyber1024.SharedKeySize)
	k.pk.EncapsulateTo(ct[1:], ss, seed[:])
	clear(seed[:])
	return ct, ss, nil
}

// KEMPrivateKey is a Kyber-1024 private key. It never prints its value.
type KEMPrivateKey struct {
	sk  *kyber1024.PrivateKey
	ser []byte
}

// ParseKEMPrivateKey parses 0x08 || 3168 bytes.
func ParseKEMPrivateKey(b []byte) (*KEMPrivateKey, error) {
	if len(b) != KEMPrivateKeySize || b[0] != TypeKyber1024 {
		return nil, fmt.Errorf("%w: kem private key", ErrInvalidKey)
	}
	sk := new(kyber1024.PrivateKey)
	sk.Unpack(b[1:])
	return &KEMPrivateKey{sk: sk, ser: append([]byte(nil), b...)}, nil
}

// Serialize returns 0x08 || the private key bytes. Handle with care.
func (k *KEMPrivateKey) Serialize() []byte { return append([]byte(nil), k.ser...) }

// Decapsulate recovers the shared secret from a serialized ciphertext.
func (k *KEMPrivateKey) Decapsulate(ciphertext []byte) ([]byte, error) {
	if len(ciphertext) == 0 || ciphertext[0] != TypeKyber1024 {
		return nil, fmt.Errorf("%w: kem ciphertext type", ErrInvalidKey)
	}
	if len(ciphertext) != KEMCiphertextSize {
		return nil, fmt.Errorf("%w: kem ciphertext length %d", ErrInvalidKey, len(ciphertext))
	}
	ss := make([]byte, kyber1024.SharedKeySize)
	k.sk.DecapsulateTo(ss, ciphertext[1:])
	return ss, nil
}

// String never reveals key material.
func (k *KEMPrivateKey) String() string { return "KEMPrivateKey(redacted)" }

// GoString never reveals key material.
func (k *KEMPrivateKey) GoString() string { return "keys.KEMPrivateKey{redacted}" }

// Format never reveals key material.
func (k *KEMPrivateKey) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, "KEMPrivateKey(redacted)")
}

// KEMKeyPair is a Kyber-1024 key pair.
type KEMKeyPair struct {
	Public  *KEMPublicKey
	Private *KEMPrivateKey
}

// GenerateKEMKeyPair makes a Kyber-1024 key pair from rand.
func GenerateKEMKeyPair(rand io.Reader) (*KEMKeyPair, error) {
	var seed [kyber1024.KeySeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("keys: reading randomness: %w", err)
	}
	pk, sk := kyber1024.NewKeyFromSeed(seed[:])
	clear(seed[:])
	pub := make([]byte, KEMPublicKeySize)
	pub[0] = TypeKyber1024
	pk.Pack(pub[1:])
	priv := make([]byte, KEMPrivateKeySize)
	priv[0] = TypeKyber1024
	sk.Pack(priv[1:])
	return &KEMKeyPair{
		Public:  &KEMPublicKey{pk: pk, ser: pub},
		Private: &KEMPrivateKey{sk: sk, ser: priv},
	}, nil
}
