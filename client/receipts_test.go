package client

import (
	"bytes"
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"sotto/wire"
)

// heldWait is an Options.ReceiptWait that, while hold is set, records each
// drawn delay and waits for release instead of a timer.
type heldWait struct {
	hold    atomic.Bool
	delays  chan time.Duration
	release chan struct{}
}

func newHeldWait() *heldWait {
	return &heldWait{delays: make(chan time.Duration, 10), release: make(chan struct{})}
}

func (h *heldWait) wait(ctx context.Context, d time.Duration) error {
	if !h.hold.Load() {
		return nil
	}
	h.delays <- d
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestReceiptsDelayedBatchedSealed is the attack of a relay timing
// receipts: a delivery receipt sent as the recipient acknowledges links
// the (sealed) sender to the recipient. Bob's receipts must wait for the
// drawn delay (at least DefaultReceiptDelayMin), go to alice as one
// envelope for her two messages, and go sealed.
func TestReceiptsDelayedBatchedSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enroll(t, code, "alice", true)
	hw := newHeldWait()
	bob, bobEvents := r.enrollWith(t, code, "bob", true, &Options{ReceiptWait: hw.wait}) // default 1–10 s
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)

	// Bob offline; alice's two sealed messages wait for him. Then alice
	// goes offline so that whatever bob sends her stays in the mailbox.
	bob.Disconnect()
	waitEmptyMailbox(t, r)
	hw.hold.Store(true)
	m1, err := alice.Send(ctx, "bob", "one")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := alice.Send(ctx, "bob", "two")
	if err != nil {
		t.Fatal(err)
	}
	alice.Disconnect()
	if n := len(r.mailboxRows(t)); n != 2 {
		t.Fatalf("%d rows for bob, want 2", n)
	}

	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		waitEvent(t, bobEvents, EventMessage)
	}
	<-bob.Idle()
	if rows := r.mailboxRows(t); len(rows) != 0 {
		t.Fatalf("%d rows in the mailbox before the receipt delay ended (a receipt went out at once)", len(rows))
	}
	// Both messages are acknowledged (the mailbox is empty) and their
	// receipts wait for one delay, drawn from the default window.
	var d time.Duration
	select {
	case d = <-hw.delays:
	case <-time.After(20 * time.Second):
		t.Fatal("no receipt delay was drawn")
	}
	if d < DefaultReceiptDelayMin || d > DefaultReceiptDelayMax {
		t.Fatalf("receipt delay %v outside [%v, %v]", d, DefaultReceiptDelayMin, DefaultReceiptDelayMax)
	}
	if len(hw.delays) != 0 {
		t.Fatal("the second message's receipt drew a delay of its own instead of joining the batch")
	}

	close(hw.release)
	if err := bob.WaitReceipts(ctx); err != nil {
		t.Fatal(err)
	}
	rows := r.mailboxRows(t)
	if len(rows) != 1 {
		t.Fatalf("%d envelopes for the two receipts, want one", len(rows))
	}
	if rows[0].sender != "" || rows[0].typ != wire.EnvelopeTypeSealed {
		t.Fatalf("receipt envelope not sealed: sender %q type %d", rows[0].sender, rows[0].typ)
	}
	if err := alice.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, aliceEvents, EventReceipt)
	if e.Receipt.From != "bob" || e.Receipt.Read || len(e.Receipt.IDs) != 2 ||
		!slices.ContainsFunc(e.Receipt.IDs, func(x []byte) bool { return bytes.Equal(x, m1.ID) }) ||
		!slices.ContainsFunc(e.Receipt.IDs, func(x []byte) bool { return bytes.Equal(x, m2.ID) }) {
		t.Fatalf("alice got receipt %+v", e.Receipt)
	}
}

// TestReadReceiptsBatched: read receipts wait for the delay too, batched
// per contact, and none is queued when read receipts are off.
func TestReadReceiptsBatched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enroll(t, code, "alice", true)
	hw := newHeldWait()
	bob, bobEvents := r.enrollWith(t, code, "bob", true, &Options{ReceiptWait: hw.wait})
	m1, err := alice.Send(ctx, "bob", "one")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := alice.Send(ctx, "bob", "two")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		waitEvent(t, bobEvents, EventMessage)
	}
	if err := bob.WaitReceipts(ctx); err != nil {
		t.Fatal(err)
	}
	hw.hold.Store(true)
	if err := bob.MarkRead(ctx, "alice", m1.ID); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, "alice", m2.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hw.delays:
	case <-time.After(20 * time.Second):
		t.Fatal("no read receipt delay was drawn")
	}
	if len(hw.delays) != 0 {
		t.Fatal("the second read receipt drew a delay of its own")
	}
	close(hw.release)
	if err := bob.WaitReceipts(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		e := waitEvent(t, aliceEvents, EventReceipt)
		if !e.Receipt.Read {
			continue // the delivery receipts
		}
		if len(e.Receipt.IDs) != 2 {
			t.Fatalf("read receipt %+v, want both ids in one", e.Receipt)
		}
		break
	}
}

// waitEmptyMailbox waits until the relay's mailbox holds nothing (receipts
// still on their way).
func waitEmptyMailbox(t *testing.T, r *sealedRelay) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(r.mailboxRows(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("mailbox never emptied")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
