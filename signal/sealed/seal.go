package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/signal/keys"
)

// Version bytes: the high nibble is the major version.
const (
	versionV1Full  = 0x11
	versionV1Major = 1
	versionV2Major = 2
)

// macSize is the truncated HMAC-SHA256 libsignal appends.
const macSize = 10

var saltPrefix = []byte("UnidentifiedDelivery")

// derive96 runs HKDF-SHA256 with an empty info into 96 bytes.
func derive96(secret, salt []byte) ([]byte, error) {
	out, err := hkdf.Key(sha256.New, secret, salt, "", 96)
	if err != nil {
		return nil, fmt.Errorf("sealed: hkdf: %w", err)
	}
	return out, nil
}

// ephemeralKeys derives (chain, cipher, mac) from the agreement between the
// ephemeral key and the recipient's identity key.
func ephemeralKeys(priv keys.PrivateKey, pub keys.PublicKey, recipient, ephemeral keys.PublicKey) ([]byte, error) {
	secret, err := priv.Agree(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral agreement: %w", ErrInvalidMessage, err)
	}
	defer clear(secret)
	salt := make([]byte, 0, len(saltPrefix)+2*keys.SerializedKeySize)
	salt = append(salt, saltPrefix...)
	salt = recipient.AppendSerialized(salt)
	salt = ephemeral.AppendSerialized(salt)
	return derive96(secret, salt)
}

// staticKeys derives (unused, cipher, mac) from the agreement between the
// identity keys, salted with the chain key and the encrypted static key.
func staticKeys(priv keys.PrivateKey, pub keys.PublicKey, chain, encryptedStatic []byte) ([]byte, error) {
	secret, err := priv.Agree(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: static agreement: %w", ErrInvalidMessage, err)
	}
	defer clear(secret)
	salt := make([]byte, 0, len(chain)+len(encryptedStatic))
	salt = append(salt, chain...)
	salt = append(salt, encryptedStatic...)
	return derive96(secret, salt)
}

// ctr applies AES-256-CTR with a zero IV (libsignal's Ctr32BE; identical
// below 2^32 blocks).
func ctr(key, in []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("sealed: aes key of 32 bytes rejected: " + err.Error())
	}
	out := make([]byte, len(in), len(in)+macSize)
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(out, in)
	return out
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)[:macSize]
}

// encryptThenMAC is libsignal's aes256_ctr_hmacsha256_encrypt.
func encryptThenMAC(plaintext, cipherKey, macKey []byte) []byte {
	ct := ctr(cipherKey, plaintext)
	return append(ct, mac(macKey, ct)...)
}

// verifyThenDecrypt is libsignal's aes256_ctr_hmacsha256_decrypt.
func verifyThenDecrypt(in, cipherKey, macKey []byte) ([]byte, bool) {
	if len(in) < macSize {
		return nil, false
	}
	ct, tag := in[:len(in)-macSize], in[len(in)-macSize:]
	if subtle.ConstantTimeCompare(mac(macKey, ct), tag) != 1 {
		return nil, false
	}
	return ctr(cipherKey, ct), true
}

// Seal encrypts content for the recipient identity key as sealed sender
// version 1 (libsignal's sealed_sender_encrypt_from_usmc). ours is the
// sender's identity, whose public key the certificate in content must name.
func Seal(rand io.Reader, ours *keys.IdentityKeyPair, recipient keys.PublicKey, content *Content) ([]byte, error) {
	eph, err := keys.GenerateKeyPair(rand)
	if err != nil {
		return nil, fmt.Errorf("sealed: ephemeral key: %w", err)
	}
	ek, err := ephemeralKeys(eph.Private, recipient, recipient, eph.Public)
	if err != nil {
		return nil, err
	}
	defer clear(ek)
	encStatic := encryptThenMAC(ours.PublicKey().Serialize(), ek[32:64], ek[64:96])
	sk, err := staticKeys(ours.PrivateKey(), recipient, ek[:32], encStatic)
	if err != nil {
		return nil, err
	}
	defer clear(sk)
	encMessage := encryptThenMAC(content.serialized, sk[32:64], sk[64:96])

	out := []byte{versionV1Full}
	out = appendBytesField(out, 1, eph.Public.Serialize())
	out = appendBytesField(out, 2, encStatic)
	out = appendBytesField(out, 3, encMessage)
	return out, nil
}

// Unseal decrypts a sealed sender message with the recipient's identity
// (libsignal's sealed_sender_decrypt_to_usmc, version 1) and checks that the
// certificate names the identity key the static layer was encrypted with.
// It does not validate the certificate: Decrypt does, or call Validate.
func Unseal(ours *keys.IdentityKeyPair, msg []byte) (*Content, error) {
	if len(msg) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidMessage)
	}
	switch v := msg[0] >> 4; v {
	case 0, versionV1Major:
	case versionV2Major:
		return nil, fmt.Errorf("%w: version 2 (multi-recipient) is not implemented", ErrUnknownVersion)
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownVersion, v)
	}
	f, ok := decodeFields(msg[1:], map[protowire.Number]protowire.Type{
		1: protowire.BytesType, 2: protowire.BytesType, 3: protowire.BytesType,
	})
	if !ok || f[1] == nil || f[2] == nil || f[3] == nil {
		return nil, fmt.Errorf("%w: message encoding", ErrInvalidMessage)
	}
	ephPub, err := keys.ParsePublicKey(f[1].bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrInvalidMessage, err)
	}
	ourPub := ours.PublicKey()
	ek, err := ephemeralKeys(ours.PrivateKey(), ephPub, ourPub, ephPub)
	if err != nil {
		return nil, err
	}
	defer clear(ek)
	staticBytes, ok := verifyThenDecrypt(f[2].bytes, ek[32:64], ek[64:96])
	if !ok {
		return nil, fmt.Errorf("%w: failed to decrypt the sender key", ErrInvalidMessage)
	}
	staticKey, err := keys.ParsePublicKey(staticBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: sender key: %w", ErrInvalidMessage, err)
	}
	sk, err := staticKeys(ours.PrivateKey(), staticKey, ek[:32], f[2].bytes)
	if err != nil {
		return nil, err
	}
	defer clear(sk)
	inner, ok := verifyThenDecrypt(f[3].bytes, sk[32:64], sk[64:96])
	if !ok {
		return nil, fmt.Errorf("%w: failed to decrypt the message contents", ErrInvalidMessage)
	}
	c, err := ParseContent(inner)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(staticBytes, c.Sender.IdentityKey.Serialize()) != 1 {
		return nil, ErrKeyMismatch
	}
	return c, nil
}
