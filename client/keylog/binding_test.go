package keylog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"sotto/client/store"
	"sotto/wire"
)

// newTestLog opens a real store in a temporary folder and a Log over it
// whose alarms arrive on the returned channel.
func newTestLog(t *testing.T, user string) (*Log, *store.Store, chan *Alarm) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Create(ctx, filepath.Join(t.TempDir(), "s"), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	alarms := make(chan *Alarm, 64)
	own := randomKey(t)
	l := New(Config{
		Store:       db,
		User:        user,
		IdentityKey: func() []byte { return own },
		Certify:     func(context.Context, KV, string, []byte, []byte) error { return nil },
		OnAlarm:     func(a *Alarm) { alarms <- a },
	})
	return l, db, alarms
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 33)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func waitAlarm(t *testing.T, alarms chan *Alarm) *Alarm {
	t.Helper()
	select { // OnAlarm runs before the call that raised it returns
	case a := <-alarms:
		return a
	default:
		t.Fatal("no alarm")
		return nil
	}
}

// TestBindingRule: the newest proven leaf per user. An older leaf binding
// another key is refused, and so is the same leaf with another key (two
// histories); the same key under an older leaf and a newer leaf with
// another key pass. A leaf proven inside a transaction that rolls back is
// remembered once the alarms are flushed.
func TestBindingRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db, alarms := newTestLog(t, "alice")
	k1, k2, k3 := randomKey(t), randomKey(t), randomKey(t)
	check := func(index uint64, key []byte) error {
		return l.checkBinding(ctx, db, "zed", key, &wire.TransparencyProof{LeafIndex: index})
	}
	stored := func(index uint64, key []byte) {
		t.Helper()
		b, err := LoadBinding(ctx, db, "zed")
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
		a := waitAlarm(t, alarms)
		if a.Kind != AlarmStaleBinding || a.User != "zed" || a.LeafIndex != i {
			t.Fatalf("alarm %+v", a)
		}
	}
	stored(5, k1)
	// Proven in a transaction that then rolls back.
	errRollback := errors.New("rolled back")
	err := db.Update(ctx, func(tx *store.Tx) error {
		if err := l.checkBinding(ctx, tx, "zed", k2, &wire.TransparencyProof{LeafIndex: 9}); err != nil {
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
	l.Flush(ctx)
	stored(9, k2)
	if err := check(10, k3); err != nil {
		t.Fatal(err)
	}
	stored(10, k3)
}

// TestBindingKeptWhileFlushing: a binding proven in a transaction that
// rolled back stays binding while Flush stores it. The flush here waits
// for the store (held by an open transaction), and a check inside that
// transaction must still refuse an older leaf binding another key. Taken
// out of memory before the commit, the binding was nowhere for that while
// (TestBindingRule failed now and then under -race: a background flush had
// run in between).
func TestBindingKeptWhileFlushing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db, _ := newTestLog(t, "alice")
	k1, k2 := randomKey(t), randomKey(t)
	rolledBack := errors.New("rolled back")
	if err := db.Update(ctx, func(tx *store.Tx) error {
		if err := l.checkBinding(ctx, tx, "zed", k1, &wire.TransparencyProof{LeafIndex: 9}); err != nil {
			return err
		}
		return rolledBack
	}); !errors.Is(err, rolledBack) {
		t.Fatal(err)
	}
	// An alarm to flush, so that the flush's start can be seen: it takes
	// the pending alarms first.
	l.Raise(&Alarm{Kind: AlarmStaleBinding, User: "someone", Detail: "test"})

	flushed := make(chan struct{})
	err := db.Update(ctx, func(tx *store.Tx) error {
		go func() {
			defer close(flushed)
			l.Flush(ctx) // blocks on the store until this transaction ends
		}()
		for {
			l.mu.Lock()
			started := len(l.pending) == 0
			l.mu.Unlock()
			if started {
				break
			}
			runtime.Gosched()
		}
		if err := l.checkBinding(ctx, tx, "zed", k2, &wire.TransparencyProof{LeafIndex: 7}); !errors.Is(err, ErrKeyNotInLog) {
			return fmt.Errorf("leaf 7 with another key while leaf 9 was being stored: %v", err)
		}
		return nil
	})
	<-flushed
	if err != nil {
		t.Fatal(err)
	}
	if b, err := LoadBinding(ctx, db, "zed"); err != nil || b == nil || b.Index != 9 || !sameKey(b.Key, k1) {
		t.Fatalf("stored binding %+v %v, want leaf 9", b, err)
	}
	l.mu.Lock()
	left := len(l.bound)
	l.mu.Unlock()
	if left != 0 {
		t.Errorf("%d bindings still waiting after the flush", left)
	}
}
