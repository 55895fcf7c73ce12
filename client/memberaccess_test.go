package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"sotto/client/org"
	"sotto/client/sealedsender"
	"sotto/client/transport"
	"sotto/wire"
)

// publishMemberAccess signs a member access document with priv and
// publishes it over conn.
func publishMemberAccess(ctx context.Context, conn *transport.Conn, priv ed25519.PrivateKey, version uint64) error {
	m := &wire.MemberAccess{Version: version, IssuedMs: time.Now().UnixMilli(), AccessKey: make([]byte, wire.AccessKeySize)}
	rand.Read(m.AccessKey)
	doc, err := org.Sign(priv, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, m)
	if err != nil {
		return err
	}
	_, err = conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgPublish{OrgPublish: &wire.OrgPublishRequest{Document: doc}}})
	return err
}

// TestSealedFirstMessageWithMemberAccess: with the organization's member
// access key, the first message to a contact (no profile key of theirs
// yet) goes sealed: no row at the relay names its sender, and the
// recipient still sees who wrote it.
func TestSealedFirstMessageWithMemberAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	// Only the org key can set it, and an old document cannot come back.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	if err := publishMemberAccess(ctx, conn, stranger, 1); transport.Code(err) != wire.ErrorCode_FORBIDDEN {
		t.Fatalf("member access signed by another key: %v, want FORBIDDEN", err)
	}
	if err := publishMemberAccess(ctx, conn, r.org.Key, 2); err != nil {
		t.Fatal(err)
	}
	if err := publishMemberAccess(ctx, conn, r.org.Key, 1); transport.Code(err) != wire.ErrorCode_BAD_REQUEST {
		t.Fatalf("older member access document: %v, want BAD_REQUEST", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for alice.memberAccessKey(ctx) == nil || bob.memberAccessKey(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatal("alice or bob never got the member access key")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The fan-out's envelopes (which name the publisher) are gone.
	r.waitMailboxEmpty(t)

	// A hostile relay handing alice a key of its own (to tell her sealed
	// sends from others') cannot: only an org-signed key is kept.
	kept := alice.memberAccessKey(ctx)
	forged, err := org.Sign(stranger, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, &wire.MemberAccess{Version: 9, AccessKey: make([]byte, wire.AccessKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.applyOrgDocument(ctx, forged, false); err == nil {
		t.Fatal("a member access key not signed by the org was applied")
	}
	if got := alice.memberAccessKey(ctx); string(got) != string(kept) {
		t.Fatal("a forged member access document replaced the org's key")
	}

	bob.Disconnect()
	if sealedToBob, _ := alice.SendsSealed(ctx, "bob"); sealedToBob {
		t.Fatal("alice already holds bob's profile key")
	}
	if _, err := alice.Send(ctx, "bob", "first, sealed"); err != nil {
		t.Fatal(err)
	}
	rows := r.mailboxRows(t)
	if len(rows) == 0 {
		t.Fatal("no row for the first message")
	}
	for _, row := range rows {
		if row.sender != "" || row.typ != wire.EnvelopeTypeSealed {
			t.Fatalf("the first message names its sender: sender %q type %d", row.sender, row.typ)
		}
	}
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bobEvents, EventMessage); e.Message.Text != "first, sealed" || e.Message.From != "alice" {
		t.Fatalf("bob got %+v", e.Message)
	}

	// A stale profile key of bob's (refused by the relay) is not the end:
	// the retry presents the member access key and still goes sealed.
	if err := alice.db.Put(ctx, sealedsender.Table, sealedsender.ContactKeyRow("bob"), bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "stale key, still sealed"); err != nil {
		t.Fatalf("send with a stale profile key and a member access key: %v", err)
	}
	for e := waitEvent(t, bobEvents, EventMessage); e.Message.Text != "stale key, still sealed"; e = waitEvent(t, bobEvents, EventMessage) {
	}
	if n, err := alice.SealedDowngrades(ctx); err != nil || n != 0 {
		t.Fatalf("downgrades: %d %v", n, err)
	}
}
