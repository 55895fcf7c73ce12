package client

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"sotto/client/store"
	"sotto/signal/session"
	"sotto/wire"
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

// TestKeyTransparencyBindingRule: the newest proven leaf per user. An older
// leaf binding another key is refused, and so is the same leaf with another
// key (two histories); the same key under an older leaf and a newer leaf
// with another key pass. A leaf proven inside a transaction that rolls
// back is remembered once the alarms are flushed.
func TestKeyTransparencyBindingRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 1, time.Hour)
	alice, aev := r.enroll(t, code, "alice", false)
	k1, k2, k3 := fakeIdentity(t), fakeIdentity(t), fakeIdentity(t)
	check := func(index uint64, key []byte) error {
		return alice.checkBinding(ctx, alice.db, "zed", key, &wire.TransparencyProof{LeafIndex: index})
	}
	stored := func(index uint64, key []byte) {
		t.Helper()
		b, err := loadBinding(ctx, alice.db, "zed")
		if err != nil || b == nil || b.Index != index || !sameKey(b.Key, key) {
			t.Fatalf("stored binding %+v %v, want %d", b, err, index)
		}
	}
	if err := check(5, k1); err != nil {
		t.Fatal(err)
	}
	stored(5, k1)
	if err := check(3, k1); err != nil { // the same key, an older leaf
		t.Fatal(err)
	}
	stored(5, k1)
	for _, i := range []uint64{4, 5} {
		if err := check(i, k2); !errors.Is(err, ErrKeyNotInLog) {
			t.Fatalf("leaf %d with another key: %v", i, err)
		}
		e := waitEvent(t, aev, EventTransparencyAlarm)
		var a *TransparencyAlarm
		if !errors.As(e.Err, &a) || a.Kind != AlarmStaleBinding || a.User != "zed" || a.LeafIndex != i {
			t.Fatalf("alarm %v", e.Err)
		}
	}
	stored(5, k1)
	// Proven in a transaction that then rolls back.
	errRollback := errors.New("rolled back")
	err := alice.db.Update(ctx, func(tx *store.Tx) error {
		if err := alice.checkBinding(ctx, tx, "zed", k2, &wire.TransparencyProof{LeafIndex: 9}); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if err := check(7, k3); !errors.Is(err, ErrKeyNotInLog) { // leaf 9 is known, if not stored yet
		t.Fatalf("leaf 7 after leaf 9: %v", err)
	}
	alice.flushAlarms(ctx)
	stored(9, k2)
	if err := check(10, k3); err != nil {
		t.Fatal(err)
	}
	stored(10, k3)
}

// TestKeyTransparencyBindingKeptWhileFlushing: a binding proven in a
// transaction that rolled back stays binding while flushAlarms stores it.
// The flush here waits for the store (held by an open transaction), and a
// check inside that transaction must still refuse an older leaf binding
// another key. Taken out of memory before the commit, the binding was
// nowhere for that while (TestKeyTransparencyBindingRule failed now and
// then under -race: a background flush had run in between).
func TestKeyTransparencyBindingKeptWhileFlushing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	alice, _ := r.enroll(t, r.code(t, 1, time.Hour), "alice", false)
	k1, k2 := fakeIdentity(t), fakeIdentity(t)
	rolledBack := errors.New("rolled back")
	if err := alice.db.Update(ctx, func(tx *store.Tx) error {
		if err := alice.checkBinding(ctx, tx, "zed", k1, &wire.TransparencyProof{LeafIndex: 9}); err != nil {
			return err
		}
		return rolledBack
	}); !errors.Is(err, rolledBack) {
		t.Fatal(err)
	}
	// An alarm to flush, so that the flush's start can be seen: it takes
	// the pending alarms first.
	alice.alarm(&TransparencyAlarm{Kind: AlarmStaleBinding, User: "someone", Detail: "test"})

	flushed := make(chan struct{})
	err := alice.db.Update(ctx, func(tx *store.Tx) error {
		go func() {
			defer close(flushed)
			alice.flushAlarms(ctx) // blocks on the store until this transaction ends
		}()
		for {
			alice.kt.mu.Lock()
			started := len(alice.kt.pending) == 0
			alice.kt.mu.Unlock()
			if started {
				break
			}
			runtime.Gosched()
		}
		if err := alice.checkBinding(ctx, tx, "zed", k2, &wire.TransparencyProof{LeafIndex: 7}); !errors.Is(err, ErrKeyNotInLog) {
			return fmt.Errorf("leaf 7 with another key while leaf 9 was being stored: %v", err)
		}
		return nil
	})
	<-flushed
	if err != nil {
		t.Fatal(err)
	}
	if b, err := loadBinding(ctx, alice.db, "zed"); err != nil || b == nil || b.Index != 9 || !sameKey(b.Key, k1) {
		t.Fatalf("stored binding %+v %v, want leaf 9", b, err)
	}
	alice.kt.mu.Lock()
	left := len(alice.kt.bound)
	alice.kt.mu.Unlock()
	if left != 0 {
		t.Errorf("%d bindings still waiting after the flush", left)
	}
}
