package transparency

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
)

// HashSize is the size of every hash in the tree (SHA-256).
const HashSize = sha256.Size

// Hash is a leaf, node or root hash.
type Hash [HashSize]byte

// MaxProofLen bounds the length of any proof this package accepts: a tree
// of 2^64 leaves needs at most 64 hashes (a consistency proof one more).
const MaxProofLen = 65

// EmptyRoot is the root hash of the empty tree, SHA-256 of no bytes.
var EmptyRoot = Hash(sha256.Sum256(nil))

// LeafHash is RFC 9162's leaf hash: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0x00})
	h.Write(leaf)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is RFC 9162's interior node hash: SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = 0x01
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// NodeID names a perfect, aligned subtree: the 2^Level leaves
// [Index<<Level, (Index+1)<<Level). Level 0 nodes are leaf hashes. Once the
// tree has (Index+1)<<Level leaves, the node's hash never changes, so a log
// stores each one once, when its last leaf is appended (see NewNodes).
type NodeID struct {
	Level uint8
	Index uint64
}

// Node is a NodeID with its hash.
type Node struct {
	ID   NodeID
	Hash Hash
}

// HashReader returns the stored hashes of perfect subtrees, in the order
// asked. A log keeps the Nodes that NewNodes returns for each append and
// reads them back here.
type HashReader interface {
	ReadHashes(ids []NodeID) ([]Hash, error)
}

// ErrSize is returned when a tree size, leaf index or proof length is out of
// range.
var ErrSize = errors.New("transparency: size or index out of range")

// ErrProof is returned when a proof does not verify.
var ErrProof = errors.New("transparency: proof does not verify")

func readHashes(r HashReader, ids []NodeID) ([]Hash, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	hs, err := r.ReadHashes(ids)
	if err != nil {
		return nil, fmt.Errorf("transparency: read hashes: %w", err)
	}
	if len(hs) != len(ids) {
		return nil, fmt.Errorf("transparency: read hashes: got %d, asked %d", len(hs), len(ids))
	}
	return hs, nil
}

// NewNodes returns the nodes to store when the leaf with hash leafHash is
// appended as leaf number n (the tree grows from n to n+1 leaves): the leaf
// itself and every perfect subtree it completes. It reads the left siblings
// it needs from r.
func NewNodes(r HashReader, n uint64, leafHash Hash) ([]Node, error) {
	if n == 1<<63 {
		return nil, ErrSize
	}
	var ids []NodeID
	for l := uint8(0); (n>>l)&1 == 1; l++ {
		ids = append(ids, NodeID{Level: l, Index: (n >> l) - 1})
	}
	left, err := readHashes(r, ids)
	if err != nil {
		return nil, err
	}
	nodes := make([]Node, 0, len(ids)+1)
	h := leafHash
	nodes = append(nodes, Node{ID: NodeID{0, n}, Hash: h})
	for l, lh := range left {
		h = NodeHash(lh, h)
		nodes = append(nodes, Node{ID: NodeID{Level: uint8(l + 1), Index: n >> (l + 1)}, Hash: h})
	}
	return nodes, nil
}

// span is a leaf range [a, b) whose subtree hash MTH(D[a:b]) a proof needs.
// Ranges produced by RFC 9162's recursion always start at a multiple of the
// largest power of two below their size.
type span struct{ a, b uint64 }

// largestPow2Below returns the largest power of two k with k < n (n > 1).
func largestPow2Below(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

// nodes decomposes s into the perfect subtrees whose right fold
// H(N1, H(N2, ... H(Nm-1, Nm))) is MTH(D[a:b]).
func (s span) nodes(out []NodeID) []NodeID {
	a, b := s.a, s.b
	for {
		n := b - a
		if n&(n-1) == 0 {
			l := uint8(bits.TrailingZeros64(n))
			return append(out, NodeID{Level: l, Index: a >> l})
		}
		k := largestPow2Below(n)
		l := uint8(bits.TrailingZeros64(k))
		out = append(out, NodeID{Level: l, Index: a >> l})
		a += k
	}
}

// hashSpans computes MTH of every span with one batched read.
func hashSpans(r HashReader, spans []span) ([]Hash, error) {
	var ids []NodeID
	ends := make([]int, len(spans))
	for i, s := range spans {
		ids = s.nodes(ids)
		ends[i] = len(ids)
	}
	hs, err := readHashes(r, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Hash, len(spans))
	start := 0
	for i, end := range ends {
		h := hs[end-1]
		for j := end - 2; j >= start; j-- {
			h = NodeHash(hs[j], h)
		}
		out[i] = h
		start = end
	}
	return out, nil
}

// RootHash returns MTH(D[0:size]) of a tree of size leaves (EmptyRoot for 0).
func RootHash(r HashReader, size uint64) (Hash, error) {
	if size == 0 {
		return EmptyRoot, nil
	}
	if size > 1<<63 {
		return Hash{}, ErrSize
	}
	hs, err := hashSpans(r, []span{{0, size}})
	if err != nil {
		return Hash{}, err
	}
	return hs[0], nil
}

// inclusionSpans is RFC 9162 §2.1.3.1 PATH(m, D[a:b]), as the ranges whose
// hashes form the path, in proof order.
func inclusionSpans(m, a, b uint64) []span {
	var out []span
	for b-a > 1 {
		k := largestPow2Below(b - a)
		if m-a < k {
			out = append(out, span{a + k, b})
			b = a + k
		} else {
			out = append(out, span{a, a + k})
			a += k
		}
	}
	// PATH appends on the way back up the recursion: reverse.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// InclusionProof returns the audit path of leaf index in the tree of size
// leaves (RFC 9162 §2.1.3.1).
func InclusionProof(r HashReader, index, size uint64) ([]Hash, error) {
	if index >= size || size > 1<<63 {
		return nil, ErrSize
	}
	return hashSpans(r, inclusionSpans(index, 0, size))
}

// consistencySpans is RFC 9162 §2.1.4.1 SUBPROOF(m, D[a:b], true).
func consistencySpans(m, a, b uint64) []span {
	var out []span
	complete := true
	for {
		n := b - a
		if m == n {
			if !complete {
				out = append(out, span{a, b})
			}
			break
		}
		k := largestPow2Below(n)
		if m <= k {
			out = append(out, span{a + k, b})
			b = a + k
		} else {
			out = append(out, span{a, a + k})
			m -= k
			a += k
			complete = false
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// ConsistencyProof returns the proof that the tree of size leaves extends
// the tree of first leaves (RFC 9162 §2.1.4.1). It is empty when first is 0
// or first == size.
func ConsistencyProof(r HashReader, first, size uint64) ([]Hash, error) {
	if first > size || size > 1<<63 {
		return nil, ErrSize
	}
	if first == 0 || first == size {
		return nil, nil
	}
	return hashSpans(r, consistencySpans(first, 0, size))
}
