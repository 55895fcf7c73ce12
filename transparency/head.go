package transparency

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
)

// headContext separates tree-head signatures from every other use of the
// relay's log key.
const headContext = "sotto key transparency tree head v1\x00"

const (
	headVersion = 1
	// headBodySize is version, size, timestamp and root hash.
	headBodySize = 1 + 8 + 8 + HashSize
	// SignedHeadSize is the size of an encoded SignedHead.
	SignedHeadSize = headBodySize + ed25519.SignatureSize
)

// ErrBadHead is returned for a malformed signed tree head or a bad signature.
var ErrBadHead = errors.New("transparency: bad signed tree head")

// SignedHead is the relay's signed statement that its log had Size leaves
// with root Root at TimestampMS (Unix milliseconds).
type SignedHead struct {
	Size        uint64
	Root        Hash
	TimestampMS int64
	Signature   []byte
}

func (h *SignedHead) body() []byte {
	b := make([]byte, headBodySize)
	b[0] = headVersion
	binary.BigEndian.PutUint64(b[1:], h.Size)
	binary.BigEndian.PutUint64(b[9:], uint64(h.TimestampMS))
	copy(b[17:], h.Root[:])
	return b
}

func signedMessage(body []byte) []byte {
	return append([]byte(headContext), body...)
}

// SignHead signs (size, root, timestamp) with the log key.
func SignHead(key ed25519.PrivateKey, size uint64, root Hash, timestampMS int64) SignedHead {
	h := SignedHead{Size: size, Root: root, TimestampMS: timestampMS}
	h.Signature = ed25519.Sign(key, signedMessage(h.body()))
	return h
}

// Encode returns the canonical encoding: version (1), size (8, big endian),
// timestamp (8), root (32), Ed25519 signature (64).
func (h *SignedHead) Encode() []byte {
	return append(h.body(), h.Signature...)
}

// Verify checks the signature with the log's public key.
func (h *SignedHead) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || len(h.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(pub, signedMessage(h.body()), h.Signature) {
		return fmt.Errorf("%w: signature does not verify", ErrBadHead)
	}
	return nil
}

// DecodeHead parses an encoded SignedHead without checking its signature.
func DecodeHead(b []byte) (SignedHead, error) {
	var h SignedHead
	if len(b) != SignedHeadSize {
		return h, fmt.Errorf("%w: %d bytes", ErrBadHead, len(b))
	}
	if b[0] != headVersion {
		return h, fmt.Errorf("%w: version %d", ErrBadHead, b[0])
	}
	h.Size = binary.BigEndian.Uint64(b[1:])
	h.TimestampMS = int64(binary.BigEndian.Uint64(b[9:]))
	copy(h.Root[:], b[17:])
	h.Signature = append([]byte(nil), b[headBodySize:]...)
	if h.Size > 1<<63 || h.TimestampMS < 0 {
		return h, fmt.Errorf("%w: size or time out of range", ErrBadHead)
	}
	return h, nil
}

// VerifyHead decodes an encoded SignedHead and checks its signature.
func VerifyHead(pub ed25519.PublicKey, b []byte) (SignedHead, error) {
	h, err := DecodeHead(b)
	if err != nil {
		return h, err
	}
	return h, h.Verify(pub)
}

// DecodeProof turns a wire proof (one 32-byte hash per element) into hashes.
func DecodeProof(elems [][]byte) ([]Hash, error) {
	if len(elems) > MaxProofLen {
		return nil, fmt.Errorf("%w: proof of %d hashes", ErrSize, len(elems))
	}
	out := make([]Hash, len(elems))
	for i, e := range elems {
		if len(e) != HashSize {
			return nil, fmt.Errorf("%w: proof hash of %d bytes", ErrProof, len(e))
		}
		copy(out[i][:], e)
	}
	return out, nil
}

// EncodeProof is the inverse of DecodeProof.
func EncodeProof(p []Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i][:]...)
	}
	return out
}
