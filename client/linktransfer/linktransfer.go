// Package linktransfer is the channel a device link travels on: the link
// code the new device shows (its provisioning address at the relay and an
// X25519 public key) and the HPKE seal (RFC 9180: DHKEM(X25519,
// HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, bound to the address) of
// the approving device's message to it. The relay carries the sealed
// message without being able to read it. What the message holds is the
// client's (client/enroll.go); this package never sees it but as bytes.
package linktransfer

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// CodePrefix starts every link code.
const CodePrefix = "sotto-link:"

// maxAddress bounds a provisioning address in a link code.
const maxAddress = 256

// ErrBadCode reports a malformed link code.
var ErrBadCode = errors.New("client: malformed link code")

// ErrNotOpened reports a sealed message that does not open with the key
// and address given: not sealed to them, altered, or not a sealed message.
var ErrNotOpened = errors.New("linktransfer: the message does not decrypt")

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ChaCha20Poly1305() }

func info(address string) []byte { return []byte("sotto/link v1\x00" + address) }

// EncodeCode is the link code of a provisioning address and the new
// device's public key (the inverse of ParseCode).
func EncodeCode(address string, pub *ecdh.PublicKey) string {
	enc := base64.RawURLEncoding
	return CodePrefix + enc.EncodeToString([]byte(address)) + "." + enc.EncodeToString(pub.Bytes())
}

// ParseCode reads a link code: the provisioning address and the new
// device's X25519 public key. Every error is ErrBadCode.
func ParseCode(code string) (string, *ecdh.PublicKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(code), CodePrefix)
	if !ok {
		return "", nil, ErrBadCode
	}
	a, k, ok := strings.Cut(rest, ".")
	if !ok {
		return "", nil, ErrBadCode
	}
	address, err1 := base64.RawURLEncoding.DecodeString(a)
	pubBytes, err2 := base64.RawURLEncoding.DecodeString(k)
	if err1 != nil || err2 != nil || len(address) == 0 || len(address) > maxAddress {
		return "", nil, ErrBadCode
	}
	pub, err := ecdh.X25519().NewPublicKey(pubBytes)
	if err != nil {
		return "", nil, ErrBadCode
	}
	return string(address), pub, nil
}

// Seal seals pt to the new device's key pub for its provisioning address.
func Seal(pub *ecdh.PublicKey, address string, pt []byte) ([]byte, error) {
	hpub, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, ErrBadCode
	}
	kdf, aead := suite()
	sealed, err := hpke.Seal(hpub, kdf, aead, info(address), pt)
	if err != nil {
		return nil, fmt.Errorf("linktransfer: seal: %w", err)
	}
	return sealed, nil
}

// Open opens a message sealed to priv for address; a message that does
// not open is ErrNotOpened. The caller clears the plaintext after use.
func Open(priv *ecdh.PrivateKey, address string, sealed []byte) ([]byte, error) {
	hk, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("linktransfer: link key: %w", err)
	}
	kdf, aead := suite()
	pt, err := hpke.Open(hk, kdf, aead, info(address), sealed)
	if err != nil {
		return nil, ErrNotOpened
	}
	return pt, nil
}
