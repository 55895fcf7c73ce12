package mls

import (
	"crypto/rand"
	"fmt"
)

// propose signs a proposal from this member as a PublicMessage, and
// caches it so a commit (ours or another member's) can reference it.
func (g *Group) propose(p proposal) ([]byte, error) {
	st := g.st
	if err := st.usable(); err != nil {
		return nil, err
	}
	ac := &authenticatedContent{wireFormat: wireFormatPublicMessage, content: framedContent{
		groupID: st.ctx.groupID, epoch: st.ctx.epoch, sender: sender{typ: senderMember, index: st.priv.leaf},
		authenticatedData: []byte{}, contentType: contentProposal, proposal: p,
	}}
	if err := ac.sign(st.s, st.sigPriv, &st.ctx); err != nil {
		return nil, err
	}
	pm, err := st.s.protectPublic(ac, st.epoch.membershipKey, &st.ctx)
	if err != nil {
		return nil, err
	}
	msg, err := marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatPublicMessage, public: pm})
	if err != nil {
		return nil, err
	}
	if err := st.cacheProposal(ac); err != nil {
		return nil, err
	}
	return msg, nil
}

// ProposeAdd proposes adding the client of an MLSMessage-encoded
// KeyPackage.
func (g *Group) ProposeAdd(keyPackageMsg []byte) ([]byte, error) {
	var m mlsMessage
	if err := unmarshal(keyPackageMsg, &m); err != nil {
		return nil, err
	}
	if m.keyPackage == nil {
		return nil, fmt.Errorf("%w: not a key package", ErrInvalidMessage)
	}
	if err := validateKeyPackage(g.st.s, m.keyPackage); err != nil {
		return nil, err
	}
	if err := g.st.checkLifetime(m.keyPackage); err != nil {
		return nil, err
	}
	if err := g.st.checkCredential(nil, &m.keyPackage.leafNode); err != nil {
		return nil, err
	}
	return g.propose(proposal{typ: proposalAdd, keyPackage: *m.keyPackage})
}

// ProposeRemove proposes removing the member at leaf.
func (g *Group) ProposeRemove(leaf uint32) ([]byte, error) {
	if g.st.tree.leaf(leaf) == nil || leaf == g.st.priv.leaf {
		return nil, fmt.Errorf("%w: cannot propose removing leaf %d", ErrInvalidMessage, leaf)
	}
	return g.propose(proposal{typ: proposalRemove, removed: leaf})
}

// ProposeLeave proposes removing this member itself: the way a member
// leaves, since a committer cannot remove its own leaf (RFC 9420
// §12.1.3, §12.2). Another member's commit carries it out.
func (g *Group) ProposeLeave() ([]byte, error) {
	return g.propose(proposal{typ: proposalRemove, removed: g.st.priv.leaf})
}

// ProposeUpdate proposes a fresh encryption key for this member's leaf.
// Another member must commit it; this member's own commits refresh its
// leaf through the UpdatePath instead.
func (g *Group) ProposeUpdate() ([]byte, error) {
	st := g.st
	s := st.s
	encPriv, encPub, err := s.generateHPKE()
	if err != nil {
		return nil, err
	}
	key, err := s.hpkePrivate(encPriv)
	clear(encPriv)
	if err != nil {
		return nil, err
	}
	leaf := *st.tree.leaf(st.priv.leaf)
	leaf.encryptionKey = encPub
	leaf.source = sourceUpdate
	leaf.notBefore, leaf.notAfter, leaf.parentHash = 0, 0, nil
	if err := leaf.sign(s, st.sigPriv, st.ctx.groupID, st.priv.leaf); err != nil {
		return nil, err
	}
	msg, err := g.propose(proposal{typ: proposalUpdate, leafNode: leaf})
	if err != nil {
		return nil, err
	}
	st.pendingUpdates[string(encPub)] = key
	return msg, nil
}

// ProposePSK proposes injecting the external pre-shared key registered
// under id (AddExternalPSK) into the next epoch.
func (g *Group) ProposePSK(id []byte) ([]byte, error) {
	if _, ok := g.st.externalPSKs[string(id)]; !ok {
		return nil, fmt.Errorf("%w: unknown pre-shared key", ErrInvalidMessage)
	}
	nonce := make([]byte, g.st.s.hashLen())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.propose(proposal{typ: proposalPSK, psk: preSharedKeyID{pskType: pskExternal, pskID: append([]byte(nil), id...), pskNonce: nonce}})
}

// ProposeGroupContextExtensions proposes replacing the group context
// extensions with exts (RFC 9420 §12.1.7); an empty, non-nil slice
// clears them. As for CommitOptions.Extensions, every current member
// must support the new extensions and any required_capabilities they
// set; a commit covering the proposal applies them in the next epoch. A
// commit carries at most one such proposal (§12.2), so proposing is
// refused while another one is pending in this epoch.
func (g *Group) ProposeGroupContextExtensions(exts []Extension) ([]byte, error) {
	st := g.st
	if err := st.usable(); err != nil {
		return nil, err
	}
	for _, ref := range st.proposalRefs {
		if st.proposals[string(ref)].proposal.typ == proposalGroupContextExtensions {
			return nil, fmt.Errorf("%w: a group context extensions proposal is already pending", ErrInvalidMessage)
		}
	}
	ps := make([]extension, 0, len(exts))
	for _, e := range exts {
		ps = append(ps, extension{typ: e.Type, data: append([]byte(nil), e.Data...)})
	}
	if err := st.checkGroupContextExtensions(ps); err != nil {
		return nil, err
	}
	return g.propose(proposal{typ: proposalGroupContextExtensions, extensions: ps})
}

// checkGroupContextExtensions applies to the current tree the policy
// checks a commit replacing the group context extensions with exts runs
// (RFC 9420 §7.3, §12.1.7).
func (g *groupState) checkGroupContextExtensions(exts []extension) error {
	if err := g.checkExternalSenders(exts); err != nil {
		return err
	}
	ctx := g.ctx
	ctx.extensions = exts
	return g.tree.validatePolicy(&ctx)
}
