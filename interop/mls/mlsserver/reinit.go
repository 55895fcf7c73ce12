package mlsserver

import (
	"context"

	"sotto/interop/mls/mlsclient"
	"sotto/mls"
)

// reinit is a member of a group closed by a committed ReInit, ready to
// create or join the successor.
type reinit struct {
	old      *mls.Group
	encrypt  bool
	identity []byte
	// sig, keyPackage and keys are this member's, for the successor's
	// cipher suite.
	sig        []byte
	keyPackage []byte
	keys       mls.PrivateKeys
}

// ReInitProposal proposes reinitializing the group.
func (s *Server) ReInitProposal(_ context.Context, req *mlsclient.ReInitProposalRequest) (*mlsclient.ProposalResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	exts, err := extensions(req.Extensions)
	if err != nil {
		return nil, err
	}
	return s.propose(req.StateId, "reinit proposal", func(m *member) ([]byte, error) {
		return m.group.ProposeReInit(req.GroupId, cs, exts)
	})
}

// ReInitCommit commits a ReInit proposal.
func (s *Server) ReInitCommit(_ context.Context, req *mlsclient.CommitRequest) (*mlsclient.CommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(req)
}

// HandlePendingReInitCommit applies the member's own ReInit commit and
// prepares its KeyPackage for the successor.
func (s *Server) HandlePendingReInitCommit(_ context.Context, req *mlsclient.HandlePendingCommitRequest) (*mlsclient.HandleReInitCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.handlePendingCommit(req)
	if err != nil {
		return nil, err
	}
	return s.startReInit(req.StateId, r.EpochAuthenticator)
}

// HandleReInitCommit processes another member's ReInit commit and
// prepares this member's KeyPackage for the successor.
func (s *Server) HandleReInitCommit(_ context.Context, req *mlsclient.HandleCommitRequest) (*mlsclient.HandleReInitCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.handleCommit(req)
	if err != nil {
		return nil, err
	}
	return s.startReInit(req.StateId, r.EpochAuthenticator)
}

// startReInit turns a member whose group a ReInit closed into a reinit
// record. Callers hold mu.
func (s *Server) startReInit(stateID uint32, auth []byte) (*mlsclient.HandleReInitCommitResponse, error) {
	m, err := s.state(stateID)
	if err != nil {
		return nil, err
	}
	params, ok := m.group.ReInitParams()
	if !ok {
		return nil, invalid("state %d: the commit carried no ReInit", stateID)
	}
	var identity []byte
	for _, mem := range m.group.Members() {
		if mem.Index == m.group.LeafIndex() {
			identity = mem.Identity
		}
	}
	sig, err := mls.GenerateSignatureKey(params.CipherSuite)
	if err != nil {
		return nil, protocolError("reinit key", err)
	}
	kp, keys, err := mls.NewKeyPackage(params.CipherSuite, identity, sig)
	if err != nil {
		return nil, protocolError("reinit key package", err)
	}
	id := s.newID()
	s.reinits[id] = &reinit{old: m.group, encrypt: m.encrypt, identity: identity, sig: sig, keyPackage: kp, keys: keys}
	return &mlsclient.HandleReInitCommitResponse{ReinitId: id, KeyPackage: kp, EpochAuthenticator: auth}, nil
}

// ReInitWelcome creates the successor group with the other members'
// KeyPackages and applies its first commit.
func (s *Server) ReInitWelcome(_ context.Context, req *mlsclient.ReInitWelcomeRequest) (*mlsclient.CreateSubgroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reinits[req.ReinitId]
	if !ok {
		return nil, unknownID("reinit", req.ReinitId)
	}
	g, p, err := r.old.ReInit(r.identity, r.sig, req.KeyPackage)
	if err != nil {
		return nil, protocolError("reinit", err)
	}
	if err := g.Apply(p); err != nil {
		return nil, protocolError("apply reinit commit", err)
	}
	resp := &mlsclient.CreateSubgroupResponse{Welcome: p.Welcome, EpochAuthenticator: g.EpochAuthenticator()}
	if req.ExternalTree {
		if resp.RatchetTree, err = g.RatchetTree(); err != nil {
			return nil, protocolError("ratchet tree", err)
		}
	}
	delete(s.reinits, req.ReinitId)
	clear(r.sig)
	resp.StateId = s.addState(g, r.encrypt)
	return resp, nil
}

// HandleReInitWelcome joins the successor group.
func (s *Server) HandleReInitWelcome(_ context.Context, req *mlsclient.HandleReInitWelcomeRequest) (*mlsclient.JoinGroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reinits[req.ReinitId]
	if !ok {
		return nil, unknownID("reinit", req.ReinitId)
	}
	opts := &mls.JoinOptions{ReInitFrom: r.old}
	if len(req.RatchetTree) > 0 {
		opts.RatchetTree = req.RatchetTree
	}
	g, err := mls.Join(req.Welcome, r.keyPackage, r.keys, opts)
	if err != nil {
		return nil, protocolError("join reinit successor", err)
	}
	delete(s.reinits, req.ReinitId)
	clear(r.sig)
	return &mlsclient.JoinGroupResponse{StateId: s.addState(g, r.encrypt), EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// NewMemberAddProposal has a client outside the group ask to join with a
// fresh KeyPackage; the client then joins from the Welcome (JoinGroup).
func (s *Server) NewMemberAddProposal(_ context.Context, req *mlsclient.NewMemberAddProposalRequest) (*mlsclient.NewMemberAddProposalResponse, error) {
	h, err := readGroupInfoHeader(req.GroupInfo)
	if err != nil {
		return nil, invalid("%v", err)
	}
	cs, err := suite(uint32(h.suite))
	if err != nil {
		return nil, err
	}
	sig, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		return nil, protocolError("new member proposal", err)
	}
	defer clear(sig)
	kp, keys, err := mls.NewKeyPackage(cs, req.Identity, sig)
	if err != nil {
		return nil, protocolError("new member proposal", err)
	}
	p, err := mls.NewMemberAddProposal(h.groupID, h.epoch, kp, sig)
	if err != nil {
		return nil, protocolError("new member proposal", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	s.txs[id] = &transaction{keyPackage: kp, keys: keys, psks: map[string][]byte{}}
	return &mlsclient.NewMemberAddProposalResponse{
		TransactionId: id, Proposal: p, InitPriv: keys.Init, EncryptionPriv: keys.Encryption, SignaturePriv: keys.Signature,
	}, nil
}

// extensions converts the runner's extensions.
func extensions(in []*mlsclient.Extension) ([]mls.Extension, error) {
	out := make([]mls.Extension, 0, len(in))
	for _, e := range in {
		if e.ExtensionType > 0xffff {
			return nil, invalid("extension type %d out of range", e.ExtensionType)
		}
		out = append(out, mls.Extension{Type: uint16(e.ExtensionType), Data: e.ExtensionData})
	}
	return out, nil
}
