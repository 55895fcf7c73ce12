package client

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"sotto/signal/session"
)

// drainEvents empties events of what was already reported.
func drainEvents(events chan Event) {
	for {
		select {
		case <-events:
		default:
			return
		}
	}
}

// TestKeyChangeLearnedBySendRollbackRefused: alice learns bob's new key on
// the send path (a send that needs a new session is served his new key,
// proven by his new leaf, and stops at the changed key), and accepts it.
// The send's transaction rolls back, but the newest leaf proven for bob
// must still be remembered: when the relay then serves his old key with
// the proof of his old leaf and his old device writes, the message is a
// superseded key served again (stale-binding), refused.
func TestKeyChangeLearnedBySendRollbackRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev, bob := knownContact(t, r, code)
	old := bob.IdentityKey()
	bob.Disconnect()
	bob2, _ := r.reenroll(t, code, "bob", false)

	alice.cryptoMu.Lock()
	err := alice.sigStores(alice.db).deleteSession(ctx, session.Address{Name: "bob", DeviceID: 1})
	alice.cryptoMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var ice *IdentityChangedError
	if _, err := alice.Send(ctx, "bob", "hello?"); !errors.As(err, &ice) {
		t.Fatalf("send to bob's new key: %v", err)
	}
	if !sameKey(alice.mustIdentity(t, "bob"), bob2.IdentityKey()) {
		t.Fatal("alice did not record bob's new key")
	}
	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	drainEvents(aev)

	alice.Disconnect()
	swap := func(a, b string) {
		r.exec(t, func(tx *sql.Tx) error {
			for _, q := range [][2]string{{a, "tmp"}, {b, a}, {"tmp", b}} {
				if _, err := tx.Exec(`UPDATE accounts SET username = ? WHERE username = ?`, q[1], q[0]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	swap("bob", "bob-old")
	if err := bob.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Alice dropped her session with bob's old key when she accepted the
	// new one: the old device starts a new session with her.
	bob.cryptoMu.Lock()
	err = bob.sigStores(bob.db).deleteSession(ctx, session.Address{Name: "alice", DeviceID: alice.DeviceID()})
	bob.cryptoMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "it is still me"); err != nil {
		t.Fatal(err)
	}
	bob.Disconnect()
	swap("bob", "bob-old")
	r.serveOldLeaf(t, "bob", old)
	reconnectReceiving(t, alice)
	refusedChange(t, aev, "bob", AlarmStaleBinding)
	keptKey(t, alice, aev, "bob", bob2.IdentityKey())
	r.waitInbox(t, "alice", 0)
	if h, err := alice.History(ctx, "bob", 0); err != nil || len(h) != 1 {
		t.Fatalf("history with bob: %+v %v", h, err)
	}
}
