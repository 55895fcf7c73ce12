package mlsserver

import (
	"context"

	"sotto/interop/mls/mlsclient"
)

// The operations below need features sotto/mls does not offer yet; each
// answers codes.Unimplemented so the runner reports the case as failed
// with a reason rather than a protocol error.

// ReInitProposal is unsupported: sotto/mls does not issue ReInit proposals.
func (s *Server) ReInitProposal(context.Context, *mlsclient.ReInitProposalRequest) (*mlsclient.ProposalResponse, error) {
	return nil, unimplemented("issuing a ReInit proposal")
}

// ReInitCommit is unsupported: sotto/mls does not create reinit successors.
func (s *Server) ReInitCommit(context.Context, *mlsclient.CommitRequest) (*mlsclient.CommitResponse, error) {
	return nil, unimplemented("committing a ReInit")
}

// HandlePendingReInitCommit is unsupported (see ReInitCommit).
func (s *Server) HandlePendingReInitCommit(context.Context, *mlsclient.HandlePendingCommitRequest) (*mlsclient.HandleReInitCommitResponse, error) {
	return nil, unimplemented("applying a ReInit commit")
}

// HandleReInitCommit is unsupported: a committed ReInit closes the group
// in sotto/mls, but joining its successor is not implemented.
func (s *Server) HandleReInitCommit(context.Context, *mlsclient.HandleCommitRequest) (*mlsclient.HandleReInitCommitResponse, error) {
	return nil, unimplemented("joining the successor of a ReInit")
}

// ReInitWelcome is unsupported (see HandleReInitCommit).
func (s *Server) ReInitWelcome(context.Context, *mlsclient.ReInitWelcomeRequest) (*mlsclient.CreateSubgroupResponse, error) {
	return nil, unimplemented("welcoming members to a ReInit successor")
}

// HandleReInitWelcome is unsupported (see HandleReInitCommit).
func (s *Server) HandleReInitWelcome(context.Context, *mlsclient.HandleReInitWelcomeRequest) (*mlsclient.JoinGroupResponse, error) {
	return nil, unimplemented("joining a ReInit successor")
}

// CreateBranch is unsupported: subgroup branching needs branch resumption
// PSKs.
func (s *Server) CreateBranch(context.Context, *mlsclient.CreateBranchRequest) (*mlsclient.CreateSubgroupResponse, error) {
	return nil, unimplemented("subgroup branching")
}

// HandleBranch is unsupported (see CreateBranch).
func (s *Server) HandleBranch(context.Context, *mlsclient.HandleBranchRequest) (*mlsclient.HandleBranchResponse, error) {
	return nil, unimplemented("joining a subgroup branch")
}

// NewMemberAddProposal is unsupported: sotto/mls does not sign proposals
// from a new_member_proposal sender.
func (s *Server) NewMemberAddProposal(context.Context, *mlsclient.NewMemberAddProposalRequest) (*mlsclient.NewMemberAddProposalResponse, error) {
	return nil, unimplemented("a new-member Add proposal")
}

// CreateExternalSigner is unsupported: sotto/mls has no external senders.
func (s *Server) CreateExternalSigner(context.Context, *mlsclient.CreateExternalSignerRequest) (*mlsclient.CreateExternalSignerResponse, error) {
	return nil, unimplemented("an external sender")
}

// AddExternalSigner is unsupported (see CreateExternalSigner).
func (s *Server) AddExternalSigner(context.Context, *mlsclient.AddExternalSignerRequest) (*mlsclient.ProposalResponse, error) {
	return nil, unimplemented("the external_senders extension")
}

// ExternalSignerProposal is unsupported (see CreateExternalSigner).
func (s *Server) ExternalSignerProposal(context.Context, *mlsclient.ExternalSignerProposalRequest) (*mlsclient.ProposalResponse, error) {
	return nil, unimplemented("a proposal from an external sender")
}
