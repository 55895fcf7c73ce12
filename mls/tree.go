package mls

import (
	"bytes"
	"fmt"
	"slices"

	"sotto/mls/internal/codec"
	"sotto/mls/internal/treemath"
)

// ratchetTree is the public state of a group's ratchet tree (RFC 9420 §7)
// in array form: node 2i is leaf i; blank nodes are nil. The tree is
// always complete (2^d leaves).
type ratchetTree struct {
	s     *suite
	nodes treeNodes
	// hashes caches the tree hash of each node's subtree (nil: not
	// computed). Every change to a node goes through setNode or touched,
	// which forget the hashes of the node and its ancestors.
	hashes [][]byte
	// dirty lists the nodes replaced since the tree was cloned, for
	// validating only what a commit changed.
	dirty []uint32
}

// syncCache sizes the hash cache to the tree.
func (t *ratchetTree) syncCache() {
	if len(t.hashes) != len(t.nodes) {
		t.hashes = make([][]byte, len(t.nodes))
	}
}

// touched forgets the cached hashes of node x and its ancestors.
func (t *ratchetTree) touched(x uint32) {
	t.syncCache()
	if int(x) >= len(t.hashes) {
		return
	}
	t.hashes[x] = nil
	for _, p := range treemath.DirectPath(x, t.size()) {
		t.hashes[p] = nil
	}
}

// setNode replaces node x.
func (t *ratchetTree) setNode(x uint32, n *node) {
	t.nodes[x] = n
	t.touched(x)
	t.dirty = append(t.dirty, x)
}

// invalidateAll forgets every cached hash.
func (t *ratchetTree) invalidateAll() { t.hashes = nil }

// parseRatchetTree decodes a ratchet_tree extension value.
func parseRatchetTree(s *suite, b []byte) (*ratchetTree, error) {
	var nodes treeNodes
	if err := unmarshal(b, &nodes); err != nil {
		return nil, err
	}
	t := &ratchetTree{s: s, nodes: nodes}
	if err := t.checkStructure(); err != nil {
		return nil, err
	}
	return t, nil
}

// checkStructure verifies that every unmerged leaf of a parent node is a
// non-blank leaf below that parent, listed once.
func (t *ratchetTree) checkStructure() error {
	for x := uint32(1); x < uint32(len(t.nodes)); x += 2 {
		p := t.parentAt(x)
		if p == nil {
			continue
		}
		seen := map[uint32]bool{}
		for _, l := range p.unmergedLeaves {
			if l >= t.size() || seen[l] || t.leaf(l) == nil || !treemath.IsAncestor(x, treemath.LeafNode(l)) {
				return fmt.Errorf("%w: bad unmerged leaf at node %d", ErrInvalidTree, x)
			}
			seen[l] = true
		}
	}
	return nil
}

func (t *ratchetTree) marshal() ([]byte, error) { return marshal(t.nodes) }

// clone copies the tree. Nodes are shared copy-on-write: leaf nodes are
// never changed in place, and parent nodes are copied (mutableParent)
// before an in-place edit.
func (t *ratchetTree) clone() *ratchetTree {
	c := &ratchetTree{s: t.s, nodes: slices.Clone(t.nodes)}
	if len(t.hashes) == len(t.nodes) {
		c.hashes = slices.Clone(t.hashes)
	}
	return c
}

// mutableParent returns parent node x for editing, after replacing it
// with a private copy, and forgets the cached hashes above it.
func (t *ratchetTree) mutableParent(x uint32) *parentNode {
	old := t.parentAt(x)
	if old == nil {
		return nil
	}
	p := *old
	p.unmergedLeaves = slices.Clone(old.unmergedLeaves)
	t.nodes[x] = &node{parent: &p}
	t.touched(x)
	return &p
}

// size returns the number of leaves.
func (t *ratchetTree) size() uint32 { return uint32(len(t.nodes)+1) / 2 }

func (t *ratchetTree) leaf(i uint32) *leafNode {
	x := treemath.LeafNode(i)
	if i >= t.size() || t.nodes[x] == nil {
		return nil
	}
	return t.nodes[x].leaf
}

func (t *ratchetTree) parentAt(x uint32) *parentNode {
	if int(x) >= len(t.nodes) || t.nodes[x] == nil {
		return nil
	}
	return t.nodes[x].parent
}

// publicKey returns the encryption key held at node x, or nil if blank.
func (t *ratchetTree) publicKey(x uint32) []byte {
	if int(x) >= len(t.nodes) || t.nodes[x] == nil {
		return nil
	}
	if n := t.nodes[x]; n.leaf != nil {
		return n.leaf.encryptionKey
	}
	return t.nodes[x].parent.encryptionKey
}

// resolution returns the resolution of node x (RFC 9420 §4.1.1).
func (t *ratchetTree) resolution(x uint32) []uint32 {
	if int(x) >= len(t.nodes) {
		return nil
	}
	if n := t.nodes[x]; n != nil {
		r := []uint32{x}
		if n.parent != nil {
			for _, l := range n.parent.unmergedLeaves {
				r = append(r, treemath.LeafNode(l))
			}
		}
		return r
	}
	if treemath.IsLeaf(x) {
		return nil
	}
	l, _ := treemath.Left(x)
	r, _ := treemath.Right(x)
	return append(t.resolution(l), t.resolution(r)...)
}

// blankSubtree reports whether every node of the subtree at x is blank
// (its resolution is empty), stopping at the first non-blank node.
func (t *ratchetTree) blankSubtree(x uint32) bool {
	if int(x) >= len(t.nodes) {
		return true
	}
	if t.nodes[x] != nil {
		return false
	}
	if treemath.IsLeaf(x) {
		return true
	}
	l, _ := treemath.Left(x)
	r, _ := treemath.Right(x)
	return t.blankSubtree(l) && t.blankSubtree(r)
}

// treeHash computes the tree hash of the subtree at x (RFC 9420 §7.8),
// treating the leaves in excluded as blank and absent from unmerged lists.
// Hashes of subtrees without excluded leaves are cached.
func (t *ratchetTree) treeHash(x uint32, excluded map[uint32]bool) ([]byte, error) {
	t.syncCache()
	cacheable := true
	for l := range excluded {
		if treemath.IsAncestor(x, treemath.LeafNode(l)) {
			cacheable = false
			break
		}
	}
	if cacheable {
		excluded = nil
		if int(x) < len(t.hashes) && t.hashes[x] != nil {
			return t.hashes[x], nil
		}
	}
	var w codec.Writer
	if treemath.IsLeaf(x) {
		i := treemath.NodeLeaf(x)
		w.U8(nodeTypeLeaf)
		w.U32(i)
		l := t.leaf(i)
		if excluded[i] {
			l = nil
		}
		w.Optional(l != nil, func(w *codec.Writer) { l.encode(w) })
	} else {
		left, _ := treemath.Left(x)
		right, _ := treemath.Right(x)
		lh, err := t.treeHash(left, excluded)
		if err != nil {
			return nil, err
		}
		rh, err := t.treeHash(right, excluded)
		if err != nil {
			return nil, err
		}
		w.U8(nodeTypeParent)
		p := t.parentAt(x)
		w.Optional(p != nil, func(w *codec.Writer) {
			w.Opaque(p.encryptionKey)
			w.Opaque(p.parentHash)
			var unmerged []uint32
			for _, l := range p.unmergedLeaves {
				if !excluded[l] {
					unmerged = append(unmerged, l)
				}
			}
			encodeU32s(w, unmerged)
		})
		w.Opaque(lh)
		w.Opaque(rh)
	}
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	h := t.s.hash(b)
	if cacheable && int(x) < len(t.hashes) {
		t.hashes[x] = h
	}
	return h, nil
}

func (t *ratchetTree) rootHash() ([]byte, error) {
	return t.treeHash(treemath.Root(t.size()), nil)
}

// parentHashOf computes the parent hash of parent node p with copath
// child sibling (RFC 9420 §7.9), using the original sibling tree hash.
func (t *ratchetTree) parentHashOf(p, sibling uint32) ([]byte, error) {
	pn := t.parentAt(p)
	if pn == nil {
		return nil, fmt.Errorf("%w: parent hash of a blank node", ErrInvalidTree)
	}
	excluded := map[uint32]bool{}
	for _, l := range pn.unmergedLeaves {
		excluded[l] = true
	}
	sh, err := t.treeHash(sibling, excluded)
	if err != nil {
		return nil, err
	}
	var w codec.Writer
	w.Opaque(pn.encryptionKey)
	w.Opaque(pn.parentHash)
	w.Opaque(sh)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return t.s.hash(b), nil
}

// nodeParentHash returns the parent_hash field of node x (nil for leaves
// not from a commit).
func (t *ratchetTree) nodeParentHash(x uint32) []byte {
	if int(x) >= len(t.nodes) {
		return nil
	}
	n := t.nodes[x]
	if n == nil {
		return nil
	}
	if n.leaf != nil {
		if n.leaf.source != sourceCommit {
			return nil
		}
		return n.leaf.parentHash
	}
	return n.parent.parentHash
}

// verifyParentHashes checks that every non-blank parent node is
// parent-hash valid, top down: exactly one descendant D must carry P's
// parent hash under the conditions of RFC 9420 §7.9.2.
func (t *ratchetTree) verifyParentHashes() error {
	for x := uint32(1); x < uint32(len(t.nodes)); x += 2 {
		p := t.parentAt(x)
		if p == nil {
			continue
		}
		unmerged := map[uint32]bool{}
		for _, l := range p.unmergedLeaves {
			unmerged[treemath.LeafNode(l)] = true
		}
		matches := 0
		left, _ := treemath.Left(x)
		right, _ := treemath.Right(x)
		for _, pair := range [2][2]uint32{{left, right}, {right, left}} {
			c, s := pair[0], pair[1]
			ph, err := t.parentHashOf(x, s)
			if err != nil {
				return err
			}
			// D is the one member of C's resolution not among P's
			// unmerged leaves, and the rest must be exactly those leaves.
			var d []uint32
			unmergedInC := 0
			for _, r := range t.resolution(c) {
				if unmerged[r] {
					unmergedInC++
				} else {
					d = append(d, r)
				}
			}
			countC := 0
			for u := range unmerged {
				if treemath.IsAncestor(c, u) {
					countC++
				}
			}
			if len(d) != 1 || countC != unmergedInC {
				continue
			}
			if bytes.Equal(t.nodeParentHash(d[0]), ph) {
				matches++
			}
		}
		if matches != 1 {
			return fmt.Errorf("%w: parent node %d is not parent-hash valid", ErrInvalidTree, x)
		}
	}
	return nil
}

// verifyLeaves checks every leaf's signature.
func (t *ratchetTree) verifyLeaves(groupID []byte) error {
	return parallel(int(t.size()), func(k int) error {
		i := uint32(k)
		if l := t.leaf(i); l != nil {
			if err := l.verify(t.s, groupID, i); err != nil {
				return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, i, err)
			}
		}
		return nil
	})
}

// filteredDirectPath returns the filtered direct path of leaf i and, for
// each of its nodes, the copath child (RFC 9420 §4.1.2).
func (t *ratchetTree) filteredDirectPath(i uint32) (path, copath []uint32) {
	x := treemath.LeafNode(i)
	n := t.size()
	child := x
	for _, p := range treemath.DirectPath(x, n) {
		s, _ := treemath.Sibling(child, n)
		if !t.blankSubtree(s) {
			path = append(path, p)
			copath = append(copath, s)
		}
		child = p
	}
	return path, copath
}

// blankPath blanks the parent nodes on leaf i's direct path.
func (t *ratchetTree) blankPath(i uint32) {
	for _, p := range treemath.DirectPath(treemath.LeafNode(i), t.size()) {
		t.setNode(p, nil)
	}
}

// addLeaf inserts a leaf at the leftmost blank position, extending the
// tree if it is full, and marks it unmerged on its direct path
// (RFC 9420 §12.1.1).
func (t *ratchetTree) addLeaf(l *leafNode) uint32 {
	i := uint32(0)
	for ; i < t.size(); i++ {
		if t.nodes[treemath.LeafNode(i)] == nil {
			break
		}
	}
	if i == t.size() {
		if len(t.nodes) == 0 {
			t.nodes = treeNodes{nil}
			t.hashes = nil
		} else {
			t.syncCache()
			t.nodes = append(t.nodes, make(treeNodes, len(t.nodes)+1)...)
			t.hashes = append(t.hashes, make([][]byte, len(t.hashes)+1)...)
		}
	}
	t.setNode(treemath.LeafNode(i), &node{leaf: l})
	for _, p := range treemath.DirectPath(treemath.LeafNode(i), t.size()) {
		if pn := t.mutableParent(p); pn != nil {
			pn.unmergedLeaves = append(pn.unmergedLeaves, i)
		}
	}
	return i
}

// updateLeaf replaces leaf i and blanks its direct path (RFC 9420 §12.1.2).
func (t *ratchetTree) updateLeaf(i uint32, l *leafNode) {
	t.setNode(treemath.LeafNode(i), &node{leaf: l})
	t.blankPath(i)
}

// removeLeaf blanks leaf i and its direct path, then truncates
// (RFC 9420 §12.1.3).
func (t *ratchetTree) removeLeaf(i uint32) {
	t.setNode(treemath.LeafNode(i), nil)
	t.blankPath(i)
	t.truncate()
}

// truncate drops the right half of the tree while it holds no leaf.
func (t *ratchetTree) truncate() {
	for len(t.nodes) > 1 {
		half := (len(t.nodes) - 1) / 2
		for x := half + 1; x < len(t.nodes); x += 2 {
			if t.nodes[x] != nil {
				return
			}
		}
		t.syncCache()
		t.nodes = t.nodes[:half]
		t.hashes = t.hashes[:half]
	}
}
