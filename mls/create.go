package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"sotto/mls/internal/codec"
	"sotto/mls/internal/treemath"
)

// keyPackageLifetime is the validity period written into new KeyPackages.
const keyPackageLifetime = 90 * 24 * time.Hour

// newLeafNode builds a key_package-sourced leaf with a basic credential.
func newLeafNode(s *suite, identity, encPub, sigPriv []byte, now time.Time, exts []uint16) (*leafNode, error) {
	sigPub, err := s.signaturePublicKey(sigPriv)
	if err != nil {
		return nil, err
	}
	l := &leafNode{
		encryptionKey: encPub,
		signatureKey:  sigPub,
		credential:    credential{typ: credentialBasic, identity: append([]byte(nil), identity...)},
		capabilities: capabilities{
			versions:     []uint16{protocolVersion10},
			cipherSuites: []uint16{uint16(s.id)},
			credentials:  []uint16{credentialBasic},
			extensions:   slices.Clone(exts),
		},
		source:    sourceKeyPackage,
		notBefore: uint64(now.Add(-time.Hour).Unix()),
		notAfter:  uint64(now.Add(keyPackageLifetime).Unix()),
	}
	if err := l.sign(s, sigPriv, nil, 0); err != nil {
		return nil, err
	}
	return l, nil
}

func (s *suite) generateHPKE() (priv, pub []byte, err error) {
	k, err := s.kem.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("mls: generate key: %w", err)
	}
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("mls: serialize key: %w", err)
	}
	return priv, k.PublicKey().Bytes(), nil
}

// GenerateSignatureKey returns a fresh signature private key for cs, in
// the form PrivateKeys.Signature expects.
func GenerateSignatureKey(cs CipherSuite) ([]byte, error) {
	s, err := cs.suite()
	if err != nil {
		return nil, err
	}
	priv, _, err := s.generateSignatureKey()
	return priv, err
}

// NewKeyPackage creates a KeyPackage (as an MLSMessage) for a client
// with a basic credential naming identity and the given signature key,
// and returns it with the private keys to keep until it is used.
func NewKeyPackage(cs CipherSuite, identity, signatureKey []byte) ([]byte, PrivateKeys, error) {
	return NewKeyPackageWithOptions(cs, identity, signatureKey, nil)
}

// KeyPackageOptions configures NewKeyPackageWithOptions.
type KeyPackageOptions struct {
	// SupportedExtensions lists non-default extension types the client
	// supports (its leaf's capabilities): a group can only carry a
	// group context extension every member supports (RFC 9420 §7.2).
	SupportedExtensions []uint16
}

// NewKeyPackageWithOptions is NewKeyPackage with options.
func NewKeyPackageWithOptions(cs CipherSuite, identity, signatureKey []byte, opts *KeyPackageOptions) ([]byte, PrivateKeys, error) {
	if opts == nil {
		opts = &KeyPackageOptions{}
	}
	s, err := cs.suite()
	if err != nil {
		return nil, PrivateKeys{}, err
	}
	initPriv, initPub, err := s.generateHPKE()
	if err != nil {
		return nil, PrivateKeys{}, err
	}
	encPriv, encPub, err := s.generateHPKE()
	if err != nil {
		return nil, PrivateKeys{}, err
	}
	leaf, err := newLeafNode(s, identity, encPub, signatureKey, time.Now(), opts.SupportedExtensions)
	if err != nil {
		return nil, PrivateKeys{}, err
	}
	kp := &keyPackage{version: protocolVersion10, cipherSuite: uint16(cs), initKey: initPub, leafNode: *leaf}
	tbs, err := marshalTBS(kp)
	if err != nil {
		return nil, PrivateKeys{}, err
	}
	if kp.signature, err = s.signWithLabel(signatureKey, "KeyPackageTBS", tbs); err != nil {
		return nil, PrivateKeys{}, err
	}
	msg, err := marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatKeyPackage, keyPackage: kp})
	if err != nil {
		return nil, PrivateKeys{}, err
	}
	return msg, PrivateKeys{Init: initPriv, Encryption: encPriv, Signature: append([]byte(nil), signatureKey...)}, nil
}

// NewGroup creates a one-member group (RFC 9420 §11) whose creator has a
// basic credential naming identity.
func NewGroup(cs CipherSuite, groupID, identity, signatureKey []byte) (*Group, error) {
	return newGroup(cs, groupID, identity, signatureKey, nil, nil)
}

func newGroup(cs CipherSuite, groupID, identity, signatureKey []byte, now func() time.Time, exts []uint16) (*Group, error) {
	s, err := cs.suite()
	if err != nil {
		return nil, err
	}
	if len(groupID) == 0 {
		return nil, fmt.Errorf("%w: empty group id", ErrInvalidMessage)
	}
	encPriv, encPub, err := s.generateHPKE()
	if err != nil {
		return nil, err
	}
	clock := time.Now
	if now != nil {
		clock = now
	}
	leaf, err := newLeafNode(s, identity, encPub, signatureKey, clock(), exts)
	if err != nil {
		return nil, err
	}
	encKey, err := s.hpkePrivate(encPriv)
	if err != nil {
		return nil, err
	}
	g := &groupState{s: s, sigPriv: append([]byte(nil), signatureKey...), externalPSKs: map[string][]byte{}, now: now}
	g.tree = &ratchetTree{s: s, nodes: treeNodes{{leaf: leaf}}}
	g.priv = newTreePrivate(0, encKey)
	th, err := g.tree.rootHash()
	if err != nil {
		return nil, err
	}
	ctx := groupContext{version: protocolVersion10, cipherSuite: uint16(cs), groupID: append([]byte(nil), groupID...),
		treeHash: th, confirmedTranscriptHash: []byte{}}
	if err := g.setContext(ctx); err != nil {
		return nil, err
	}
	// A random init secret stands in for the random epoch secret.
	initSecret := make([]byte, s.hashLen())
	if _, err := rand.Read(initSecret); err != nil {
		return nil, err
	}
	e, err := s.epochFromInit(initSecret, nil, nil, g.ctxBytes)
	clear(initSecret)
	if err != nil {
		return nil, err
	}
	tag := s.mac(e.confirmationKey, ctx.confirmedTranscriptHash)
	if err := g.startEpoch(e, tag); err != nil {
		return nil, err
	}
	return &Group{st: g}, nil
}

func marshalTBS(kp *keyPackage) ([]byte, error) {
	return marshal(keyPackageTBS{kp})
}

type keyPackageTBS struct{ kp *keyPackage }

func (t keyPackageTBS) encode(w *codec.Writer) { t.kp.encodeTBS(w) }

// PendingCommit is a commit this member created. Send Commit (and Welcome,
// if any) through the delivery service; once it is accepted, call
// Group.Apply. If another commit for the epoch wins instead, Handle that
// one and drop this.
type PendingCommit struct {
	Commit  []byte // MLSMessage (PublicMessage)
	Welcome []byte // MLSMessage, nil when nobody is added
	next    *groupState
	epoch   uint64
}

// CommitOptions lists the changes a commit makes beyond the proposals
// received in the epoch, which every commit includes by reference (except
// this member's own Updates: its UpdatePath refreshes its leaf).
type CommitOptions struct {
	// Private sends the commit as a PrivateMessage instead of a
	// PublicMessage.
	Private bool
	// Add holds MLSMessage-encoded KeyPackages of clients to add.
	Add [][]byte
	// Remove holds leaf indices of members to remove.
	Remove []uint32
	// Extensions, if not nil, replaces the group context extensions with
	// a GroupContextExtensions proposal (an empty, non-nil slice clears
	// them). Every member must support non-default extension types.
	Extensions []Extension
	// OmitRatchetTree leaves the ratchet tree out of the Welcome; joiners
	// then need it from Group.RatchetTree (JoinOptions.RatchetTree).
	OmitRatchetTree bool
	// PSKs holds ids of external pre-shared keys (registered with
	// AddExternalPSK) to inject into the key schedule; joiners need them
	// too (JoinOptions.ExternalPSKs).
	PSKs [][]byte
	// ResumptionPSKs holds epochs of this group whose resumption PSK
	// (usage application, RFC 9420 §8.6) to inject; they must still be
	// kept (Group.ResumptionEpochs).
	ResumptionPSKs []uint64

	// resumption holds resumption PSKs to inject (ReInit).
	resumption []preSharedKeyID
}

// AddExternalPSK registers an external pre-shared key under id, for
// commits that inject it and for PSK proposals from other members.
func (g *Group) AddExternalPSK(id, psk []byte) {
	if g.st.externalPSKs == nil {
		g.st.externalPSKs = map[string][]byte{}
	}
	g.st.externalPSKs[string(id)] = append([]byte(nil), psk...)
}

// Commit creates a commit with an UpdatePath that applies opts
// (RFC 9420 §12.4.1). The group is unchanged until Apply.
func (g *Group) Commit(opts CommitOptions) (*PendingCommit, error) {
	st := g.st
	if err := st.usable(); err != nil {
		return nil, err
	}
	s := st.s
	me := sender{typ: senderMember, index: st.priv.leaf}
	var props []proposalOrRef
	for _, ref := range st.proposalRefs {
		cp := st.proposals[string(ref)]
		if cp.proposal.typ == proposalUpdate && cp.sender == me {
			continue
		}
		props = append(props, proposalOrRef{isRef: true, ref: ref})
	}
	for _, b := range opts.Add {
		var m mlsMessage
		if err := unmarshal(b, &m); err != nil {
			return nil, err
		}
		if m.keyPackage == nil {
			return nil, fmt.Errorf("%w: not a key package", ErrInvalidMessage)
		}
		if err := st.checkLifetime(m.keyPackage); err != nil {
			return nil, err
		}
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalAdd, keyPackage: *m.keyPackage}})
	}
	for _, r := range opts.Remove {
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalRemove, removed: r}})
	}
	if opts.Extensions != nil {
		exts := make([]extension, 0, len(opts.Extensions))
		for _, e := range opts.Extensions {
			exts = append(exts, extension{typ: e.Type, data: append([]byte(nil), e.Data...)})
		}
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalGroupContextExtensions, extensions: exts}})
	}
	for _, id := range opts.PSKs {
		if _, ok := st.externalPSKs[string(id)]; !ok {
			return nil, fmt.Errorf("%w: unknown pre-shared key", ErrInvalidMessage)
		}
		nonce := make([]byte, s.hashLen())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		psk := preSharedKeyID{pskType: pskExternal, pskID: append([]byte(nil), id...), pskNonce: nonce}
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalPSK, psk: psk}})
	}
	for _, e := range opts.ResumptionPSKs {
		id, err := st.resumptionPSKID(e)
		if err != nil {
			return nil, err
		}
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalPSK, psk: id}})
	}
	for _, id := range opts.resumption {
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalPSK, psk: id}})
	}
	c := commit{proposals: props}
	ps, err := st.resolveProposals(&c, me)
	if err != nil {
		return nil, err
	}
	if err := validateProposals(ps, me); err != nil {
		return nil, err
	}
	n := st.clone()
	fx, err := n.applyProposals(ps)
	if err != nil {
		return nil, err
	}
	leafSecret := make([]byte, s.hashLen())
	if _, err := rand.Read(leafSecret); err != nil {
		return nil, err
	}
	priv, secrets, commitSecret, err := n.tree.applyOwnPath(me.index, leafSecret, st.tree.leaf(me.index), st.sigPriv, st.ctx.groupID)
	clear(leafSecret)
	if err != nil {
		return nil, err
	}
	n.priv = priv
	n.reinit, n.reinitTo = fx.reinit, fx.reinitTo
	if err := n.tree.validateTree(&n.ctx, fx.gce); err != nil {
		return nil, err
	}
	n.ctx.epoch = st.ctx.epoch + 1
	if n.ctx.treeHash, err = n.tree.rootHash(); err != nil {
		return nil, err
	}
	if err := n.setContext(n.ctx); err != nil {
		return nil, err
	}
	c.path, err = n.tree.encryptPath(me.index, secrets, n.ctxBytes, fx.added)
	if err != nil {
		return nil, err
	}
	wireFormat := wireFormatPublicMessage
	if opts.Private {
		wireFormat = wireFormatPrivateMessage
	}
	ac := &authenticatedContent{wireFormat: wireFormat, content: framedContent{
		groupID: st.ctx.groupID, epoch: st.ctx.epoch, sender: me, authenticatedData: []byte{},
		contentType: contentCommit, commit: c,
	}}
	if err := ac.content.freeze(); err != nil {
		return nil, err
	}
	k, err := st.signer()
	if err != nil {
		return nil, err
	}
	if err := ac.signWith(s, k, &st.ctx); err != nil {
		return nil, err
	}
	confirmed, err := s.confirmedTranscriptHash(st.interim, ac)
	if err != nil {
		return nil, err
	}
	n.ctx.confirmedTranscriptHash = confirmed
	if err := n.setContext(n.ctx); err != nil {
		return nil, err
	}
	var inputs []pskInput
	for i := range fx.pskIDs {
		psk, err := st.lookupPSK(&fx.pskIDs[i])
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, pskInput{id: fx.pskIDs[i], psk: psk})
	}
	pskSecret, err := s.pskSecret(inputs)
	if err != nil {
		return nil, err
	}
	e, err := s.epochFromInit(st.epoch.initSecret, commitSecret, pskSecret, n.ctxBytes)
	if err != nil {
		return nil, err
	}
	ac.auth.confirmationTag = s.mac(e.confirmationKey, confirmed)
	m := mlsMessage{version: protocolVersion10, wireFormat: wireFormat}
	if opts.Private {
		m.private, err = s.protectPrivate(st.keys, st.epoch.senderDataSecret, ac, 0)
	} else {
		m.public, err = s.protectPublic(ac, st.epoch.membershipKey, &st.ctx)
	}
	if err != nil {
		return nil, err
	}
	commitMsg, err := marshal(&m)
	if err != nil {
		return nil, err
	}
	if err := n.startEpoch(e, ac.auth.confirmationTag); err != nil {
		return nil, err
	}
	p := &PendingCommit{Commit: commitMsg, next: n, epoch: st.ctx.epoch}
	if len(fx.added) > 0 {
		if p.Welcome, err = n.welcome(fx, secrets, fx.pskIDs, !opts.OmitRatchetTree); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// welcome builds the Welcome for the members a commit added, from the
// new epoch's state n (RFC 9420 §12.4.3).
func (n *groupState) welcome(fx *proposalEffects, pathSecrets [][]byte, psks []preSharedKeyID, withTree bool) ([]byte, error) {
	s := n.s
	me := n.priv.leaf
	gi := &groupInfo{
		groupContext:    n.ctx,
		confirmationTag: s.mac(n.epoch.confirmationKey, n.ctx.confirmedTranscriptHash),
		signer:          me,
	}
	if withTree {
		treeBytes, err := n.tree.marshal()
		if err != nil {
			return nil, err
		}
		gi.extensions = []extension{{typ: extRatchetTree, data: treeBytes}}
	}
	tbs, err := gi.tbs()
	if err != nil {
		return nil, err
	}
	k, err := n.signer()
	if err != nil {
		return nil, err
	}
	if gi.signature, err = s.signWith(k, "GroupInfoTBS", tbs); err != nil {
		return nil, err
	}
	giBytes, err := marshal(gi)
	if err != nil {
		return nil, err
	}
	key, nonce, err := s.welcomeKeyNonce(n.epoch.welcomeSecret)
	if err != nil {
		return nil, err
	}
	w := &welcome{cipherSuite: uint16(s.id)}
	if w.encryptedGroupInfo, err = s.seal(key, nonce, nil, giBytes); err != nil {
		return nil, err
	}
	sealer, err := s.newContextSealer("Welcome", w.encryptedGroupInfo)
	if err != nil {
		return nil, err
	}
	path, _ := n.tree.filteredDirectPath(me)
	var added []uint32
	for i := uint32(0); i < n.tree.size(); i++ {
		if _, ok := fx.addedKPs[i]; ok {
			added = append(added, i)
		}
	}
	w.secrets = make([]encryptedGroupSecrets, len(added))
	err = parallel(len(added), func(k int) error {
		i := added[k]
		kp := fx.addedKPs[i]
		gs := groupSecrets{joinerSecret: n.epoch.joinerSecret, psks: psks}
		lca := treemath.CommonAncestor(treemath.LeafNode(me), treemath.LeafNode(i))
		for k, x := range path {
			if x == lca {
				gs.hasPath, gs.pathSecret = true, pathSecrets[k]
			}
		}
		pt, err := marshal(&gs)
		if err != nil {
			return err
		}
		defer clear(pt)
		kem, ct, err := sealer.seal(kp.initKey, pt)
		if err != nil {
			return err
		}
		ref, err := kp.ref(s)
		if err != nil {
			return err
		}
		w.secrets[k] = encryptedGroupSecrets{newMember: ref, secrets: hpkeCiphertext{kem, ct}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatWelcome, welcome: w})
}

// RatchetTree returns the encoded ratchet tree of the current epoch (the
// ratchet_tree extension value), for joiners of a Welcome sent without it.
func (g *Group) RatchetTree() ([]byte, error) { return g.st.tree.marshal() }

// Apply moves the group to the epoch of a pending commit it created,
// once the delivery service has accepted that commit.
func (g *Group) Apply(p *PendingCommit) error {
	if p == nil || p.next == nil || p.epoch != g.st.ctx.epoch || !bytes.Equal(p.next.ctx.groupID, g.st.ctx.groupID) {
		return fmt.Errorf("%w: pending commit is not for this epoch", ErrInvalidMessage)
	}
	leaveEpoch(g.st, p.next)
	g.st = p.next
	p.next = nil
	return nil
}

// Discard drops a pending commit that lost the race for its epoch (the
// delivery service accepted another member's commit, which is then
// passed to Handle), wiping the next epoch's secrets it held.
func (p *PendingCommit) Discard() {
	if p == nil || p.next == nil {
		return
	}
	p.next.epoch.wipe()
	p.next.keys.wipe()
	p.next = nil
}

// Seal encrypts application data as a PrivateMessage (RFC 9420 §6.3).
func (g *Group) Seal(plaintext []byte) ([]byte, error) {
	return g.SealWith(plaintext, SealOptions{})
}

// SealOptions tune an application message.
type SealOptions struct {
	// AuthenticatedData is sent in the clear but authenticated.
	AuthenticatedData []byte
	// PaddingBlock, if positive, pads the encrypted content to a multiple
	// of this many bytes to hide the plaintext length.
	PaddingBlock int
}

// SealWith encrypts application data as a PrivateMessage with options.
func (g *Group) SealWith(plaintext []byte, opts SealOptions) ([]byte, error) {
	st := g.st
	if err := st.usable(); err != nil {
		return nil, err
	}
	if opts.PaddingBlock < 0 || opts.PaddingBlock > 1<<16 {
		return nil, fmt.Errorf("%w: padding block out of range", ErrInvalidMessage)
	}
	aad := opts.AuthenticatedData
	if aad == nil {
		aad = []byte{}
	}
	ac := &authenticatedContent{wireFormat: wireFormatPrivateMessage, content: framedContent{
		groupID: st.ctx.groupID, epoch: st.ctx.epoch, sender: sender{typ: senderMember, index: st.priv.leaf},
		authenticatedData: aad, contentType: contentApplication, applicationData: plaintext,
	}}
	k, err := st.signer()
	if err != nil {
		return nil, err
	}
	if err := ac.signWith(st.s, k, &st.ctx); err != nil {
		return nil, err
	}
	padding := 0
	if b := opts.PaddingBlock; b > 0 {
		// Content length: the data and the signature, each length-prefixed.
		var w codec.Writer
		w.Opaque(plaintext)
		w.Opaque(ac.auth.signature)
		content, err := w.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDecode, err)
		}
		padding = (b - len(content)%b) % b
	}
	pm, err := st.s.protectPrivate(st.keys, st.epoch.senderDataSecret, ac, padding)
	if err != nil {
		return nil, err
	}
	return marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatPrivateMessage, private: pm})
}
