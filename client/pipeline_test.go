package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// reopen closes c as a dying process would leave it (nothing more is
// processed) and opens its store again as a new process, connected with
// its receive loop and with events on a new channel.
func reopen(t *testing.T, c *Client) (*Client, chan Event) {
	t.Helper()
	ctx := context.Background()
	dir := c.db.Dir()
	c.Close()
	events := make(chan Event, 100)
	o := c.opts
	o.OnEvent = func(e Event) { events <- e }
	n, err := Open(ctx, dir, []byte("pw"), &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	reconnectReceiving(t, n)
	return n, events
}

// countEvents counts the events of kind already in events.
func countEvents(events chan Event, kind EventKind) int {
	n := 0
	for {
		select {
		case e := <-events:
			if e.Kind == kind {
				n++
			}
		default:
			return n
		}
	}
}

// TestFirstMessageDecryptedOnce: a first message from a new contact is
// checked against the key log before the receive transaction, so it is
// decrypted once (it used to be decrypted, rolled back for the lookup, and
// decrypted again). Authenticated and sealed first messages both.
func TestFirstMessageDecryptedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", false)
	carol, _ := r.enroll(t, code, "carol", false)
	var decrypts atomic.Int32
	alice.hooks.decrypted = func() { decrypts.Add(1) }
	if _, err := carol.Send(ctx, "alice", "first"); err != nil {
		t.Fatal(err)
	}
	reconnectReceiving(t, alice)
	e := waitEvent(t, aev, EventMessage)
	if e.Message.From != "carol" || e.Message.Text != "first" {
		t.Fatalf("alice got %+v", e.Message)
	}
	if n := decrypts.Load(); n != 1 {
		t.Fatalf("carol's first message was decrypted %d times, want 1", n)
	}
	if id, err := loadIdentity(ctx, alice.db, "carol"); err != nil || id == nil || !sameKey(id.Key, carol.IdentityKey()) {
		t.Fatalf("carol's identity at alice: %+v %v", id, err)
	}
	if a := alarmsOf(t, alice); len(a) != 0 {
		t.Fatalf("alarms %+v", a)
	}
	if _, err := carol.Send(ctx, "alice", "second"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aev, EventMessage)
	if n := decrypts.Load(); n != 2 {
		t.Fatalf("two messages took %d decryptions, want 2", n)
	}
}

// TestSealedMessageDecryptedOnce: a sealed message's outer layer is opened
// before the transaction (to learn and vet its sender), and its inner
// message is decrypted once, inside it.
func TestSealedMessageDecryptedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aev := r.enrollSealed(t, code, "alice", true)
	bob, bev := r.enrollSealed(t, code, "bob", true)
	var decrypts atomic.Int32
	bob.Disconnect()
	bob.hooks.decrypted = func() { decrypts.Add(1) }
	reconnectReceiving(t, bob)
	exchangeProfileKeys(t, alice, bob, aev, bev)
	before := decrypts.Load()
	if ok, err := alice.SendsSealed(ctx, "bob"); err != nil || !ok {
		t.Fatalf("alice does not send sealed to bob: %v %v", ok, err)
	}
	if _, err := alice.Send(ctx, "bob", "sealed"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bev, EventMessage); e.Message.Text != "sealed" || e.Message.From != "alice" {
		t.Fatalf("bob got %+v", e.Message)
	}
	if n := decrypts.Load() - before; n != 1 {
		t.Fatalf("a sealed message was decrypted %d times, want 1", n)
	}
}

// TestReceiveCrashBetweenCommitAndAck: the process dies after the message
// was stored and before the relay was told: the next process gets it again,
// recognizes it, acknowledges it and shows it no second time.
func TestReceiveCrashBetweenCommitAndAck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	carol, _ := r.enroll(t, code, "carol", false)
	var stopped atomic.Int32
	alice.hooks.afterCommit = func() bool { stopped.Add(1); return false }
	if _, err := carol.Send(ctx, "alice", "kept once"); err != nil {
		t.Fatal(err)
	}
	reconnectReceiving(t, alice)
	if stopped.Load() != 1 {
		t.Fatalf("the pipeline reached the ack %d times, want 1", stopped.Load())
	}
	if h, err := alice.History(ctx, "carol", 0); err != nil || len(h) != 1 {
		t.Fatalf("history before the crash: %+v %v", h, err)
	}
	r.waitInbox(t, "alice", 1) // not acknowledged

	alice2, aev := reopen(t, alice)
	r.waitInbox(t, "alice", 0) // the redelivery was acknowledged
	if n := countEvents(aev, EventMessage); n != 0 {
		t.Fatalf("the message was shown again after the restart (%d events)", n)
	}
	if n := countEvents(aev, EventError); n != 0 {
		t.Fatalf("%d error events for a redelivery", n)
	}
	h, err := alice2.History(ctx, "carol", 0)
	if err != nil || len(h) != 1 || h[0].Text != "kept once" {
		t.Fatalf("history after the restart: %+v %v", h, err)
	}
	// The session goes on.
	if _, err := carol.Send(ctx, "alice", "next"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, aev, EventMessage); e.Message.Text != "next" {
		t.Fatalf("alice got %+v", e.Message)
	}
}

var errCrash = errors.New("test: the process dies here")

// TestReceiveCrashBeforeCommit: the process dies inside the receive
// transaction: nothing was stored, the envelope stays queued, and the next
// process shows it once.
func TestReceiveCrashBeforeCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", false)
	carol, _ := r.enroll(t, code, "carol", false)
	var crashed atomic.Int32
	alice.hooks.beforeCommit = func() error { crashed.Add(1); return errCrash }
	if _, err := carol.Send(ctx, "alice", "not lost"); err != nil {
		t.Fatal(err)
	}
	reconnectReceiving(t, alice)
	if crashed.Load() != 1 {
		t.Fatalf("the transaction ran %d times, want 1", crashed.Load())
	}
	if n := countEvents(aev, EventMessage); n != 0 {
		t.Fatalf("%d messages shown from a rolled-back transaction", n)
	}
	noContact(t, alice, "carol")
	r.waitInbox(t, "alice", 1) // left queued

	alice2, aev2 := reopen(t, alice)
	if e := waitEvent(t, aev2, EventMessage); e.Message.Text != "not lost" {
		t.Fatalf("alice got %+v", e.Message)
	}
	r.waitInbox(t, "alice", 0)
	if n := countEvents(aev2, EventMessage); n != 0 {
		t.Fatalf("the message was shown %d more times", n)
	}
	if h, err := alice2.History(ctx, "carol", 0); err != nil || len(h) != 1 {
		t.Fatalf("history: %+v %v", h, err)
	}
}
