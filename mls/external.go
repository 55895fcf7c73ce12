package mls

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"time"

	"sotto/mls/internal/codec"
)

// GroupInfo returns a signed MLSMessage-encoded GroupInfo for the
// current epoch, carrying the ratchet tree and the external public key,
// from which a new client can join with JoinExternal.
func (g *Group) GroupInfo() ([]byte, error) {
	st := g.st
	s := st.s
	treeBytes, err := st.tree.marshal()
	if err != nil {
		return nil, err
	}
	extPub, err := s.externalPub(st.epoch.externalSecret)
	if err != nil {
		return nil, err
	}
	var w codec.Writer
	w.Opaque(extPub)
	extPubBytes, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	gi := &groupInfo{
		groupContext: st.ctx,
		extensions: []extension{
			{typ: extRatchetTree, data: treeBytes},
			{typ: extExternalPub, data: extPubBytes},
		},
		confirmationTag: s.mac(st.epoch.confirmationKey, st.ctx.confirmedTranscriptHash),
		signer:          st.priv.leaf,
	}
	tbs, err := gi.tbs()
	if err != nil {
		return nil, err
	}
	if gi.signature, err = s.signWithLabel(st.sigPriv, "GroupInfoTBS", tbs); err != nil {
		return nil, err
	}
	return marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatGroupInfo, groupInfo: gi})
}

// JoinExternal joins a group from its MLSMessage-encoded GroupInfo with
// an external commit (RFC 9420 §12.4.3.2). It returns the new member's
// group, already at the new epoch, and the commit to send to the group;
// if the delivery service rejects the commit, discard the group.
func JoinExternal(groupInfoMsg, identity, signatureKey []byte, ratchetTree []byte) (*Group, []byte, error) {
	return JoinExternalWithOptions(groupInfoMsg, identity, signatureKey, &ExternalJoinOptions{RatchetTree: ratchetTree})
}

// ExternalJoinOptions tune JoinExternalWithOptions.
type ExternalJoinOptions struct {
	// RatchetTree is the encoded ratchet tree, needed when the GroupInfo
	// carries no ratchet_tree extension.
	RatchetTree []byte
	// CredentialValidator, if set, vets every leaf of the joined tree and
	// the joiner's own, and stays installed in the group.
	CredentialValidator CredentialValidator
	// Now replaces time.Now for lifetime checks.
	Now func() time.Time
	// PSKs maps ids of external pre-shared keys to inject into the new
	// epoch to their values; members must know them too. They stay
	// registered in the joined group.
	PSKs map[string][]byte
	// SupportedExtensions lists non-default extension types the joiner
	// supports (KeyPackageOptions.SupportedExtensions).
	SupportedExtensions []uint16
	// Resync removes the joiner's old leaf (the leaf with the same
	// credential) in the external commit, for a member that lost its
	// state (RFC 9420 §12.4.3.2).
	Resync bool
}

// JoinExternalWithOptions is JoinExternal with options.
func JoinExternalWithOptions(groupInfoMsg, identity, signatureKey []byte, opts *ExternalJoinOptions) (*Group, []byte, error) {
	if opts == nil {
		opts = &ExternalJoinOptions{}
	}
	return joinExternal(groupInfoMsg, identity, signatureKey, opts, nil)
}

// joinExternal builds an external commit; remove lists extra leaves to
// remove (only tests use it, to build invalid commits).
func joinExternal(groupInfoMsg, identity, signatureKey []byte, opts *ExternalJoinOptions, remove []uint32) (*Group, []byte, error) {
	ratchetTree := opts.RatchetTree
	var m mlsMessage
	if err := unmarshal(groupInfoMsg, &m); err != nil {
		return nil, nil, err
	}
	if m.groupInfo == nil {
		return nil, nil, fmt.Errorf("%w: not a group info", ErrInvalidMessage)
	}
	gi := m.groupInfo
	gc := gi.groupContext
	s, err := CipherSuite(gc.cipherSuite).suite()
	if err != nil {
		return nil, nil, err
	}
	if gc.version != protocolVersion10 {
		return nil, nil, fmt.Errorf("%w: protocol version", ErrInvalidMessage)
	}
	treeBytes, ok := findExtension(gi.extensions, extRatchetTree)
	if !ok {
		if treeBytes = ratchetTree; treeBytes == nil {
			return nil, nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidMessage)
		}
	}
	g := &groupState{s: s, sigPriv: append([]byte(nil), signatureKey...), externalPSKs: map[string][]byte{},
		validator: opts.CredentialValidator, now: opts.Now}
	if g.tree, err = parseRatchetTree(s, treeBytes); err != nil {
		return nil, nil, err
	}
	if err := g.verifyJoinedTree(&gc); err != nil {
		return nil, nil, err
	}
	signer := g.tree.leaf(gi.signer)
	if signer == nil {
		return nil, nil, fmt.Errorf("%w: group info signer is blank", ErrInvalidMessage)
	}
	if err := s.verifyGroupInfo(gi, signer.signatureKey); err != nil {
		return nil, nil, err
	}
	if err := g.checkTreeCredentials(); err != nil {
		return nil, nil, err
	}
	if err := g.checkExternalSenders(gc.extensions); err != nil {
		return nil, nil, err
	}
	extPubData, ok := findExtension(gi.extensions, extExternalPub)
	if !ok {
		return nil, nil, fmt.Errorf("%w: group info has no external_pub", ErrInvalidMessage)
	}
	r := codec.NewReader(extPubData)
	extPub := r.Opaque()
	if err := r.Finish(); err != nil {
		return nil, nil, fmt.Errorf("%w: external_pub: %w", ErrDecode, err)
	}
	pk, err := s.kem.NewPublicKey(extPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: external_pub", ErrInvalidKey)
	}
	kemOutput, hs, err := hpke.NewSender(pk, s.kdf, s.aead, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external init: %w", err)
	}
	initSecret, err := hs.Export("MLS 1.0 external init secret", s.hashLen())
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external init: %w", err)
	}
	defer clear(initSecret)

	if err := g.setContext(gc); err != nil {
		return nil, nil, err
	}
	interim, err := s.interimTranscriptHash(gc.confirmedTranscriptHash, gi.confirmationTag)
	if err != nil {
		return nil, nil, err
	}
	// Our leaf goes to the leftmost blank position, then our path
	// refreshes it.
	encPriv, encPub, err := s.generateHPKE()
	if err != nil {
		return nil, nil, err
	}
	clear(encPriv)
	template, err := newLeafNode(s, identity, encPub, signatureKey, g.clock(), opts.SupportedExtensions)
	if err != nil {
		return nil, nil, err
	}
	if err := g.checkCredential(nil, template); err != nil {
		return nil, nil, err
	}
	props := []proposalOrRef{{proposal: proposal{typ: proposalExternalInit, kemOutput: kemOutput}}}
	if opts.Resync {
		for i := uint32(0); i < g.tree.size(); i++ {
			if l := g.tree.leaf(i); l != nil && sameCredential(&l.credential, &template.credential) {
				remove = append(remove, i)
				break
			}
		}
	}
	for _, i := range remove {
		if g.tree.leaf(i) == nil {
			return nil, nil, fmt.Errorf("%w: no leaf %d to remove", ErrInvalidMessage, i)
		}
		g.tree.removeLeaf(i)
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalRemove, removed: i}})
	}
	ids := slices.Sorted(maps.Keys(opts.PSKs))
	var inputs []pskInput
	for _, id := range ids {
		nonce := make([]byte, s.hashLen())
		if _, err := rand.Read(nonce); err != nil {
			return nil, nil, err
		}
		psk := preSharedKeyID{pskType: pskExternal, pskID: []byte(id), pskNonce: nonce}
		props = append(props, proposalOrRef{proposal: proposal{typ: proposalPSK, psk: psk}})
		inputs = append(inputs, pskInput{id: psk, psk: opts.PSKs[id]})
		g.externalPSKs[id] = bytes.Clone(opts.PSKs[id])
	}
	pskSecret, err := s.pskSecret(inputs)
	if err != nil {
		return nil, nil, err
	}
	me := g.tree.addLeaf(template)
	leafSecret := make([]byte, s.hashLen())
	if _, err := rand.Read(leafSecret); err != nil {
		return nil, nil, err
	}
	priv, secrets, commitSecret, err := g.tree.applyOwnPath(me, leafSecret, template, signatureKey, gc.groupID)
	clear(leafSecret)
	if err != nil {
		return nil, nil, err
	}
	g.priv = priv
	if err := g.tree.validatePolicy(&gc); err != nil {
		return nil, nil, err
	}
	next := gc
	next.epoch = gc.epoch + 1
	if next.treeHash, err = g.tree.rootHash(); err != nil {
		return nil, nil, err
	}
	provisional, err := marshal(&next)
	if err != nil {
		return nil, nil, err
	}
	path, err := g.tree.encryptPath(me, secrets, provisional, nil)
	if err != nil {
		return nil, nil, err
	}
	ac := &authenticatedContent{wireFormat: wireFormatPublicMessage, content: framedContent{
		groupID: gc.groupID, epoch: gc.epoch, sender: sender{typ: senderNewMemberCommit}, authenticatedData: []byte{},
		contentType: contentCommit, commit: commit{proposals: props, path: path},
	}}
	if err := ac.sign(s, signatureKey, &gc); err != nil {
		return nil, nil, err
	}
	if next.confirmedTranscriptHash, err = s.confirmedTranscriptHash(interim, ac); err != nil {
		return nil, nil, err
	}
	if err := g.setContext(next); err != nil {
		return nil, nil, err
	}
	e, err := s.epochFromInit(initSecret, commitSecret, pskSecret, g.ctxBytes)
	if err != nil {
		return nil, nil, err
	}
	ac.auth.confirmationTag = s.mac(e.confirmationKey, next.confirmedTranscriptHash)
	pm, err := s.protectPublic(ac, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	commitMsg, err := marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatPublicMessage, public: pm})
	if err != nil {
		return nil, nil, err
	}
	if err := g.startEpoch(e, ac.auth.confirmationTag); err != nil {
		return nil, nil, err
	}
	return &Group{st: g}, commitMsg, nil
}

// verifyJoinedTree runs the checks a joiner makes on a received ratchet
// tree (RFC 9420 §12.4.3.1).
func (g *groupState) verifyJoinedTree(gc *groupContext) error {
	th, err := g.tree.rootHash()
	if err != nil {
		return err
	}
	if !bytes.Equal(th, gc.treeHash) {
		return fmt.Errorf("%w: tree hash does not match the group info", ErrInvalidTree)
	}
	if err := g.tree.verifyParentHashes(); err != nil {
		return err
	}
	if err := g.tree.verifyLeaves(gc.groupID); err != nil {
		return err
	}
	if err := g.tree.checkUnmergedChains(); err != nil {
		return err
	}
	return g.tree.validatePolicy(gc)
}
