package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"

	"sotto/mls/internal/codec"
)

// ProposeReInit proposes closing the group and restarting it as a new
// group with the given id, cipher suite and group context extensions
// (RFC 9420 §11.2). A commit carrying it may hold no other proposal;
// once it is applied, Group.ReInit creates the successor.
func (g *Group) ProposeReInit(groupID []byte, cs CipherSuite, exts []Extension) ([]byte, error) {
	if _, err := cs.suite(); err != nil {
		return nil, err
	}
	if len(groupID) == 0 {
		return nil, fmt.Errorf("%w: empty group id", ErrInvalidMessage)
	}
	ri := reInit{groupID: bytes.Clone(groupID), version: protocolVersion10, cipherSuite: uint16(cs), extensions: []extension{}}
	for _, e := range exts {
		ri.extensions = append(ri.extensions, extension{typ: e.Type, data: bytes.Clone(e.Data)})
	}
	return g.propose(proposal{typ: proposalReInit, reInit: ri})
}

// ReInitParams describes the successor group that a committed ReInit
// asks for.
type ReInitParams struct {
	GroupID     []byte
	CipherSuite CipherSuite
	Extensions  []Extension
}

// ReInitParams returns the successor's parameters once a ReInit was
// committed (ok false otherwise).
func (g *Group) ReInitParams() (p ReInitParams, ok bool) {
	ri := g.st.reinitTo
	if !g.st.reinit || ri == nil {
		return ReInitParams{}, false
	}
	p = ReInitParams{GroupID: bytes.Clone(ri.groupID), CipherSuite: CipherSuite(ri.cipherSuite)}
	for _, e := range ri.extensions {
		p.Extensions = append(p.Extensions, Extension{Type: e.typ, Data: bytes.Clone(e.data)})
	}
	return p, true
}

// reinitPSK returns the PreSharedKeyID and value binding a successor
// group to this closed one: the resumption PSK of its last epoch, usage
// reinit.
func (st *groupState) reinitPSK() (preSharedKeyID, []byte, error) {
	psk, ok := st.resumption[st.ctx.epoch]
	if !st.reinit || st.reinitTo == nil || !ok {
		return preSharedKeyID{}, nil, fmt.Errorf("%w: no committed reinit", ErrInvalidMessage)
	}
	// The nonce is KDF.Nh long for the suite of the group that uses the
	// PSK (RFC 9420 §8.4): the successor, whose suite may differ.
	next, err := CipherSuite(st.reinitTo.cipherSuite).suite()
	if err != nil {
		return preSharedKeyID{}, nil, err
	}
	nonce := make([]byte, next.hashLen())
	if _, err := rand.Read(nonce); err != nil {
		return preSharedKeyID{}, nil, err
	}
	id := preSharedKeyID{pskType: pskResumption, usage: resumptionReInit,
		pskGroupID: bytes.Clone(st.ctx.groupID), pskEpoch: st.ctx.epoch, pskNonce: nonce}
	return id, psk, nil
}

// ReInit completes a committed ReInit (RFC 9420 §11.2): it creates the
// successor group with the proposal's parameters, this member as
// creator (identity and a signature key for the new suite), and a commit
// adding the MLSMessage-encoded KeyPackages of the other members, whose
// Welcome carries the resumption PSK of this group's last epoch. Members
// join it with Join and JoinOptions.ReInitFrom set to this group. Apply
// the pending commit to the successor once the delivery service accepts
// it.
func (g *Group) ReInit(identity, signatureKey []byte, keyPackages [][]byte) (*Group, *PendingCommit, error) {
	st := g.st
	id, psk, err := st.reinitPSK()
	if err != nil {
		return nil, nil, err
	}
	ri := st.reinitTo
	var exts []uint16
	if own := st.tree.leaf(st.priv.leaf); own != nil {
		exts = own.capabilities.extensions
	}
	ng, err := newGroup(CipherSuite(ri.cipherSuite), ri.groupID, identity, signatureKey, st.now, exts)
	if err != nil {
		return nil, nil, err
	}
	ns := ng.st
	ns.validator = st.validator
	if err := ns.checkCredential(nil, ns.tree.leaf(0)); err != nil {
		return nil, nil, err
	}
	if len(ri.extensions) > 0 {
		// The creator sets the successor's extensions in its first
		// epoch's context; they are checked against every member's
		// capabilities when the others are added.
		ctx := ns.ctx
		ctx.extensions = slices.Clone(ri.extensions)
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
	p, err := ng.Commit(CommitOptions{Add: keyPackages, resumption: []preSharedKeyID{id}})
	if err != nil {
		return nil, nil, err
	}
	return ng, p, nil
}

// resumptionKey names a resumption PSK by usage, group and epoch.
func resumptionKey(id *preSharedKeyID) string {
	return fmt.Sprintf("%d/%x/%d", id.usage, id.pskGroupID, id.pskEpoch)
}

// checkReInitWelcome verifies, for a member joining a ReInit successor,
// that the Welcome names the old group's reinit PSK and that the new
// group has the parameters the ReInit proposal asked for.
func checkReInitWelcome(old *groupState, psks []preSharedKeyID, gc *groupContext) error {
	found := false
	for i := range psks {
		id := &psks[i]
		if id.pskType == pskResumption && id.usage == resumptionReInit &&
			bytes.Equal(id.pskGroupID, old.ctx.groupID) && id.pskEpoch == old.ctx.epoch {
			found = true
		}
	}
	ri := old.reinitTo
	if !found || ri == nil {
		return fmt.Errorf("%w: welcome is not the reinit successor", ErrInvalidMessage)
	}
	exts, err := marshalExtensions(ri.extensions)
	if err != nil {
		return err
	}
	got, err := marshalExtensions(gc.extensions)
	if err != nil {
		return err
	}
	if !bytes.Equal(gc.groupID, ri.groupID) || gc.cipherSuite != ri.cipherSuite || gc.version != ri.version || !bytes.Equal(exts, got) {
		return fmt.Errorf("%w: successor group does not match the reinit proposal", ErrInvalidMessage)
	}
	return nil
}

func marshalExtensions(exts []extension) ([]byte, error) {
	var w codec.Writer
	encodeExtensions(&w, exts)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return b, nil
}
