package mls

import (
	"bytes"
	"crypto/hpke"
	"fmt"

	"sotto/mls/internal/treemath"
)

// resolvedProposal is a committed proposal with the sender that made it.
type resolvedProposal struct {
	p      *proposal
	sender sender
}

// resolveProposals expands a commit's proposal list, looking references
// up in the proposal cache.
func (g *groupState) resolveProposals(c *commit, committer sender) ([]resolvedProposal, error) {
	out := make([]resolvedProposal, 0, len(c.proposals))
	for i := range c.proposals {
		por := &c.proposals[i]
		if !por.isRef {
			out = append(out, resolvedProposal{&por.proposal, committer})
			continue
		}
		cp, ok := g.proposals[string(por.ref)]
		if !ok {
			return nil, fmt.Errorf("%w: commit references an unknown proposal", ErrInvalidMessage)
		}
		out = append(out, resolvedProposal{&cp.proposal, cp.sender})
	}
	return out, nil
}

// validateProposals applies the list rules of RFC 9420 §12.2 that do not
// depend on application policy.
func validateProposals(ps []resolvedProposal, committer sender) error {
	external := committer.typ == senderNewMemberCommit
	counts := map[uint16]int{}
	touched := map[uint32]bool{}
	pskIDs := map[string]bool{}
	for _, rp := range ps {
		counts[rp.p.typ]++
		switch rp.p.typ {
		case proposalUpdate:
			if external || rp.sender.typ != senderMember {
				return fmt.Errorf("%w: update not from a member", ErrInvalidMessage)
			}
			if committer.typ == senderMember && rp.sender.index == committer.index {
				return fmt.Errorf("%w: committer cannot commit its own update", ErrInvalidMessage)
			}
			if touched[rp.sender.index] {
				return fmt.Errorf("%w: leaf updated or removed twice", ErrInvalidMessage)
			}
			touched[rp.sender.index] = true
		case proposalRemove:
			if committer.typ == senderMember && rp.p.removed == committer.index {
				return fmt.Errorf("%w: committer cannot remove itself", ErrInvalidMessage)
			}
			if touched[rp.p.removed] {
				return fmt.Errorf("%w: leaf updated or removed twice", ErrInvalidMessage)
			}
			touched[rp.p.removed] = true
		case proposalPSK:
			b, err := marshal(&rp.p.psk)
			if err != nil {
				return err
			}
			if pskIDs[string(b)] {
				return fmt.Errorf("%w: duplicate psk", ErrInvalidMessage)
			}
			pskIDs[string(b)] = true
		case proposalAdd, proposalGroupContextExtensions, proposalReInit, proposalExternalInit:
		default:
			return fmt.Errorf("%w: unsupported proposal type %d", ErrInvalidMessage, rp.p.typ)
		}
	}
	if counts[proposalGroupContextExtensions] > 1 {
		return fmt.Errorf("%w: several group context extension proposals", ErrInvalidMessage)
	}
	if counts[proposalReInit] > 0 && len(ps) > 1 {
		return fmt.Errorf("%w: reinit with other proposals", ErrInvalidMessage)
	}
	if external {
		if counts[proposalExternalInit] != 1 || counts[proposalRemove] > 1 ||
			counts[proposalExternalInit]+counts[proposalRemove]+counts[proposalPSK] != len(ps) {
			return fmt.Errorf("%w: invalid external commit proposals", ErrInvalidMessage)
		}
	} else if counts[proposalExternalInit] > 0 {
		return fmt.Errorf("%w: external init in a member commit", ErrInvalidMessage)
	}
	return nil
}

// externalInitSecret derives init_secret from an ExternalInit proposal
// (RFC 9420 §8.3).
func (s *suite) externalInitSecret(externalSecret, kemOutput []byte) ([]byte, error) {
	priv, _, err := s.deriveKeyPair(externalSecret)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(kemOutput, priv, s.kdf, s.aead, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: external init", ErrDecrypt)
	}
	return r.Export("MLS 1.0 external init secret", s.hashLen())
}

// applyCommit processes an authenticated Commit of the current epoch
// (RFC 9420 §12.4.2) and returns the state of the next epoch; g is left
// unchanged.
func (g *groupState) applyCommit(ac *authenticatedContent) (*groupState, error) {
	s := g.s
	c := &ac.content.commit
	committer := ac.content.sender
	if committer.typ != senderMember && committer.typ != senderNewMemberCommit {
		return nil, fmt.Errorf("%w: commit sender type", ErrInvalidMessage)
	}
	external := committer.typ == senderNewMemberCommit
	if external && ac.wireFormat != wireFormatPublicMessage {
		return nil, fmt.Errorf("%w: external commit must be public", ErrInvalidMessage)
	}
	ps, err := g.resolveProposals(c, committer)
	if err != nil {
		return nil, err
	}
	if err := validateProposals(ps, committer); err != nil {
		return nil, err
	}
	if err := g.checkReceivedProposals(c, ps, external); err != nil {
		return nil, err
	}
	if external {
		// RFC 9420 §12.2: the only member an external commit may remove
		// is the joiner's own old leaf.
		for _, rp := range ps {
			if rp.p.typ != proposalRemove {
				continue
			}
			old := g.tree.leaf(rp.p.removed)
			if c.path == nil || old == nil || !sameCredential(&old.credential, &c.path.leafNode.credential) {
				return nil, fmt.Errorf("%w: external commit removes a member other than the joiner", ErrInvalidMessage)
			}
		}
	}
	if c.path != nil {
		var old *leafNode
		if !external {
			old = g.tree.leaf(committer.index)
		}
		if err := g.checkCredential(old, &c.path.leafNode); err != nil {
			return nil, err
		}
	}
	n := g.clone()
	n.committed = committedProposals(ps)
	groupID := g.ctx.groupID
	fx, err := n.applyProposals(ps)
	if err != nil {
		return nil, err
	}
	needPath := fx.needPath || len(ps) == 0 || external
	added, pskIDs, kemOutput := fx.added, fx.pskIDs, fx.kemOutput
	if needPath && c.path == nil {
		return nil, fmt.Errorf("%w: commit requires a path", ErrInvalidMessage)
	}
	n.ctx.epoch = g.ctx.epoch + 1
	commitSecret := make([]byte, s.hashLen())
	if c.path != nil {
		sender := committer.index
		if external {
			leaf := c.path.leafNode
			sender = n.tree.addLeaf(&leaf)
		} else if old := n.tree.leaf(sender); old == nil || bytes.Equal(old.encryptionKey, c.path.leafNode.encryptionKey) {
			return nil, fmt.Errorf("%w: committer leaf must get a new encryption key", ErrInvalidMessage)
		}
		if err := n.tree.mergeUpdatePath(sender, c.path, groupID); err != nil {
			return nil, err
		}
		th, err := n.tree.rootHash()
		if err != nil {
			return nil, err
		}
		n.ctx.treeHash = th
		if err := n.setContext(n.ctx); err != nil {
			return nil, err
		}
		if n.tree.leaf(n.priv.leaf) == nil {
			n.removed = true
			return n, nil
		}
		n.dropStaleKeys()
		if commitSecret, err = n.tree.decryptPath(n.priv, sender, c.path, n.ctxBytes, added); err != nil {
			return nil, err
		}
	} else {
		th, err := n.tree.rootHash()
		if err != nil {
			return nil, err
		}
		n.ctx.treeHash = th
		if n.tree.leaf(n.priv.leaf) == nil {
			n.removed = true
			return n, nil
		}
	}
	if err := n.tree.validateTree(&n.ctx, fx.gce); err != nil {
		return nil, err
	}
	confirmed, err := s.confirmedTranscriptHash(g.interim, ac)
	if err != nil {
		return nil, err
	}
	n.ctx.confirmedTranscriptHash = confirmed
	if err := n.setContext(n.ctx); err != nil {
		return nil, err
	}
	var inputs []pskInput
	for i := range pskIDs {
		psk, err := g.lookupPSK(&pskIDs[i])
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, pskInput{id: pskIDs[i], psk: psk})
	}
	pskSecret, err := s.pskSecret(inputs)
	if err != nil {
		return nil, err
	}
	initSecret := g.epoch.initSecret
	if external {
		if initSecret, err = s.externalInitSecret(g.epoch.externalSecret, kemOutput); err != nil {
			return nil, err
		}
	}
	e, err := s.epochFromInit(initSecret, commitSecret, pskSecret, n.ctxBytes)
	if err != nil {
		return nil, err
	}
	if !s.verifyMAC(e.confirmationKey, confirmed, ac.auth.confirmationTag) {
		return nil, fmt.Errorf("%w: commit confirmation tag", ErrInvalidMAC)
	}
	if err := n.startEpoch(e, ac.auth.confirmationTag); err != nil {
		return nil, err
	}
	n.dropStaleKeys()
	n.reinit, n.reinitTo = fx.reinit, fx.reinitTo
	return n, nil
}

// proposalEffects is what applying a proposal list leaves for the rest
// of commit processing.
type proposalEffects struct {
	needPath  bool            // an Update or Remove was applied
	added     map[uint32]bool // leaves added by Add proposals
	addedKPs  map[uint32]*keyPackage
	pskIDs    []preSharedKeyID
	kemOutput []byte // ExternalInit
	reinit    bool
	gce       bool // the group context extensions changed
	reinitTo  *reInit
}

// applyProposals applies a validated proposal list to n's tree and
// context in the order of RFC 9420 §12.3.
func (n *groupState) applyProposals(ps []resolvedProposal) (*proposalEffects, error) {
	s := n.s
	groupID := n.ctx.groupID
	fx := &proposalEffects{added: map[uint32]bool{}, addedKPs: map[uint32]*keyPackage{}}
	for _, rp := range ps {
		if rp.p.typ == proposalGroupContextExtensions {
			if externalSendersChanged(n.ctx.extensions, rp.p.extensions) {
				if err := n.checkExternalSenders(rp.p.extensions); err != nil {
					return nil, err
				}
			}
			n.ctx.extensions = rp.p.extensions
			fx.gce = true
		}
	}
	for _, rp := range ps {
		if rp.p.typ != proposalUpdate {
			continue
		}
		fx.needPath = true
		i := rp.sender.index
		old := n.tree.leaf(i)
		if old == nil || rp.p.leafNode.source != sourceUpdate || bytes.Equal(old.encryptionKey, rp.p.leafNode.encryptionKey) {
			return nil, fmt.Errorf("%w: invalid update", ErrInvalidMessage)
		}
		if err := rp.p.leafNode.verify(s, groupID, i); err != nil {
			return nil, fmt.Errorf("%w: update leaf: %w", ErrInvalidMessage, err)
		}
		if err := n.checkCredential(old, &rp.p.leafNode); err != nil {
			return nil, err
		}
		leaf := rp.p.leafNode
		n.tree.updateLeaf(i, &leaf)
		if i == n.priv.leaf {
			key, ok := n.pendingUpdates[string(leaf.encryptionKey)]
			if !ok {
				return nil, fmt.Errorf("%w: commit applies an update this member did not make", ErrInvalidMessage)
			}
			n.priv.keys[treemath.LeafNode(i)] = key
		}
	}
	for _, rp := range ps {
		if rp.p.typ != proposalRemove {
			continue
		}
		fx.needPath = true
		if n.tree.leaf(rp.p.removed) == nil {
			return nil, fmt.Errorf("%w: remove of a blank leaf", ErrInvalidMessage)
		}
		n.tree.removeLeaf(rp.p.removed)
	}
	// KeyPackage signatures are checked in parallel; the rest in order.
	var adds []*keyPackage
	for _, rp := range ps {
		if rp.p.typ == proposalAdd {
			adds = append(adds, &rp.p.keyPackage)
		}
	}
	if err := parallel(len(adds), func(k int) error { return validateKeyPackage(s, adds[k]) }); err != nil {
		return nil, err
	}
	for _, rp := range ps {
		switch rp.p.typ {
		case proposalAdd:
			kp := &rp.p.keyPackage
			if err := n.checkReceivedLifetime(&kp.leafNode); err != nil {
				return nil, err
			}
			if err := n.checkCredential(nil, &kp.leafNode); err != nil {
				return nil, err
			}
			leaf := kp.leafNode
			i := n.tree.addLeaf(&leaf)
			fx.added[i] = true
			fx.addedKPs[i] = kp
		case proposalPSK:
			fx.pskIDs = append(fx.pskIDs, rp.p.psk)
		case proposalExternalInit:
			fx.kemOutput = rp.p.kemOutput
		case proposalReInit:
			fx.reinit = true
			fx.reinitTo = &rp.p.reInit
		}
	}
	return fx, nil
}

// validateKeyPackage checks a KeyPackage for use in this group's suite
// (RFC 9420 §10.1): version, suite, leaf source, both signatures, and an
// init key distinct from the leaf's encryption key.
func validateKeyPackage(s *suite, kp *keyPackage) error {
	if CipherSuite(kp.cipherSuite) != s.id || kp.version != protocolVersion10 || kp.leafNode.source != sourceKeyPackage {
		return fmt.Errorf("%w: incompatible key package", ErrInvalidMessage)
	}
	if bytes.Equal(kp.initKey, kp.leafNode.encryptionKey) {
		return fmt.Errorf("%w: key package init key equals its encryption key", ErrInvalidMessage)
	}
	if err := kp.verify(s); err != nil {
		return fmt.Errorf("%w: key package: %w", ErrInvalidMessage, err)
	}
	if err := kp.leafNode.verify(s, nil, 0); err != nil {
		return fmt.Errorf("%w: key package leaf: %w", ErrInvalidMessage, err)
	}
	return nil
}

// checkReceivedProposals applies the checks of RFC 9420 §12.1 and §12.2
// that concern a received commit's proposals in context: an external
// commit carries proposals only by value, a PreSharedKey proposal has a
// nonce of the hash length and, in a commit processed by members, only
// the application resumption usage, and a ReInit does not lower the
// protocol version.
func (g *groupState) checkReceivedProposals(c *commit, ps []resolvedProposal, external bool) error {
	if external {
		for i := range c.proposals {
			if c.proposals[i].isRef {
				return fmt.Errorf("%w: external commit with a proposal by reference", ErrInvalidMessage)
			}
		}
	}
	for _, rp := range ps {
		switch rp.p.typ {
		case proposalPSK:
			id := &rp.p.psk
			if len(id.pskNonce) != g.s.hashLen() {
				return fmt.Errorf("%w: psk nonce length", ErrInvalidMessage)
			}
			if id.pskType == pskResumption && id.usage != resumptionApplication {
				return fmt.Errorf("%w: resumption psk usage %d in a commit", ErrInvalidMessage, id.usage)
			}
		case proposalReInit:
			if rp.p.reInit.version < g.ctx.version {
				return fmt.Errorf("%w: reinit lowers the protocol version", ErrInvalidMessage)
			}
		}
	}
	return nil
}

// ProposalRemove and the other proposal types of RFC 9420 §17.4, as
// ProposalInfo.Type reports them.
const (
	ProposalAdd                    = proposalAdd
	ProposalUpdate                 = proposalUpdate
	ProposalRemove                 = proposalRemove
	ProposalPSK                    = proposalPSK
	ProposalReInit                 = proposalReInit
	ProposalExternalInit           = proposalExternalInit
	ProposalGroupContextExtensions = proposalGroupContextExtensions
)

// ProposalInfo describes one proposal a handled commit applied, for an
// application's own policy (who may add or remove whom).
type ProposalInfo struct {
	Type uint16 // ProposalAdd, ProposalRemove, ...
	// Sender and SenderType say who proposed it: the committer for a
	// proposal carried in the commit, the proposer for one referenced.
	Sender     uint32
	SenderType SenderType
	// Removed is the removed leaf of a ProposalRemove.
	Removed uint32
}

func committedProposals(ps []resolvedProposal) []ProposalInfo {
	out := make([]ProposalInfo, 0, len(ps))
	for _, rp := range ps {
		out = append(out, ProposalInfo{Type: rp.p.typ, Sender: rp.sender.index, SenderType: SenderType(rp.sender.typ), Removed: rp.p.removed})
	}
	return out
}
