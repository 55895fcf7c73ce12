package mls

import "errors"

var (
	// ErrUnsupportedCipherSuite reports a cipher suite this package does not
	// implement (including X448/Ed448 suites 4 and 6).
	ErrUnsupportedCipherSuite = errors.New("mls: unsupported cipher suite")
	// ErrDecode reports bytes that are not a valid encoding.
	ErrDecode = errors.New("mls: malformed encoding")
	// ErrInvalidSignature reports a signature that does not verify.
	ErrInvalidSignature = errors.New("mls: invalid signature")
	// ErrDecrypt reports a ciphertext that does not decrypt or authenticate.
	ErrDecrypt = errors.New("mls: decryption failed")
	// ErrInvalidMAC reports a membership or confirmation tag that does not verify.
	ErrInvalidMAC = errors.New("mls: invalid tag")
	// ErrGenerationTooFar reports a secret-tree ratchet jump beyond the
	// configured bound.
	ErrGenerationTooFar = errors.New("mls: generation too far ahead")
	// ErrGenerationUsed reports a key generation already consumed or deleted.
	ErrGenerationUsed = errors.New("mls: generation already used")
	// ErrInvalidKey reports a malformed public or private key.
	ErrInvalidKey = errors.New("mls: invalid key")
	// ErrInvalidTree reports a ratchet tree that fails validation.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrInvalidMessage reports a message that is well formed but not valid
	// in its context.
	ErrInvalidMessage = errors.New("mls: invalid message")
)
