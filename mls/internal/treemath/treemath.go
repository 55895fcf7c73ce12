// Package treemath computes node relationships in the left-balanced binary
// trees of RFC 9420 (Appendix C), using the array representation where leaf
// i is node 2i.
package treemath

import "math/bits"

// Level returns the level of node x: 0 for leaves.
func Level(x uint32) uint32 {
	return uint32(bits.TrailingZeros32(^x))
}

// NodeWidth returns the number of nodes in a tree with n leaves.
func NodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// Root returns the root node of a tree with n leaves (0 for n == 0).
func Root(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	w := NodeWidth(n)
	return (1 << (31 - bits.LeadingZeros32(w))) - 1
}

// IsLeaf reports whether x is a leaf node.
func IsLeaf(x uint32) bool { return x&1 == 0 }

// Left returns the left child of the intermediate node x.
func Left(x uint32) (uint32, bool) {
	k := Level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ (1 << (k - 1)), true
}

// Right returns the right child of the intermediate node x.
func Right(x uint32) (uint32, bool) {
	k := Level(x)
	if k == 0 {
		return 0, false
	}
	return x ^ (3 << (k - 1)), true
}

func parentStep(x uint32) uint32 {
	k := Level(x)
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

// Parent returns the parent of x in a tree with n leaves; false at the root
// or for nodes outside the tree.
func Parent(x, n uint32) (uint32, bool) {
	if n == 0 || x >= NodeWidth(n) || x == Root(n) {
		return 0, false
	}
	p := parentStep(x)
	for p >= NodeWidth(n) {
		p = parentStep(p)
	}
	return p, true
}

// Sibling returns the other child of x's parent.
func Sibling(x, n uint32) (uint32, bool) {
	p, ok := Parent(x, n)
	if !ok {
		return 0, false
	}
	l, _ := Left(p)
	if x < p {
		r, _ := Right(p)
		return r, true
	}
	return l, true
}

// DirectPath returns the parents of x from x's parent up to the root.
func DirectPath(x, n uint32) []uint32 {
	var d []uint32
	for {
		p, ok := Parent(x, n)
		if !ok {
			return d
		}
		d = append(d, p)
		x = p
	}
}

// Copath returns the siblings of x and of each node of its direct path
// except the root.
func Copath(x, n uint32) []uint32 {
	if n == 0 || x >= NodeWidth(n) || x == Root(n) {
		return nil
	}
	path := append([]uint32{x}, DirectPath(x, n)...)
	path = path[:len(path)-1]
	c := make([]uint32, 0, len(path))
	for _, y := range path {
		s, _ := Sibling(y, n)
		c = append(c, s)
	}
	return c
}

// LeafNode returns the node index of leaf i.
func LeafNode(i uint32) uint32 { return 2 * i }

// NodeLeaf returns the leaf index of the leaf node x.
func NodeLeaf(x uint32) uint32 { return x / 2 }

// IsAncestor reports whether a is an ancestor of (or equal to) x.
func IsAncestor(a, x uint32) bool {
	k := Level(a)
	return x>>(k+1) == a>>(k+1)
}

// CommonAncestor returns the lowest common ancestor of leaves' nodes x and y
// (in the infinite tree; it is inside any tree holding both).
func CommonAncestor(x, y uint32) uint32 {
	lx, ly := Level(x)+1, Level(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	xn, yn := x, y
	k := uint32(0)
	for xn != yn {
		xn >>= 1
		yn >>= 1
		k++
	}
	return (xn << k) + (1 << (k - 1)) - 1
}
