package mlsinterop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"sotto/interop/mls/mlsclient"
	"sotto/interop/mls/mlsserver"
)

// startServer serves a fresh mlsserver on a loopback port and returns a
// client connected to it over gRPC. Cleanup stops the server and waits
// for its goroutine.
func startServer(t *testing.T) mlsclient.MLSClientClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	mlsclient.RegisterMLSClientServer(srv, mlsserver.New(nil))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return mlsclient.NewMLSClientClient(conn)
}

// actor is one group member on one server.
type actor struct {
	name  string
	rpc   mlsclient.MLSClientClient
	state uint32
}

// TestGRPCGroupFlow runs the runner's welcome_join, application and commit
// steps between members on two separate servers, over real gRPC
// connections, for every supported suite with public and private
// handshakes.
func TestGRPCGroupFlow(t *testing.T) {
	ctx := context.Background()
	alice := &actor{name: "alice", rpc: startServer(t)}
	bob := &actor{name: "bob", rpc: startServer(t)}
	carol := &actor{name: "carol", rpc: alice.rpc}

	sr, err := alice.rpc.SupportedCiphersuites(ctx, &mlsclient.SupportedCiphersuitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Ciphersuites) == 0 {
		t.Fatal("no supported cipher suites")
	}
	for _, cs := range sr.Ciphersuites {
		for _, encrypt := range []bool{false, true} {
			t.Run(fmt.Sprintf("suite%d/encrypt=%v", cs, encrypt), func(t *testing.T) {
				groupFlow(ctx, t, cs, encrypt, alice, bob, carol)
			})
		}
	}
}

func groupFlow(ctx context.Context, t *testing.T, cs uint32, encrypt bool, alice, bob, carol *actor) {
	// welcome_join: alice creates the group and adds bob by reference.
	cg, err := alice.rpc.CreateGroup(ctx, &mlsclient.CreateGroupRequest{
		GroupId: []byte(fmt.Sprintf("group-%d-%v", cs, encrypt)), CipherSuite: cs, EncryptHandshake: encrypt, Identity: []byte(alice.name),
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.state = cg.StateId
	kp, err := bob.rpc.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: cs, Identity: []byte(bob.name)})
	if err != nil {
		t.Fatal(err)
	}
	add, err := alice.rpc.AddProposal(ctx, &mlsclient.AddProposalRequest{StateId: alice.state, KeyPackage: kp.KeyPackage})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := alice.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByReference: [][]byte{add.Proposal}, ExternalTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.Welcome) == 0 || len(cr.RatchetTree) == 0 {
		t.Fatal("commit adding bob has no Welcome or no external ratchet tree")
	}
	auth := applyPending(ctx, t, alice)
	jr, err := bob.rpc.JoinGroup(ctx, &mlsclient.JoinGroupRequest{
		TransactionId: kp.TransactionId, Welcome: cr.Welcome, EncryptHandshake: encrypt, Identity: []byte(bob.name), RatchetTree: cr.RatchetTree,
	})
	if err != nil {
		t.Fatal(err)
	}
	bob.state = jr.StateId
	if !bytes.Equal(jr.EpochAuthenticator, auth) {
		t.Fatal("bob's epoch authenticator differs from alice's after the Welcome")
	}

	// application: both directions, with authenticated data.
	exchange(ctx, t, alice, bob, "hello bob", "ad-1")
	exchange(ctx, t, bob, alice, "hello alice", "")

	// commit: bob proposes an update, alice commits it by reference.
	up, err := bob.rpc.UpdateProposal(ctx, &mlsclient.UpdateProposalRequest{StateId: bob.state})
	if err != nil {
		t.Fatal(err)
	}
	cr, err = alice.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByReference: [][]byte{up.Proposal}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.RatchetTree) != 0 {
		t.Fatal("ratchet tree returned without external_tree")
	}
	auth = applyPending(ctx, t, alice)
	handleCommit(ctx, t, bob, cr.Commit, auth, up.Proposal)
	sameExport(ctx, t, alice, bob)
	exchange(ctx, t, bob, alice, "after update", "")

	// external_join: carol joins from alice's GroupInfo.
	gi, err := alice.rpc.GroupInfo(ctx, &mlsclient.GroupInfoRequest{StateId: alice.state, ExternalTree: true})
	if err != nil {
		t.Fatal(err)
	}
	ej, err := carol.rpc.ExternalJoin(ctx, &mlsclient.ExternalJoinRequest{
		GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, EncryptHandshake: encrypt, Identity: []byte(carol.name),
	})
	if err != nil {
		t.Fatal(err)
	}
	carol.state = ej.StateId
	handleCommit(ctx, t, alice, ej.Commit, ej.EpochAuthenticator)
	handleCommit(ctx, t, bob, ej.Commit, ej.EpochAuthenticator)
	exchange(ctx, t, carol, bob, "hi from carol", "c")

	// commit by value: bob removes carol.
	cr, err = bob.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: bob.state, ByValue: []*mlsclient.ProposalDescription{
		{ProposalType: []byte("remove"), RemovedId: []byte(carol.name)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	auth = applyPending(ctx, t, bob)
	handleCommit(ctx, t, alice, cr.Commit, auth)
	hr, err := carol.rpc.HandleCommit(ctx, &mlsclient.HandleCommitRequest{StateId: carol.state, Commit: cr.Commit})
	if err != nil {
		t.Fatal(err)
	}
	if len(hr.EpochAuthenticator) != 0 {
		t.Fatal("removed member still reports an epoch authenticator")
	}
	sameExport(ctx, t, alice, bob)

	for _, a := range []*actor{alice, bob, carol} {
		if _, err := a.rpc.Free(ctx, &mlsclient.FreeRequest{StateId: a.state}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.rpc.StateAuth(ctx, &mlsclient.StateAuthRequest{StateId: alice.state}); status.Code(err) != codes.NotFound {
		t.Fatalf("StateAuth after Free: got %v, want NotFound", err)
	}
}

// applyPending applies a's pending commit and returns its epoch
// authenticator.
func applyPending(ctx context.Context, t *testing.T, a *actor) []byte {
	t.Helper()
	r, err := a.rpc.HandlePendingCommit(ctx, &mlsclient.HandlePendingCommitRequest{StateId: a.state})
	if err != nil {
		t.Fatal(err)
	}
	a.state = r.StateId
	return r.EpochAuthenticator
}

// handleCommit has a process a commit and checks it reaches the
// committer's epoch.
func handleCommit(ctx context.Context, t *testing.T, a *actor, commit, auth []byte, proposals ...[]byte) {
	t.Helper()
	r, err := a.rpc.HandleCommit(ctx, &mlsclient.HandleCommitRequest{StateId: a.state, Commit: commit, Proposal: proposals})
	if err != nil {
		t.Fatalf("%s: %v", a.name, err)
	}
	a.state = r.StateId
	if !bytes.Equal(r.EpochAuthenticator, auth) {
		t.Fatalf("%s disagrees on the epoch authenticator", a.name)
	}
}

// exchange sends one application message from one member to another.
func exchange(ctx context.Context, t *testing.T, from, to *actor, text, ad string) {
	t.Helper()
	p, err := from.rpc.Protect(ctx, &mlsclient.ProtectRequest{StateId: from.state, Plaintext: []byte(text), AuthenticatedData: []byte(ad)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Ciphertext, []byte(text)) {
		t.Fatal("ciphertext contains the plaintext")
	}
	u, err := to.rpc.Unprotect(ctx, &mlsclient.UnprotectRequest{StateId: to.state, Ciphertext: p.Ciphertext})
	if err != nil {
		t.Fatalf("%s -> %s: %v", from.name, to.name, err)
	}
	if string(u.Plaintext) != text || string(u.AuthenticatedData) != ad {
		t.Fatalf("%s -> %s: got %q/%q, want %q/%q", from.name, to.name, u.Plaintext, u.AuthenticatedData, text, ad)
	}
	if _, err := to.rpc.Unprotect(ctx, &mlsclient.UnprotectRequest{StateId: to.state, Ciphertext: p.Ciphertext}); err == nil {
		t.Fatal("a replayed application message decrypted twice")
	}
}

// sameExport checks two members derive the same exporter secret.
func sameExport(ctx context.Context, t *testing.T, a, b *actor) {
	t.Helper()
	req := func(st uint32) *mlsclient.ExportRequest {
		return &mlsclient.ExportRequest{StateId: st, Label: "sotto test", Context: []byte("ctx"), KeyLength: 32}
	}
	ea, err := a.rpc.Export(ctx, req(a.state))
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.rpc.Export(ctx, req(b.state))
	if err != nil {
		t.Fatal(err)
	}
	if len(ea.ExportedSecret) != 32 || !bytes.Equal(ea.ExportedSecret, eb.ExportedSecret) {
		t.Fatal("members export different secrets")
	}
}

// TestGRPCUnsupported checks that requests sotto/mls cannot serve answer
// Unimplemented and that unknown ids answer NotFound.
func TestGRPCUnsupported(t *testing.T) {
	ctx := context.Background()
	c := startServer(t)
	if _, err := c.CreateExternalSigner(ctx, &mlsclient.CreateExternalSignerRequest{CipherSuite: 4}); status.Code(err) != codes.Unimplemented {
		t.Errorf("CreateExternalSigner on suite 4: got %v, want Unimplemented", err)
	}
	if _, err := c.CreateGroup(ctx, &mlsclient.CreateGroupRequest{CipherSuite: 4, Identity: []byte("x")}); status.Code(err) != codes.Unimplemented {
		t.Errorf("CreateGroup on suite 4: got %v, want Unimplemented", err)
	}
	cg, err := c.CreateGroup(ctx, &mlsclient.CreateGroupRequest{CipherSuite: 1, GroupId: []byte("g"), Identity: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	reinit := &mlsclient.ProposalDescription{ProposalType: []byte("reinit"), GroupId: []byte("h"), CipherSuite: 1}
	if _, err := c.Commit(ctx, &mlsclient.CommitRequest{StateId: cg.StateId, ByValue: []*mlsclient.ProposalDescription{reinit}}); status.Code(err) != codes.Unimplemented {
		t.Errorf("a ReInit by value: got %v, want Unimplemented", err)
	}
	if _, err := c.ResumptionPSKProposal(ctx, &mlsclient.ResumptionPSKProposalRequest{StateId: 99}); status.Code(err) != codes.NotFound {
		t.Errorf("ResumptionPSKProposal on an unknown state: got %v, want NotFound", err)
	}
	if _, err := c.CreateBranch(ctx, &mlsclient.CreateBranchRequest{StateId: 99}); status.Code(err) != codes.NotFound {
		t.Errorf("CreateBranch on an unknown state: got %v, want NotFound", err)
	}
	if _, err := c.HandleBranch(ctx, &mlsclient.HandleBranchRequest{StateId: cg.StateId, TransactionId: 99}); status.Code(err) != codes.NotFound {
		t.Errorf("HandleBranch with an unknown transaction: got %v, want NotFound", err)
	}
	if _, err := c.ExternalSignerProposal(ctx, &mlsclient.ExternalSignerProposalRequest{SignerId: 99, Description: reinit}); status.Code(err) != codes.NotFound {
		t.Errorf("ExternalSignerProposal by an unknown signer: got %v, want NotFound", err)
	}
	if _, err := c.AddExternalSigner(ctx, &mlsclient.AddExternalSignerRequest{StateId: cg.StateId, ExternalSender: []byte{1, 2}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("AddExternalSigner with a truncated sender: got %v, want InvalidArgument", err)
	}
	if _, err := c.Protect(ctx, &mlsclient.ProtectRequest{StateId: 99}); status.Code(err) != codes.NotFound {
		t.Errorf("Protect on an unknown state: got %v, want NotFound", err)
	}
	if _, err := c.JoinGroup(ctx, &mlsclient.JoinGroupRequest{TransactionId: 99}); status.Code(err) != codes.NotFound {
		t.Errorf("JoinGroup on an unknown transaction: got %v, want NotFound", err)
	}
	if _, err := c.ExternalJoin(ctx, &mlsclient.ExternalJoinRequest{GroupInfo: []byte{0, 1}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ExternalJoin with a truncated GroupInfo: got %v, want InvalidArgument", err)
	}
}

// TestGRPCWelcomeWithPSK follows the runner's welcome_join/with_psk
// script: an external PSK stored with the group and with the joiner's
// pending KeyPackage, proposed and committed with the Add; then a second
// PSK injected by value.
func TestGRPCWelcomeWithPSK(t *testing.T) {
	ctx := context.Background()
	alice := &actor{name: "alice", rpc: startServer(t)}
	bob := &actor{name: "bob", rpc: startServer(t)}
	const cs = 1
	cg, err := alice.rpc.CreateGroup(ctx, &mlsclient.CreateGroupRequest{GroupId: []byte("psk"), CipherSuite: cs, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	alice.state = cg.StateId
	kp, err := bob.rpc.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: cs, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := []byte("psk-id"), bytes.Repeat([]byte{7}, 32)
	if _, err := alice.rpc.StorePSK(ctx, &mlsclient.StorePSKRequest{StateOrTransactionId: alice.state, PskId: id, PskSecret: secret}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.rpc.StorePSK(ctx, &mlsclient.StorePSKRequest{StateOrTransactionId: kp.TransactionId, PskId: id, PskSecret: secret}); err != nil {
		t.Fatal(err)
	}
	add, err := alice.rpc.AddProposal(ctx, &mlsclient.AddProposalRequest{StateId: alice.state, KeyPackage: kp.KeyPackage})
	if err != nil {
		t.Fatal(err)
	}
	psk, err := alice.rpc.ExternalPSKProposal(ctx, &mlsclient.ExternalPSKProposalRequest{StateId: alice.state, PskId: id})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := alice.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByReference: [][]byte{add.Proposal, psk.Proposal}})
	if err != nil {
		t.Fatal(err)
	}
	auth := applyPending(ctx, t, alice)
	jr, err := bob.rpc.JoinGroup(ctx, &mlsclient.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: cr.Welcome, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	bob.state = jr.StateId
	if !bytes.Equal(jr.EpochAuthenticator, auth) {
		t.Fatal("bob's epoch authenticator differs after a Welcome with a PSK")
	}
	// The joiner keeps the PSK: a later commit may inject it again.
	cr, err = bob.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: bob.state, ByValue: []*mlsclient.ProposalDescription{
		{ProposalType: []byte("externalPSK"), PskId: id},
	}})
	if err != nil {
		t.Fatal(err)
	}
	auth = applyPending(ctx, t, bob)
	handleCommit(ctx, t, alice, cr.Commit, auth)
	exchange(ctx, t, alice, bob, "with psk", "")
}

// TestGRPCReInit follows the runner's reinit/change_ciphersuite script:
// bob proposes a ReInit to a new group id and suite, alice commits it,
// alice creates the successor and bob joins it from the Welcome; then a
// new-member Add proposal brings carol into the successor.
func TestGRPCReInit(t *testing.T) {
	ctx := context.Background()
	alice := &actor{name: "alice", rpc: startServer(t)}
	bob := &actor{name: "bob", rpc: startServer(t)}
	carol := &actor{name: "carol", rpc: bob.rpc}
	cg, err := alice.rpc.CreateGroup(ctx, &mlsclient.CreateGroupRequest{GroupId: []byte("old"), CipherSuite: 1, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	alice.state = cg.StateId
	kp, err := bob.rpc.CreateKeyPackage(ctx, &mlsclient.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := alice.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByValue: []*mlsclient.ProposalDescription{{ProposalType: []byte("add"), KeyPackage: kp.KeyPackage}}})
	if err != nil {
		t.Fatal(err)
	}
	applyPending(ctx, t, alice)
	jr, err := bob.rpc.JoinGroup(ctx, &mlsclient.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: cr.Welcome, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	bob.state = jr.StateId

	const newSuite = 3
	prop, err := bob.rpc.ReInitProposal(ctx, &mlsclient.ReInitProposalRequest{StateId: bob.state, CipherSuite: newSuite, GroupId: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	cr, err = alice.rpc.ReInitCommit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByReference: [][]byte{prop.Proposal}})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := alice.rpc.HandlePendingReInitCommit(ctx, &mlsclient.HandlePendingCommitRequest{StateId: alice.state})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := bob.rpc.HandleReInitCommit(ctx, &mlsclient.HandleCommitRequest{StateId: bob.state, Proposal: [][]byte{prop.Proposal}, Commit: cr.Commit})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ra.EpochAuthenticator, rb.EpochAuthenticator) {
		t.Fatal("members disagree on the epoch of the ReInit commit")
	}
	if _, err := alice.rpc.Protect(ctx, &mlsclient.ProtectRequest{StateId: alice.state, Plaintext: []byte("x")}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Protect in a group closed by ReInit: got %v, want FailedPrecondition", err)
	}
	wr, err := alice.rpc.ReInitWelcome(ctx, &mlsclient.ReInitWelcomeRequest{ReinitId: ra.ReinitId, KeyPackage: [][]byte{rb.KeyPackage}, ExternalTree: true})
	if err != nil {
		t.Fatal(err)
	}
	alice.state = wr.StateId
	hr, err := bob.rpc.HandleReInitWelcome(ctx, &mlsclient.HandleReInitWelcomeRequest{ReinitId: rb.ReinitId, Welcome: wr.Welcome, RatchetTree: wr.RatchetTree})
	if err != nil {
		t.Fatal(err)
	}
	bob.state = hr.StateId
	if !bytes.Equal(hr.EpochAuthenticator, wr.EpochAuthenticator) {
		t.Fatal("members disagree on the successor's epoch")
	}
	exchange(ctx, t, bob, alice, "in the new group", "")

	gi, err := alice.rpc.GroupInfo(ctx, &mlsclient.GroupInfoRequest{StateId: alice.state})
	if err != nil {
		t.Fatal(err)
	}
	np, err := carol.rpc.NewMemberAddProposal(ctx, &mlsclient.NewMemberAddProposalRequest{GroupInfo: gi.GroupInfo, Identity: []byte("carol")})
	if err != nil {
		t.Fatal(err)
	}
	cr, err = alice.rpc.Commit(ctx, &mlsclient.CommitRequest{StateId: alice.state, ByReference: [][]byte{np.Proposal}})
	if err != nil {
		t.Fatal(err)
	}
	auth := applyPending(ctx, t, alice)
	handleCommit(ctx, t, bob, cr.Commit, auth, np.Proposal)
	jc, err := carol.rpc.JoinGroup(ctx, &mlsclient.JoinGroupRequest{TransactionId: np.TransactionId, Welcome: cr.Welcome, Identity: []byte("carol")})
	if err != nil {
		t.Fatal(err)
	}
	carol.state = jc.StateId
	if !bytes.Equal(jc.EpochAuthenticator, auth) {
		t.Fatal("carol disagrees on the epoch after her new-member proposal was committed")
	}
	exchange(ctx, t, carol, alice, "hello", "")
}
