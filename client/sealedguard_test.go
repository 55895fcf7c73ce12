package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"sotto/client/org"
	"sotto/client/sealedsender"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// corruptAccessKey overwrites user's access_keys row in the relay's SQLite
// file behind the relay's back, as an attacker with the disk would.
func (r *sealedRelay) corruptAccessKey(t *testing.T, acct []byte) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, sqlitestore.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	junk := make([]byte, 16)
	rand.Read(junk)
	res, err := db.Exec(`UPDATE access_keys SET key = ? WHERE account = ?`, junk, acct)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("access_keys rows changed: %d %v", n, err)
	}
}

// waitMailboxEmpty waits for receipts still on their way to be delivered.
func (r *sealedRelay) waitMailboxEmpty(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(r.mailboxRows(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("mailbox never emptied")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSealedAccessKeyRowCorrupted is the downgrade attack of issue 12: one
// corrupted access_keys row at the relay used to make every later message
// to that account go out naming its sender, silently and for good (the
// recipient never uploaded its key again). Now the send is refused with
// ErrSealedRefused (nothing goes out named), and once the recipient
// reconnects it has re-uploaded its key and sends go sealed again.
func TestSealedAccessKeyRowCorrupted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)
	bob.Disconnect()
	r.waitMailboxEmpty(t)

	r.corruptAccessKey(t, bob.acct.AccountID)
	_, namedBefore := r.sendRows(t)
	if _, err := alice.Send(ctx, "bob", "while corrupted"); !errors.Is(err, ErrSealedRefused) {
		t.Fatalf("send to an account whose access key the relay altered: %v, want ErrSealedRefused", err)
	}
	if _, named := r.sendRows(t); named != namedBefore {
		t.Fatalf("a message went out naming its sender: named sends %d -> %d", namedBefore, named)
	}
	for _, row := range r.mailboxRows(t) {
		if row.sender != "" {
			t.Fatalf("a row names a sender: %+v", row)
		}
	}

	// Bob reconnects (not receiving, so that the row stays to be read):
	// his key is set right and alice's next send goes sealed.
	if err := bob.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "sealed again"); err != nil {
		t.Fatalf("send after bob reconnected: %v", err)
	}
	if sealedRow(t, r, bob, "sealed again") == nil {
		t.Fatal("no sealed row for the send after bob reconnected")
	}
	if _, named := r.sendRows(t); named != namedBefore {
		t.Fatalf("a message went out naming its sender: named sends %d -> %d", namedBefore, named)
	}
	if n, err := alice.SealedDowngrades(ctx); err != nil || n != 0 {
		t.Fatalf("downgrades: %d %v", n, err)
	}
}

// TestSealedRefusedNotSentNamed: a refused sealed send is not sent naming
// its sender by default, nor when the user allows the fallback but the
// organization's policy is sealed only.
func TestSealedRefusedNotSentNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)
	r.waitMailboxEmpty(t)

	// Alice's key for bob no longer matches what the relay holds.
	if err := alice.db.Put(ctx, sealedsender.Table, sealedsender.ContactKeyRow("bob"), bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	_, namedBefore := r.sendRows(t)
	if _, err := alice.Send(ctx, "bob", "default"); !errors.Is(err, ErrSealedRefused) {
		t.Fatalf("refused sealed send, fallback off: %v, want ErrSealedRefused", err)
	}

	// The user allows the fallback; the organization forbids it.
	if err := alice.SetSettings(ctx, Settings{ReadReceipts: true, SealedFallback: true}); err != nil {
		t.Fatal(err)
	}
	doc, err := org.Sign(r.org.Key, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 100, IssuedMs: time.Now().UnixMilli(), SealedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.applyOrgDocument(ctx, doc, false); err != nil {
		t.Fatal(err)
	}
	if p, err := alice.OrgPolicy(ctx); err != nil || !p.GetSealedOnly() {
		t.Fatalf("policy in force: %v %v", p, err)
	}
	if _, err := alice.Send(ctx, "bob", "sealed only"); !errors.Is(err, ErrSealedRefused) {
		t.Fatalf("refused sealed send under a sealed-only policy: %v, want ErrSealedRefused", err)
	}
	if _, named := r.sendRows(t); named != namedBefore {
		t.Fatalf("a message went out naming its sender: named sends %d -> %d", namedBefore, named)
	}
	if n, err := alice.SealedDowngrades(ctx); err != nil || n != 0 {
		t.Fatalf("downgrades: %d %v", n, err)
	}
}

// TestProfileKeyMadeOnce: sends racing to make the profile key (a
// delivery receipt and a message) all get the same key. Two keys would
// mean an access key at the relay that does not match what a contact
// learned, and that contact's sealed sends refused.
func TestProfileKeyMadeOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	alice, _ := r.enrollSealed(t, r.code(t, 1, time.Hour), "alice", false)
	const n = 32
	keys := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			keys[i], errs[i] = alice.ProfileKey(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("two profile keys made: %x and %x", keys[0][:4], keys[i][:4])
		}
	}
}
