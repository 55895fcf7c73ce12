package mlsserver

import (
	"bytes"
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"sotto/interop/mls/mlsclient"
	"sotto/mls"
)

// signer is an external sender created by CreateExternalSigner: a party
// outside every group that may propose once a group lists it.
type signer struct {
	suite mls.CipherSuite
	key   []byte // signature private key
}

// CreateExternalSigner creates an external sender with a basic credential
// and a fresh signature key, and returns its ExternalSender struct.
func (s *Server) CreateExternalSigner(_ context.Context, req *mlsclient.CreateExternalSignerRequest) (*mlsclient.CreateExternalSignerResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	sig, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		return nil, protocolError("create external signer", err)
	}
	es, err := mls.NewExternalSender(cs, req.Identity, sig)
	if err != nil {
		clear(sig)
		return nil, protocolError("create external signer", err)
	}
	b, err := es.MarshalBinary()
	if err != nil {
		clear(sig)
		return nil, protocolError("create external signer", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	s.signers[id] = &signer{suite: cs, key: sig}
	return &mlsclient.CreateExternalSignerResponse{SignerId: id, ExternalSender: b}, nil
}

// AddExternalSigner proposes adding an external sender to the group's
// external_senders extension (a GroupContextExtensions proposal keeping
// the other extensions).
func (s *Server) AddExternalSigner(_ context.Context, req *mlsclient.AddExternalSignerRequest) (*mlsclient.ProposalResponse, error) {
	es, err := mls.UnmarshalExternalSender(req.ExternalSender)
	if err != nil {
		return nil, invalid("external sender: %v", err)
	}
	return s.propose(req.StateId, "add external signer", func(m *member) ([]byte, error) {
		return m.group.ProposeExternalSender(es)
	})
}

// ExternalSignerProposal has an external sender propose to the group a
// GroupInfo (and, when the GroupInfo lacks it, a ratchet tree) describes.
// The sender's index is found from its key in the GroupInfo's
// external_senders; the runner's signer_index (it leaves it 0) is not
// relied on.
func (s *Server) ExternalSignerProposal(_ context.Context, req *mlsclient.ExternalSignerProposalRequest) (*mlsclient.ProposalResponse, error) {
	d := req.Description
	if d == nil {
		return nil, invalid("external signer proposal: no description")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sg, ok := s.signers[req.SignerId]
	if !ok {
		return nil, unknownID("signer", req.SignerId)
	}
	p, err := mls.NewExternalProposer(req.GroupInfo, req.RatchetTree, sg.key)
	if errors.Is(err, mls.ErrNotExternalSender) {
		return nil, status.Errorf(codes.FailedPrecondition, "mlsserver: external signer %d: %v", req.SignerId, err)
	}
	if err != nil {
		return nil, protocolError("external signer proposal", err)
	}
	if p.CipherSuite() != sg.suite {
		return nil, invalid("external signer %d is for suite %v, the group uses %v", req.SignerId, sg.suite, p.CipherSuite())
	}
	msg, err := externalProposal(p, d)
	if err != nil {
		return nil, err
	}
	return &mlsclient.ProposalResponse{Proposal: msg}, nil
}

// externalProposal makes the proposal a description asks for.
func externalProposal(p *mls.ExternalProposer, d *mlsclient.ProposalDescription) ([]byte, error) {
	var (
		msg []byte
		err error
	)
	switch string(d.ProposalType) {
	case "add":
		msg, err = p.Add(d.KeyPackage)
	case "remove":
		leaf, ok := uint32(0), false
		for _, m := range p.Members() {
			if m.Identity != nil && bytes.Equal(m.Identity, d.RemovedId) {
				leaf, ok = m.Index, true
				break
			}
		}
		if !ok {
			return nil, invalid("no member with identity %q", d.RemovedId)
		}
		msg, err = p.Remove(leaf)
	case "externalPSK":
		msg, err = p.PSK(d.PskId)
	case "resumptionPSK":
		msg, err = p.ResumptionPSK(d.EpochId)
	case "groupContextExtensions":
		exts, xerr := extensions(d.Extensions)
		if xerr != nil {
			return nil, xerr
		}
		msg, err = p.GroupContextExtensions(exts)
	case "reinit":
		cs, serr := suite(d.CipherSuite)
		if serr != nil {
			return nil, serr
		}
		exts, xerr := extensions(d.Extensions)
		if xerr != nil {
			return nil, xerr
		}
		msg, err = p.ReInit(d.GroupId, cs, exts)
	default:
		return nil, invalid("unknown proposal type %q", d.ProposalType)
	}
	if err != nil {
		return nil, protocolError("external "+string(d.ProposalType)+" proposal", err)
	}
	return msg, nil
}
