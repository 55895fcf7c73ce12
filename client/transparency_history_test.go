package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"sotto/client/conversation"
	"sotto/client/keylog"
	"sotto/relay"
	"sotto/relay/blobstore"
)

// withBlobs gives a key transparency relay blob storage (for history
// transfer at link time).
func withBlobs(t *testing.T) func(*relay.Config) {
	return func(cfg *relay.Config) {
		dir := t.TempDir()
		idx, err := blobstore.Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		cfg.Blobs = relay.BlobConfig{Index: idx, Dir: dir}
	}
}

// TestLinkedDeviceKeepsBindingRule: alice verified bob's new key (his
// second leaf) after he re-enrolled, then links a phone with history. The
// relay rolls bob back to his old key, proven by his old, superseded leaf:
// the phone refuses it (stale-binding) as alice's laptop would, because
// the history carried the newest leaf alice verified for bob.
func TestLinkedDeviceKeepsBindingRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t, withBlobs(t))
	code := r.code(t, 5, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, _ := r.enroll(t, code, "bob", false)
	old := bob.IdentityKey()
	if err := alice.RefreshIdentity(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.Disconnect()
	bob2, _ := r.reenroll(t, code, "bob", false)
	if err := alice.RefreshIdentity(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if b, err := keylog.LoadBinding(ctx, alice.db, "bob"); err != nil || b == nil || b.Index != 2 || !sameKey(b.Key, bob2.IdentityKey()) {
		t.Fatalf("alice's binding for bob %+v %v", b, err)
	}

	phone, _ := linkWith(t, r.url, alice, ApproveOptions{History: true}, nil)
	if _, err := phone.ImportHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := keylog.LoadBinding(ctx, phone.db, "bob"); err != nil || b == nil || b.Index != 2 || !sameKey(b.Key, bob2.IdentityKey()) {
		t.Fatalf("the phone's binding for bob %+v %v", b, err)
	}

	r.serveOldLeaf(t, "bob", old)
	if err := phone.RefreshIdentity(ctx, "bob"); !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("the phone is served bob's superseded key: %v", err)
	}
	if got := alarmsOf(t, phone); len(got) != 1 || got[0].Kind != AlarmStaleBinding || got[0].User != "bob" || got[0].LeafIndex != 1 {
		t.Fatalf("the phone's alarms %+v", got)
	}
	if id, err := loadIdentity(ctx, phone.db, "bob"); err != nil || id == nil || !sameKey(id.Key, bob2.IdentityKey()) || id.Changed || !id.Verified {
		t.Fatalf("bob's identity on the phone: %+v %v", id, err)
	}
}

// TestHistoryImportBindingsOnlyForward: a binding in a history export
// moves this device's record forward, never back, and never replaces the
// key of a leaf it verified itself.
func TestHistoryImportBindingsOnlyForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 1, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	k1, k2, k3 := fakeIdentity(t), fakeIdentity(t), fakeIdentity(t)
	if err := keylog.StoreBinding(ctx, alice.db, "zed", keylog.BoundRecord{Index: 5, Key: k1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bound      keylog.BoundRecord
		wantIndex  uint64
		wantKey    []byte
		importedAs string
	}{
		{keylog.BoundRecord{Index: 3, Key: k2}, 5, k1, "an older leaf"},
		{keylog.BoundRecord{Index: 5, Key: k2}, 5, k1, "the same leaf with another key"},
		{keylog.BoundRecord{Index: 8, Key: k3}, 8, k3, "a newer leaf"},
		{keylog.BoundRecord{Index: 6, Key: k1}, 8, k3, "an older leaf after a newer one"},
	} {
		b := &conversation.HistoryBundle{Contacts: []conversation.HistoryContact{{User: "zed", Key: k1, Bound: binding(&tc.bound)}}}
		if _, err := alice.importHistory(ctx, b); err != nil {
			t.Fatalf("%s: %v", tc.importedAs, err)
		}
		got, err := keylog.LoadBinding(ctx, alice.db, "zed")
		if err != nil || got == nil || got.Index != tc.wantIndex || !sameKey(got.Key, tc.wantKey) {
			t.Fatalf("%s: stored binding %+v %v, want leaf %d", tc.importedAs, got, err, tc.wantIndex)
		}
	}
}
