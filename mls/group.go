package mls

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrRemoved reports that this member was removed from the group.
	ErrRemoved = errors.New("mls: member removed from the group")
	// ErrReInit reports a group closed by a committed ReInit proposal: it
	// must not be used to send; its successor is joined by Welcome.
	ErrReInit = errors.New("mls: group is being reinitialized")
)

// PrivateKeys are the private keys a client kept when it published a
// KeyPackage: the HPKE init key, the leaf's HPKE encryption key (both in
// the suite's SerializePrivateKey form) and the signature key (an Ed25519
// seed or a big-endian ECDSA scalar).
type PrivateKeys struct {
	Init, Encryption, Signature []byte
}

// JoinOptions carries what a Welcome may rely on from outside.
type JoinOptions struct {
	// RatchetTree is the encoded ratchet tree, needed when the Welcome's
	// GroupInfo carries no ratchet_tree extension.
	RatchetTree []byte
	// ExternalPSKs maps external PSK ids to their values.
	ExternalPSKs map[string][]byte
	// CredentialValidator, if set, vets every leaf of the joined tree and
	// stays installed in the group.
	CredentialValidator CredentialValidator
	// Now replaces time.Now for lifetime checks.
	Now func() time.Time
	// ReInitFrom is the closed group whose committed ReInit this Welcome
	// completes: its last resumption PSK is used, and the new group must
	// match the ReInit proposal.
	ReInitFrom *Group
	// BranchFrom is this member's state of the group the Welcome's
	// subgroup branches from (Group.Branch): the branch PSK is resolved
	// from its kept epochs, and the subgroup must keep its suite and
	// have only its members.
	BranchFrom *Group
}

// Group is one member's state of an MLS group. It is not safe for
// concurrent use.
type Group struct {
	st *groupState
}

// Join joins a group from an MLSMessage-encoded Welcome, given the
// MLSMessage-encoded KeyPackage it answers and that KeyPackage's keys
// (RFC 9420 §12.4.3.1). It verifies the ratchet tree, the GroupInfo
// signature and confirmation tag.
func Join(welcomeMsg, keyPackageMsg []byte, keys PrivateKeys, opts *JoinOptions) (*Group, error) {
	if opts == nil {
		opts = &JoinOptions{}
	}
	var wm, km mlsMessage
	if err := unmarshal(welcomeMsg, &wm); err != nil {
		return nil, err
	}
	if err := unmarshal(keyPackageMsg, &km); err != nil {
		return nil, err
	}
	if wm.welcome == nil || km.keyPackage == nil {
		return nil, fmt.Errorf("%w: want a Welcome and a KeyPackage", ErrInvalidMessage)
	}
	s, err := CipherSuite(wm.welcome.cipherSuite).suite()
	if err != nil {
		return nil, err
	}
	kp := km.keyPackage
	initKey, err := s.hpkePrivate(keys.Init)
	if err != nil {
		return nil, err
	}
	encKey, err := s.hpkePrivate(keys.Encryption)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(initKey.PublicKey().Bytes(), kp.initKey) || !bytes.Equal(encKey.PublicKey().Bytes(), kp.leafNode.encryptionKey) {
		return nil, fmt.Errorf("%w: private keys do not match the key package", ErrInvalidKey)
	}
	g := &groupState{s: s, sigPriv: keys.Signature, externalPSKs: opts.ExternalPSKs,
		validator: opts.CredentialValidator, now: opts.Now}
	j, err := s.openWelcome(wm.welcome, kp, initKey, opts.resolveJoinPSK)
	if err != nil {
		return nil, err
	}
	gc := j.info.groupContext
	treeBytes, ok := findExtension(j.info.extensions, extRatchetTree)
	if !ok {
		if treeBytes = opts.RatchetTree; treeBytes == nil {
			return nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidMessage)
		}
	}
	if g.tree, err = parseRatchetTree(s, treeBytes); err != nil {
		return nil, err
	}
	if err := g.verifyJoinedTree(&gc); err != nil {
		return nil, err
	}
	signer := g.tree.leaf(j.info.signer)
	if signer == nil {
		return nil, fmt.Errorf("%w: group info signer is blank", ErrInvalidMessage)
	}
	if err := s.verifyGroupInfo(&j.info, signer.signatureKey); err != nil {
		return nil, err
	}
	if err := g.checkTreeCredentials(); err != nil {
		return nil, err
	}
	if err := g.checkExternalSenders(gc.extensions); err != nil {
		return nil, err
	}
	if err := opts.checkResumptionWelcome(j.secrets.psks, &gc, g.tree); err != nil {
		return nil, err
	}
	mine, err := marshal(&kp.leafNode)
	if err != nil {
		return nil, err
	}
	me, found := uint32(0), false
	for i := uint32(0); i < g.tree.size(); i++ {
		if l := g.tree.leaf(i); l != nil {
			if b, err := marshal(l); err == nil && bytes.Equal(b, mine) {
				me, found = i, true
				break
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: our leaf is not in the tree", ErrInvalidMessage)
	}
	g.priv = newTreePrivate(me, encKey)
	if j.secrets.hasPath {
		if err := g.installPathSecret(j.info.signer, j.secrets.pathSecret); err != nil {
			return nil, err
		}
	}
	if err := g.setContext(gc); err != nil {
		return nil, err
	}
	if err := g.startEpoch(j.epoch, j.info.confirmationTag); err != nil {
		return nil, err
	}
	return &Group{st: g}, nil
}

// SetMaxGenerationJump bounds how many generations a sender's ratchet
// may be advanced to decrypt one message (ErrGenerationTooFar beyond it),
// from the next epoch on. Zero restores DefaultMaxGenerationJump.
func (g *Group) SetMaxGenerationJump(n uint32) {
	g.st.maxJump = n
	if n == 0 {
		n = DefaultMaxGenerationJump
	}
	g.st.keys.maxJump = n
}

// SetClock replaces the clock used to check KeyPackage lifetimes (nil
// restores time.Now).
func (g *Group) SetClock(now func() time.Time) { g.st.now = now }

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return g.st.s.id }

// GroupID returns the group identifier.
func (g *Group) GroupID() []byte { return append([]byte(nil), g.st.ctx.groupID...) }

// Epoch returns the current epoch number.
func (g *Group) Epoch() uint64 { return g.st.ctx.epoch }

// LeafIndex returns this member's leaf index.
func (g *Group) LeafIndex() uint32 { return g.st.priv.leaf }

// EpochAuthenticator returns the epoch authenticator, which members can
// compare out of band to confirm they share the epoch.
func (g *Group) EpochAuthenticator() []byte {
	return append([]byte(nil), g.st.epoch.epochAuthenticator...)
}

// Export derives a secret for the application from the current epoch
// (MLS-Exporter, RFC 9420 §8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.st.s.exporter(g.st.epoch.exporterSecret, label, context, length)
}

// ContentKind says what a handled message carried.
type ContentKind int

// Kinds of handled messages.
const (
	ApplicationContent ContentKind = iota + 1
	ProposalContent
	CommitContent
)

// Received describes a message accepted by Handle.
type Received struct {
	Kind ContentKind
	// Sender is the sender's leaf index, or for a proposal from an
	// external sender its index in ExternalSenders.
	Sender uint32
	// SenderType says who sent the message: SenderMember, SenderExternal
	// (a listed external sender), SenderNewMemberProposal (a client
	// asking to join) or SenderNewMemberCommit (an external commit).
	SenderType SenderType
	// Data is the application data, for ApplicationContent.
	Data []byte
	// AuthenticatedData is the message's authenticated_data.
	AuthenticatedData []byte
	// Epoch is the epoch the message was sent in (earlier than the
	// group's for late application messages).
	Epoch uint64
	// Removed reports a commit that removed this member; the group can no
	// longer be used.
	Removed bool
	// ReInit reports a commit carrying a ReInit proposal; the group can
	// no longer be used to send.
	ReInit bool
	// Proposals lists what a commit applied, with who proposed each;
	// for ProposalContent, the one proposal.
	Proposals []ProposalInfo
}

// Handle processes one MLSMessage-encoded PublicMessage or PrivateMessage
// of the current epoch. Proposals are kept for a later commit; a commit is
// applied atomically: on any error the group is unchanged.
func (g *Group) Handle(msg []byte) (*Received, error) {
	if g.st.removed {
		return nil, ErrRemoved
	}
	if g.st.reinit {
		return nil, ErrReInit
	}
	var m mlsMessage
	if err := unmarshal(msg, &m); err != nil {
		return nil, err
	}
	// An encrypted handshake message consumes a key of the secret tree:
	// work on a copy, kept only if the whole message is accepted, so a
	// rejected commit leaves the group exactly as it was.
	work := g.st
	if m.private != nil && m.private.contentType != contentApplication && m.private.epoch == g.st.ctx.epoch {
		c := *g.st
		c.keys = g.st.keys.clone()
		work = &c
	}
	ac, err := work.unprotect(&m)
	if err != nil {
		if work != g.st {
			work.keys.wipe()
		}
		return nil, err
	}
	r := &Received{Sender: ac.content.sender.index, SenderType: SenderType(ac.content.sender.typ), AuthenticatedData: ac.content.authenticatedData, Epoch: ac.content.epoch}
	switch ac.content.contentType {
	case contentApplication:
		r.Kind, r.Data = ApplicationContent, ac.content.applicationData
	case contentProposal:
		r.Kind = ProposalContent
		err := work.checkProposal(ac)
		if err == nil {
			err = work.cacheProposal(ac)
		}
		if err != nil {
			if work != g.st {
				work.keys.wipe()
			}
			return nil, err
		}
		if work != g.st {
			g.st.keys.wipe()
			g.st.keys = work.keys
		}
		p := &ac.content.proposal
		r.Proposals = []ProposalInfo{{Type: p.typ, Sender: r.Sender, SenderType: r.SenderType, Removed: p.removed}}
	case contentCommit:
		r.Kind = CommitContent
		next, err := work.applyCommit(ac)
		if err != nil {
			if work != g.st {
				work.keys.wipe()
			}
			return nil, err
		}
		if work != g.st {
			g.st.keys.wipe()
		}
		leaveEpoch(work, next)
		g.st = next
		r.Removed, r.ReInit, r.Proposals = next.removed, next.reinit, next.committed
		next.committed = nil
	}
	return r, nil
}

// Extension is a group context extension: a type from the IANA MLS
// Extension Types registry and its encoded value.
type Extension struct {
	Type uint16
	Data []byte
}

// Extensions returns the group context extensions of the current epoch.
func (g *Group) Extensions() []Extension {
	out := make([]Extension, 0, len(g.st.ctx.extensions))
	for _, e := range g.st.ctx.extensions {
		out = append(out, Extension{Type: e.typ, Data: append([]byte(nil), e.data...)})
	}
	return out
}

// Member describes one leaf of the group.
type Member struct {
	Index        uint32
	Identity     []byte // basic credential identity (nil for other types)
	SignatureKey []byte
}

// Members lists the group's current members in leaf order.
func (g *Group) Members() []Member {
	var out []Member
	t := g.st.tree
	for i := uint32(0); i < t.size(); i++ {
		if l := t.leaf(i); l != nil {
			m := Member{Index: i, SignatureKey: append([]byte(nil), l.signatureKey...)}
			if l.credential.typ == credentialBasic {
				m.Identity = append([]byte(nil), l.credential.identity...)
			}
			out = append(out, m)
		}
	}
	return out
}
