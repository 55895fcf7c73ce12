package client

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"sotto/client/keylog"
	"sotto/client/sealedsender"
	"sotto/client/transport"
	"sotto/relay"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/transparency"
	"sotto/wire"
)

// knownContact sets up alice (receiving) who got a first message from bob,
// proven in the log, and verified bob's key. It returns bob's key.
func knownContact(t *testing.T, r *ktRelay, code string) (alice *Client, aev chan Event, bob *Client) {
	t.Helper()
	ctx := context.Background()
	alice, aev = r.enroll(t, code, "alice", true)
	bob, _ = r.enroll(t, code, "bob", false)
	if _, err := bob.Send(ctx, "alice", "hi alice"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, aev, EventMessage); e.Message.From != "bob" || e.Message.Unverified {
		t.Fatalf("alice got %+v", e.Message)
	}
	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	waitAudits(t, alice, 1) // the audit started at connect is not part of a test's attack
	return alice, aev, bob
}

// reenroll plays an honest account reset: the relay retires user's account
// (renamed away) and user enrolls again with a new identity key, which the
// relay logs as it logs every enrollment.
func (r *ktRelay) reenroll(t *testing.T, code, user string, receive bool) (*Client, chan Event) {
	t.Helper()
	r.exec(t, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE accounts SET username = ? WHERE username = ?`, user+"-old", user)
		return err
	})
	return r.enroll(t, code, user, receive)
}

// keptKey checks that alice still holds key for user, verified and not
// changed, and reported no key change.
func keptKey(t *testing.T, c *Client, events chan Event, user string, key []byte) {
	t.Helper()
	id, err := loadIdentity(context.Background(), c.db, user)
	if err != nil || id == nil || !sameKey(id.Key, key) || id.Changed || !id.Verified {
		t.Fatalf("%s's identity: %+v %v", user, id, err)
	}
	for {
		select {
		case e := <-events:
			if e.Kind == EventIdentityChanged || e.Kind == EventMessage {
				t.Fatalf("unexpected event %d for %s: %+v", e.Kind, e.User, e.Message)
			}
			continue
		default:
		}
		return
	}
}

// refusedChange checks that c refused a message under a changed key of
// user's with an alarm of kind want and a typed error event.
func refusedChange(t *testing.T, events chan Event, user string, want AlarmKind) {
	t.Helper()
	e := waitEvent(t, events, EventTransparencyAlarm)
	var a *TransparencyAlarm
	if !errors.As(e.Err, &a) || a.Kind != want || a.User != user {
		t.Fatalf("alarm %v (kind %q user %q), want %q", e.Err, a.Kind, a.User, want)
	}
	e = waitEvent(t, events, EventError)
	if !errors.Is(e.Err, ErrKeyChangeNotInLog) || !errors.Is(e.Err, ErrSenderNotInLog) || !errors.As(e.Err, &a) || e.User != user {
		t.Fatalf("error event %v (user %q)", e.Err, e.User)
	}
}

// TestKeyChangeHonest: bob re-enrolls (a new identity key, logged by the
// relay). His first message under it is checked against the log and
// accepted with no alarm; as before, it is shown unverified, bob's key is
// marked changed and no longer verified, and sending waits until alice
// accepts the new key.
func TestKeyChangeHonest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev, bob := knownContact(t, r, code)
	old := bob.IdentityKey()
	before, err := alice.SafetyNumber(ctx, "bob")
	if err != nil || !before.Verified || before.Changed {
		t.Fatalf("safety number before: %+v %v", before, err)
	}
	bob.Disconnect()
	bob2, bev := r.reenroll(t, code, "bob", false)
	if sameKey(bob2.IdentityKey(), old) {
		t.Fatal("the new bob has the old key")
	}
	if _, err := bob2.Send(ctx, "alice", "new phone"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, aev, EventIdentityChanged); e.User != "bob" {
		t.Fatalf("identity changed for %q", e.User)
	}
	e := waitEvent(t, aev, EventMessage)
	if e.Message.From != "bob" || e.Message.Text != "new phone" || !e.Message.Unverified {
		t.Fatalf("alice got %+v", e.Message)
	}
	id, err := loadIdentity(ctx, alice.db, "bob")
	if err != nil || id == nil || !sameKey(id.Key, bob2.IdentityKey()) || !sameKey(id.Previous, old) || !id.Changed || id.Verified {
		t.Fatalf("bob's identity at alice: %+v %v", id, err)
	}
	sn, err := alice.SafetyNumber(ctx, "bob")
	if err != nil || sn.Verified || !sn.Changed || sn.Digits == before.Digits {
		t.Fatalf("safety number after: %+v %v", sn, err)
	}
	var ice *IdentityChangedError
	if _, err := alice.Send(ctx, "bob", "who is this?"); !errors.As(err, &ice) {
		t.Fatalf("send before accepting: %v", err)
	}
	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "welcome back"); err != nil {
		t.Fatal(err)
	}
	reconnectReceiving(t, bob2)
	if e := waitEvent(t, bev, EventMessage); e.Message.Text != "welcome back" {
		t.Fatalf("bob got %+v", e.Message)
	}
	if a := alarmsOf(t, alice); len(a) != 0 {
		t.Fatalf("alice: alarms %+v", a)
	}
	noAlarmEvents(t, "alice", aev)
	// Alice remembers the newest leaf proven for bob: his second binding.
	b, err := keylog.LoadBinding(ctx, alice.db, "bob")
	if err != nil || b == nil || b.Index != 2 {
		t.Fatalf("bound record %+v %v", b, err)
	}
}

// attack sends mallory's first (PreKey) message to alice, disconnected, and
// has the relay deliver it as bob's; edit may change more of the relay's
// database in the same transaction.
func attack(t *testing.T, r *ktRelay, alice, mallory *Client, edit func(tx *sql.Tx) error) {
	t.Helper()
	alice.Disconnect()
	if _, err := mallory.Send(context.Background(), "alice", "bob here, new phone"); err != nil {
		t.Fatal(err)
	}
	r.exec(t, func(tx *sql.Tx) error {
		if err := rewriteSender(t, tx, "mallory", "bob"); err != nil {
			return err
		}
		if edit != nil {
			return edit(tx)
		}
		return nil
	})
	reconnectReceiving(t, alice)
}

// TestKeyChangeSwappedKeyRefused: the relay swaps bob's identity key in
// its directory for mallory's, without logging it, and delivers mallory's
// PreKey message as bob's. Alice refuses it (unproven key), acknowledges
// it, keeps bob's verified key, and still talks to the real bob.
func TestKeyChangeSwappedKeyRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev, bob := knownContact(t, r, code)
	mallory, _ := r.enroll(t, code, "mallory", false)
	attack(t, r, alice, mallory, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE accounts SET identity_key = ? WHERE username = 'bob'`, mallory.IdentityKey())
		return err
	})
	refusedChange(t, aev, "bob", AlarmUnprovenKey)
	keptKey(t, alice, aev, "bob", bob.IdentityKey())
	r.waitInbox(t, "alice", 0) // acknowledged: it does not come back
	if h, err := alice.History(ctx, "bob", 0); err != nil || len(h) != 1 || h[0].Text != "hi alice" {
		t.Fatalf("history with bob: %+v %v", h, err)
	}
	// Served directly, the swapped key is refused as well.
	if err := alice.RefreshIdentity(ctx, "bob"); !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("refresh: %v", err)
	}
	keptKey(t, alice, aev, "bob", bob.IdentityKey())
	for _, a := range alarmsOf(t, alice) {
		if a.Kind != AlarmUnprovenKey || a.User != "bob" {
			t.Fatalf("stored alarm %+v", a)
		}
	}
	// The session with the real bob goes on.
	if _, err := alice.Send(ctx, "bob", "still you?"); err != nil {
		t.Fatal(err)
	}
	reconnectReceiving(t, bob)
	if h, err := bob.History(ctx, "alice", 0); err != nil || len(h) != 2 || h[1].Text != "still you?" {
		t.Fatalf("bob's history: %+v %v", h, err)
	}
}

// TestKeyChangeImpostorRefused: the relay only rewrites the sender: the
// key it serves for bob is his logged one, not the message's.
func TestKeyChangeImpostorRefused(t *testing.T) {
	t.Parallel()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev, bob := knownContact(t, r, code)
	mallory, _ := r.enroll(t, code, "mallory", false)
	attack(t, r, alice, mallory, nil)
	refusedChange(t, aev, "bob", AlarmUnloggedKeyChange)
	keptKey(t, alice, aev, "bob", bob.IdentityKey())
	r.waitInbox(t, "alice", 0)
	if got := alarmsOf(t, alice); len(got) != 1 || got[0].Kind != AlarmUnloggedKeyChange || got[0].Leaf == nil {
		t.Fatalf("stored alarms %+v", got)
	}
	noContact(t, alice, "mallory")
}

// waitInbox waits until the relay holds n envelopes for user.
func (r *ktRelay) waitInbox(t *testing.T, user string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int
		r.exec(t, func(tx *sql.Tx) error {
			return tx.QueryRow(`SELECT COUNT(*) FROM mailbox m JOIN accounts a ON m.account = a.id WHERE a.username = ?`, user).Scan(&got)
		})
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay holds %d envelopes for %s, want %d", got, user, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rewriteLog replaces the relay's whole key log with leaves (users[i] names
// leaf i), as a relay forking its log would.
func (r *ktRelay) rewriteLog(t *testing.T, tx *sql.Tx, leaves [][]byte, users []string) error {
	t.Helper()
	mem := &transparency.MemoryTree{}
	for _, q := range []string{`DELETE FROM keylog_leaves`, `DELETE FROM keylog_nodes`} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	for i, l := range leaves {
		nodes, err := transparency.NewNodes(mem, uint64(i), transparency.LeafHash(l))
		if err != nil {
			return err
		}
		if err := mem.AppendLeaf(l); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO keylog_leaves (idx, username, leaf) VALUES (?, ?, ?)`, i, users[i], l); err != nil {
			return err
		}
		for _, n := range nodes {
			if _, err := tx.Exec(`INSERT INTO keylog_nodes (level, idx, hash) VALUES (?, ?, ?)`, n.ID.Level, int64(n.ID.Index), n.Hash[:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestKeyChangeForkedLogDetected: the relay logs mallory's key for bob,
// but in a forked log: a history that does not extend the head alice
// verified. The served proof is valid in the fork; the fork is caught, the
// message refused, and bob's key and alice's head kept.
func TestKeyChangeForkedLogDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	mallory, _ := r.enroll(t, code, "mallory", false)
	alice, aev, bob := knownContact(t, r, code)
	if _, err := alice.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ := alice.TransparencyHead(ctx)
	if head == nil || head.Size != 3 {
		t.Fatalf("alice's head %+v", head)
	}
	leaves, err := r.store.LogLeaves(ctx, 0, 10)
	if err != nil || len(leaves) != 3 {
		t.Fatalf("leaves %d %v", len(leaves), err)
	}
	// The fork: bob's original binding re-dated (another history), then a
	// replacement binding bob to mallory's key.
	redated, _ := (&transparency.Binding{Kind: transparency.KindAdd, Username: "bob", IdentityKey: bob.IdentityKey(), TimestampMS: 1}).Encode()
	swap, _ := (&transparency.Binding{Kind: transparency.KindReplace, Username: "bob", IdentityKey: mallory.IdentityKey(), TimestampMS: time.Now().UnixMilli()}).Encode()
	forked := [][]byte{leaves[0], leaves[1], leaves[2], swap}
	users := []string{"mallory", "alice", "bob", "bob"}
	for i, l := range leaves {
		if b, _ := transparency.DecodeBinding(l); b.Username == "bob" {
			forked[i] = redated
		}
	}
	attack(t, r, alice, mallory, func(tx *sql.Tx) error {
		if err := r.rewriteLog(t, tx, forked, users); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE accounts SET identity_key = ? WHERE username = 'bob'`, mallory.IdentityKey())
		return err
	})
	e := waitEvent(t, aev, EventError)
	var a *TransparencyAlarm
	if !errors.Is(e.Err, ErrKeyChangeNotInLog) || !errors.Is(e.Err, ErrFork) || !errors.As(e.Err, &a) || a.Kind != AlarmFork || e.User != "bob" {
		t.Fatalf("error event %v (user %q)", e.Err, e.User)
	}
	hb, err := transparency.VerifyHead(r.pub, a.HeadB)
	if ha, err1 := transparency.VerifyHead(r.pub, a.HeadA); err1 != nil || err != nil || ha.Root != head.Root || hb.Size != 4 {
		t.Fatalf("evidence: %+v %v / %+v %v", ha, err1, hb, err)
	}
	keptKey(t, alice, aev, "bob", bob.IdentityKey())
	r.waitInbox(t, "alice", 0)
	got := alarmsOf(t, alice)
	if len(got) == 0 {
		t.Fatal("no stored alarm")
	}
	for _, a := range got { // the audit at reconnect may catch the fork too
		if a.Kind != AlarmFork {
			t.Fatalf("stored alarm %+v", a)
		}
	}
	if h, _ := alice.TransparencyHead(ctx); h.Size != head.Size || h.Root != head.Root {
		t.Fatalf("alice moved to the forked head: %+v", h)
	}
}

// TestKeyChangeRollbackRefused: after bob re-enrolled and alice accepted
// his new key, the relay serves his old key again with the proof of his
// old (superseded) leaf, and delivers a message from his old device. The
// proof is valid, but alice already verified a newer leaf for bob with
// another key: stale-binding, refused.
func TestKeyChangeRollbackRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev, bob := knownContact(t, r, code)
	old := bob.IdentityKey()
	bob.Disconnect()
	bob2, _ := r.reenroll(t, code, "bob", false)
	if _, err := bob2.Send(ctx, "alice", "new phone"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aev, EventMessage)
	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	alice.Disconnect()
	// The old device writes again, as "bob": the relay lends it the name
	// for a moment.
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
	if err := alice.RefreshIdentity(ctx, "bob"); !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("refresh: %v", err)
	}
	// A send that needs a new session is served the old key too: refused.
	alice.cryptoMu.Lock()
	err := alice.sigStores(alice.db).deleteSession(ctx, session.Address{Name: "bob", DeviceID: 1})
	alice.cryptoMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "hello?"); !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("send: %v", err)
	}
	for _, a := range alarmsOf(t, alice) {
		if a.Kind != AlarmStaleBinding || a.User != "bob" || a.LeafIndex != 1 {
			t.Fatalf("stored alarm %+v", a)
		}
	}
	if !bytes.Equal(bob2.IdentityKey(), alice.mustIdentity(t, "bob")) {
		t.Fatal("bob's key moved")
	}
}

func (c *Client) mustIdentity(t *testing.T, user string) []byte {
	t.Helper()
	id, err := loadIdentity(context.Background(), c.db, user)
	if err != nil || id == nil {
		t.Fatalf("%s's identity: %+v %v", user, id, err)
	}
	return id.Key
}

// sealedTo gives alice's profile key to c (as if alice had sent it) and
// puts alice's access key at the relay, so that c sends to alice sealed.
func sealedTo(t *testing.T, alice, c *Client) {
	t.Helper()
	ctx := context.Background()
	pk, err := alice.ProfileKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.uploadOwnAccessKey(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := c.db.Put(ctx, sealedsender.Table, sealedsender.ContactKeyRow("alice"), pk); err != nil {
		t.Fatal(err)
	}
}

// TestSealedKeyChangeHonest: bob re-enrolls and his first message under
// the new key goes sealed, with a certificate for the new key. The held key
// differs; the certificate's key is proven in the log, so the message is
// opened and shown as any key change is: unverified, contact changed.
func TestSealedKeyChangeHonest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t, func(cfg *relay.Config) { cfg.SenderCertificates = newTestIssuer(t) })
	code := r.code(t, 5, time.Hour)
	alice, aev, bob := knownContact(t, r, code)
	old := bob.IdentityKey()
	bob.Disconnect()
	bob2, _ := r.reenroll(t, code, "bob", false)
	sealedTo(t, alice, bob2)
	if ok, err := bob2.SendsSealed(ctx, "alice"); err != nil || !ok {
		t.Fatalf("bob sends sealed: %v %v", ok, err)
	}
	if _, err := bob2.Send(ctx, "alice", "new phone, sealed"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aev, EventIdentityChanged)
	e := waitEvent(t, aev, EventMessage)
	if e.Message.From != "bob" || e.Message.Text != "new phone, sealed" || !e.Message.Unverified {
		t.Fatalf("alice got %+v", e.Message)
	}
	id, err := loadIdentity(ctx, alice.db, "bob")
	if err != nil || id == nil || !sameKey(id.Key, bob2.IdentityKey()) || !sameKey(id.Previous, old) || !id.Changed || id.Verified {
		t.Fatalf("bob's identity at alice: %+v %v", id, err)
	}
	if a := alarmsOf(t, alice); len(a) != 0 {
		t.Fatalf("alice: alarms %+v", a)
	}
	noAlarmEvents(t, "alice", aev)
}

// TestSealedKeyChangeImpostor: the relay mints a sender certificate naming
// bob, a contact alice knows, for mallory's key, and mallory seals her
// PreKey message to alice with it. Alice checks the certificate's key in
// the log: it is not bob's; refused with an alarm, bob's key kept.
func TestSealedKeyChangeImpostor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	issuer := newTestIssuer(t)
	r := startKTRelay(t, func(cfg *relay.Config) { cfg.SenderCertificates = issuer })
	code := r.code(t, 5, time.Hour)
	alice, aev, bob := knownContact(t, r, code)
	mallory, _ := r.enroll(t, code, "mallory", false)
	alice.Disconnect()
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
	ct := forgeSealed(ctx, t, issuer, mallory, "bob", session.Address{Name: "alice", DeviceID: alice.DeviceID()}, "bob here, sealed")
	pk, err := alice.ProfileKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ak, _ := sealed.DeriveAccessKey(pk)
	conn, err := transport.Dial(ctx, r.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Alice's access key at the relay, as after any send of hers.
	if err := alice.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	aconn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.uploadOwnAccessKey(ctx, aconn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.SealedSend(ctx, &wire.SealedSendRequest{Recipient: "alice", MessageId: []byte("forged-1"), AccessKey: ak,
		Messages: []*wire.OutgoingMessage{{DeviceId: alice.DeviceID(), RegistrationId: alice.acct.RegistrationID, Type: wire.EnvelopeTypeSealed, Content: ct}}}); err != nil {
		t.Fatal(err)
	}
	reconnectReceiving(t, alice)
	refusedChange(t, aev, "bob", AlarmUnloggedKeyChange)
	keptKey(t, alice, aev, "bob", bob.IdentityKey())
	r.waitInbox(t, "alice", 0)
	noContact(t, alice, "mallory")
}
