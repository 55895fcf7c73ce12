package org

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Export format of the org private key, to move it to a second admin
// device: "sotto-org-key:v1:" + base64url(public key(32) || salt(16) ||
// nonce(24) || XChaCha20-Poly1305(seed)), the AEAD key derived from a
// passphrase with Argon2id (t=3, 64 MiB, p=4), the public key as the
// associated data.

const exportPrefix = "sotto-org-key:v1:"

const (
	saltSize   = 16
	sealedSize = ed25519.PublicKeySize + saltSize + chacha20poly1305.NonceSizeX + ed25519.SeedSize + chacha20poly1305.Overhead
)

func exportKey(passphrase, salt []byte) []byte {
	return argon2.IDKey(passphrase, salt, 3, 64<<10, 4, chacha20poly1305.KeySize)
}

// SealKey seals priv for export under passphrase.
func SealKey(priv ed25519.PrivateKey, passphrase []byte) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", ErrBadKey
	}
	if len(passphrase) < 8 {
		return "", fmt.Errorf("org: the export passphrase must have at least 8 characters")
	}
	pub := priv.Public().(ed25519.PublicKey)
	salt := make([]byte, saltSize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(salt)
	rand.Read(nonce)
	k := exportKey(passphrase, salt)
	defer clear(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return "", fmt.Errorf("org: %w", err)
	}
	out := append(append(append([]byte(nil), pub...), salt...), nonce...)
	out = aead.Seal(out, nonce, priv.Seed(), pub)
	return exportPrefix + base64.RawURLEncoding.EncodeToString(out), nil
}

// SealedPublicKey returns the public key an exported key claims to be,
// without opening it.
func SealedPublicKey(sealed string) (ed25519.PublicKey, error) {
	b, err := decodeSealed(sealed)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b[:ed25519.PublicKeySize]), nil
}

func decodeSealed(sealed string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(sealed), exportPrefix)
	if !ok {
		return nil, ErrBadKey
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != sealedSize {
		return nil, ErrBadKey
	}
	return b, nil
}

// OpenKey opens an exported key with passphrase. The key opened must be
// the one the export names; callers then check that public key against
// the fingerprint they trust.
func OpenKey(sealed string, passphrase []byte) (ed25519.PrivateKey, error) {
	b, err := decodeSealed(sealed)
	if err != nil {
		return nil, err
	}
	pub := b[:ed25519.PublicKeySize]
	salt := b[ed25519.PublicKeySize : ed25519.PublicKeySize+saltSize]
	nonce := b[ed25519.PublicKeySize+saltSize : ed25519.PublicKeySize+saltSize+chacha20poly1305.NonceSizeX]
	ct := b[ed25519.PublicKeySize+saltSize+chacha20poly1305.NonceSizeX:]
	k := exportKey(passphrase, salt)
	defer clear(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("org: %w", err)
	}
	seed, err := aead.Open(nil, nonce, ct, pub)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	defer clear(seed)
	priv := ed25519.NewKeyFromSeed(seed)
	if subtle.ConstantTimeCompare(priv.Public().(ed25519.PublicKey), pub) != 1 {
		clear(priv)
		return nil, ErrBadKey
	}
	return priv, nil
}
