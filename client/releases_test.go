package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/internal/version"
	"sotto/wire"
)

func TestReleaseApprovalFromTheOrgOnly(t *testing.T) {
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	wkey, _, _ := ed25519.GenerateKey(rand.Reader)
	m1, m2 := sha256.Sum256([]byte("manifest 1")), sha256.Sum256([]byte("manifest 2"))

	if _, err := w.admin.ApproveRelease(ctx, "v1.1.0", [][sha256.Size]byte{m1}, wkey); err != nil {
		t.Fatal(err)
	}
	w.chat(t, bob, "after the first approval") // the approval came first
	a, err := bob.c.ReleaseApproval(ctx)
	if err != nil || a == nil || a.Version != "v1.1.0" || len(a.ManifestHashes) != 1 || string(a.ManifestHashes[0]) != string(m1[:]) {
		t.Fatalf("bob's approval: %v %v", a, err)
	}
	first := sign(t, w.r.org.Key, wire.OrgDocumentKind_ORG_RELEASE_APPROVAL, a)

	// The hostile relay pushes an approval it signed itself: rejected, the
	// org's stays in force.
	fake := &org.ReleaseApproval{Version: "v6.6.6", ManifestHashes: [][]byte{m2[:]}, WitnessKey: wkey, IssuedMs: a.IssuedMs + 1}
	w.inject(t, bob, forged(t, sign(t, w.forger, wire.OrgDocumentKind_ORG_RELEASE_APPROVAL, fake)))
	w.chat(t, bob, "after the forged approval")
	rejected(t, bob, 1)
	if a, _ := bob.c.ReleaseApproval(ctx); a.Version != "v1.1.0" {
		t.Fatalf("a forged approval replaced the org's: %s", a.Version)
	}

	// A newer approval replaces it; the relay replaying the older one
	// changes nothing.
	if _, err := w.admin.ApproveRelease(ctx, "v1.2.0", [][sha256.Size]byte{m2}, wkey); err != nil {
		t.Fatal(err)
	}
	w.chat(t, bob, "after the second approval")
	w.inject(t, bob, forged(t, first))
	w.chat(t, bob, "after the replay")
	if a, _ := bob.c.ReleaseApproval(ctx); a.Version != "v1.2.0" {
		t.Fatalf("the replayed approval is in force: %s", a.Version)
	}
	// A device enrolled later gets the approval in force at sync.
	carol := w.member(t, "carol")
	if a, err := carol.c.ReleaseApproval(ctx); err != nil || a == nil || a.Version != "v1.2.0" {
		t.Fatalf("carol's approval at sync: %v %v", a, err)
	}
}

func TestBuildReportsSignedByTheDevice(t *testing.T) {
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	h := sha256.Sum256([]byte("bob's manifest"))
	if err := bob.c.RecordInstalledBuild(ctx, version.Current().Version, h, 7); err != nil {
		t.Fatal(err)
	}
	bob.reopen(t, true) // the build reports itself on connecting
	reports, bad, err := w.admin.Builds(ctx)
	if err != nil || bad != 0 || len(reports) != 1 {
		t.Fatalf("builds: %v bad %d err %v", reports, bad, err)
	}
	if r := reports[0]; r.Username != "bob" || r.LeafIndex != 7 || r.ManifestHash != h || r.Version != version.Current().Version {
		t.Fatalf("bob's report: %+v", r)
	}
	// Only the org key may list them.
	if _, _, err := bob.c.Builds(ctx); err == nil {
		t.Fatal("a member without the org key listed the devices' builds")
	}

	// The relay rewrites bob's report to hide the build he runs: the
	// device's signature no longer verifies and the report is dropped.
	b, err := w.r.store.OrgDocument(ctx, wire.OrgDocumentKind_RELAY_BUILD, "bob/1")
	if err != nil {
		t.Fatal(err)
	}
	var stored wire.BuildReport
	if err := proto.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	stored.LeafIndex = 3
	b, _ = proto.Marshal(&stored)
	if err := w.r.store.PutOrgDocument(ctx, wire.OrgDocumentKind_RELAY_BUILD, "bob/1", b); err != nil {
		t.Fatal(err)
	}
	if reports, bad, err := w.admin.Builds(ctx); err != nil || bad != 1 || len(reports) != 0 {
		t.Fatalf("a rewritten report: %v bad %d err %v", reports, bad, err)
	}

	// A build the device did not install (another version running) is
	// not reported as that build.
	if err := bob.c.RecordInstalledBuild(ctx, "v9.9.9", h, 8); err != nil {
		t.Fatal(err)
	}
	bob.reopen(t, true)
	if reports, _, _ := w.admin.Builds(ctx); len(reports) != 0 {
		t.Fatalf("a build the device does not run was reported: %v", reports)
	}
}

func TestMinimumVersionStopsSendingNotReading(t *testing.T) {
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	w.chat(t, bob, "before the policy")
	bob.c.Close() // offline: a message waits for him
	if _, err := w.admin.Send(ctx, "bob", "waiting for you"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{MinClientVersion: "v99.0.0"}); err != nil {
		t.Fatal(err)
	}
	bob.reopen(t, true)
	for e := waitEvent(t, bob.events, EventMessage); e.Message.Text != "waiting for you"; e = waitEvent(t, bob.events, EventMessage) {
	}
	_, err := bob.c.Send(ctx, "alice", "hello")
	var tooOld *VersionTooOldError
	if !errors.Is(err, ErrUpdateRequired) || !errors.As(err, &tooOld) || tooOld.Minimum != "v99.0.0" {
		t.Fatalf("send below the minimum version: %v", err)
	}
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{MinClientVersion: "v0.0.0-alpha"}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bob.events, EventOrgPolicy)
	if _, err := bob.c.Send(ctx, "alice", "hello again"); err != nil {
		t.Fatalf("send at the minimum version: %v", err)
	}
}
