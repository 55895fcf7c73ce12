package mls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"

	"sotto/mls/internal/codec"
)

// CipherSuite identifies an MLS cipher suite (RFC 9420 §17.1).
type CipherSuite uint16

// The cipher suites of RFC 9420 §17.1.
const (
	X25519_AES128GCM_SHA256_Ed25519        CipherSuite = 0x0001
	P256_AES128GCM_SHA256_P256             CipherSuite = 0x0002
	X25519_CHACHA20POLY1305_SHA256_Ed25519 CipherSuite = 0x0003
	X448_AES256GCM_SHA512_Ed448            CipherSuite = 0x0004
	P521_AES256GCM_SHA512_P521             CipherSuite = 0x0005
	X448_CHACHA20POLY1305_SHA512_Ed448     CipherSuite = 0x0006
	P384_AES256GCM_SHA384_P384             CipherSuite = 0x0007
)

// Supported reports whether this package implements cs.
func (cs CipherSuite) Supported() bool {
	_, err := cs.suite()
	return err == nil
}

// String returns the suite's RFC name.
func (cs CipherSuite) String() string {
	switch cs {
	case X25519_AES128GCM_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
	case P256_AES128GCM_SHA256_P256:
		return "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
	case X25519_CHACHA20POLY1305_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519"
	case X448_AES256GCM_SHA512_Ed448:
		return "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"
	case P521_AES256GCM_SHA512_P521:
		return "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
	case X448_CHACHA20POLY1305_SHA512_Ed448:
		return "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448"
	case P384_AES256GCM_SHA384_P384:
		return "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(cs))
}

// suite holds the primitives of one cipher suite.
type suite struct {
	id       CipherSuite
	newHash  func() hash.Hash
	kem      hpke.KEM
	kdf      hpke.KDF
	aead     hpke.AEAD
	newAEAD  func(key []byte) (cipher.AEAD, error)
	keyLen   int
	nonceLen int
	curve    elliptic.Curve // nil for Ed25519
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func newSHA256() hash.Hash { return sha256.New() }
func newSHA384() hash.Hash { return sha512.New384() }
func newSHA512() hash.Hash { return sha512.New() }

func (cs CipherSuite) suite() (*suite, error) {
	switch cs {
	case X25519_AES128GCM_SHA256_Ed25519:
		return &suite{cs, newSHA256, hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES128GCM(), newGCM, 16, 12, nil}, nil
	case P256_AES128GCM_SHA256_P256:
		return &suite{cs, newSHA256, hpke.DHKEM(ecdh.P256()), hpke.HKDFSHA256(), hpke.AES128GCM(), newGCM, 16, 12, elliptic.P256()}, nil
	case X25519_CHACHA20POLY1305_SHA256_Ed25519:
		return &suite{cs, newSHA256, hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), chacha20poly1305.New, 32, 12, nil}, nil
	case P521_AES256GCM_SHA512_P521:
		return &suite{cs, newSHA512, hpke.DHKEM(ecdh.P521()), hpke.HKDFSHA512(), hpke.AES256GCM(), newGCM, 32, 12, elliptic.P521()}, nil
	case P384_AES256GCM_SHA384_P384:
		return &suite{cs, newSHA384, hpke.DHKEM(ecdh.P384()), hpke.HKDFSHA384(), hpke.AES256GCM(), newGCM, 32, 12, elliptic.P384()}, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedCipherSuite, cs)
}

// hashLen is Nh, the output size of the suite's hash.
func (s *suite) hashLen() int { return s.newHash().Size() }

func (s *suite) hash(b []byte) []byte {
	h := s.newHash()
	h.Write(b)
	return h.Sum(nil)
}

func (s *suite) extract(salt, ikm []byte) []byte {
	if len(salt) == 0 {
		salt = make([]byte, s.hashLen())
	}
	prk, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		// HKDF-Extract cannot fail for these hashes.
		return make([]byte, s.hashLen())
	}
	return prk
}

func (s *suite) expand(prk []byte, info []byte, n int) ([]byte, error) {
	out, err := hkdf.Expand(s.newHash, prk, string(info), n)
	if err != nil {
		return nil, fmt.Errorf("mls: expand: %w", err)
	}
	return out, nil
}

// expandWithLabel is ExpandWithLabel of RFC 9420 §8.
func (s *suite) expandWithLabel(secret []byte, label string, context []byte, n int) ([]byte, error) {
	if n < 0 || n > 0xffff {
		return nil, fmt.Errorf("mls: expand length %d out of range", n)
	}
	var w codec.Writer
	w.U16(uint16(n))
	w.Opaque([]byte("MLS 1.0 " + label))
	w.Opaque(context)
	info, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: kdf label: %w", err)
	}
	return s.expand(secret, info, n)
}

// deriveSecret is DeriveSecret of RFC 9420 §8.
func (s *suite) deriveSecret(secret []byte, label string) ([]byte, error) {
	return s.expandWithLabel(secret, label, nil, s.hashLen())
}

// deriveTreeSecret is DeriveTreeSecret of RFC 9420 §9.1.
func (s *suite) deriveTreeSecret(secret []byte, label string, generation uint32, n int) ([]byte, error) {
	var ctx [4]byte
	ctx[0], ctx[1], ctx[2], ctx[3] = byte(generation>>24), byte(generation>>16), byte(generation>>8), byte(generation)
	return s.expandWithLabel(secret, label, ctx[:], n)
}

func (s *suite) mac(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// verifyMAC compares in constant time.
func (s *suite) verifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(s.mac(key, data), tag)
}

// refHash is RefHash of RFC 9420 §5.2.
func (s *suite) refHash(label string, value []byte) []byte {
	var w codec.Writer
	w.Opaque([]byte(label))
	w.Opaque(value)
	b, err := w.Bytes()
	if err != nil {
		return nil
	}
	return s.hash(b)
}

func (s *suite) seal(key, nonce, aad, pt []byte) ([]byte, error) {
	a, err := s.newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: aead key", ErrInvalidKey)
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("%w: nonce size", ErrInvalidKey)
	}
	return a.Seal(nil, nonce, pt, aad), nil
}

func (s *suite) open(key, nonce, aad, ct []byte) ([]byte, error) {
	a, err := s.newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: aead key", ErrInvalidKey)
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("%w: nonce size", ErrInvalidKey)
	}
	pt, err := a.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func labeled(label string, content []byte) []byte {
	var w codec.Writer
	w.Opaque([]byte("MLS 1.0 " + label))
	w.Opaque(content)
	b, _ := w.Bytes()
	return b
}

// signWithLabel is SignWithLabel of RFC 9420 §5.1.2. priv is the suite's
// signature private key encoding (Ed25519 seed or ECDSA scalar).
func (s *suite) signWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	k, err := s.newSigner(priv)
	if err != nil {
		return nil, err
	}
	return s.signWith(k, label, content)
}

// signer is a parsed signature private key. Parsing derives the public
// key (a scalar multiplication), so a member keeps one signer per key
// rather than parsing the key for every message it signs.
type signer struct {
	from []byte // the private key it was parsed from
	ed   ed25519.PrivateKey
	ec   *ecdsa.PrivateKey
}

func (s *suite) newSigner(priv []byte) (*signer, error) {
	if s.curve == nil {
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: ed25519 private key size", ErrInvalidKey)
		}
		return &signer{from: bytes.Clone(priv), ed: ed25519.NewKeyFromSeed(priv)}, nil
	}
	k, err := s.ecdsaPrivate(priv)
	if err != nil {
		return nil, err
	}
	return &signer{from: bytes.Clone(priv), ec: k}, nil
}

// signWith is SignWithLabel with a parsed key.
func (s *suite) signWith(k *signer, label string, content []byte) ([]byte, error) {
	msg := labeled(label, content)
	if msg == nil {
		return nil, fmt.Errorf("%w: content too long", ErrDecode)
	}
	if k.ed != nil {
		return ed25519.Sign(k.ed, msg), nil
	}
	return ecdsa.SignASN1(rand.Reader, k.ec, s.hash(msg))
}

// verifyWithLabel is VerifyWithLabel of RFC 9420 §5.1.2.
func (s *suite) verifyWithLabel(pub []byte, label string, content, sig []byte) error {
	msg := labeled(label, content)
	if msg == nil {
		return fmt.Errorf("%w: content too long", ErrDecode)
	}
	if s.curve == nil {
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: ed25519 public key size", ErrInvalidKey)
		}
		if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
			return ErrInvalidSignature
		}
		return nil
	}
	k, err := ecdsa.ParseUncompressedPublicKey(s.curve, pub)
	if err != nil {
		return fmt.Errorf("%w: ecdsa public key", ErrInvalidKey)
	}
	if !ecdsa.VerifyASN1(k, s.hash(msg), sig) {
		return ErrInvalidSignature
	}
	return nil
}

// ecdsaPrivate parses a big-endian ECDSA scalar, accepting encodings
// shorter than the field size (leading zero bytes omitted).
func (s *suite) ecdsaPrivate(priv []byte) (*ecdsa.PrivateKey, error) {
	size := (s.curve.Params().BitSize + 7) / 8
	if len(priv) == 0 || len(priv) > size {
		return nil, fmt.Errorf("%w: ecdsa private key size", ErrInvalidKey)
	}
	padded := make([]byte, size)
	copy(padded[size-len(priv):], priv)
	k, err := ecdsa.ParseRawPrivateKey(s.curve, padded)
	clear(padded)
	if err != nil {
		return nil, fmt.Errorf("%w: ecdsa private key", ErrInvalidKey)
	}
	return k, nil
}

// signaturePublicKey returns the public key for a signature private key.
func (s *suite) signaturePublicKey(priv []byte) ([]byte, error) {
	if s.curve == nil {
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: ed25519 private key size", ErrInvalidKey)
		}
		return ed25519.NewKeyFromSeed(priv).Public().(ed25519.PublicKey), nil
	}
	k, err := s.ecdsaPrivate(priv)
	if err != nil {
		return nil, err
	}
	return k.PublicKey.Bytes()
}

// generateSignatureKey returns a fresh signature key pair.
func (s *suite) generateSignatureKey() (priv, pub []byte, err error) {
	if s.curve == nil {
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		return k.Seed(), p, nil
	}
	k, err := ecdsa.GenerateKey(s.curve, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	pub, err = k.PublicKey.Bytes()
	return priv, pub, err
}

// hpkePrivate parses an HPKE private key (SerializePrivateKey form). For
// the NIST curves, scalars shorter than the field size (leading zero bytes
// dropped, as some encoders do) are left-padded.
func (s *suite) hpkePrivate(priv []byte) (hpke.PrivateKey, error) {
	if s.curve != nil {
		size := (s.curve.Params().BitSize + 7) / 8
		if len(priv) > 0 && len(priv) < size {
			padded := make([]byte, size)
			copy(padded[size-len(priv):], priv)
			defer clear(padded)
			priv = padded
		}
	}
	k, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: hpke private key", ErrInvalidKey)
	}
	return k, nil
}

// encryptWithLabel is EncryptWithLabel of RFC 9420 §5.1.3.
func (s *suite) encryptWithLabel(pub []byte, label string, context, pt []byte) (kemOutput, ct []byte, err error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: hpke public key", ErrInvalidKey)
	}
	info := labeled(label, context)
	if info == nil {
		return nil, nil, fmt.Errorf("%w: context too long", ErrDecode)
	}
	enc, sender, err := hpke.NewSender(pk, s.kdf, s.aead, info)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: hpke setup: %w", err)
	}
	ct, err = sender.Seal(nil, pt)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: hpke seal: %w", err)
	}
	return enc, ct, nil
}

// decryptWithLabel is DecryptWithLabel of RFC 9420 §5.1.3.
func (s *suite) decryptWithLabel(priv hpke.PrivateKey, label string, context, kemOutput, ct []byte) ([]byte, error) {
	info := labeled(label, context)
	if info == nil {
		return nil, fmt.Errorf("%w: context too long", ErrDecode)
	}
	r, err := hpke.NewRecipient(kemOutput, priv, s.kdf, s.aead, info)
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, err := r.Open(nil, ct)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// deriveKeyPair is DeriveKeyPair of RFC 9180 for the suite's KEM.
func (s *suite) deriveKeyPair(secret []byte) (hpke.PrivateKey, []byte, error) {
	k, err := s.kem.DeriveKeyPair(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: derive key pair: %w", err)
	}
	return k, k.PublicKey().Bytes(), nil
}
