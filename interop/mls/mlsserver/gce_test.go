package mlsserver

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"sotto/interop/mls/mlsclient"
)

// TestGroupContextExtensionsProposal follows the runner's
// commit/group_context_extensions script: bob proposes new group context
// extensions, alice commits the proposal by reference, and both end in
// the same epoch.
func TestGroupContextExtensionsProposal(t *testing.T) {
	ctx := context.Background()
	s := New(nil)
	ag, err := s.CreateGroup(ctx, &mlsclient.CreateGroupRequest{CipherSuite: 1, GroupId: []byte("gce"), Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := s.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	add, err := s.AddProposal(ctx, &mlsclient.AddProposalRequest{StateId: ag.StateId, KeyPackage: kp.KeyPackage})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Commit(ctx, &mlsclient.CommitRequest{StateId: ag.StateId, ByReference: [][]byte{add.Proposal}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.HandlePendingCommit(ctx, &mlsclient.HandlePendingCommitRequest{StateId: ag.StateId}); err != nil {
		t.Fatal(err)
	}
	bg, err := s.JoinGroup(ctx, &mlsclient.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: c.Welcome})
	if err != nil {
		t.Fatal(err)
	}

	// An extension alice's leaf does not support is refused.
	_, err = s.GroupContextExtensionsProposal(ctx, &mlsclient.GroupContextExtensionsProposalRequest{
		StateId: bg.StateId, Extensions: []*mlsclient.Extension{{ExtensionType: 0xff01}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unsupported extension: got %v, want InvalidArgument", err)
	}

	appID := &mlsclient.Extension{ExtensionType: 1, ExtensionData: []byte{4, 't', 'e', 'a', 'm'}}
	gce, err := s.GroupContextExtensionsProposal(ctx, &mlsclient.GroupContextExtensionsProposalRequest{
		StateId: bg.StateId, Extensions: []*mlsclient.Extension{appID}})
	if err != nil {
		t.Fatal(err)
	}
	c, err = s.Commit(ctx, &mlsclient.CommitRequest{StateId: ag.StateId, ByReference: [][]byte{gce.Proposal}})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := s.HandlePendingCommit(ctx, &mlsclient.HandlePendingCommitRequest{StateId: ag.StateId})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := s.HandleCommit(ctx, &mlsclient.HandleCommitRequest{StateId: bg.StateId, Proposal: [][]byte{gce.Proposal}, Commit: c.Commit})
	if err != nil {
		t.Fatal(err)
	}
	if len(ra.EpochAuthenticator) == 0 || !bytes.Equal(ra.EpochAuthenticator, rb.EpochAuthenticator) {
		t.Fatal("members disagree on the epoch after the commit")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range []uint32{ag.StateId, bg.StateId} {
		m, err := s.state(id)
		if err != nil {
			t.Fatal(err)
		}
		got := m.group.Extensions()
		if len(got) != 1 || uint32(got[0].Type) != appID.ExtensionType || !bytes.Equal(got[0].Data, appID.ExtensionData) {
			t.Fatalf("state %d: extensions %+v", id, got)
		}
	}
}
