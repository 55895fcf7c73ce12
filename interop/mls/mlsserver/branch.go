package mlsserver

import (
	"context"

	"sotto/interop/mls/mlsclient"
	"sotto/mls"
)

// CreateBranch creates a subgroup of the member's group (RFC 9420 §11.3)
// with the other members' KeyPackages and applies its first commit. The
// subgroup gets a new state id; the old group stays under its own and is
// unchanged.
func (s *Server) CreateBranch(_ context.Context, req *mlsclient.CreateBranchRequest) (*mlsclient.CreateSubgroupResponse, error) {
	exts, err := extensions(req.Extensions)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	g, p, err := m.group.Branch(req.GroupId, req.KeyPackages, mls.BranchOptions{Extensions: exts, OmitRatchetTree: req.ExternalTree})
	if err != nil {
		return nil, protocolError("create branch", err)
	}
	if err := g.Apply(p); err != nil {
		return nil, protocolError("apply branch commit", err)
	}
	resp := &mlsclient.CreateSubgroupResponse{Welcome: p.Welcome, EpochAuthenticator: g.EpochAuthenticator()}
	if req.ExternalTree {
		if resp.RatchetTree, err = g.RatchetTree(); err != nil {
			return nil, protocolError("ratchet tree", err)
		}
	}
	resp.StateId = s.addState(g, m.encrypt)
	return resp, nil
}

// HandleBranch joins a subgroup branched from the member's group, with
// the KeyPackage of a transaction.
func (s *Server) HandleBranch(_ context.Context, req *mlsclient.HandleBranchRequest) (*mlsclient.HandleBranchResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	tx, ok := s.txs[req.TransactionId]
	if !ok {
		return nil, unknownID("transaction", req.TransactionId)
	}
	opts := &mls.JoinOptions{BranchFrom: m.group, ExternalPSKs: tx.psks}
	if len(req.RatchetTree) > 0 {
		opts.RatchetTree = req.RatchetTree
	}
	g, err := mls.Join(req.Welcome, tx.keyPackage, tx.keys, opts)
	if err != nil {
		return nil, protocolError("join branch", err)
	}
	delete(s.txs, req.TransactionId)
	return &mlsclient.HandleBranchResponse{StateId: s.addState(g, m.encrypt), EpochAuthenticator: g.EpochAuthenticator()}, nil
}
