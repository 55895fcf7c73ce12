package mlsserver

import (
	"context"

	"sotto/interop/mls/mlsclient"
	"sotto/mls"
)

// propose runs one of the group's Propose methods and remembers the
// proposal as this member's own.
func (s *Server) propose(id uint32, op string, f func(*member) ([]byte, error)) (*mlsclient.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(id)
	if err != nil {
		return nil, err
	}
	p, err := f(m)
	if err != nil {
		return nil, protocolError(op, err)
	}
	m.own[string(p)] = true
	return &mlsclient.ProposalResponse{Proposal: p}, nil
}

// AddProposal proposes adding a KeyPackage's client.
func (s *Server) AddProposal(_ context.Context, req *mlsclient.AddProposalRequest) (*mlsclient.ProposalResponse, error) {
	return s.propose(req.StateId, "add proposal", func(m *member) ([]byte, error) {
		return m.group.ProposeAdd(req.KeyPackage)
	})
}

// UpdateProposal proposes a fresh leaf key.
func (s *Server) UpdateProposal(_ context.Context, req *mlsclient.UpdateProposalRequest) (*mlsclient.ProposalResponse, error) {
	return s.propose(req.StateId, "update proposal", func(m *member) ([]byte, error) {
		return m.group.ProposeUpdate()
	})
}

// RemoveProposal proposes removing the member with the given identity.
func (s *Server) RemoveProposal(_ context.Context, req *mlsclient.RemoveProposalRequest) (*mlsclient.ProposalResponse, error) {
	return s.propose(req.StateId, "remove proposal", func(m *member) ([]byte, error) {
		leaf, err := leafOf(m.group, req.RemovedId)
		if err != nil {
			return nil, err
		}
		return m.group.ProposeRemove(leaf)
	})
}

// ExternalPSKProposal proposes injecting a stored external PSK.
func (s *Server) ExternalPSKProposal(_ context.Context, req *mlsclient.ExternalPSKProposalRequest) (*mlsclient.ProposalResponse, error) {
	return s.propose(req.StateId, "external psk proposal", func(m *member) ([]byte, error) {
		return m.group.ProposePSK(req.PskId)
	})
}

// ResumptionPSKProposal proposes injecting the group's resumption PSK of
// a past epoch (usage application).
func (s *Server) ResumptionPSKProposal(_ context.Context, req *mlsclient.ResumptionPSKProposalRequest) (*mlsclient.ProposalResponse, error) {
	return s.propose(req.StateId, "resumption psk proposal", func(m *member) ([]byte, error) {
		return m.group.ProposeResumptionPSK(req.EpochId)
	})
}

// GroupContextExtensionsProposal proposes replacing the group context
// extensions.
func (s *Server) GroupContextExtensionsProposal(_ context.Context, req *mlsclient.GroupContextExtensionsProposalRequest) (*mlsclient.ProposalResponse, error) {
	return s.propose(req.StateId, "group context extensions proposal", func(m *member) ([]byte, error) {
		exts, err := extensions(req.Extensions)
		if err != nil {
			return nil, err
		}
		return m.group.ProposeGroupContextExtensions(exts)
	})
}

// handleProposals feeds a member the proposals a commit references, except
// the member's own, which its group already holds.
func handleProposals(m *member, proposals [][]byte) error {
	for _, p := range proposals {
		if m.own[string(p)] {
			continue
		}
		r, err := m.group.Handle(p)
		if err != nil {
			return protocolError("handle proposal", err)
		}
		if r.Kind != mls.ProposalContent {
			return invalid("handle proposal: message is not a proposal")
		}
	}
	return nil
}

// commitOptions turns the runner's proposals by value into CommitOptions.
func commitOptions(m *member, byValue []*mlsclient.ProposalDescription) (mls.CommitOptions, error) {
	opts := mls.CommitOptions{Private: m.encrypt}
	for _, d := range byValue {
		switch string(d.ProposalType) {
		case "add":
			opts.Add = append(opts.Add, d.KeyPackage)
		case "remove":
			leaf, err := leafOf(m.group, d.RemovedId)
			if err != nil {
				return opts, err
			}
			opts.Remove = append(opts.Remove, leaf)
		case "externalPSK":
			opts.PSKs = append(opts.PSKs, d.PskId)
		case "groupContextExtensions":
			if opts.Extensions != nil {
				return opts, invalid("more than one GroupContextExtensions proposal")
			}
			exts, err := extensions(d.Extensions)
			if err != nil {
				return opts, err
			}
			opts.Extensions = exts
		case "resumptionPSK":
			opts.ResumptionPSKs = append(opts.ResumptionPSKs, d.EpochId)
		case "reinit":
			return opts, unimplemented("a ReInit proposal by value")
		default:
			return opts, invalid("unknown proposal type %q", d.ProposalType)
		}
	}
	return opts, nil
}

// Commit creates a commit (always with an UpdatePath) covering the
// referenced proposals, every other proposal the member holds for the
// epoch, and the proposals by value. The member stays in its epoch until
// HandlePendingCommit.
func (s *Server) Commit(_ context.Context, req *mlsclient.CommitRequest) (*mlsclient.CommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(req)
}

// commit implements Commit and ReInitCommit. Callers hold mu.
func (s *Server) commit(req *mlsclient.CommitRequest) (*mlsclient.CommitResponse, error) {
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	if err := handleProposals(m, req.ByReference); err != nil {
		return nil, err
	}
	opts, err := commitOptions(m, req.ByValue)
	if err != nil {
		return nil, err
	}
	opts.OmitRatchetTree = req.ExternalTree
	p, err := m.group.Commit(opts)
	if err != nil {
		return nil, protocolError("commit", err)
	}
	resp := &mlsclient.CommitResponse{Commit: p.Commit, Welcome: p.Welcome}
	if req.ExternalTree {
		if resp.RatchetTree, err = nextTree(m.group, p); err != nil {
			return nil, err
		}
	}
	m.pending = p
	return resp, nil
}

// nextTree returns the ratchet tree of the epoch a pending commit leads
// to, by applying copies of the group and the commit.
func nextTree(g *mls.Group, p *mls.PendingCommit) ([]byte, error) {
	gb, err := g.MarshalBinary()
	if err != nil {
		return nil, protocolError("copy group", err)
	}
	defer clear(gb)
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, protocolError("copy pending commit", err)
	}
	defer clear(pb)
	g2, err := mls.UnmarshalGroup(gb)
	if err != nil {
		return nil, protocolError("copy group", err)
	}
	p2, err := mls.UnmarshalPendingCommit(pb)
	if err != nil {
		return nil, protocolError("copy pending commit", err)
	}
	if err := g2.Apply(p2); err != nil {
		return nil, protocolError("apply copied commit", err)
	}
	tree, err := g2.RatchetTree()
	if err != nil {
		return nil, protocolError("ratchet tree", err)
	}
	return tree, nil
}

// HandleCommit processes another member's commit and the proposals it
// references.
func (s *Server) HandleCommit(_ context.Context, req *mlsclient.HandleCommitRequest) (*mlsclient.HandleCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handleCommit(req)
}

// handleCommit implements HandleCommit and HandleReInitCommit. Callers
// hold mu.
func (s *Server) handleCommit(req *mlsclient.HandleCommitRequest) (*mlsclient.HandleCommitResponse, error) {
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	if err := handleProposals(m, req.Proposal); err != nil {
		return nil, err
	}
	r, err := m.group.Handle(req.Commit)
	if err != nil {
		return nil, protocolError("handle commit", err)
	}
	if r.Kind != mls.CommitContent {
		return nil, invalid("handle commit: message is not a commit")
	}
	m.newEpoch()
	resp := &mlsclient.HandleCommitResponse{StateId: req.StateId}
	if !r.Removed {
		resp.EpochAuthenticator = m.group.EpochAuthenticator()
	}
	return resp, nil
}

// HandlePendingCommit applies the member's own commit.
func (s *Server) HandlePendingCommit(_ context.Context, req *mlsclient.HandlePendingCommitRequest) (*mlsclient.HandleCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlePendingCommit(req)
}

// handlePendingCommit implements HandlePendingCommit and
// HandlePendingReInitCommit. Callers hold mu.
func (s *Server) handlePendingCommit(req *mlsclient.HandlePendingCommitRequest) (*mlsclient.HandleCommitResponse, error) {
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	if m.pending == nil {
		return nil, invalid("state %d has no pending commit", req.StateId)
	}
	if err := m.group.Apply(m.pending); err != nil {
		return nil, protocolError("apply commit", err)
	}
	m.newEpoch()
	return &mlsclient.HandleCommitResponse{StateId: req.StateId, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}
