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
// set with CommitOptions.Extensions. An external sender proposes with
// ExternalRemoveProposal using its index in senders.
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
	case proposalRemove:
		if g.tree.leaf(p.removed) == nil {
			return fmt.Errorf("%w: remove of a blank leaf", ErrInvalidMessage)
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
