package mls

import (
	"bytes"
	"crypto/hpke"
	"fmt"
	"slices"

	"sotto/mls/internal/codec"
	"sotto/mls/internal/treemath"
)

// stateFormat versions the encoding of Group.MarshalBinary.
// Format 2 adds the parameters of a committed ReInit, format 3 the
// resumption PSK window (SetResumptionEpochs); formats 1 and 2 are read.
// The resumption PSKs of kept epochs are in every format.
const stateFormat uint16 = 3

func writeBytesMap(w *codec.Writer, m map[string][]byte) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.Vector(func(w *codec.Writer) {
		for _, k := range keys {
			w.Opaque([]byte(k))
			w.Opaque(m[k])
		}
	})
}

func readBytesMap(r *codec.Reader) map[string][]byte {
	m := map[string][]byte{}
	r.Elements(func(r *codec.Reader) {
		k := r.Opaque()
		m[string(k)] = append([]byte(nil), r.Opaque()...)
	})
	return m
}

func (e *epochSecrets) fields() []*[]byte {
	return []*[]byte{&e.joinerSecret, &e.welcomeSecret, &e.epochSecret, &e.senderDataSecret,
		&e.encryptionSecret, &e.exporterSecret, &e.epochAuthenticator, &e.externalSecret,
		&e.confirmationKey, &e.membershipKey, &e.resumptionPSK, &e.initSecret}
}

func writeSecretTree(w *codec.Writer, t *secretTree) {
	w.U32(t.nLeaves)
	w.U32(t.maxJump)
	nodes := make([]uint32, 0, len(t.nodes))
	for k := range t.nodes {
		nodes = append(nodes, k)
	}
	slices.Sort(nodes)
	w.Vector(func(w *codec.Writer) {
		for _, k := range nodes {
			w.U32(k)
			w.Opaque(t.nodes[k])
		}
	})
	chains := make([]uint64, 0, len(t.chains))
	for k := range t.chains {
		chains = append(chains, k)
	}
	slices.Sort(chains)
	w.Vector(func(w *codec.Writer) {
		for _, k := range chains {
			c := t.chains[k]
			w.U64(k)
			w.Opaque(c.secret)
			w.U32(c.next)
			gens := make([]uint32, 0, len(c.skipped))
			for g := range c.skipped {
				gens = append(gens, g)
			}
			slices.Sort(gens)
			w.Vector(func(w *codec.Writer) {
				for _, g := range gens {
					w.U32(g)
					w.Opaque(c.skipped[g].key)
					w.Opaque(c.skipped[g].nonce)
				}
			})
		}
	})
}

func readSecretTree(r *codec.Reader, s *suite) *secretTree {
	t := &secretTree{s: s, nodes: map[uint32][]byte{}, chains: map[uint64]*ratchet{}}
	t.nLeaves = r.U32()
	t.maxJump = r.U32()
	r.Elements(func(r *codec.Reader) {
		k := r.U32()
		t.nodes[k] = append([]byte(nil), r.Opaque()...)
	})
	r.Elements(func(r *codec.Reader) {
		k := r.U64()
		c := &ratchet{secret: append([]byte(nil), r.Opaque()...), next: r.U32(), skipped: map[uint32]keyNonce{}}
		r.Elements(func(r *codec.Reader) {
			g := r.U32()
			c.skipped[g] = keyNonce{append([]byte(nil), r.Opaque()...), append([]byte(nil), r.Opaque()...)}
		})
		t.chains[k] = c
	})
	return t
}

func writeHPKEKey(w *codec.Writer, k hpke.PrivateKey) {
	b, err := k.Bytes()
	if err != nil {
		w.SetErr(fmt.Errorf("%w: private key", ErrInvalidKey))
		return
	}
	w.Opaque(b)
	clear(b)
}

func readHPKEKey(r *codec.Reader, s *suite) hpke.PrivateKey {
	b := r.Opaque()
	if r.Err() != nil {
		return nil
	}
	k, err := s.hpkePrivate(b)
	if err != nil {
		r.SetErr(err)
		return nil
	}
	return k
}

// MarshalBinary encodes the member's whole group state, including every
// secret it holds. Store it only encrypted; the encoding is versioned.
func (g *Group) MarshalBinary() ([]byte, error) {
	st := g.st
	var w codec.Writer
	w.U16(stateFormat)
	w.U16(uint16(st.s.id))
	st.ctx.encode(&w)
	st.tree.nodes.encode(&w)
	w.U32(st.priv.leaf)
	nodes := make([]uint32, 0, len(st.priv.keys))
	for x := range st.priv.keys {
		nodes = append(nodes, x)
	}
	slices.Sort(nodes)
	w.Vector(func(w *codec.Writer) {
		for _, x := range nodes {
			w.U32(x)
			writeHPKEKey(w, st.priv.keys[x])
		}
	})
	w.Opaque(st.sigPriv)
	for _, f := range st.epoch.fields() {
		w.Opaque(*f)
	}
	writeSecretTree(&w, st.keys)
	w.Opaque(st.interim)
	epochs := make([]uint64, 0, len(st.resumption))
	for e := range st.resumption {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	w.Vector(func(w *codec.Writer) {
		for _, e := range epochs {
			w.U64(e)
			w.Opaque(st.resumption[e])
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, ref := range st.proposalRefs {
			cp := st.proposals[string(ref)]
			w.Opaque(ref)
			cp.sender.encode(w)
			cp.proposal.encode(w)
		}
	})
	pending := make([]string, 0, len(st.pendingUpdates))
	for k := range st.pendingUpdates {
		pending = append(pending, k)
	}
	slices.Sort(pending)
	w.Vector(func(w *codec.Writer) {
		for _, k := range pending {
			w.Opaque([]byte(k))
			writeHPKEKey(w, st.pendingUpdates[k])
		}
	})
	writeBytesMap(&w, st.externalPSKs)
	w.U32(st.maxJump)
	w.U32(uint32(int32(st.keepPast)))
	w.Bool(st.removed)
	w.Bool(st.reinit)
	w.Vector(func(w *codec.Writer) {
		for _, p := range st.past {
			p.ctx.encode(w)
			p.tree.nodes.encode(w)
			writeSecretTree(w, p.keys)
			w.Opaque(p.senderDataSecret)
		}
	})
	w.Optional(st.reinitTo != nil, func(w *codec.Writer) {
		proposalBody{&proposal{typ: proposalReInit, reInit: *st.reinitTo}}.encode(w)
	})
	w.U32(uint32(int32(st.keepResumption)))
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: marshal group: %w", err)
	}
	return b, nil
}

// UnmarshalGroup restores a Group encoded by MarshalBinary.
func UnmarshalGroup(b []byte) (*Group, error) {
	r := codec.NewReader(b)
	v := r.U16()
	if r.Err() == nil && (v < 1 || v > stateFormat) {
		return nil, fmt.Errorf("%w: group state format %d", ErrDecode, v)
	}
	s, err := CipherSuite(r.U16()).suite()
	if r.Err() == nil && err != nil {
		return nil, err
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, r.Err())
	}
	st := &groupState{s: s}
	var ctx groupContext
	ctx.decode(r)
	var nodes treeNodes
	nodes.decode(r)
	st.tree = &ratchetTree{s: s, nodes: nodes}
	st.priv = newTreePrivate(r.U32(), nil)
	r.Elements(func(r *codec.Reader) {
		x := r.U32()
		if k := readHPKEKey(r, s); k != nil {
			st.priv.keys[x] = k
		}
	})
	st.sigPriv = append([]byte(nil), r.Opaque()...)
	st.epoch = &epochSecrets{}
	for _, f := range st.epoch.fields() {
		*f = append([]byte(nil), r.Opaque()...)
	}
	st.keys = readSecretTree(r, s)
	st.interim = append([]byte(nil), r.Opaque()...)
	st.resumption = map[uint64][]byte{}
	r.Elements(func(r *codec.Reader) {
		e := r.U64()
		st.resumption[e] = append([]byte(nil), r.Opaque()...)
	})
	st.proposals = map[string]cachedProposal{}
	r.Elements(func(r *codec.Reader) {
		ref := append([]byte(nil), r.Opaque()...)
		var cp cachedProposal
		cp.sender.decode(r)
		cp.proposal.decode(r)
		st.proposals[string(ref)] = cp
		st.proposalRefs = append(st.proposalRefs, ref)
	})
	st.pendingUpdates = map[string]hpke.PrivateKey{}
	r.Elements(func(r *codec.Reader) {
		k := r.Opaque()
		if key := readHPKEKey(r, s); key != nil {
			st.pendingUpdates[string(k)] = key
		}
	})
	st.externalPSKs = readBytesMap(r)
	st.maxJump = r.U32()
	st.keepPast = int(int32(r.U32()))
	st.removed = r.Bool()
	st.reinit = r.Bool()
	r.Elements(func(r *codec.Reader) {
		p := &pastEpoch{}
		p.ctx.decode(r)
		var pn treeNodes
		pn.decode(r)
		p.tree = &ratchetTree{s: s, nodes: pn}
		p.keys = readSecretTree(r, s)
		p.senderDataSecret = append([]byte(nil), r.Opaque()...)
		st.past = append(st.past, p)
	})
	if v >= 2 {
		r.Optional(func(r *codec.Reader) {
			var p proposal
			p.typ = proposalReInit
			proposalBody{&p}.decode(r)
			st.reinitTo = &p.reInit
		})
	}
	if v >= 3 {
		st.keepResumption = int(int32(r.U32()))
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: group state: %w", ErrDecode, err)
	}
	if err := st.setContext(ctx); err != nil {
		return nil, err
	}
	if err := st.checkRestored(); err != nil {
		return nil, err
	}
	return &Group{st: st}, nil
}

// checkRestored rejects a decoded state whose parts do not fit together,
// so a corrupted store cannot make later operations misbehave.
func (g *groupState) checkRestored() error {
	bad := func(what string) error { return fmt.Errorf("%w: group state: %s", ErrDecode, what) }
	if CipherSuite(g.ctx.cipherSuite) != g.s.id || g.ctx.version != protocolVersion10 {
		return bad("suite")
	}
	if err := g.tree.checkStructure(); err != nil {
		return err
	}
	if !g.removed && g.tree.leaf(g.priv.leaf) == nil {
		return bad("own leaf")
	}
	if g.keys.nLeaves != g.tree.size() {
		return bad("secret tree size")
	}
	for x := range g.keys.nodes {
		if x >= treemath.NodeWidth(g.keys.nLeaves) {
			return bad("secret tree node")
		}
	}
	for _, p := range g.past {
		if err := p.tree.checkStructure(); err != nil {
			return err
		}
		if p.keys.nLeaves != p.tree.size() {
			return bad("past secret tree size")
		}
	}
	for _, f := range g.epoch.fields() {
		if len(*f) != g.s.hashLen() {
			return bad("epoch secret length")
		}
	}
	if g.keepResumption > maxResumptionEpochs {
		return bad("resumption window")
	}
	for e, psk := range g.resumption {
		if e > g.ctx.epoch || len(psk) != g.s.hashLen() {
			return bad("resumption psk")
		}
	}
	if psk, ok := g.resumption[g.ctx.epoch]; !g.removed && (!ok || !bytes.Equal(psk, g.epoch.resumptionPSK)) {
		return bad("current resumption psk")
	}
	return nil
}

// MarshalBinary encodes a pending commit, including the next epoch's
// secrets, so it survives a restart while the delivery service decides.
// Store it only encrypted.
func (p *PendingCommit) MarshalBinary() ([]byte, error) {
	if p.next == nil {
		return nil, fmt.Errorf("%w: pending commit already applied", ErrInvalidMessage)
	}
	st, err := (&Group{st: p.next}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	var w codec.Writer
	w.U64(p.epoch)
	w.Opaque(p.Commit)
	w.Optional(p.Welcome != nil, func(w *codec.Writer) { w.Opaque(p.Welcome) })
	w.Opaque(st)
	return w.Bytes()
}

// UnmarshalPendingCommit restores a PendingCommit encoded by
// MarshalBinary.
func UnmarshalPendingCommit(b []byte) (*PendingCommit, error) {
	r := codec.NewReader(b)
	p := &PendingCommit{epoch: r.U64(), Commit: append([]byte(nil), r.Opaque()...)}
	r.Optional(func(r *codec.Reader) { p.Welcome = append([]byte(nil), r.Opaque()...) })
	st := r.Opaque()
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: pending commit: %w", ErrDecode, err)
	}
	g, err := UnmarshalGroup(st)
	if err != nil {
		return nil, err
	}
	if g.st.ctx.epoch != p.epoch+1 {
		return nil, fmt.Errorf("%w: pending commit epochs", ErrDecode)
	}
	p.next = g.st
	return p, nil
}
