package mlsinterop

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"sotto/interop/mls/mlsclient"
)

// newPair has alice (on her own server) create a group in suite cs and
// add bob (on another server) by a Welcome, as the runner's createGroup
// step with members does.
func newPair(ctx context.Context, t *testing.T, cs uint32) (alice, bob *actor) {
	t.Helper()
	alice = &actor{name: "alice", rpc: startServer(t)}
	bob = &actor{name: "bob", rpc: startServer(t)}
	cg, err := alice.rpc.CreateGroup(ctx, &mlsclient.CreateGroupRequest{GroupId: []byte("group"), CipherSuite: cs, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	alice.state = cg.StateId
	join(ctx, t, alice, bob, cs, nil)
	return alice, bob
}

// join has a commit adding a fresh KeyPackage of joiner, applies it and
// has joiner join from the Welcome; members process the commit.
func join(ctx context.Context, t *testing.T, committer, joiner *actor, cs uint32, members []*actor) {
	t.Helper()
	kp, err := joiner.rpc.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: cs, Identity: []byte(joiner.name)})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := committer.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: committer.state, ByValue: []*mlsclient.ProposalDescription{{ProposalType: []byte("add"), KeyPackage: kp.KeyPackage}}})
	if err != nil {
		t.Fatal(err)
	}
	auth := applyPending(ctx, t, committer)
	for _, m := range members {
		handleCommit(ctx, t, m, cr.Commit, auth)
	}
	jr, err := joiner.rpc.JoinGroup(ctx, &mlsclient.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: cr.Welcome, Identity: []byte(joiner.name)})
	if err != nil {
		t.Fatal(err)
	}
	joiner.state = jr.StateId
	if !bytes.Equal(jr.EpochAuthenticator, auth) {
		t.Fatalf("%s joined a different epoch", joiner.name)
	}
}

// emptyCommit has committer commit the given proposals by reference and
// by value; the other members process it.
func emptyCommit(ctx context.Context, t *testing.T, committer *actor, byRef [][]byte, byValue []*mlsclient.ProposalDescription, members ...*actor) {
	t.Helper()
	cr, err := committer.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: committer.state, ByReference: byRef, ByValue: byValue})
	if err != nil {
		t.Fatalf("%s: commit: %v", committer.name, err)
	}
	auth := applyPending(ctx, t, committer)
	for _, m := range members {
		handleCommit(ctx, t, m, cr.Commit, auth, byRef...)
	}
}

// TestGRPCResumptionPSK follows the runner's commit/resumption_psk
// script: resumption PSKs of past epochs proposed by either member and
// added by value; an epoch the group never had is refused.
func TestGRPCResumptionPSK(t *testing.T) {
	ctx := context.Background()
	alice, bob := newPair(ctx, t, 1)
	emptyCommit(ctx, t, alice, nil, nil, bob)
	emptyCommit(ctx, t, alice, nil, nil, bob) // epoch 3
	pa, err := alice.rpc.ResumptionPSKProposal(ctx, &mlsclient.ResumptionPSKProposalRequest{StateId: alice.state, EpochId: 1})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := bob.rpc.ResumptionPSKProposal(ctx, &mlsclient.ResumptionPSKProposalRequest{StateId: bob.state, EpochId: 2})
	if err != nil {
		t.Fatal(err)
	}
	emptyCommit(ctx, t, alice, [][]byte{pa.Proposal, pb.Proposal},
		[]*mlsclient.ProposalDescription{{ProposalType: []byte("resumptionPSK"), EpochId: 3}}, bob)
	exchange(ctx, t, bob, alice, "after resumption psks", "")

	if _, err := alice.rpc.ResumptionPSKProposal(ctx, &mlsclient.ResumptionPSKProposalRequest{StateId: alice.state, EpochId: 1000}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("resumption PSK of a future epoch: got %v, want InvalidArgument", err)
	}
	if _, err := alice.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByValue: []*mlsclient.ProposalDescription{{ProposalType: []byte("resumptionPSK"), EpochId: 1000}}}); err == nil {
		t.Fatal("a commit with the resumption PSK of a future epoch was created")
	}
}

// TestGRPCExternalSender follows the runner's external_proposals
// scripts: alice lists an external signer (on a third server), and the
// signer proposes adding carol and removing bob from a GroupInfo; alice
// commits each proposal and the others process it. A signer the group
// does not list is refused.
func TestGRPCExternalSender(t *testing.T) {
	ctx := context.Background()
	for _, cs := range []uint32{1, 3} {
		alice, bob := newPair(ctx, t, cs)
		ds := startServer(t)
		signer, err := ds.CreateExternalSigner(ctx, &mlsclient.CreateExternalSignerRequest{CipherSuite: cs, Identity: []byte("ds")})
		if err != nil {
			t.Fatal(err)
		}
		other, err := ds.CreateExternalSigner(ctx, &mlsclient.CreateExternalSignerRequest{CipherSuite: cs, Identity: []byte("other")})
		if err != nil {
			t.Fatal(err)
		}
		add, err := alice.rpc.AddExternalSigner(ctx, &mlsclient.AddExternalSignerRequest{StateId: alice.state, ExternalSender: signer.ExternalSender})
		if err != nil {
			t.Fatal(err)
		}
		emptyCommit(ctx, t, alice, [][]byte{add.Proposal}, nil, bob)

		propose := func(id uint32, d *mlsclient.ProposalDescription) ([]byte, error) {
			gi, err := bob.rpc.GroupInfo(ctx, &mlsclient.GroupInfoRequest{StateId: bob.state, ExternalTree: true})
			if err != nil {
				t.Fatal(err)
			}
			r, err := ds.ExternalSignerProposal(ctx, &mlsclient.ExternalSignerProposalRequest{SignerId: id, GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, Description: d})
			if err != nil {
				return nil, err
			}
			return r.Proposal, nil
		}
		if _, err := propose(other.SignerId, &mlsclient.ProposalDescription{ProposalType: []byte("remove"), RemovedId: []byte("bob")}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("suite %d: a proposal from an unlisted signer: got %v, want FailedPrecondition", cs, err)
		}

		carol := &actor{name: "carol", rpc: ds}
		kp, err := carol.rpc.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: cs, Identity: []byte("carol")})
		if err != nil {
			t.Fatal(err)
		}
		p, err := propose(signer.SignerId, &mlsclient.ProposalDescription{ProposalType: []byte("add"), KeyPackage: kp.KeyPackage})
		if err != nil {
			t.Fatalf("suite %d: external add: %v", cs, err)
		}
		cr, err := alice.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByReference: [][]byte{p}})
		if err != nil {
			t.Fatal(err)
		}
		auth := applyPending(ctx, t, alice)
		handleCommit(ctx, t, bob, cr.Commit, auth, p)
		jr, err := carol.rpc.JoinGroup(ctx, &mlsclient.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: cr.Welcome, Identity: []byte("carol")})
		if err != nil {
			t.Fatalf("suite %d: carol joins: %v", cs, err)
		}
		carol.state = jr.StateId
		if !bytes.Equal(jr.EpochAuthenticator, auth) {
			t.Fatalf("suite %d: carol joined a different epoch", cs)
		}

		p, err = propose(signer.SignerId, &mlsclient.ProposalDescription{ProposalType: []byte("remove"), RemovedId: []byte("bob")})
		if err != nil {
			t.Fatalf("suite %d: external remove: %v", cs, err)
		}
		emptyCommit(ctx, t, alice, [][]byte{p}, nil, carol)
		exchange(ctx, t, carol, alice, "bob is gone", "")
	}
}

// TestGRPCBranch follows the runner's branch scripts: alice branches a
// subgroup with bob (fresh KeyPackages, new group id, an extension) and
// bob joins it from his state of the old group; a KeyPackage of a client
// outside the group is refused.
func TestGRPCBranch(t *testing.T) {
	ctx := context.Background()
	for _, externalTree := range []bool{false, true} {
		alice, bob := newPair(ctx, t, 1)
		kp, err := bob.rpc.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
		if err != nil {
			t.Fatal(err)
		}
		outsider, err := bob.rpc.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("mallory")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.rpc.CreateBranch(ctx, &mlsclient.CreateBranchRequest{StateId: alice.state, GroupId: []byte("branch"), KeyPackages: [][]byte{outsider.KeyPackage}}); err == nil {
			t.Fatal("a branch took along a client outside the group")
		}
		br, err := alice.rpc.CreateBranch(ctx, &mlsclient.CreateBranchRequest{
			StateId: alice.state, GroupId: []byte("branch"), KeyPackages: [][]byte{kp.KeyPackage},
			Extensions: []*mlsclient.Extension{{ExtensionType: 3, ExtensionData: []byte{0, 0, 0}}}, ExternalTree: externalTree,
		})
		if err != nil {
			t.Fatal(err)
		}
		if externalTree != (len(br.RatchetTree) > 0) {
			t.Fatalf("external tree %v, got a tree of %d bytes", externalTree, len(br.RatchetTree))
		}
		hr, err := bob.rpc.HandleBranch(ctx, &mlsclient.HandleBranchRequest{StateId: bob.state, TransactionId: kp.TransactionId, Welcome: br.Welcome, RatchetTree: br.RatchetTree})
		if err != nil {
			t.Fatalf("bob joins the branch: %v", err)
		}
		if !bytes.Equal(hr.EpochAuthenticator, br.EpochAuthenticator) {
			t.Fatal("bob disagrees on the branch's epoch")
		}
		oldAlice, oldBob := *alice, *bob
		alice.state, bob.state = br.StateId, hr.StateId
		exchange(ctx, t, alice, bob, "in the branch", "")
		exchange(ctx, t, &oldBob, &oldAlice, "the old group still works", "")
	}
}
