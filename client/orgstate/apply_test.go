package orgstate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/client/store"
	"sotto/wire"
)

// newStore is a real store bound to an organization whose key is
// returned, invited under policy version 2 and notice 10.
func newStore(t *testing.T) (*store.Store, ed25519.PrivateKey) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Create(ctx, filepath.Join(t.TempDir(), "s"), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := PinRoots(ctx, db, &Roots{OrgKey: pub, OrgName: "Acme", PolicyMin: 2, NoticeFloor: 10, Certificate: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	return db, priv
}

func sign(t *testing.T, priv ed25519.PrivateKey, kind wire.OrgDocumentKind, body proto.Message) *wire.OrgDocument {
	t.Helper()
	doc, err := org.Sign(priv, kind, body)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestApplyPolicyRules: a policy signed by the pinned key is applied and
// reported once; one older than the invitation's floor, an older one
// pushed after a newer one, and one signed by another key are refused
// and leave the policy in force as it was.
func TestApplyPolicyRules(t *testing.T) {
	ctx := context.Background()
	db, priv := newStore(t)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	apply := func(doc *wire.OrgDocument, synced bool) (Result, error) {
		return Apply(ctx, db, doc, synced, org.Enrollment{Username: "alice", DeviceID: 1}, now)
	}
	// Before any policy is in force, only the invitation's floor stops
	// an old one.
	if r, err := apply(sign(t, priv, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 1}), true); !errors.Is(err, org.ErrStale) || r.Outcome != Refused {
		t.Fatalf("a policy below the invitation's floor: %+v %v", r, err)
	}
	r, err := apply(sign(t, priv, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 5, CallsDisabled: true}), false)
	if err != nil || r.Outcome != Applied || r.Policy.GetVersion() != 5 {
		t.Fatalf("policy 5: %+v %v", r, err)
	}
	if r, err := apply(sign(t, priv, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 5, CallsDisabled: true}), false); err != nil || r.Outcome != Applied || r.Policy != nil {
		t.Fatalf("policy 5 again: %+v %v", r, err)
	}
	for name, doc := range map[string]*wire.OrgDocument{
		"below the floor":      sign(t, priv, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 1}),
		"a rollback":           sign(t, priv, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 4}),
		"signed by a stranger": sign(t, other, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 9}),
	} {
		if r, err := apply(doc, false); err == nil || r.Outcome != Refused {
			t.Errorf("%s: %+v %v", name, r, err)
		}
	}
	if p := PolicyIn(ctx, db); p.GetVersion() != 5 || p.CallsAllowed() {
		t.Fatalf("policy in force: %v", p)
	}
	if v, err := PolicyVersion(ctx, db); err != nil || v != 5 {
		t.Fatalf("policy version %d %v", v, err)
	}
}

// TestApplyNoticeFloor: a notice at or below the invitation's floor is a
// replay into a new member's mailbox and refused; a newer one is kept
// once.
func TestApplyNoticeFloor(t *testing.T) {
	ctx := context.Background()
	db, priv := newStore(t)
	apply := func(seq uint64) (Result, error) {
		doc := sign(t, priv, wire.OrgDocumentKind_ORG_NOTICE, &org.Notice{Seq: seq, IssuedMs: time.Now().UnixMilli(), Text: "hello"})
		return Apply(ctx, db, doc, false, org.Enrollment{}, time.Now())
	}
	if r, err := apply(10); !errors.Is(err, org.ErrStale) || r.Outcome != Refused {
		t.Fatalf("notice at the floor: %+v %v", r, err)
	}
	if r, err := apply(11); err != nil || r.Notice == nil || r.Notice.Seq != 11 {
		t.Fatalf("new notice: %+v %v", r, err)
	}
	if r, err := apply(11); err != nil || r.Notice != nil {
		t.Fatalf("the same notice again: %+v %v", r, err)
	}
	if ns, err := Notices(ctx, db); err != nil || len(ns) != 1 {
		t.Fatalf("notices: %v %v", ns, err)
	}
	if h, err := NoticeHigh(ctx, db); err != nil || h != 11 {
		t.Fatalf("notice high %d %v", h, err)
	}
}

// TestUnboundDeviceRefuses: a device bound to no organization refuses
// every document.
func TestUnboundDeviceRefuses(t *testing.T) {
	ctx := context.Background()
	db, err := store.Create(ctx, filepath.Join(t.TempDir(), "s"), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	doc := sign(t, priv, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 1})
	if r, err := Apply(ctx, db, doc, false, org.Enrollment{}, time.Now()); !errors.Is(err, ErrNoOrg) || r.Outcome != Refused {
		t.Fatalf("%+v %v", r, err)
	}
}
