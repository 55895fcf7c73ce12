package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"sotto/transparency"
)

// The release log is a transparency log (package transparency: RFC 9162
// hashing) of manifest hashes. Its leaf i is leafContext followed by the
// SHA-256 of the i-th manifest published; the release key signs its heads
// (transparency.SignHead). It is published as two files:
//
//	log/leaves      the manifest hashes, 32 bytes each, in log order
//	log/checkpoint  "head BASE64\n" (transparency.SignedHead) then one
//	                "cosignature BASE64\n" per witness (transparency.Cosignature)
//
// A device proves a manifest's inclusion by recomputing the root over every
// leaf and comparing it with the witnessed head: the list is small (32 bytes
// a release) and the same check finds the leaf's index for posture reports.
const leafContext = "sotto release log leaf v1\x00"

const (
	// MaxLeaves bounds the release log a device reads (32 MiB of hashes).
	MaxLeaves = 1 << 20
	// MaxCheckpoint bounds an encoded checkpoint.
	MaxCheckpoint = 2 << 10
)

// Errors of the log a caller may branch on.
var (
	ErrNotLogged  = errors.New("release: not in the release log under a witnessed head")
	ErrNotWitness = errors.New("release: the release log's head is not co-signed by the organization's witness")
)

// Leaf returns the log leaf of a manifest hash.
func Leaf(manifestHash [sha256.Size]byte) []byte {
	return append([]byte(leafContext), manifestHash[:]...)
}

// ParseLeaves decodes a log/leaves file.
func ParseLeaves(b []byte) ([][sha256.Size]byte, error) {
	if len(b)%sha256.Size != 0 || len(b)/sha256.Size > MaxLeaves {
		return nil, fmt.Errorf("%w: leaves file of %d bytes", ErrMalformed, len(b))
	}
	out := make([][sha256.Size]byte, len(b)/sha256.Size)
	for i := range out {
		copy(out[i][:], b[i*sha256.Size:])
	}
	return out, nil
}

// EncodeLeaves is the inverse of ParseLeaves.
func EncodeLeaves(hs [][sha256.Size]byte) []byte {
	b := make([]byte, 0, len(hs)*sha256.Size)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// Root returns the Merkle root of the first size leaves.
func Root(leaves [][sha256.Size]byte) (transparency.Hash, error) {
	var t transparency.MemoryTree
	for _, h := range leaves {
		if err := t.AppendLeaf(Leaf(h)); err != nil {
			return transparency.Hash{}, err
		}
	}
	return t.Root(t.Size())
}

// Checkpoint is the release log's signed head with the witnesses'
// cosignatures (encoded transparency.Cosignature values).
type Checkpoint struct {
	Head         transparency.SignedHead
	Cosignatures [][]byte
}

// Encode returns the checkpoint file.
func (c *Checkpoint) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "head %s\n", base64.StdEncoding.EncodeToString(c.Head.Encode()))
	for _, s := range c.Cosignatures {
		fmt.Fprintf(&b, "cosignature %s\n", base64.StdEncoding.EncodeToString(s))
	}
	return b.Bytes()
}

// ParseCheckpoint decodes a checkpoint file without checking signatures.
func ParseCheckpoint(b []byte) (*Checkpoint, error) {
	if len(b) > MaxCheckpoint || !bytes.HasSuffix(b, []byte("\n")) {
		return nil, fmt.Errorf("%w: checkpoint", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	c := &Checkpoint{}
	for i, l := range lines {
		key, val, ok := strings.Cut(l, " ")
		if !ok {
			return nil, fmt.Errorf("%w: checkpoint line %d", ErrMalformed, i+1)
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(val)
		if err != nil {
			return nil, fmt.Errorf("%w: checkpoint line %d: %v", ErrMalformed, i+1, err)
		}
		switch {
		case i == 0 && key == "head":
			if c.Head, err = transparency.DecodeHead(raw); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
		case i > 0 && key == "cosignature":
			if len(c.Cosignatures) == transparency.MaxCosignatures {
				return nil, fmt.Errorf("%w: more than %d cosignatures", ErrMalformed, transparency.MaxCosignatures)
			}
			c.Cosignatures = append(c.Cosignatures, raw)
		default:
			return nil, fmt.Errorf("%w: checkpoint line %d is not %q", ErrMalformed, i+1, map[bool]string{true: "head", false: "cosignature"}[i == 0])
		}
	}
	return c, nil
}

// VerifyCheckpoint checks that the head is signed by the release key and
// co-signed by the witness.
func (c *Checkpoint) Verify(releaseKey, witnessKey ed25519.PublicKey) error {
	if err := c.Head.Verify(releaseKey); err != nil {
		return fmt.Errorf("%w: the head: %w", ErrNotLogged, err)
	}
	if ok, _ := transparency.FindCosignature(witnessKey, releaseKey, c.Head.Size, c.Head.Root, c.Cosignatures); !ok {
		return ErrNotWitness
	}
	return nil
}

// Position is where a manifest sits in the release log: the leaf a device
// reports as the build it runs.
type Position struct {
	Index        uint64
	ManifestHash [sha256.Size]byte
	TreeSize     uint64
}

// Locate proves that manifestHash is in the log the checkpoint commits to:
// the leaves must hash to the checkpoint's root (only its first
// Head.Size leaves count; a longer file is fine, a shorter one is not).
func Locate(cp *Checkpoint, leaves [][sha256.Size]byte, manifestHash [sha256.Size]byte) (Position, error) {
	if uint64(len(leaves)) < cp.Head.Size {
		return Position{}, fmt.Errorf("%w: %d leaves for a head of %d", ErrNotLogged, len(leaves), cp.Head.Size)
	}
	leaves = leaves[:cp.Head.Size]
	root, err := Root(leaves)
	if err != nil {
		return Position{}, err
	}
	if root != cp.Head.Root {
		return Position{}, fmt.Errorf("%w: the leaves do not hash to the head's root", ErrNotLogged)
	}
	for i, h := range leaves {
		if h == manifestHash {
			return Position{Index: uint64(i), ManifestHash: h, TreeSize: cp.Head.Size}, nil
		}
	}
	return Position{}, fmt.Errorf("%w: manifest %x", ErrNotLogged, manifestHash[:8])
}
