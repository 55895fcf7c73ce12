package client

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"sotto/client/transport"
	"sotto/relay"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// mailboxSize counts the envelopes the relay still holds (not acknowledged).
func (r *ktRelay) mailboxSize(t *testing.T) int {
	t.Helper()
	var n int
	r.exec(t, func(tx *sql.Tx) error { return tx.QueryRow(`SELECT COUNT(*) FROM mailbox`).Scan(&n) })
	return n
}

// waitMailbox waits until the relay holds n envelopes.
func (r *ktRelay) waitMailbox(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := r.mailboxSize(t)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay holds %d envelopes, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reconnectReceiving reconnects c with its receive loop and waits until it
// processed the backlog.
func reconnectReceiving(t *testing.T, c *Client) {
	t.Helper()
	c.Disconnect()
	if err := c.Connect(context.Background(), ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Idle():
	case <-time.After(20 * time.Second):
		t.Fatal("the backlog was not processed")
	}
}

// noContact checks that c stored nothing of user: no identity key, no
// message.
func noContact(t *testing.T, c *Client, user string) {
	t.Helper()
	ctx := context.Background()
	if id, err := loadIdentity(ctx, c.db, user); err != nil || id != nil {
		t.Fatalf("%s's identity was stored: %+v %v", user, id, err)
	}
	if h, err := c.History(ctx, user, 0); err != nil || len(h) != 0 {
		t.Fatalf("history with %s: %+v %v", user, h, err)
	}
}

// checkRefused checks that c refused a first message in user's name with
// the unlogged-sender alarm and a typed error.
func checkRefused(t *testing.T, c *Client, events chan Event, user string) {
	t.Helper()
	e := waitEvent(t, events, EventTransparencyAlarm)
	var a *TransparencyAlarm
	if !errors.As(e.Err, &a) || a.Kind != AlarmUnloggedSender || a.User != user || e.User != user {
		t.Fatalf("alarm %v (user %q)", e.Err, e.User)
	}
	e = waitEvent(t, events, EventError)
	if !errors.Is(e.Err, ErrSenderNotInLog) || !errors.As(e.Err, &a) || e.User != user {
		t.Fatalf("error event %v (user %q)", e.Err, e.User)
	}
	if got := alarmsOf(t, c); len(got) != 1 || got[0].Kind != AlarmUnloggedSender || got[0].User != user {
		t.Fatalf("stored alarms %+v", got)
	}
	noContact(t, c, user)
}

// TestKeyTransparencyFirstContactHonest: a first message from a new contact
// is checked against the log and shown, with no alarm, and the contact's
// logged key is the one kept.
func TestKeyTransparencyFirstContactHonest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", true)
	carol, cev := r.enroll(t, code, "carol", true)
	if _, err := carol.Send(ctx, "alice", "hello alice"); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, aev, EventMessage)
	if e.Message.From != "carol" || e.Message.Text != "hello alice" || e.Message.Unverified {
		t.Fatalf("alice got %+v", e.Message)
	}
	id, err := loadIdentity(ctx, alice.db, "carol")
	if err != nil || id == nil || !sameKey(id.Key, carol.IdentityKey()) || id.Changed {
		t.Fatalf("carol's identity at alice: %+v %v", id, err)
	}
	if a := alarmsOf(t, alice); len(a) != 0 {
		t.Fatalf("alarms %+v", a)
	}
	// The reply goes on the session the checked message started.
	if _, err := alice.Send(ctx, "carol", "hi carol"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, cev, EventMessage)
	noAlarmEvents(t, "alice", aev)
	noAlarmEvents(t, "carol", cev)
}

// TestKeyTransparencyFirstContactImpostor plays a hostile relay: mallory's
// first message to alice is delivered as carol's (the relay rewrites the
// sender of the queued envelope). Its identity key is mallory's, not the
// one the log holds for carol: alice refuses it with an alarm, stores
// nothing, and acknowledges it. The real carol then gets through.
func TestKeyTransparencyFirstContactImpostor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", false)
	carol, _ := r.enroll(t, code, "carol", false)
	mallory, _ := r.enroll(t, code, "mallory", false)
	if _, err := mallory.Send(ctx, "alice", "hi alice, carol here, new phone"); err != nil {
		t.Fatal(err)
	}
	r.exec(t, func(tx *sql.Tx) error {
		if err := rewriteSender(t, tx, "mallory", "carol"); err != nil {
			return err
		}
		return nil
	})
	reconnectReceiving(t, alice)
	checkRefused(t, alice, aev, "carol")
	noContact(t, alice, "mallory")
	r.waitMailbox(t, 0) // acknowledged: it does not come back

	if _, err := carol.Send(ctx, "alice", "the real carol"); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, aev, EventMessage)
	if e.Message.From != "carol" || e.Message.Text != "the real carol" {
		t.Fatalf("alice got %+v", e.Message)
	}
	if h, err := alice.History(ctx, "carol", 0); err != nil || len(h) != 1 {
		t.Fatalf("history with carol: %+v %v", h, err)
	}
	if id, err := loadIdentity(ctx, alice.db, "carol"); err != nil || id == nil || !sameKey(id.Key, carol.IdentityKey()) {
		t.Fatalf("carol's identity at alice: %+v %v", id, err)
	}
	if a := alarmsOf(t, alice); len(a) != 1 {
		t.Fatalf("alarms %+v", a)
	}
}

// TestKeyTransparencyFirstContactUnprovenKey: the relay also swaps the
// key it serves for carol to mallory's, without logging it. The served key
// has no proof: the message is refused, as a send to that key would be.
func TestKeyTransparencyFirstContactUnprovenKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", false)
	r.enroll(t, code, "carol", false)
	mallory, _ := r.enroll(t, code, "mallory", false)
	if _, err := mallory.Send(ctx, "alice", "carol here"); err != nil {
		t.Fatal(err)
	}
	r.exec(t, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`UPDATE envelopes SET sender = 'carol' WHERE sender = 'mallory'`); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE accounts SET identity_key = ? WHERE username = 'carol'`, mallory.IdentityKey())
		return err
	})
	reconnectReceiving(t, alice)
	e := waitEvent(t, aev, EventTransparencyAlarm)
	var a *TransparencyAlarm
	if !errors.As(e.Err, &a) || a.Kind != AlarmUnprovenKey || a.User != "carol" {
		t.Fatalf("alarm %v", e.Err)
	}
	e = waitEvent(t, aev, EventError)
	if !errors.Is(e.Err, ErrSenderNotInLog) || !errors.Is(e.Err, ErrKeyNotInLog) || e.User != "carol" {
		t.Fatalf("error event %v", e.Err)
	}
	noContact(t, alice, "carol")
	r.waitMailbox(t, 0)
}

// TestKeyTransparencyFirstContactRelaySilent: the relay cannot prove the
// sender's key for now (its log table is gone): the first message is
// neither refused nor shown but left queued, and processed on the next
// connection once the relay answers.
func TestKeyTransparencyFirstContactRelaySilent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", false)
	carol, _ := r.enroll(t, code, "carol", false)
	if _, err := carol.Send(ctx, "alice", "hello alice"); err != nil {
		t.Fatal(err)
	}
	r.exec(t, func(tx *sql.Tx) error {
		_, err := tx.Exec(`ALTER TABLE keylog_leaves RENAME TO keylog_leaves_away`)
		return err
	})
	reconnectReceiving(t, alice)
	for {
		select {
		case e := <-aev:
			if e.Kind == EventMessage || e.Kind == EventTransparencyAlarm || (e.Kind == EventError && e.User == "carol") {
				t.Fatalf("unexpected event %d: %v %+v", e.Kind, e.Err, e.Message)
			}
			continue
		default:
		}
		break
	}
	noContact(t, alice, "carol")
	if n := r.mailboxSize(t); n != 1 {
		t.Fatalf("the relay holds %d envelopes, want the unacknowledged one", n)
	}
	r.exec(t, func(tx *sql.Tx) error {
		_, err := tx.Exec(`ALTER TABLE keylog_leaves_away RENAME TO keylog_leaves`)
		return err
	})
	reconnectReceiving(t, alice)
	e := waitEvent(t, aev, EventMessage)
	if e.Message.From != "carol" || e.Message.Text != "hello alice" {
		t.Fatalf("alice got %+v", e.Message)
	}
	if a := alarmsOf(t, alice); len(a) != 0 {
		t.Fatalf("alarms %+v", a)
	}
}

// TestSealedFirstContactImpostor: the relay mints a sender certificate
// naming carol for mallory's identity key, and mallory seals her first
// (PreKey) message to alice with it. Alice has never known carol, so no
// held key catches it; the key log does.
func TestSealedFirstContactImpostor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	issuer := newTestIssuer(t)
	r := startKTRelay(t, func(cfg *relay.Config) { cfg.SenderCertificates = issuer })
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", false)
	r.enroll(t, code, "carol", false)
	mallory, _ := r.enroll(t, code, "mallory", false)
	// Mallory starts a session with alice (its authenticated envelope is
	// dropped at the relay): her next messages are PreKey messages.
	if _, err := mallory.Send(ctx, "alice", "unused"); err != nil {
		t.Fatal(err)
	}
	r.exec(t, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM mailbox WHERE seq IN (SELECT seq FROM envelopes WHERE sender = 'mallory');
			DELETE FROM envelopes WHERE sender = 'mallory'`)
		return err
	})
	ct := forgeSealed(ctx, t, issuer, mallory, "carol", session.Address{Name: "alice", DeviceID: alice.DeviceID()}, "carol here, sealed")
	// Alice's access key is at the relay, as after any send of hers.
	pk, err := alice.ProfileKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aconn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.uploadOwnAccessKey(ctx, aconn); err != nil {
		t.Fatal(err)
	}
	ak, _ := sealed.DeriveAccessKey(pk)
	conn, err := transport.Dial(ctx, r.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.SealedSend(ctx, &wire.SealedSendRequest{Recipient: "alice", MessageId: []byte("forged-1"), AccessKey: ak,
		Messages: []*wire.OutgoingMessage{{DeviceId: alice.DeviceID(), RegistrationId: alice.acct.RegistrationID, Type: wire.EnvelopeTypeSealed, Content: ct}}}); err != nil {
		t.Fatal(err)
	}
	reconnectReceiving(t, alice)
	checkRefused(t, alice, aev, "carol")
	noContact(t, alice, "mallory")
	r.waitMailbox(t, 0)
}

// rewriteSender has the relay's database name to as the sender of the one
// envelope from from (a relay forging who sent it). The envelopes are a
// view over the relay's log segments (relay/sqlitestore), whose INSTEAD OF
// trigger leaves RowsAffected at 0: the envelopes are counted instead.
func rewriteSender(t *testing.T, tx *sql.Tx, from, to string) error {
	t.Helper()
	count := func(sender string) (n int, err error) {
		err = tx.QueryRow(`SELECT count(*) FROM envelopes WHERE sender = ?`, sender).Scan(&n)
		return n, err
	}
	before, err := count(to)
	if err != nil {
		return err
	}
	if n, err := count(from); err != nil || n != 1 {
		t.Errorf("%d envelopes from %s to rewrite (%v)", n, from, err)
	}
	if _, err := tx.Exec(`UPDATE envelopes SET sender = ? WHERE sender = ?`, to, from); err != nil {
		return err
	}
	if n, err := count(from); err != nil || n != 0 {
		t.Errorf("%d envelopes from %s left after the rewrite (%v)", n, from, err)
	}
	if n, err := count(to); err != nil || n != before+1 {
		t.Errorf("%d envelopes from %s after the rewrite, want %d (%v)", n, to, before+1, err)
	}
	return nil
}
