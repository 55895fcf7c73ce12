package conversation

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/content"
	"sotto/client/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	db, err := store.Create(context.Background(), filepath.Join(t.TempDir(), "s"), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func msgID(b byte) []byte { return bytes.Repeat([]byte{b}, content.IDSize) }

// TestTimerNewestChangeWins: an older change (by its author's clock) that
// arrives late does not undo a newer one.
func TestTimerNewestChangeWins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStore(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	if err := SetTimer(ctx, db, "bob", 60, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := SetTimer(ctx, db, "bob", 3600, t0); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTimer(ctx, db, "bob")
	if err != nil || got.Seconds != 60 {
		t.Fatalf("timer %+v %v, want the newer 60 s", got, err)
	}
	if err := SetTimer(ctx, db, "bob", 0, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadTimer(ctx, db, "bob"); got.Seconds != 0 {
		t.Fatalf("timer %+v, want off", got)
	}
	if got, err := LoadTimer(ctx, db, "carol"); err != nil || got != (TimerRecord{}) {
		t.Fatalf("unset timer %+v %v", got, err)
	}
}

func TestCheckTimer(t *testing.T) {
	t.Parallel()
	for d, ok := range map[time.Duration]bool{0: true, time.Second: true, content.MaxTimerSeconds * time.Second: true,
		-time.Second: false, time.Millisecond: false, (content.MaxTimerSeconds + 1) * time.Second: false} {
		if err := CheckTimer(d); (err == nil) != ok || (err != nil && !errors.Is(err, ErrBadTimer)) {
			t.Errorf("CheckTimer(%v) = %v", d, err)
		}
	}
}

// TestExpireDeletesOnlyDueMessages: the sweep deletes the due message and
// its entry, calls each for it, and leaves the others.
func TestExpireDeletesOnlyDueMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStore(t)
	now := time.UnixMilli(1_700_000_000_000)
	soon := &Message{ID: msgID(1), Peer: "bob", From: "bob", Text: "soon"}
	later := &Message{ID: msgID(2), Peer: "bob", From: "alice", Text: "later"}
	never := &Message{ID: msgID(3), Peer: "bob", From: "bob", Text: "never"}
	SetExpiry(soon, 10, now)
	SetExpiry(later, 3600, now)
	SetExpiry(never, 0, now)
	if !never.ExpiresAt.IsZero() || soon.ExpireSeconds != 10 || !soon.ExpiresAt.Equal(now.Add(10*time.Second)) {
		t.Fatalf("expiry %v %v", never.ExpiresAt, soon.ExpiresAt)
	}
	for _, m := range []*Message{soon, later, never} {
		if _, err := Append(ctx, db, m.From, m); err != nil {
			t.Fatal(err)
		}
		if err := ScheduleExpiry(ctx, db, m.From, m); err != nil {
			t.Fatal(err)
		}
	}
	if due, err := AnyDue(ctx, db, now); err != nil || due {
		t.Fatalf("due at once: %v %v", due, err)
	}
	at := now.Add(time.Minute)
	if due, err := AnyDue(ctx, db, at); err != nil || !due {
		t.Fatalf("not due after a minute: %v %v", due, err)
	}
	var seen []string
	var gone []*Message
	err := db.Update(ctx, func(tx *store.Tx) error {
		seen = nil
		var err error
		gone, _, err = Expire(ctx, tx, at, func(peer, author string, id []byte) error {
			seen = append(seen, peer+"/"+author+"/"+string(id))
			return nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || !bytes.Equal(gone[0].ID, soon.ID) || gone[0].From != "bob" || len(seen) != 1 {
		t.Fatalf("gone %+v, seen %q", gone, seen)
	}
	if _, err := Load(ctx, db, "bob", "bob", soon.ID); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("the due message is still there: %v", err)
	}
	hist, err := History(ctx, db, "bob", 0)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %d %v", len(hist), err)
	}
	if due, _ := AnyDue(ctx, db, at); due {
		t.Fatal("the swept entry is still due")
	}
}
