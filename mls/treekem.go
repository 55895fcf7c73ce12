package mls

import (
	"bytes"
	"crypto/hpke"
	"fmt"
	"maps"

	"sotto/mls/internal/treemath"
)

// treePrivate is a member's private view of the ratchet tree: the HPKE
// private keys it holds, by node index, and the path secrets it learned.
type treePrivate struct {
	leaf        uint32
	keys        map[uint32]hpke.PrivateKey
	pathSecrets map[uint32][]byte
}

func newTreePrivate(leaf uint32, leafKey hpke.PrivateKey) *treePrivate {
	p := &treePrivate{leaf: leaf, keys: map[uint32]hpke.PrivateKey{}, pathSecrets: map[uint32][]byte{}}
	if leafKey != nil {
		p.keys[treemath.LeafNode(leaf)] = leafKey
	}
	return p
}

func (p *treePrivate) clone() *treePrivate {
	return &treePrivate{leaf: p.leaf, keys: maps.Clone(p.keys), pathSecrets: maps.Clone(p.pathSecrets)}
}

// setPathSecret stores the path secret of node x and the key pair it
// derives, returning the public key.
func (p *treePrivate) setPathSecret(s *suite, x uint32, pathSecret []byte) ([]byte, error) {
	nodeSecret, err := s.deriveSecret(pathSecret, "node")
	if err != nil {
		return nil, err
	}
	priv, pub, err := s.deriveKeyPair(nodeSecret)
	clear(nodeSecret)
	if err != nil {
		return nil, err
	}
	p.keys[x] = priv
	p.pathSecrets[x] = pathSecret
	return pub, nil
}

// setParentHashes fills the parent_hash fields along a filtered direct
// path, top down, and returns the parent hash the leaf must carry.
func (t *ratchetTree) setParentHashes(path, copath []uint32) ([]byte, error) {
	ph := []byte{}
	for i := len(path) - 1; i >= 0; i-- {
		t.mutableParent(path[i]).parentHash = ph
		var err error
		if ph, err = t.parentHashOf(path[i], copath[i]); err != nil {
			return nil, err
		}
	}
	return ph, nil
}

// mergeUpdatePath applies a received UpdatePath from leaf sender to the
// public tree (RFC 9420 §7.5), checking the new leaf's parent hash and
// signature. Proposals of the commit must already be applied.
func (t *ratchetTree) mergeUpdatePath(sender uint32, up *updatePath, groupID []byte) error {
	if sender >= t.size() || t.leaf(sender) == nil {
		return fmt.Errorf("%w: update path from a blank leaf", ErrInvalidMessage)
	}
	path, copath := t.filteredDirectPath(sender)
	if len(up.nodes) != len(path) {
		return fmt.Errorf("%w: update path has %d nodes, want %d", ErrInvalidMessage, len(up.nodes), len(path))
	}
	if up.leafNode.source != sourceCommit {
		return fmt.Errorf("%w: update path leaf source is not commit", ErrInvalidMessage)
	}
	t.blankPath(sender)
	for i, x := range path {
		t.setNode(x, &node{parent: &parentNode{encryptionKey: up.nodes[i].encryptionKey}})
	}
	ph, err := t.setParentHashes(path, copath)
	if err != nil {
		return err
	}
	if !bytes.Equal(up.leafNode.parentHash, ph) {
		return fmt.Errorf("%w: committer leaf parent hash mismatch", ErrInvalidTree)
	}
	if err := up.leafNode.verify(t.s, groupID, sender); err != nil {
		return fmt.Errorf("%w: committer leaf: %w", ErrInvalidMessage, err)
	}
	leaf := up.leafNode
	t.setNode(treemath.LeafNode(sender), &node{leaf: &leaf})
	return nil
}

// encryptionResolution is the resolution of copath node c without the
// leaves added by the current commit.
func (t *ratchetTree) encryptionResolution(c uint32, added map[uint32]bool) []uint32 {
	var r []uint32
	for _, x := range t.resolution(c) {
		if treemath.IsLeaf(x) && added[treemath.NodeLeaf(x)] {
			continue
		}
		r = append(r, x)
	}
	return r
}

// decryptPath processes an UpdatePath already merged into t from the
// point of view of priv (RFC 9420 §7.5, receiver side), updating priv and
// returning the commit secret.
func (t *ratchetTree) decryptPath(priv *treePrivate, sender uint32, up *updatePath, groupContext []byte, added map[uint32]bool) ([]byte, error) {
	path, copath := t.filteredDirectPath(sender)
	if len(up.nodes) != len(path) {
		return nil, fmt.Errorf("%w: update path length", ErrInvalidMessage)
	}
	me := treemath.LeafNode(priv.leaf)
	i := -1
	for k, c := range copath {
		if treemath.IsAncestor(c, me) {
			i = k
			break
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("%w: receiver not covered by update path", ErrInvalidMessage)
	}
	res := t.encryptionResolution(copath[i], added)
	cts := up.nodes[i].encryptedPathSecrets
	if len(cts) != len(res) {
		return nil, fmt.Errorf("%w: %d encrypted path secrets, want %d", ErrInvalidMessage, len(cts), len(res))
	}
	var ps []byte
	for j, r := range res {
		key, ok := priv.keys[r]
		if !ok {
			continue
		}
		var err error
		ps, err = t.s.decryptWithLabel(key, "UpdatePathNode", groupContext, cts[j].kemOutput, cts[j].ciphertext)
		if err != nil {
			return nil, err
		}
		break
	}
	if ps == nil {
		return nil, fmt.Errorf("%w: no private key for the update path", ErrDecrypt)
	}
	// Drop keys for the sender's direct path: those nodes were replaced.
	for _, x := range treemath.DirectPath(treemath.LeafNode(sender), t.size()) {
		delete(priv.keys, x)
		delete(priv.pathSecrets, x)
	}
	for k := i; k < len(path); k++ {
		if k > i {
			next, err := t.s.deriveSecret(ps, "path")
			if err != nil {
				return nil, err
			}
			ps = next
		}
		pub, err := priv.setPathSecret(t.s, path[k], ps)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pub, up.nodes[k].encryptionKey) {
			return nil, fmt.Errorf("%w: derived public key mismatch", ErrInvalidMessage)
		}
	}
	return t.s.deriveSecret(ps, "path")
}

// applyOwnPath refreshes leaf sender's key and direct path from
// leafSecret (RFC 9420 §7.4), re-signing the leaf built from template.
// It returns the sender's private state, the path secret of each node of
// the filtered direct path, and the commit secret.
func (t *ratchetTree) applyOwnPath(sender uint32, leafSecret []byte, template *leafNode, sigPriv, groupID []byte) (*treePrivate, [][]byte, []byte, error) {
	s := t.s
	if sender >= t.size() || t.leaf(sender) == nil {
		return nil, nil, nil, fmt.Errorf("%w: sender leaf is blank", ErrInvalidMessage)
	}
	leafNodeSecret, err := s.deriveSecret(leafSecret, "node")
	if err != nil {
		return nil, nil, nil, err
	}
	leafKey, leafPub, err := s.deriveKeyPair(leafNodeSecret)
	clear(leafNodeSecret)
	if err != nil {
		return nil, nil, nil, err
	}
	priv := newTreePrivate(sender, leafKey)
	path, copath := t.filteredDirectPath(sender)
	t.blankPath(sender)
	ps, err := s.deriveSecret(leafSecret, "path")
	if err != nil {
		return nil, nil, nil, err
	}
	secrets := make([][]byte, len(path))
	for i, x := range path {
		secrets[i] = ps
		pub, err := priv.setPathSecret(s, x, ps)
		if err != nil {
			return nil, nil, nil, err
		}
		t.setNode(x, &node{parent: &parentNode{encryptionKey: pub}})
		if ps, err = s.deriveSecret(ps, "path"); err != nil {
			return nil, nil, nil, err
		}
	}
	ph, err := t.setParentHashes(path, copath)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := *template
	leaf.encryptionKey = leafPub
	leaf.source = sourceCommit
	leaf.parentHash = ph
	leaf.notBefore, leaf.notAfter = 0, 0
	if err := leaf.sign(s, sigPriv, groupID, sender); err != nil {
		return nil, nil, nil, err
	}
	t.setNode(treemath.LeafNode(sender), &node{leaf: &leaf})
	return priv, secrets, ps, nil
}

// encryptPath builds the UpdatePath for the sender's refreshed path,
// encrypting each path secret to the copath resolution (excluding leaves
// added by this commit) under the provisional GroupContext.
func (t *ratchetTree) encryptPath(sender uint32, secrets [][]byte, groupContext []byte, added map[uint32]bool) (*updatePath, error) {
	path, copath := t.filteredDirectPath(sender)
	if len(path) != len(secrets) {
		return nil, fmt.Errorf("%w: path secrets do not match the tree", ErrInvalidMessage)
	}
	up := &updatePath{leafNode: *t.leaf(sender), nodes: make([]updatePathNode, len(path))}
	// One HPKE encryption per resolution node, run in parallel: a fresh
	// tree's resolutions hold up to every leaf.
	type job struct{ i, j int }
	var jobs []job
	var targets [][]byte
	for i, x := range path {
		up.nodes[i].encryptionKey = t.publicKey(x)
		res := t.encryptionResolution(copath[i], added)
		up.nodes[i].encryptedPathSecrets = make([]hpkeCiphertext, len(res))
		for j, r := range res {
			jobs = append(jobs, job{i, j})
			targets = append(targets, t.publicKey(r))
		}
	}
	err := parallel(len(jobs), func(k int) error {
		jb := jobs[k]
		kem, ct, err := t.s.encryptWithLabel(targets[k], "UpdatePathNode", groupContext, secrets[jb.i])
		if err != nil {
			return err
		}
		up.nodes[jb.i].encryptedPathSecrets[jb.j] = hpkeCiphertext{kem, ct}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return up, nil
}
