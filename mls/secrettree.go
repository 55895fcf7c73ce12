package mls

import (
	"fmt"

	"sotto/mls/internal/treemath"
)

// DefaultMaxGenerationJump bounds how far ahead of its current position a
// receiving ratchet may be advanced by one message (RFC 9420 §9.4 leaves
// the bound to the application).
const DefaultMaxGenerationJump = 1024

// maxSkippedKeys bounds the out-of-order keys kept per ratchet.
const maxSkippedKeys = 1024

type ratchetType uint8

const (
	ratchetHandshake ratchetType = iota
	ratchetApplication
)

type keyNonce struct {
	key, nonce []byte
}

// ratchet is one sender's hash ratchet for one content class.
type ratchet struct {
	secret  []byte // secret for generation next
	next    uint32
	skipped map[uint32]keyNonce
}

// secretTree is the secret tree of RFC 9420 §9 for one epoch. Node
// secrets are deleted as soon as both children are derived, and each key
// is handed out once.
type secretTree struct {
	s       *suite
	nLeaves uint32
	nodes   map[uint32][]byte
	chains  map[uint64]*ratchet
	maxJump uint32
}

func newSecretTree(s *suite, encryptionSecret []byte, nLeaves uint32) *secretTree {
	t := &secretTree{
		s:       s,
		nLeaves: nLeaves,
		nodes:   map[uint32][]byte{},
		chains:  map[uint64]*ratchet{},
		maxJump: DefaultMaxGenerationJump,
	}
	if nLeaves > 0 {
		t.nodes[treemath.Root(nLeaves)] = append([]byte(nil), encryptionSecret...)
	}
	return t
}

// leafSecret derives (and removes from the tree) the secret of a leaf.
func (t *secretTree) leafSecret(leaf uint32) ([]byte, error) {
	if leaf >= t.nLeaves {
		return nil, fmt.Errorf("%w: leaf index out of range", ErrInvalidMessage)
	}
	target := treemath.LeafNode(leaf)
	// Find the lowest ancestor whose secret is still held.
	path := append([]uint32{target}, treemath.DirectPath(target, t.nLeaves)...)
	start := -1
	for i, n := range path {
		if _, ok := t.nodes[n]; ok {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, ErrGenerationUsed
	}
	for i := start; i > 0; i-- {
		n := path[i]
		secret := t.nodes[n]
		left, _ := treemath.Left(n)
		right, _ := treemath.Right(n)
		ls, err := t.s.expandWithLabel(secret, "tree", []byte("left"), t.s.hashLen())
		if err != nil {
			return nil, err
		}
		rs, err := t.s.expandWithLabel(secret, "tree", []byte("right"), t.s.hashLen())
		if err != nil {
			return nil, err
		}
		t.nodes[left], t.nodes[right] = ls, rs
		clear(secret)
		delete(t.nodes, n)
	}
	s := t.nodes[target]
	delete(t.nodes, target)
	return s, nil
}

// chain returns the ratchet for leaf and type, initialising both of the
// leaf's ratchets on first use.
func (t *secretTree) chain(leaf uint32, typ ratchetType) (*ratchet, error) {
	key := uint64(leaf)<<1 | uint64(typ)
	if r, ok := t.chains[key]; ok {
		return r, nil
	}
	secret, err := t.leafSecret(leaf)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	hs, err := t.s.expandWithLabel(secret, "handshake", nil, t.s.hashLen())
	if err != nil {
		return nil, err
	}
	as, err := t.s.expandWithLabel(secret, "application", nil, t.s.hashLen())
	if err != nil {
		return nil, err
	}
	t.chains[uint64(leaf)<<1|uint64(ratchetHandshake)] = &ratchet{secret: hs, skipped: map[uint32]keyNonce{}}
	t.chains[uint64(leaf)<<1|uint64(ratchetApplication)] = &ratchet{secret: as, skipped: map[uint32]keyNonce{}}
	return t.chains[key], nil
}

// step derives the key and nonce for r.next and advances the ratchet.
func (t *secretTree) step(r *ratchet) (keyNonce, error) {
	g := r.next
	if g == ^uint32(0) {
		return keyNonce{}, fmt.Errorf("%w: ratchet exhausted", ErrGenerationTooFar)
	}
	k, err := t.s.deriveTreeSecret(r.secret, "key", g, t.s.keyLen)
	if err != nil {
		return keyNonce{}, err
	}
	n, err := t.s.deriveTreeSecret(r.secret, "nonce", g, t.s.nonceLen)
	if err != nil {
		return keyNonce{}, err
	}
	next, err := t.s.deriveTreeSecret(r.secret, "secret", g, t.s.hashLen())
	if err != nil {
		return keyNonce{}, err
	}
	clear(r.secret)
	r.secret = next
	r.next = g + 1
	return keyNonce{k, n}, nil
}

// nextKey returns the sender's next generation and its key and nonce.
func (t *secretTree) nextKey(leaf uint32, typ ratchetType) (uint32, keyNonce, error) {
	r, err := t.chain(leaf, typ)
	if err != nil {
		return 0, keyNonce{}, err
	}
	g := r.next
	kn, err := t.step(r)
	return g, kn, err
}

// peekLeafSecret derives a leaf's secret without changing the tree.
func (t *secretTree) peekLeafSecret(leaf uint32) ([]byte, error) {
	if leaf >= t.nLeaves {
		return nil, fmt.Errorf("%w: leaf index out of range", ErrInvalidMessage)
	}
	target := treemath.LeafNode(leaf)
	path := append([]uint32{target}, treemath.DirectPath(target, t.nLeaves)...)
	for i, n := range path {
		secret, ok := t.nodes[n]
		if !ok {
			continue
		}
		secret = append([]byte(nil), secret...)
		for j := i; j > 0; j-- {
			side := "right"
			if l, _ := treemath.Left(path[j]); l == path[j-1] {
				side = "left"
			}
			next, err := t.s.expandWithLabel(secret, "tree", []byte(side), t.s.hashLen())
			clear(secret)
			if err != nil {
				return nil, err
			}
			secret = next
		}
		return secret, nil
	}
	return nil, ErrGenerationUsed
}

// peekChain is chain without changing the tree: the ratchet for leaf and
// type as it stands, a copy if it exists, derived afresh if not.
func (t *secretTree) peekChain(leaf uint32, typ ratchetType) (*ratchet, error) {
	if r, ok := t.chains[uint64(leaf)<<1|uint64(typ)]; ok {
		return r, nil
	}
	secret, err := t.peekLeafSecret(leaf)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	label := "application"
	if typ == ratchetHandshake {
		label = "handshake"
	}
	rs, err := t.s.expandWithLabel(secret, label, nil, t.s.hashLen())
	if err != nil {
		return nil, err
	}
	return &ratchet{secret: rs, skipped: map[uint32]keyNonce{}}, nil
}

// keyFor returns the key and nonce for a received generation and a
// function to call with whether the message was accepted: true deletes
// the key (it cannot be used twice), keeps the keys skipped on the way
// and, for a sender's first message of the epoch, takes the sender's
// secrets out of the tree; false leaves the tree exactly as it was. A
// generation beyond the jump bound is refused before anything is
// derived.
func (t *secretTree) keyFor(leaf uint32, typ ratchetType, generation uint32) (keyNonce, func(bool), error) {
	next := uint32(0)
	if r, ok := t.chains[uint64(leaf)<<1|uint64(typ)]; ok {
		next = r.next
	}
	if generation >= next && generation-next > t.maxJump {
		return keyNonce{}, nil, ErrGenerationTooFar
	}
	r, err := t.peekChain(leaf, typ)
	if err != nil {
		return keyNonce{}, nil, err
	}
	if generation < r.next {
		kn, ok := r.skipped[generation]
		if !ok {
			return keyNonce{}, nil, ErrGenerationUsed
		}
		return kn, func(ok bool) {
			if ok {
				delete(r.skipped, generation)
			}
		}, nil
	}
	// Ratchet a copy; the real ratchet moves only once the message is
	// accepted.
	tmp := &ratchet{secret: append([]byte(nil), r.secret...), next: r.next}
	type skippedKey struct {
		g  uint32
		kn keyNonce
	}
	var skipped []skippedKey
	for tmp.next < generation {
		g := tmp.next
		kn, err := t.step(tmp)
		if err != nil {
			clear(tmp.secret)
			return keyNonce{}, nil, err
		}
		skipped = append(skipped, skippedKey{g, kn})
	}
	kn, err := t.step(tmp)
	if err != nil {
		clear(tmp.secret)
		return keyNonce{}, nil, err
	}
	return kn, func(ok bool) {
		if !ok {
			clear(tmp.secret)
			for _, sk := range skipped {
				clear(sk.kn.key)
				clear(sk.kn.nonce)
			}
			return
		}
		if _, ok := t.chains[uint64(leaf)<<1|uint64(typ)]; !ok {
			// The sender's first accepted message of the epoch: derive
			// its ratchets for real, deleting the secrets above them.
			clear(r.secret)
			var err error
			if r, err = t.chain(leaf, typ); err != nil {
				clear(tmp.secret)
				return
			}
		}
		clear(r.secret)
		r.secret, r.next = tmp.secret, tmp.next
		for _, sk := range skipped {
			if len(r.skipped) >= maxSkippedKeys {
				// Drop the oldest kept key.
				oldest := sk.g
				for k := range r.skipped {
					if k < oldest {
						oldest = k
					}
				}
				delete(r.skipped, oldest)
			}
			r.skipped[sk.g] = sk.kn
		}
	}, nil
}

// senderDataKeyNonce derives the sender data key and nonce from the
// ciphertext sample (RFC 9420 §6.3.2).
func (s *suite) senderDataKeyNonce(senderDataSecret, ciphertext []byte) (keyNonce, error) {
	sample := ciphertext
	if len(sample) > s.hashLen() {
		sample = sample[:s.hashLen()]
	}
	k, err := s.expandWithLabel(senderDataSecret, "key", sample, s.keyLen)
	if err != nil {
		return keyNonce{}, err
	}
	n, err := s.expandWithLabel(senderDataSecret, "nonce", sample, s.nonceLen)
	if err != nil {
		return keyNonce{}, err
	}
	return keyNonce{k, n}, nil
}

// clone copies the tree's remaining secrets and ratchets.
func (t *secretTree) clone() *secretTree {
	c := *t
	c.nodes = make(map[uint32][]byte, len(t.nodes))
	for k, v := range t.nodes {
		c.nodes[k] = append([]byte(nil), v...)
	}
	c.chains = make(map[uint64]*ratchet, len(t.chains))
	for k, r := range t.chains {
		rc := &ratchet{secret: append([]byte(nil), r.secret...), next: r.next, skipped: make(map[uint32]keyNonce, len(r.skipped))}
		for g, kn := range r.skipped {
			rc.skipped[g] = kn
		}
		c.chains[k] = rc
	}
	return &c
}
