package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"sotto/signal/keys"
)

// Labels libsignal uses for its HKDF expansions.
const (
	pqxdhInfo       = "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024"
	ratchetInfo     = "WhisperRatchet"
	messageKeysInfo = "WhisperMessageKeys"
)

// deriveInitial derives the root key, the first chain key and the SPQR
// authentication key from the PQXDH secret (libsignal's 96-byte expansion).
func deriveInitial(secret []byte) (root, chainKey, pqrKey [32]byte, err error) {
	out, err := hkdf.Key(sha256.New, secret, nil, pqxdhInfo, 96)
	if err != nil {
		return root, chainKey, pqrKey, fmt.Errorf("session: hkdf: %w", err)
	}
	copy(root[:], out[:32])
	copy(chainKey[:], out[32:64])
	copy(pqrKey[:], out[64:])
	clear(out)
	return root, chainKey, pqrKey, nil
}

// createChain performs one DH ratchet step from root key rk.
func createChain(rk *[32]byte, their keys.PublicKey, our keys.PrivateKey) (root, chainKey [32]byte, err error) {
	dh, err := our.Agree(their)
	if err != nil {
		return root, chainKey, err
	}
	out, err := hkdf.Key(sha256.New, dh, rk[:], ratchetInfo, 64)
	clear(dh)
	if err != nil {
		return root, chainKey, fmt.Errorf("session: hkdf: %w", err)
	}
	copy(root[:], out[:32])
	copy(chainKey[:], out[32:])
	clear(out)
	return root, chainKey, nil
}

// chainStep returns the message key seed (HMAC(ck, 0x01)) and the next chain
// key (HMAC(ck, 0x02)).
func chainStep(ck *[32]byte) (seed, next [32]byte) {
	m := hmac.New(sha256.New, ck[:])
	m.Write([]byte{0x01})
	m.Sum(seed[:0])
	m.Reset()
	m.Write([]byte{0x02})
	m.Sum(next[:0])
	return seed, next
}

// messageKeys holds the keys of one message.
type messageKeys struct {
	cipherKey [32]byte
	macKey    [32]byte
	iv        [16]byte
}

// deriveMessageKeys expands a chain's message key seed; the SPQR message
// key, when there is one, is the HKDF salt (libsignal's triple ratchet).
func deriveMessageKeys(seed *[32]byte, pqKey []byte) (*messageKeys, error) {
	out, err := hkdf.Key(sha256.New, seed[:], pqKey, messageKeysInfo, 80)
	if err != nil {
		return nil, fmt.Errorf("session: hkdf: %w", err)
	}
	mk := &messageKeys{}
	copy(mk.cipherKey[:], out[:32])
	copy(mk.macKey[:], out[32:64])
	copy(mk.iv[:], out[64:])
	clear(out)
	return mk, nil
}

func (mk *messageKeys) wipe() { *mk = messageKeys{} }

// cbcEncrypt is AES-256-CBC with PKCS#7 padding.
func cbcEncrypt(key *[32]byte, iv *[16]byte, plaintext []byte) []byte {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	out := make([]byte, len(plaintext)+pad)
	copy(out, plaintext)
	for i := len(plaintext); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv[:]).CryptBlocks(out, out)
	return out
}

var errBadPadding = errors.New("session: bad ciphertext")

func cbcDecrypt(key *[32]byte, iv *[16]byte, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, errBadPadding
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	out := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv[:]).CryptBlocks(out, ciphertext)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, errBadPadding
	}
	// The MAC was verified before decryption, so this check is not a
	// padding oracle; it is still done without early exit.
	bad := 0
	for _, c := range out[len(out)-pad:] {
		bad |= subtle.ConstantTimeByteEq(c, byte(pad)) ^ 1
	}
	if bad != 0 {
		return nil, errBadPadding
	}
	return out[:len(out)-pad], nil
}
