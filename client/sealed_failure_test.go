package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"sotto/client/content"
	"sotto/client/sealedsender"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/wire"
)

// failingSessions is the local store with the sessions table failing, as a
// busy or full disk would make it.
type failingSessions struct{ kv }

var errDiskTest = errors.New("store: disk I/O error (test)")

func (f failingSessions) Get(ctx context.Context, table string, key []byte) ([]byte, error) {
	if table == tblSessions {
		return nil, errDiskTest
	}
	return f.kv.Get(ctx, table, key)
}

var errRollBack = errors.New("test: roll back")

// sealedRow returns the content of the sealed mailbox row that bob opens
// to a text message reading text (nil when there is none). Each row is
// opened in a transaction that is rolled back, so bob's state is untouched.
func sealedRow(t *testing.T, r *sealedRelay, bob *Client, text string) []byte {
	t.Helper()
	ctx := context.Background()
	for _, row := range r.mailboxRows(t) {
		if row.typ != wire.EnvelopeTypeSealed {
			continue
		}
		env := &wire.Envelope{Type: wire.EnvelopeTypeSealed, Content: row.content, ServerTimestampMs: time.Now().UnixMilli()}
		match := false
		u, err := bob.sealed.Unseal(ctx, env)
		if err != nil {
			continue
		}
		bob.cryptoMu.Lock()
		err = bob.db.Update(ctx, func(tx *store.Tx) error {
			_, pt, _, err := bob.decryptSealed(ctx, bob.sigStores(tx), env, u)
			if err != nil {
				return err
			}
			ct, err := content.Decode(pt)
			match = err == nil && ct.GetText().GetBody() == text
			return errRollBack
		})
		bob.cryptoMu.Unlock()
		if !errors.Is(err, errRollBack) {
			// One bob processed but had not acknowledged when he left.
			continue
		}
		if match {
			return row.content
		}
	}
	return nil
}

// TestSealedLocalFailureLeavesEnvelopeQueued: a genuine sealed envelope
// that fails to open because of the local store (not because of anything
// in the envelope) must not be reported as refused, since a refused sealed
// envelope is acknowledged and so deleted from the relay: the message would
// be lost. Like an authenticated envelope, it stays queued; once the store
// works again it is shown.
func TestSealedLocalFailureLeavesEnvelopeQueued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)
	bob.Disconnect()
	if _, err := alice.Send(ctx, "bob", "sealed, kept"); err != nil {
		t.Fatal(err)
	}
	row := sealedRow(t, r, bob, "sealed, kept")
	if row == nil {
		t.Fatal("no sealed row for bob")
	}
	env := &wire.Envelope{Type: wire.EnvelopeTypeSealed, Content: row, ServerTimestampMs: time.Now().UnixMilli()}

	u, err := bob.sealed.Unseal(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	bob.cryptoMu.Lock()
	err = bob.db.Update(ctx, func(tx *store.Tx) error {
		_, _, _, err := bob.decryptSealed(ctx, bob.sigStores(failingSessions{tx}), env, u)
		return err
	})
	bob.cryptoMu.Unlock()
	if !errors.Is(err, errDiskTest) {
		t.Fatalf("open with a failing store: %v", err)
	}
	if se := new(SealedSenderError); errors.As(err, &se) {
		t.Fatalf("a local store failure is reported as a refused sealed envelope (which is acknowledged and lost): %v", err)
	}

	// The envelope is intact: bob shows it when he connects.
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	for {
		e := waitEvent(t, bobEvents, EventMessage)
		if e.Message.Text == "sealed, kept" && e.Message.From == "alice" {
			break
		}
	}
}

// TestSealedReplayShownOnce: a hostile relay stores a sealed envelope bob
// already received a second time (under a new message id, so the relay's
// own dedupe does not catch it). Bob shows the message once and reports no
// error for the replay.
func TestSealedReplayShownOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)
	bob.Disconnect()
	if _, err := alice.Send(ctx, "bob", "only once"); err != nil {
		t.Fatal(err)
	}
	replay := sealedRow(t, r, bob, "only once")
	if replay == nil {
		t.Fatal("no sealed row")
	}
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	for e := waitEvent(t, bobEvents, EventMessage); e.Message.Text != "only once"; e = waitEvent(t, bobEvents, EventMessage) {
	}
	pk, err := bob.ProfileKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ak, _ := sealed.DeriveAccessKey(pk)
	conn, err := transport.Dial(ctx, r.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.SealedSend(ctx, &wire.SealedSendRequest{Recipient: "bob", MessageId: []byte("replayed"), AccessKey: ak,
		Messages: []*wire.OutgoingMessage{{DeviceId: bob.DeviceID(), RegistrationId: bob.acct.RegistrationID, Type: wire.EnvelopeTypeSealed, Content: replay}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "marker"); err != nil {
		t.Fatal(err)
	}
	for timeout := time.After(20 * time.Second); ; {
		var e Event
		select {
		case e = <-bobEvents:
		case <-timeout:
			t.Fatal("bob never got the marker")
		}
		if e.Kind != EventMessage && e.Kind != EventError {
			continue
		}
		if e.Kind == EventError {
			t.Fatalf("the replay was reported: %v", e.Err)
		}
		if e.Message.Text == "only once" {
			t.Fatal("the replayed message was shown again")
		}
		if e.Message.Text == "marker" {
			break
		}
	}
	h, err := bob.History(ctx, "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range h {
		if m.Text == "only once" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d copies of the message in bob's history", n)
	}
}

// TestSealedRefusalIsNotSticky: a relay that refuses one sealed send (as a
// hostile relay may, to learn the sender of the authenticated retry) gets
// that one message authenticated, not every later one. Once it accepts
// the access key again, sends to the contact are sealed again, although
// the contact has stopped sharing its profile key.
func TestSealedRefusalIsNotSticky(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)
	// Bob has shared his key as often as he ever will.
	if err := bob.db.Put(ctx, sealedsender.Table, sealedsender.SentRow("alice"), []byte{sealedsender.ProfileKeySends}); err != nil {
		t.Fatal(err)
	}
	pk, err := bob.ProfileKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ak, _ := sealed.DeriveAccessKey(pk)
	conn, err := bob.connection()
	if err != nil {
		t.Fatal(err)
	}
	// The relay refuses bob's access key for one send.
	if err := conn.SetAccessKey(ctx, make([]byte, len(ak))); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "refused once"); !errors.Is(err, ErrSealedRefused) {
		t.Fatalf("sealed send refused by the relay: %v, want ErrSealedRefused", err)
	}
	if err := conn.SetAccessKey(ctx, ak); err != nil {
		t.Fatal(err)
	}
	bob.Disconnect()
	if _, err := alice.Send(ctx, "bob", "sealed again"); err != nil {
		t.Fatal(err)
	}
	if sealedRow(t, r, bob, "sealed again") == nil {
		t.Fatal("after one refused sealed send, alice sends to bob authenticated for good")
	}
}
