package mls

import (
	"bytes"
	"fmt"
)

// BranchOptions tune Group.Branch.
type BranchOptions struct {
	// Extensions are the subgroup's group context extensions; every
	// member must support them.
	Extensions []Extension
	// OmitRatchetTree leaves the ratchet tree out of the Welcome; joiners
	// then need it from the subgroup's RatchetTree.
	OmitRatchetTree bool
}

// Branch creates a subgroup of this group (RFC 9420 §11.3): a new group
// with the given id, the same suite and this member's credential and
// signature key, and a commit adding the MLSMessage-encoded KeyPackages
// of the members to take along. The commit and its Welcome carry the
// resumption PSK of this group's current epoch with usage branch; the
// others join with Join and JoinOptions.BranchFrom set to their state of
// this group. Every KeyPackage's credential must be that of a current
// member. Apply the pending commit to the subgroup once the delivery
// service accepts the Welcome; this group is unchanged.
func (g *Group) Branch(groupID []byte, keyPackages [][]byte, opts BranchOptions) (*Group, *PendingCommit, error) {
	st := g.st
	if err := st.usable(); err != nil {
		return nil, nil, err
	}
	if bytes.Equal(groupID, st.ctx.groupID) {
		return nil, nil, fmt.Errorf("%w: a branch needs a new group id", ErrInvalidMessage)
	}
	psk, ok := st.resumption[st.ctx.epoch]
	if !ok {
		return nil, nil, fmt.Errorf("%w: no resumption psk for the current epoch", ErrInvalidMessage)
	}
	own := st.tree.leaf(st.priv.leaf)
	if own == nil || own.credential.typ != credentialBasic {
		return nil, nil, fmt.Errorf("%w: branching needs a basic credential", ErrInvalidMessage)
	}
	for _, b := range keyPackages {
		var m mlsMessage
		if err := unmarshal(b, &m); err != nil {
			return nil, nil, err
		}
		if m.keyPackage == nil {
			return nil, nil, fmt.Errorf("%w: not a key package", ErrInvalidMessage)
		}
		if !st.hasCredential(&m.keyPackage.leafNode.credential) {
			return nil, nil, fmt.Errorf("%w: key package of a client outside the group", ErrInvalidMessage)
		}
	}
	nonce, err := st.s.newNonce()
	if err != nil {
		return nil, nil, err
	}
	id := preSharedKeyID{pskType: pskResumption, usage: resumptionBranch,
		pskGroupID: bytes.Clone(st.ctx.groupID), pskEpoch: st.ctx.epoch, pskNonce: nonce}
	ng, err := newGroup(st.s.id, groupID, own.credential.identity, st.sigPriv, st.now, own.capabilities.extensions)
	if err != nil {
		return nil, nil, err
	}
	ns := ng.st
	ns.validator = st.validator
	ns.keepPast, ns.keepResumption, ns.maxJump = st.keepPast, st.keepResumption, st.maxJump
	if len(opts.Extensions) > 0 {
		ctx := ns.ctx
		for _, e := range opts.Extensions {
			ctx.extensions = append(ctx.extensions, extension{typ: e.Type, data: bytes.Clone(e.Data)})
		}
		if err := ns.checkExternalSenders(ctx.extensions); err != nil {
			return nil, nil, err
		}
		if err := ns.tree.validatePolicy(&ctx); err != nil {
			return nil, nil, err
		}
		if err := ns.setContext(ctx); err != nil {
			return nil, nil, err
		}
	}
	ns.priorPSKs = map[string][]byte{resumptionKey(&id): psk}
	p, err := ng.Commit(CommitOptions{Add: keyPackages, OmitRatchetTree: opts.OmitRatchetTree, resumption: []preSharedKeyID{id}})
	if err != nil {
		return nil, nil, err
	}
	return ng, p, nil
}

// hasCredential reports whether a current member has the credential c.
func (g *groupState) hasCredential(c *credential) bool {
	for i := uint32(0); i < g.tree.size(); i++ {
		if l := g.tree.leaf(i); l != nil && sameCredential(&l.credential, c) {
			return true
		}
	}
	return false
}

// checkBranchWelcome verifies, for a member joining a subgroup branched
// from old, that the subgroup keeps the old group's version and suite
// and that every leaf's credential is a member's of the old group
// (RFC 9420 §11.3). The branch PSK itself was resolved against old's
// kept epochs. A new group id is not required of a received branch: the
// RFC's receiver checks do not include it, and mls-go reuses the old id.
func checkBranchWelcome(old *groupState, gc *groupContext, tree *ratchetTree) error {
	if gc.version != old.ctx.version || gc.cipherSuite != old.ctx.cipherSuite {
		return fmt.Errorf("%w: branch changes the version or cipher suite", ErrInvalidMessage)
	}
	for i := uint32(0); i < tree.size(); i++ {
		if l := tree.leaf(i); l != nil && !old.hasCredential(&l.credential) {
			return fmt.Errorf("%w: branch leaf %d is not a member of the old group", ErrInvalidMessage, i)
		}
	}
	return nil
}
