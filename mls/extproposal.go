package mls

import (
	"bytes"
	"fmt"

	"sotto/mls/internal/codec"
)

// ExtensionExternalSenders is the type of the external_senders group
// context extension (RFC 9420 §12.1.8.1).
const ExtensionExternalSenders uint16 = extExternalSenders

// ExternalSender is one entry of the external_senders extension: a
// party outside the group (e.g. a server) allowed to propose, identified
// by its signature key and a basic credential.
type ExternalSender struct {
	SignatureKey []byte
	Identity     []byte
}

// ExternalSendersExtension encodes the external_senders extension, to be
// set with CommitOptions.Extensions (or, keeping the other extensions,
// use Group.ProposeExternalSender). An external sender proposes with an
// ExternalProposer, or ExternalRemoveProposal given its index in senders.
func ExternalSendersExtension(senders []ExternalSender) (Extension, error) {
	var w codec.Writer
	w.Vector(func(w *codec.Writer) {
		for _, s := range senders {
			w.Opaque(s.SignatureKey)
			c := credential{typ: credentialBasic, identity: s.Identity}
			c.encode(w)
		}
	})
	b, err := w.Bytes()
	if err != nil {
		return Extension{}, fmt.Errorf("mls: external senders: %w", err)
	}
	return Extension{Type: ExtensionExternalSenders, Data: b}, nil
}

// signExternal signs proposal content from a non-member sender and
// encodes it as a PublicMessage (no membership tag).
func signExternal(s *suite, groupID []byte, epoch uint64, snd sender, p proposal, signatureKey []byte) ([]byte, error) {
	if len(groupID) == 0 {
		return nil, fmt.Errorf("%w: empty group id", ErrInvalidMessage)
	}
	ac := &authenticatedContent{wireFormat: wireFormatPublicMessage, content: framedContent{
		groupID: bytes.Clone(groupID), epoch: epoch, sender: snd,
		authenticatedData: []byte{}, contentType: contentProposal, proposal: p,
	}}
	if err := ac.sign(s, signatureKey, nil); err != nil {
		return nil, err
	}
	pm, err := s.protectPublic(ac, nil, nil)
	if err != nil {
		return nil, err
	}
	return marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatPublicMessage, public: pm})
}

// NewMemberAddProposal lets a client outside the group ask to join
// (RFC 9420 §12.1.8, sender new_member_proposal): an Add of its own
// MLSMessage-encoded KeyPackage, signed with the KeyPackage's signature
// key, for the group's current epoch. A member commits it like any
// received proposal, and the client then joins from the Welcome.
func NewMemberAddProposal(groupID []byte, epoch uint64, keyPackageMsg, signatureKey []byte) ([]byte, error) {
	var m mlsMessage
	if err := unmarshal(keyPackageMsg, &m); err != nil {
		return nil, err
	}
	if m.keyPackage == nil {
		return nil, fmt.Errorf("%w: not a key package", ErrInvalidMessage)
	}
	s, err := CipherSuite(m.keyPackage.cipherSuite).suite()
	if err != nil {
		return nil, err
	}
	pub, err := s.signaturePublicKey(signatureKey)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pub, m.keyPackage.leafNode.signatureKey) {
		return nil, fmt.Errorf("%w: signature key does not match the key package", ErrInvalidKey)
	}
	return signExternal(s, groupID, epoch, sender{typ: senderNewMemberProposal},
		proposal{typ: proposalAdd, keyPackage: *m.keyPackage}, signatureKey)
}

// ExternalRemoveProposal builds a Remove of leaf removed from the
// external sender at senderIndex of the group's external_senders
// extension, signed with that sender's signature key.
func ExternalRemoveProposal(cs CipherSuite, groupID []byte, epoch uint64, senderIndex, removed uint32, signatureKey []byte) ([]byte, error) {
	s, err := cs.suite()
	if err != nil {
		return nil, err
	}
	return signExternal(s, groupID, epoch, sender{typ: senderExternal, index: senderIndex},
		proposal{typ: proposalRemove, removed: removed}, signatureKey)
}

// ExternalProposer proposes to a group as one of the senders its
// external_senders extension lists (RFC 9420 §12.1.8): Add, Remove,
// PreSharedKey, ReInit and GroupContextExtensions, signed with the
// sender's key and sent as PublicMessages for the epoch of the
// GroupInfo it was built from. Members verify the signature against the
// listed key and commit the proposals like their own.
type ExternalProposer struct {
	s       *suite
	ctx     groupContext
	tree    *ratchetTree
	index   uint32
	sigPriv []byte
}

// NewExternalProposer reads a group's MLSMessage-encoded GroupInfo,
// verifies its signature with the signer's key from the ratchet tree
// (the GroupInfo's ratchet_tree extension, or ratchetTree when it has
// none) after checking the tree against the GroupInfo's tree hash, and
// finds the index of signatureKey's public key among the group's
// external senders (ErrNotExternalSender when it is not listed).
func NewExternalProposer(groupInfoMsg, ratchetTree, signatureKey []byte) (*ExternalProposer, error) {
	var m mlsMessage
	if err := unmarshal(groupInfoMsg, &m); err != nil {
		return nil, err
	}
	if m.groupInfo == nil {
		return nil, fmt.Errorf("%w: not a group info", ErrInvalidMessage)
	}
	gi := m.groupInfo
	gc := gi.groupContext
	s, err := CipherSuite(gc.cipherSuite).suite()
	if err != nil {
		return nil, err
	}
	if gc.version != protocolVersion10 {
		return nil, fmt.Errorf("%w: protocol version", ErrInvalidMessage)
	}
	treeBytes, ok := findExtension(gi.extensions, extRatchetTree)
	if !ok {
		if treeBytes = ratchetTree; treeBytes == nil {
			return nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidMessage)
		}
	}
	tree, err := parseRatchetTree(s, treeBytes)
	if err != nil {
		return nil, err
	}
	th, err := tree.rootHash()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(th, gc.treeHash) {
		return nil, fmt.Errorf("%w: tree hash does not match the group info", ErrInvalidTree)
	}
	signer := tree.leaf(gi.signer)
	if signer == nil {
		return nil, fmt.Errorf("%w: group info signer is blank", ErrInvalidMessage)
	}
	if err := s.verifyGroupInfo(gi, signer.signatureKey); err != nil {
		return nil, err
	}
	pub, err := s.signaturePublicKey(signatureKey)
	if err != nil {
		return nil, err
	}
	data, ok := findExtension(gc.extensions, extExternalSenders)
	if !ok {
		return nil, ErrNotExternalSender
	}
	senders, err := parseExternalSenders(data)
	if err != nil {
		return nil, err
	}
	for i := range senders {
		if bytes.Equal(senders[i].signatureKey, pub) {
			return &ExternalProposer{s: s, ctx: gc, tree: tree, index: uint32(i), sigPriv: bytes.Clone(signatureKey)}, nil
		}
	}
	return nil, ErrNotExternalSender
}

// SenderIndex is the proposer's index in the external_senders extension.
func (p *ExternalProposer) SenderIndex() uint32 { return p.index }

// GroupID returns the group's id.
func (p *ExternalProposer) GroupID() []byte { return bytes.Clone(p.ctx.groupID) }

// Epoch returns the epoch the proposals are for.
func (p *ExternalProposer) Epoch() uint64 { return p.ctx.epoch }

// CipherSuite returns the group's cipher suite.
func (p *ExternalProposer) CipherSuite() CipherSuite { return p.s.id }

// Members lists the group's members in leaf order, to pick a leaf to
// remove.
func (p *ExternalProposer) Members() []Member {
	return (&Group{st: &groupState{tree: p.tree}}).Members()
}

func (p *ExternalProposer) sign(pr proposal) ([]byte, error) {
	return signExternal(p.s, p.ctx.groupID, p.ctx.epoch, sender{typ: senderExternal, index: p.index}, pr, p.sigPriv)
}

// Add proposes adding the client of an MLSMessage-encoded KeyPackage.
func (p *ExternalProposer) Add(keyPackageMsg []byte) ([]byte, error) {
	var m mlsMessage
	if err := unmarshal(keyPackageMsg, &m); err != nil {
		return nil, err
	}
	if m.keyPackage == nil {
		return nil, fmt.Errorf("%w: not a key package", ErrInvalidMessage)
	}
	if err := validateKeyPackage(p.s, m.keyPackage); err != nil {
		return nil, err
	}
	return p.sign(proposal{typ: proposalAdd, keyPackage: *m.keyPackage})
}

// Remove proposes removing the member at leaf.
func (p *ExternalProposer) Remove(leaf uint32) ([]byte, error) {
	if p.tree.leaf(leaf) == nil {
		return nil, fmt.Errorf("%w: no member at leaf %d", ErrInvalidMessage, leaf)
	}
	return p.sign(proposal{typ: proposalRemove, removed: leaf})
}

// PSK proposes injecting the external pre-shared key with the given id,
// which the members must hold (Group.AddExternalPSK).
func (p *ExternalProposer) PSK(id []byte) ([]byte, error) {
	nonce, err := p.s.newNonce()
	if err != nil {
		return nil, err
	}
	return p.sign(proposal{typ: proposalPSK, psk: preSharedKeyID{pskType: pskExternal, pskID: bytes.Clone(id), pskNonce: nonce}})
}

// ResumptionPSK proposes injecting the resumption PSK of an epoch of the
// group, at most the current one (usage application); members reject
// the proposal if they no longer keep that epoch's.
func (p *ExternalProposer) ResumptionPSK(epoch uint64) ([]byte, error) {
	if epoch > p.ctx.epoch {
		return nil, fmt.Errorf("%w: resumption psk of a future epoch", ErrInvalidMessage)
	}
	nonce, err := p.s.newNonce()
	if err != nil {
		return nil, err
	}
	return p.sign(proposal{typ: proposalPSK, psk: preSharedKeyID{pskType: pskResumption, usage: resumptionApplication,
		pskGroupID: bytes.Clone(p.ctx.groupID), pskEpoch: epoch, pskNonce: nonce}})
}

// ReInit proposes restarting the group with a new id, suite and
// extensions (RFC 9420 §11.2).
func (p *ExternalProposer) ReInit(groupID []byte, cs CipherSuite, exts []Extension) ([]byte, error) {
	if _, err := cs.suite(); err != nil {
		return nil, err
	}
	if len(groupID) == 0 {
		return nil, fmt.Errorf("%w: empty group id", ErrInvalidMessage)
	}
	return p.sign(proposal{typ: proposalReInit, reInit: reInit{groupID: bytes.Clone(groupID), version: protocolVersion10,
		cipherSuite: uint16(cs), extensions: toExtensions(exts)}})
}

// GroupContextExtensions proposes replacing the group context
// extensions with exts.
func (p *ExternalProposer) GroupContextExtensions(exts []Extension) ([]byte, error) {
	return p.sign(proposal{typ: proposalGroupContextExtensions, extensions: toExtensions(exts)})
}

// toExtensions copies public extensions into the wire form (never nil).
func toExtensions(exts []Extension) []extension {
	out := make([]extension, 0, len(exts))
	for _, e := range exts {
		out = append(out, extension{typ: e.Type, data: bytes.Clone(e.Data)})
	}
	return out
}

// checkProposal validates a received proposal before it is cached
// (RFC 9420 §12.1, §12.1.8); commit processing checks it again in
// context.
func (g *groupState) checkProposal(ac *authenticatedContent) error {
	p := &ac.content.proposal
	snd := ac.content.sender
	if snd.typ == senderExternal {
		switch p.typ {
		case proposalAdd, proposalRemove, proposalPSK, proposalReInit, proposalGroupContextExtensions:
		default:
			return fmt.Errorf("%w: external sender cannot propose type %d", ErrInvalidMessage, p.typ)
		}
	}
	switch p.typ {
	case proposalAdd:
		if err := validateKeyPackage(g.s, &p.keyPackage); err != nil {
			return err
		}
		return g.checkReceivedLifetime(&p.keyPackage.leafNode)
	case proposalUpdate:
		if snd.typ != senderMember {
			return fmt.Errorf("%w: update not from a member", ErrInvalidMessage)
		}
		if p.leafNode.source != sourceUpdate {
			return fmt.Errorf("%w: update leaf source", ErrInvalidMessage)
		}
		if err := p.leafNode.verify(g.s, g.ctx.groupID, snd.index); err != nil {
			return fmt.Errorf("%w: update leaf: %w", ErrInvalidMessage, err)
		}
		if old := g.tree.leaf(snd.index); old != nil {
			if err := sameIdentity(&old.credential, &p.leafNode.credential); err != nil {
				return err
			}
		}
	case proposalRemove:
		if g.tree.leaf(p.removed) == nil {
			return fmt.Errorf("%w: remove of a blank leaf", ErrInvalidMessage)
		}
	case proposalPSK:
		return g.checkPSKProposal(&p.psk)
	case proposalReInit:
		if p.reInit.version < g.ctx.version {
			return fmt.Errorf("%w: reinit lowers the protocol version", ErrInvalidMessage)
		}
		if _, err := CipherSuite(p.reInit.cipherSuite).suite(); err != nil {
			return err
		}
	case proposalExternalInit:
		return fmt.Errorf("%w: external init must be committed by value", ErrInvalidMessage)
	case proposalGroupContextExtensions:
		// Refused now rather than cached: a commit covering it would fail
		// the same checks (RFC 9420 §12.1.7).
		return g.checkGroupContextExtensions(p.extensions)
	}
	return nil
}
