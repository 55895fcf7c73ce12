package mls

import (
	"fmt"

	"sotto/mls/internal/codec"
	"sotto/mls/internal/treemath"
)

// parentNode is ParentNode of RFC 9420 §7.1.
type parentNode struct {
	encryptionKey  []byte
	parentHash     []byte
	unmergedLeaves []uint32
}

// node is a non-blank ratchet tree node: exactly one of leaf and parent
// is set.
type node struct {
	leaf   *leafNode
	parent *parentNode
}

const (
	nodeTypeLeaf   uint8 = 1
	nodeTypeParent uint8 = 2
)

func (n *node) encode(w *codec.Writer) {
	switch {
	case n.leaf != nil:
		w.U8(nodeTypeLeaf)
		n.leaf.encode(w)
	case n.parent != nil:
		w.U8(nodeTypeParent)
		w.Opaque(n.parent.encryptionKey)
		w.Opaque(n.parent.parentHash)
		encodeU32s(w, n.parent.unmergedLeaves)
	default:
		w.SetErr(fmt.Errorf("%w: empty node", codec.ErrInvalidValue))
	}
}

func (n *node) decode(r *codec.Reader) {
	switch r.U8() {
	case nodeTypeLeaf:
		n.leaf = new(leafNode)
		n.leaf.decode(r)
	case nodeTypeParent:
		p := new(parentNode)
		p.encryptionKey = r.Opaque()
		p.parentHash = r.Opaque()
		p.unmergedLeaves = decodeU32s(r)
		n.parent = p
	default:
		invalid(r, "node type")
	}
}

// treeNodes is the ratchet_tree extension value: optional<Node>
// ratchet_tree<V>, in array order, with trailing blanks omitted.
type treeNodes []*node

func (t treeNodes) encode(w *codec.Writer) {
	end := len(t)
	for end > 0 && t[end-1] == nil {
		end--
	}
	w.Vector(func(w *codec.Writer) {
		for _, n := range t[:end] {
			w.Optional(n != nil, func(w *codec.Writer) { n.encode(w) })
		}
	})
}

func (t *treeNodes) decode(r *codec.Reader) {
	var nodes treeNodes
	r.Elements(func(r *codec.Reader) {
		var n *node
		r.Optional(func(r *codec.Reader) {
			n = new(node)
			n.decode(r)
		})
		nodes = append(nodes, n)
	})
	if r.Err() != nil {
		return
	}
	if len(nodes) == 0 || nodes[len(nodes)-1] == nil {
		invalid(r, "ratchet tree must end in a non-blank node")
		return
	}
	if len(nodes)%2 == 0 {
		invalid(r, "ratchet tree has an even number of nodes")
		return
	}
	for i, n := range nodes {
		if n == nil {
			continue
		}
		if treemath.IsLeaf(uint32(i)) != (n.leaf != nil) {
			invalid(r, "ratchet tree node type does not match position")
			return
		}
	}
	// Pad with blanks to a complete tree of 2^d leaves.
	width := 1
	for width < len(nodes) {
		width = 2*width + 1
	}
	for len(nodes) < width {
		nodes = append(nodes, nil)
	}
	*t = nodes
}
