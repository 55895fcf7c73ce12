package mlsserver

import (
	"context"

	"sotto/interop/mls/mlsclient"
)

// The operations below need features sotto/mls does not offer yet; each
// answers codes.Unimplemented so the runner reports the case as failed
// with a reason rather than a protocol error.

// CreateBranch is unsupported: subgroup branching needs branch resumption
// PSKs.
func (s *Server) CreateBranch(context.Context, *mlsclient.CreateBranchRequest) (*mlsclient.CreateSubgroupResponse, error) {
	return nil, unimplemented("subgroup branching")
}

// HandleBranch is unsupported (see CreateBranch).
func (s *Server) HandleBranch(context.Context, *mlsclient.HandleBranchRequest) (*mlsclient.HandleBranchResponse, error) {
	return nil, unimplemented("joining a subgroup branch")
}

// CreateExternalSigner is unsupported: the server does not yet keep
// external signers nor install them (AddExternalSigner) through a
// GroupContextExtensions proposal.
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
