package transparency

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// A witness is a party the organization runs away from the relay. It keeps
// the last tree it co-signed and co-signs a newer one only when shown a
// consistency proof from it, so it never co-signs two trees that are not
// one extension of the other: a relay cannot get a witnessed split view.
// (The model is C2SP tlog-witness and tlog-cosignature; the bytes are
// Sotto's own.)
//
// A cosignature is the witness's Ed25519 signature over cosigContext, the
// SHA-256 of the log's public key, the tree size, the root hash and the
// witness's own timestamp. It does not cover the relay's head timestamp:
// any head of the same (size, root) can carry it.

// cosigContext separates cosignatures from every other use of a key.
const cosigContext = "sotto key log cosignature v1\x00"

const (
	cosigVersion = 1
	// KeyIDSize is the size of a witness key ID.
	KeyIDSize = 8
	// CosignatureSize is the size of an encoded Cosignature: version (1),
	// key ID (8), timestamp (8), signature (64).
	CosignatureSize = 1 + KeyIDSize + 8 + ed25519.SignatureSize
	// MaxCosignatures bounds how many cosignatures a head may carry.
	MaxCosignatures = 8
)

// ErrBadCosignature is returned for a malformed cosignature or one whose
// signature does not verify.
var ErrBadCosignature = errors.New("transparency: bad cosignature")

// KeyID names a witness key: the first KeyIDSize bytes of SHA-256 over a
// context and the key. It lets a head carry cosignatures of several
// witnesses; it is a hint, never a proof.
type KeyID [KeyIDSize]byte

// WitnessKeyID returns the key ID of a witness's public key.
func WitnessKeyID(pub ed25519.PublicKey) KeyID {
	h := sha256.New()
	h.Write([]byte("sotto key log witness key id v1\x00"))
	h.Write(pub)
	var id KeyID
	copy(id[:], h.Sum(nil))
	return id
}

// Cosignature is a witness's statement that, at Timestamp (Unix seconds),
// the log with the given key had Size leaves with root Root, and that this
// tree extends every tree it co-signed before.
type Cosignature struct {
	KeyID     KeyID
	Timestamp uint64
	Signature []byte
}

func cosignedMessage(logKey ed25519.PublicKey, size uint64, root Hash, timestamp uint64) []byte {
	lh := sha256.Sum256(logKey)
	b := make([]byte, 0, len(cosigContext)+HashSize+8+HashSize+8)
	b = append(b, cosigContext...)
	b = append(b, lh[:]...)
	b = binary.BigEndian.AppendUint64(b, size)
	b = append(b, root[:]...)
	return binary.BigEndian.AppendUint64(b, timestamp)
}

// Cosign co-signs the tree (size, root) of the log whose public key is
// logKey with the witness key, at timestamp (Unix seconds). The caller (the
// witness) must have checked that the tree extends every one it co-signed.
func Cosign(key ed25519.PrivateKey, logKey ed25519.PublicKey, size uint64, root Hash, timestamp uint64) Cosignature {
	return Cosignature{
		KeyID:     WitnessKeyID(key.Public().(ed25519.PublicKey)),
		Timestamp: timestamp,
		Signature: ed25519.Sign(key, cosignedMessage(logKey, size, root, timestamp)),
	}
}

// Encode returns the canonical encoding: version, key ID, timestamp (big
// endian), signature.
func (c Cosignature) Encode() []byte {
	b := make([]byte, 0, CosignatureSize)
	b = append(b, cosigVersion)
	b = append(b, c.KeyID[:]...)
	b = binary.BigEndian.AppendUint64(b, c.Timestamp)
	return append(b, c.Signature...)
}

// DecodeCosignature parses an encoded Cosignature without checking it.
func DecodeCosignature(b []byte) (Cosignature, error) {
	var c Cosignature
	if len(b) != CosignatureSize {
		return c, fmt.Errorf("%w: %d bytes", ErrBadCosignature, len(b))
	}
	if b[0] != cosigVersion {
		return c, fmt.Errorf("%w: version %d", ErrBadCosignature, b[0])
	}
	copy(c.KeyID[:], b[1:])
	c.Timestamp = binary.BigEndian.Uint64(b[1+KeyIDSize:])
	c.Signature = append([]byte(nil), b[1+KeyIDSize+8:]...)
	if c.Timestamp > 1<<62 {
		return c, fmt.Errorf("%w: timestamp out of range", ErrBadCosignature)
	}
	return c, nil
}

// Verify checks that the witness key signed (logKey, size, root) with this
// cosignature's timestamp.
func (c Cosignature) Verify(witnessKey, logKey ed25519.PublicKey, size uint64, root Hash) error {
	if len(witnessKey) != ed25519.PublicKeySize || len(c.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: key or signature size", ErrBadCosignature)
	}
	id := WitnessKeyID(witnessKey)
	if subtle.ConstantTimeCompare(id[:], c.KeyID[:]) != 1 {
		return fmt.Errorf("%w: another witness's key ID", ErrBadCosignature)
	}
	if !ed25519.Verify(witnessKey, cosignedMessage(logKey, size, root, c.Timestamp), c.Signature) {
		return fmt.Errorf("%w: signature does not verify", ErrBadCosignature)
	}
	return nil
}

// FindCosignature looks among encoded cosignatures for those naming
// witnessKey's key ID, and reports whether one of them verifies for
// (logKey, size, root). bad counts the ones that name the key but do not
// verify (malformed ones for another key are not counted: they are not
// this witness's).
func FindCosignature(witnessKey, logKey ed25519.PublicKey, size uint64, root Hash, encoded [][]byte) (ok bool, bad int) {
	id := WitnessKeyID(witnessKey)
	for i, e := range encoded {
		if i >= MaxCosignatures {
			break
		}
		c, err := DecodeCosignature(e)
		if err != nil {
			if len(e) > KeyIDSize && subtle.ConstantTimeCompare(e[1:1+KeyIDSize], id[:]) == 1 {
				bad++
			}
			continue
		}
		if c.KeyID != id {
			continue
		}
		if c.Verify(witnessKey, logKey, size, root) != nil {
			bad++
			continue
		}
		ok = true
	}
	return ok, bad
}
