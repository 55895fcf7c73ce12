package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/groups"
	"sotto/client/transport"
	"sotto/wire"
)

// countingRelay is the real connection, counting the fetches.
type countingRelay struct {
	*transport.Conn
	fetches atomic.Int64
}

func (c *countingRelay) GroupFetch(ctx context.Context, limit uint32) (*wire.GroupFetchResponse, error) {
	c.fetches.Add(1)
	return c.Conn.GroupFetch(ctx, limit)
}

// countingManager is u's group manager over a countingRelay (the same
// store).
func countingManager(t *testing.T, u *groupUser) (*groups.Manager, *countingRelay) {
	t.Helper()
	conn, err := u.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	self, err := u.c.groupSelf(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingRelay{Conn: conn}
	return groups.New(func() (groups.Relay, error) { return cr, nil }, u.c.db, self, groups.Options{}), cr
}

// A watching member takes in the messages the relay's pushes carry
// without fetching them, each once and in order; so does the sender for
// its own; a watch that ends before its acknowledgements went out
// leaves the messages on the relay, and the next sync drops them as
// repeats: nothing shown twice, nothing lost.
func TestGroupWatchTakesPushedMessages(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	id, err := alice.g.Create(ctx, "team", "bob")
	if err != nil {
		t.Fatal(err)
	}
	bm, br := countingManager(t, bob)
	if _, err := bm.Sync(ctx); err != nil { // the Welcome
		t.Fatal(err)
	}
	am, ar := countingManager(t, alice)
	if _, err := am.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	watch := func(m *groups.Manager, got chan<- groups.Message) (stop func() error) {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- m.Watch(wctx, func(ms []groups.Message) {
				for _, msg := range ms {
					got <- msg
				}
			})
		}()
		return func() error { cancel(); return <-done }
	}
	got := make(chan groups.Message, 100)
	stopBob := watch(bm, got)
	stopAlice := watch(am, make(chan groups.Message, 100))
	const n = 30
	wait := func(i int) {
		t.Helper()
		select {
		case m := <-got:
			if want := fmt.Sprintf("m%d", i); m.Text != want || m.From != "alice" {
				t.Fatalf("message %d: watched %q from %s, want %q", i, m.Text, m.From, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d messages arrived", i, n)
		}
	}
	// The first message: the watches learn where they are, with a fetch
	// each after the one they start with: the wake-up of alice's commit
	// (a plain one) was waiting for bob, and alice, who fetched nothing
	// since her own commit, does not know the seq before her m0.
	if _, err := am.Send(ctx, id, "m0"); err != nil {
		t.Fatal(err)
	}
	wait(0)
	for deadline := time.Now().Add(30 * time.Second); br.fetches.Load() < 3 || ar.fetches.Load() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fetches while learning: bob %d, alice %d, want 3 each", br.fetches.Load(), ar.fetches.Load())
		}
	}
	bFetches, aFetches := br.fetches.Load(), ar.fetches.Load()
	for i := 1; i < n; i++ {
		if _, err := am.Send(ctx, id, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < n; i++ {
		wait(i)
	}
	// Then the pushes carried the rest: bob's whole, alice's own
	// without content.
	if f := br.fetches.Load() - bFetches; f != 0 {
		t.Fatalf("bob fetched %d times for messages the pushes carried", f)
	}
	if f := ar.fetches.Load() - aFetches; f != 0 {
		t.Fatalf("alice fetched %d times for her own messages", f)
	}
	// A commit is a plain wake-up: bob fetches it, then messages after
	// it come pushed again.
	if err := am.Update(ctx, id); err != nil {
		t.Fatal(err)
	}
	ai, err := am.Info(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		bi, err := bm.Info(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if bi.Epoch == ai.Epoch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's watch did not take in the commit: epoch %d, want %d", bi.Epoch, ai.Epoch)
		}
	}
	if _, err := am.Send(ctx, id, "after the commit"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Text != "after the commit" {
			t.Fatalf("watched %q after the commit", m.Text)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the message after the commit did not arrive")
	}
	for _, stop := range []func() error{stopBob, stopAlice} {
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("watch ended with %v", err)
		}
	}
	bi, err := bm.Info(ctx, id)
	if err != nil || bi.Epoch != ai.Epoch || ai.Epoch < 2 {
		t.Fatalf("bob at %+v, alice at epoch %d (%v)", bi, ai.Epoch, err)
	}
	// Whatever the relay still holds for bob is a repeat.
	if again := bob.sync(t); len(again) != 0 {
		t.Fatalf("the sync after the watch brought %d messages again", len(again))
	}
	kept, err := bob.g.Messages(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != n+1 {
		t.Fatalf("bob kept %d messages, want %d", len(kept), n)
	}
	for i, m := range kept[:n] {
		if m.Text != fmt.Sprintf("m%d", i) {
			t.Fatalf("kept %d: %q", i, m.Text)
		}
	}
}
