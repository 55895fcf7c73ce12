package mls

import (
	"bytes"
	"crypto/hpke"
	"crypto/subtle"
	"fmt"
	"time"

	"sotto/mls/internal/codec"
	"sotto/mls/internal/treemath"
)

// cachedProposal is a proposal received in the current epoch, kept until
// a commit references it.
type cachedProposal struct {
	proposal proposal
	sender   sender
}

// groupState is one member's view of a group at one epoch. Commits are
// applied to a copy, which replaces the state only if every check passes.
type groupState struct {
	s            *suite
	ctx          groupContext
	ctxBytes     []byte
	tree         *ratchetTree
	priv         *treePrivate
	sigPriv      []byte
	sigKey       *signer // sigPriv parsed, see signer()
	epoch        *epochSecrets
	keys         *secretTree
	interim      []byte
	resumption   map[uint64][]byte // resumption_psk by epoch
	proposals    map[string]cachedProposal
	proposalRefs [][]byte // cached proposal refs in arrival order
	// pendingUpdates holds the leaf private keys of this member's own
	// Update proposals of the epoch, by encryption key.
	pendingUpdates map[string]hpke.PrivateKey
	externalPSKs   map[string][]byte
	maxJump        uint32              // bound on secret-tree ratchet jumps; 0 means the default
	keepPast       int                 // past epochs kept for late messages; 0 default, <0 none
	keepResumption int                 // epochs whose resumption PSK is kept; 0 default, <0 current only
	past           []*pastEpoch        // oldest first
	now            func() time.Time    // clock for KeyPackage lifetimes; nil means time.Now
	validator      CredentialValidator // application credential check; not persisted
	removed        bool                // this member was removed by the last commit
	committed      []ProposalInfo      // the proposals of the last commit handled; not persisted
	reinit         bool                // the last commit carried a ReInit proposal
	reinitTo       *reInit             // that proposal's successor parameters
	priorPSKs      map[string][]byte   // reinit/branch resumption PSKs (resumptionKey)
}

// signer returns this member's signature key parsed, parsing it again
// only if sigPriv changed.
func (g *groupState) signer() (*signer, error) {
	if g.sigKey == nil || subtle.ConstantTimeCompare(g.sigKey.from, g.sigPriv) != 1 {
		k, err := g.s.newSigner(g.sigPriv)
		if err != nil {
			return nil, err
		}
		g.sigKey = k
	}
	return g.sigKey, nil
}

func (g *groupState) setContext(ctx groupContext) error {
	b, err := marshal(&ctx)
	if err != nil {
		return err
	}
	g.ctx, g.ctxBytes = ctx, b
	return nil
}

// startEpoch installs epoch secrets and the secret tree.
func (g *groupState) startEpoch(e *epochSecrets, confirmationTag []byte) error {
	g.epoch = e
	g.keys = newSecretTree(g.s, e.encryptionSecret, g.tree.size())
	if g.maxJump != 0 {
		g.keys.maxJump = g.maxJump
	}
	interim, err := g.s.interimTranscriptHash(g.ctx.confirmedTranscriptHash, confirmationTag)
	if err != nil {
		return err
	}
	g.interim = interim
	if g.resumption == nil {
		g.resumption = map[uint64][]byte{}
	}
	g.resumption[g.ctx.epoch] = e.resumptionPSK
	g.proposals = map[string]cachedProposal{}
	g.proposalRefs = nil
	g.pendingUpdates = map[string]hpke.PrivateKey{}
	return nil
}

// externalSenders parses the external_senders extension of the context.
func (g *groupState) externalSenderKey(index uint32) ([]byte, error) {
	data, ok := findExtension(g.ctx.extensions, extExternalSenders)
	if !ok {
		return nil, fmt.Errorf("%w: no external senders", ErrInvalidMessage)
	}
	var keys [][]byte
	r := codec.NewReader(data)
	r.Elements(func(r *codec.Reader) {
		key := r.Opaque()
		var c credential
		c.decode(r)
		keys = append(keys, key)
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: external senders: %w", ErrDecode, err)
	}
	if int(index) >= len(keys) {
		return nil, fmt.Errorf("%w: external sender index", ErrInvalidMessage)
	}
	return keys[index], nil
}

// senderKey returns the signature key that must have signed ac.
func (g *groupState) senderKey(ac *authenticatedContent) ([]byte, error) {
	c := &ac.content
	switch c.sender.typ {
	case senderMember:
		l := g.tree.leaf(c.sender.index)
		if l == nil {
			return nil, fmt.Errorf("%w: sender leaf is blank", ErrInvalidMessage)
		}
		return l.signatureKey, nil
	case senderExternal:
		if c.contentType != contentProposal {
			return nil, fmt.Errorf("%w: external sender may only propose", ErrInvalidMessage)
		}
		return g.externalSenderKey(c.sender.index)
	case senderNewMemberProposal:
		if c.contentType != contentProposal || c.proposal.typ != proposalAdd {
			return nil, fmt.Errorf("%w: new member may only propose Add", ErrInvalidMessage)
		}
		return c.proposal.keyPackage.leafNode.signatureKey, nil
	case senderNewMemberCommit:
		if c.contentType != contentCommit || c.commit.path == nil {
			return nil, fmt.Errorf("%w: external commit needs a path", ErrInvalidMessage)
		}
		return c.commit.path.leafNode.signatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type", ErrInvalidMessage)
}

// unprotect authenticates a handshake or application message of the
// current epoch and returns its content.
func (g *groupState) unprotect(m *mlsMessage) (*authenticatedContent, error) {
	var ac *authenticatedContent
	var err error
	switch {
	case m.public != nil:
		c := &m.public.content
		if !bytes.Equal(c.groupID, g.ctx.groupID) || c.epoch != g.ctx.epoch {
			return nil, fmt.Errorf("%w: wrong group or epoch", ErrInvalidMessage)
		}
		if c.contentType == contentApplication {
			return nil, fmt.Errorf("%w: application data must be encrypted", ErrInvalidMessage)
		}
		ac, err = g.s.unprotectPublic(m.public, g.epoch.membershipKey, &g.ctx)
	case m.private != nil:
		if !bytes.Equal(m.private.groupID, g.ctx.groupID) {
			return nil, fmt.Errorf("%w: wrong group or epoch", ErrInvalidMessage)
		}
		if m.private.epoch != g.ctx.epoch {
			return g.unprotectPast(m.private)
		}
		// The key is used up only once the signature holds too: a
		// damaged message (even a sender's first of the epoch) leaves
		// the secret tree, and so the saved state, as it was.
		var accept func(bool)
		ac, accept, err = g.s.openPrivate(g.keys, g.epoch.senderDataSecret, m.private)
		if err != nil {
			return nil, err
		}
		if err := g.verifyContent(ac); err != nil {
			accept(false)
			return nil, err
		}
		accept(true)
		return ac, nil
	default:
		return nil, fmt.Errorf("%w: not a group message", ErrInvalidMessage)
	}
	if err != nil {
		return nil, err
	}
	if err := g.verifyContent(ac); err != nil {
		return nil, err
	}
	return ac, nil
}

// verifyContent checks the signature of content of the current epoch.
func (g *groupState) verifyContent(ac *authenticatedContent) error {
	key, err := g.senderKey(ac)
	if err != nil {
		return err
	}
	return ac.verify(g.s, key, &g.ctx)
}

// proposalRef computes a ProposalRef (RFC 9420 §5.2).
func (g *groupState) proposalRef(ac *authenticatedContent) ([]byte, error) {
	b, err := marshal(ac)
	if err != nil {
		return nil, err
	}
	return g.s.refHash("MLS 1.0 Proposal Reference", b), nil
}

// cacheProposal stores a proposal for a later commit.
func (g *groupState) cacheProposal(ac *authenticatedContent) error {
	ref, err := g.proposalRef(ac)
	if err != nil {
		return err
	}
	if _, dup := g.proposals[string(ref)]; dup {
		return nil
	}
	g.proposals[string(ref)] = cachedProposal{proposal: ac.content.proposal, sender: ac.content.sender}
	g.proposalRefs = append(g.proposalRefs, ref)
	return nil
}

// clone copies the state so a commit can be applied atomically.
func (g *groupState) clone() *groupState {
	c := *g
	c.tree = g.tree.clone()
	c.priv = g.priv.clone()
	c.resumption = make(map[uint64][]byte, len(g.resumption))
	for k, v := range g.resumption {
		c.resumption[k] = v
	}
	c.ctx.extensions = append([]extension(nil), g.ctx.extensions...)
	return &c
}

// dropStaleKeys forgets private keys of nodes that are blank or whose
// public key changed.
func (g *groupState) dropStaleKeys() {
	for x, k := range g.priv.keys {
		pub := g.tree.publicKey(x)
		if pub == nil || !bytes.Equal(pub, k.PublicKey().Bytes()) {
			delete(g.priv.keys, x)
			delete(g.priv.pathSecrets, x)
		}
	}
}

// lookupPSK resolves a PreSharedKeyID.
func (g *groupState) lookupPSK(id *preSharedKeyID) ([]byte, error) {
	switch id.pskType {
	case pskExternal:
		if psk, ok := g.externalPSKs[string(id.pskID)]; ok {
			return psk, nil
		}
	case pskResumption:
		if id.usage == resumptionApplication && bytes.Equal(id.pskGroupID, g.ctx.groupID) {
			if psk, ok := g.resumption[id.pskEpoch]; ok {
				return psk, nil
			}
		}
		if psk, ok := g.priorPSKs[resumptionKey(id)]; ok && id.usage != resumptionApplication {
			return psk, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown pre-shared key", ErrInvalidMessage)
}

// installPathSecret sets the path secret learned from a Welcome at the
// common ancestor of this member and the committer, and derives keys up
// the committer's filtered direct path (RFC 9420 §12.4.3.1).
func (g *groupState) installPathSecret(signer uint32, pathSecret []byte) error {
	path, _ := g.tree.filteredDirectPath(signer)
	lca := treemath.CommonAncestor(treemath.LeafNode(g.priv.leaf), treemath.LeafNode(signer))
	ps := pathSecret
	found := false
	for _, x := range path {
		if x == lca {
			found = true
		} else if found {
			next, err := g.s.deriveSecret(ps, "path")
			if err != nil {
				return err
			}
			ps = next
		}
		if !found {
			continue
		}
		pub, err := g.priv.setPathSecret(g.s, x, ps)
		if err != nil {
			return err
		}
		if !bytes.Equal(pub, g.tree.publicKey(x)) {
			return fmt.Errorf("%w: welcome path secret does not match the tree", ErrInvalidMessage)
		}
	}
	if !found {
		return fmt.Errorf("%w: welcome path secret has no place in the tree", ErrInvalidMessage)
	}
	return nil
}

// wipe zeroes the secrets of an epoch that has been left. The resumption
// PSK is kept (it may be referenced by later PSK proposals), and nothing
// shared with the next epoch is touched.
func (e *epochSecrets) wipe() {
	if e == nil {
		return
	}
	for _, b := range [][]byte{e.joinerSecret, e.welcomeSecret, e.epochSecret, e.senderDataSecret,
		e.encryptionSecret, e.exporterSecret, e.externalSecret, e.confirmationKey, e.membershipKey, e.initSecret} {
		clear(b)
	}
}

// wipe zeroes what remains of a secret tree that has been left.
func (t *secretTree) wipe() {
	for k, v := range t.nodes {
		clear(v)
		delete(t.nodes, k)
	}
	for k, r := range t.chains {
		clear(r.secret)
		for g, kn := range r.skipped {
			clear(kn.key)
			clear(kn.nonce)
			delete(r.skipped, g)
		}
		delete(t.chains, k)
	}
}

func (g *groupState) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

// checkLifetime verifies that a KeyPackage this member is about to add is
// currently valid (RFC 9420 §7.3: mandatory for sent messages).
func (g *groupState) checkLifetime(kp *keyPackage) error {
	now := g.clock().Unix()
	if now < 0 || uint64(now) < kp.leafNode.notBefore || uint64(now) > kp.leafNode.notAfter {
		return fmt.Errorf("%w: key package outside its lifetime", ErrInvalidMessage)
	}
	return nil
}

// usable reports why this member can no longer send in the group.
func (g *groupState) usable() error {
	if g.removed {
		return ErrRemoved
	}
	if g.reinit {
		return ErrReInit
	}
	return nil
}
