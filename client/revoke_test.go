package client

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/sealedsender"
	"sotto/relay/sqlitestore"
	"sotto/signal/sealed"
)

// mustEventually polls cond for up to 20 s.
func mustEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func revokedOn(ctx context.Context, c *Client, user string) bool {
	ok, err := c.Revoked(ctx, user)
	return err == nil && ok
}

// TestRevocationSyncedToLinkedDevices: alice, with a linked phone, revokes
// mallory on her first device. The phone learns it, keeps the new key
// from mallory when it writes to her, uploads its key with the refusal of
// the member key; an upload of the older key is refused by the relay; a
// tablet linked afterwards gets the revocation in the link approval. Then
// alice gives mallory her access back.
func TestRevocationSyncedToLinkedDevices(t *testing.T) {
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 3, time.Hour)
	alice, aliceEv := r.enrollSealed(t, code, "alice", true)
	mallory, malloryEv := r.enrollSealed(t, code, "mallory", true)
	bob, bobEv := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, mallory, aliceEv, malloryEv)
	exchangeProfileKeys(t, alice, bob, aliceEv, bobEv)
	oldKey, _ := alice.ProfileKey(ctx)
	phone, _ := linkPhone(t, r.testRelay, alice)

	if err := alice.RevokeContact(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	newKey, _ := alice.ProfileKey(ctx)
	mustEventually(t, "the phone never learned of mallory's revocation", func() bool {
		k, _ := phone.ProfileKey(ctx)
		return revokedOn(ctx, phone, "mallory") && bytes.Equal(k, newKey)
	})

	// The phone writes to mallory: no profile key goes with it.
	if _, err := phone.Send(ctx, "mallory", "from alice's phone"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, malloryEv, EventMessage)
	if k, err := mallory.db.Get(ctx, sealedsender.Table, sealedsender.ContactKeyRow("alice")); err != nil || !bytes.Equal(k, oldKey) {
		t.Fatalf("mallory holds another key of alice's than the old one (%v)", err)
	}
	// The phone uploads its key (as on every connect): the refusal holds.
	pconn, err := phone.connection()
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.uploadOwnAccessKey(ctx, pconn); err != nil {
		t.Fatal(err)
	}
	// A device that had not heard of the revocation uploads the older
	// key: refused.
	oldAK, _ := sealed.DeriveAccessKey(oldKey)
	if err := pconn.SetAccessKeyEpoch(ctx, oldAK, false, 0); err == nil {
		t.Fatal("the relay let an older access key replace the revocation's")
	}
	if _, err := mallory.Send(ctx, "alice", "let me in"); !errors.Is(err, ErrSealedRefused) {
		t.Fatalf("mallory's sealed send after the revocation: %v", err)
	}

	// A tablet linked after the revocation keeps it from the start.
	tablet, _ := linkPhone(t, r.testRelay, alice)
	if k, _ := tablet.ProfileKey(ctx); !revokedOn(ctx, tablet, "mallory") || !bytes.Equal(k, newKey) {
		t.Fatal("the tablet linked after the revocation does not hold it")
	}
	if _, err := tablet.Send(ctx, "mallory", "from alice's tablet"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, malloryEv, EventMessage)
	if k, _ := mallory.db.Get(ctx, sealedsender.Table, sealedsender.ContactKeyRow("alice")); !bytes.Equal(k, oldKey) {
		t.Fatal("the tablet gave mallory alice's new key")
	}
	if _, err := mallory.Send(ctx, "alice", "let me in again"); !errors.Is(err, ErrSealedRefused) {
		t.Fatalf("mallory's sealed send after the tablet's: %v", err)
	}
	// Bob, not revoked, gets the new key from the phone and reaches alice
	// sealed.
	if _, err := phone.Send(ctx, "bob", "new key"); err != nil {
		t.Fatal(err)
	}
	mustEventually(t, "bob never learned alice's new key", func() bool {
		k, _ := bob.db.Get(ctx, sealedsender.Table, sealedsender.ContactKeyRow("alice"))
		return bytes.Equal(k, newKey)
	})
	if _, err := bob.Send(ctx, "alice", "sealed still"); err != nil {
		t.Fatal(err)
	}

	// Access given back, on the phone: every device learns it, mallory
	// gets the key with the next message and is let in.
	if err := phone.RestoreContact(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	mustEventually(t, "alice's first device never learned of the restoration", func() bool { return !revokedOn(ctx, alice, "mallory") })
	if _, err := alice.Send(ctx, "mallory", "welcome back"); err != nil {
		t.Fatal(err)
	}
	mustEventually(t, "mallory never got alice's new key", func() bool {
		k, _ := mallory.db.Get(ctx, sealedsender.Table, sealedsender.ContactKeyRow("alice"))
		return bytes.Equal(k, newKey)
	})
	if _, err := mallory.Send(ctx, "alice", "thanks"); err != nil {
		t.Fatalf("mallory, restored, is still refused: %v", err)
	}
}

// TestRevocationRepairsRestoredKey: the relay's operator puts back the
// access key row of before the revocation; mallory's sealed message gets
// through once, and alice's device, seeing a sealed message from a
// revoked contact, uploads its key again: mallory's next one is refused.
func TestRevocationRepairsRestoredKey(t *testing.T) {
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEv := r.enrollSealed(t, code, "alice", true)
	mallory, malloryEv := r.enrollSealed(t, code, "mallory", true)
	exchangeProfileKeys(t, alice, mallory, aliceEv, malloryEv)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, sqlitestore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var before []byte
	if err := db.QueryRowContext(ctx, `SELECT key FROM access_keys WHERE account = ?`, alice.acct.AccountID).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := alice.RevokeContact(ctx, "mallory"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE access_keys SET key = ? WHERE account = ?`, before, alice.acct.AccountID); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Send(ctx, "alice", "through the restored key"); err != nil {
		t.Fatalf("the restored row did not let mallory through (the attack is not mounted): %v", err)
	}
	waitEvent(t, aliceEv, EventMessage)
	mustEventually(t, "mallory's sealed sends are never refused again", func() bool {
		_, err := mallory.Send(ctx, "alice", "again")
		return errors.Is(err, ErrSealedRefused)
	})
}
