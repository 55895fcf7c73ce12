package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// Sizes of a profile key and of the access key derived from it.
const (
	ProfileKeySize = 32
	AccessKeySize  = 16
)

// DeriveAccessKey derives the unidentified access key from a profile key as
// Signal does: AES-256-GCM under the profile key, zero nonce, over 16 zero
// bytes, keeping the first 16 bytes (libsignal's
// ProfileKey::derive_access_key computes the same block directly).
func DeriveAccessKey(profileKey []byte) ([]byte, error) {
	if len(profileKey) != ProfileKeySize {
		return nil, fmt.Errorf("sealed: profile key of %d bytes, want %d", len(profileKey), ProfileKeySize)
	}
	block, err := aes.NewCipher(profileKey)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	out := gcm.Seal(nil, make([]byte, gcm.NonceSize()), make([]byte, AccessKeySize), nil)
	return out[:AccessKeySize], nil
}
