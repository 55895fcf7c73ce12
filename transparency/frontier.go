package transparency

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Frontier is the compact form of a tree an auditor keeps: the hashes of
// the perfect subtrees that make up its Size leaves, largest (leftmost)
// first, one per set bit of Size. Appending the following leaves to it
// yields the root of the longer tree, so an auditor that reads every leaf
// once can check them against a signed head without storing them.
type Frontier struct {
	Size   uint64
	Hashes []Hash
}

// Append adds the next leaf, given its leaf hash.
func (f *Frontier) Append(leafHash Hash) error {
	if f.Size >= 1<<63 {
		return ErrSize
	}
	h := leafHash
	for n := f.Size; n&1 == 1; n >>= 1 {
		last := len(f.Hashes) - 1
		h = NodeHash(f.Hashes[last], h)
		f.Hashes = f.Hashes[:last]
	}
	f.Hashes = append(f.Hashes, h)
	f.Size++
	return nil
}

// Root returns MTH of the Size leaves.
func (f *Frontier) Root() Hash {
	if len(f.Hashes) == 0 {
		return EmptyRoot
	}
	r := f.Hashes[len(f.Hashes)-1]
	for i := len(f.Hashes) - 2; i >= 0; i-- {
		r = NodeHash(f.Hashes[i], r)
	}
	return r
}

// Encode returns size (8, big endian) followed by the hashes.
func (f *Frontier) Encode() []byte {
	out := binary.BigEndian.AppendUint64(nil, f.Size)
	for _, h := range f.Hashes {
		out = append(out, h[:]...)
	}
	return out
}

// DecodeFrontier parses Encode's output.
func DecodeFrontier(b []byte) (Frontier, error) {
	if len(b) < 8 {
		return Frontier{}, fmt.Errorf("%w: frontier of %d bytes", ErrSize, len(b))
	}
	f := Frontier{Size: binary.BigEndian.Uint64(b)}
	n := bits.OnesCount64(f.Size)
	if f.Size > 1<<63 || len(b) != 8+n*HashSize {
		return Frontier{}, fmt.Errorf("%w: frontier of size %d in %d bytes", ErrSize, f.Size, len(b))
	}
	for i := 0; i < n; i++ {
		f.Hashes = append(f.Hashes, Hash(b[8+i*HashSize:8+(i+1)*HashSize]))
	}
	return f, nil
}
