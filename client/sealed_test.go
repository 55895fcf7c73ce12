package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sotto/client/content"
	"sotto/client/sealedsender"
	"sotto/client/transport"
	"sotto/relay/sqlitestore"
	"sotto/signal/keys"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// testIssuer is a relay.CertificateIssuer with keys the test knows, so that
// it can also play a hostile relay minting certificates.
type testIssuer struct {
	root      keys.KeyPair
	serverKey keys.KeyPair
	server    *sealed.ServerCertificate
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	root, _ := keys.GenerateKeyPair(rand.Reader)
	srv, _ := keys.GenerateKeyPair(rand.Reader)
	sc, err := sealed.NewServerCertificate(rand.Reader, 1, srv.Public, root.Private)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{root: root, serverKey: srv, server: sc}
}

func (is *testIssuer) TrustRoot() []byte { return is.root.Public.Serialize() }

func (is *testIssuer) SenderCertificate(sender string, device uint32, identityKey []byte, expires time.Time) ([]byte, error) {
	id, err := keys.ParsePublicKey(identityKey)
	if err != nil {
		return nil, err
	}
	c, err := sealed.NewSenderCertificate(rand.Reader, sender, "", id, device, expires, is.server, is.serverKey.Private)
	if err != nil {
		return nil, err
	}
	return c.Serialize(), nil
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sealedRelay is a real relay (SQLite file, WebSockets) that issues sender
// certificates, logging at debug level into logs.
type sealedRelay struct {
	*testRelay
	dir    string
	issuer *testIssuer
	logs   *syncBuffer
}

func startSealedRelay(t *testing.T) *sealedRelay {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &sealedRelay{testRelay: &testRelay{store: st}, dir: dir, issuer: newTestIssuer(t), logs: &syncBuffer{}}
	cfg := r.config()
	cfg.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.SenderCertificates = r.issuer
	// The relay caches accounts and access keys for a few seconds; the
	// tests here alter its store behind its back (corruptAccessKey) and
	// expect the next send to see it, as a relay restarted on an altered
	// disk would.
	cfg.DirectoryCacheTTL = time.Nanosecond
	r.serve(t, cfg)
	return r
}

// envelopeRow is a mailbox row as the relay's SQLite file holds it.
type envelopeRow struct {
	sender       string
	senderDevice int64
	typ          int64
	content      []byte
}

// mailboxRows reads the relay database file directly.
func (r *sealedRelay) mailboxRows(t *testing.T) []envelopeRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, sqlitestore.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The queued envelopes: an acked one leaves mailbox with the ack and
	// the envelopes log a few seconds later (relay/sqlitestore/purge.go).
	rows, err := db.Query(`SELECT e.sender, e.sender_device, e.type, e.content FROM mailbox m JOIN envelopes e ON e.seq = m.seq ORDER BY m.seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []envelopeRow
	for rows.Next() {
		var e envelopeRow
		if err := rows.Scan(&e.sender, &e.senderDevice, &e.typ, &e.content); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sendRows counts the dedupe records of the zero (sealed) sender and of
// others.
func (r *sealedRelay) sendRows(t *testing.T) (sealedSends, others int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, sqlitestore.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT account, device FROM send_log`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var acct []byte
		var dev int64
		if err := rows.Scan(&acct, &dev); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(acct, make([]byte, 16)) && dev == 0 {
			sealedSends++
		} else {
			others++
		}
	}
	return sealedSends, others
}

func (r *sealedRelay) enrollSealed(t *testing.T, code, user string, receive bool) (*Client, chan Event) {
	t.Helper()
	return r.enroll(t, code, user, receive)
}

// exchangeProfileKeys has a and b message each other until each holds the
// other's profile key.
func exchangeProfileKeys(t *testing.T, a, b *Client, aEvents, bEvents chan Event) {
	t.Helper()
	ctx := context.Background()
	ma, err := a.Send(ctx, b.Username(), "hi "+b.Username())
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bEvents, EventMessage)
	mb, err := b.Send(ctx, a.Username(), "hi "+a.Username())
	if err != nil {
		t.Fatal(err)
	}
	// Both receipts too: callers disconnect one side and wait for an
	// empty mailbox, which a receipt still on its way would fill again.
	waitMessageAndReceipt(t, aEvents, "hi "+a.Username(), ma.ID)
	waitMessageAndReceipt(t, bEvents, "", mb.ID)
	for _, p := range []struct{ c, of *Client }{{a, b}, {b, a}} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := p.c.db.Get(ctx, sealedsender.Table, sealedsender.ContactKeyRow(p.of.Username())); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never learned %s's profile key", p.c.Username(), p.of.Username())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestSealedSenderEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 3, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)

	// Bob is offline: alice's first message goes authenticated (she has no
	// profile key of bob's) and its row names her.
	bob.Disconnect()
	if _, err := alice.Send(ctx, "bob", "first, authenticated"); err != nil {
		t.Fatal(err)
	}
	rows := r.mailboxRows(t)
	if len(rows) != 1 || rows[0].sender != "alice" || rows[0].typ == wire.EnvelopeTypeSealed {
		t.Fatalf("first message: rows %+v, want one authenticated row from alice", rows)
	}
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bobEvents, EventMessage); e.Message.From != "alice" {
		t.Fatalf("bob got %+v", e.Message)
	}
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)

	// Now alice seals. Bob is offline so that the row stays in the mailbox.
	bob.Disconnect()
	for len(r.mailboxRows(t)) > 0 {
		time.Sleep(20 * time.Millisecond) // receipts still on their way
	}
	logMark := len(r.logs.String())
	sealedBefore, othersBefore := r.sendRows(t)
	sent, err := alice.Send(ctx, "bob", "sealed hello")
	if err != nil {
		t.Fatal(err)
	}
	// Every row for bob (the message, and perhaps alice's late delivery
	// receipt for bob's last message, sealed too) names no sender.
	rows = r.mailboxRows(t)
	if len(rows) == 0 {
		t.Fatal("no row after the sealed send")
	}
	for _, row := range rows {
		if row.sender != "" || row.senderDevice != 0 || row.typ != wire.EnvelopeTypeSealed {
			t.Fatalf("sealed row names a sender: %+v", row)
		}
		for _, leak := range [][]byte{[]byte("alice"), alice.acct.AccountID, alice.IdentityKey()} {
			if bytes.Contains(row.content, leak) {
				t.Fatalf("sealed row content holds %q in the clear", leak)
			}
		}
	}
	aliceID := hex.EncodeToString(alice.acct.AccountID)
	if sealedAfter, othersAfter := r.sendRows(t); sealedAfter <= sealedBefore || othersAfter != othersBefore {
		t.Fatalf("dedupe records: zero sender %d -> %d, named senders %d -> %d", sealedBefore, sealedAfter, othersBefore, othersAfter)
	}
	if logs := r.logs.String()[logMark:]; strings.Contains(logs, "alice") || strings.Contains(logs, aliceID) {
		t.Fatalf("relay logs of the sealed send name the sender:\n%s", logs)
	}

	// Bob comes back: the message shows alice as its sender.
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, bobEvents, EventMessage)
	if e.Message.Text != "sealed hello" || e.Message.From != "alice" || e.Message.FromDevice != alice.DeviceID() || !bytes.Equal(e.Message.ID, sent.ID) {
		t.Fatalf("bob got %+v", e.Message)
	}
	// Bob's delivery receipt went sealed too, and arrives.
	if e := waitEvent(t, aliceEvents, EventReceipt); e.Receipt.From != "bob" {
		t.Fatalf("alice got receipt %+v", e.Receipt)
	}
	h, err := bob.History(ctx, "alice", 10)
	if err != nil || len(h) == 0 || h[len(h)-1].Text != "sealed hello" {
		t.Fatalf("bob's history: %v %+v", err, h)
	}
}

func TestSealedSendWrongAccessKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)

	// On the wire: a sealed send with a wrong key, and one to an unknown
	// user, get the same UNAUTHENTICATED.
	conn, err := transport.Dial(ctx, r.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := []*wire.OutgoingMessage{{DeviceId: bob.DeviceID(), RegistrationId: bob.acct.RegistrationID, Type: wire.EnvelopeTypeSealed, Content: []byte("x")}}
	for _, to := range []string{"bob", "nobody"} {
		_, err = conn.SealedSend(ctx, &wire.SealedSendRequest{Recipient: to, Messages: msg, MessageId: []byte("m-" + to), AccessKey: bytes.Repeat([]byte{7}, 16)})
		if transport.Code(err) != wire.ErrorCode_UNAUTHENTICATED {
			t.Fatalf("wrong access key to %s: %v", to, err)
		}
	}
	if rows := r.mailboxRows(t); len(rows) != 0 {
		for _, row := range rows {
			if string(row.content) == "x" {
				t.Fatal("a refused sealed send was stored")
			}
		}
	}

	// Alice holds a stale profile key for bob: the relay refuses her sealed
	// send and, as her user allowed it (sealed-fallback on), she falls back
	// to an authenticated one, counted and reported. She keeps the key
	// until bob's replaces it (TestSealedRefusalIsNotSticky). Without the
	// setting the message is not sent (TestSealedRefusedNotSentNamed).
	if err := alice.SetSettings(ctx, Settings{ReadReceipts: true, SealedFallback: true}); err != nil {
		t.Fatal(err)
	}
	if err := alice.db.Put(ctx, sealedsender.Table, sealedsender.ContactKeyRow("bob"), bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "after fallback"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bobEvents, EventMessage); e.Message.Text != "after fallback" || e.Message.From != "alice" {
		t.Fatalf("bob got %+v", e.Message)
	}
	if e := waitEvent(t, aliceEvents, EventSealedDowngrade); e.User != "bob" {
		t.Fatalf("downgrade event %+v", e)
	}
	if n, err := alice.SealedDowngrades(ctx); err != nil || n == 0 {
		t.Fatalf("downgrades counted: %d %v", n, err)
	}
}

// forgeSealed is a hostile relay's forgery: its certificate issuer vouches
// that as owns mallory's identity key, and mallory seals text to to under
// that certificate, over her session with to.
func forgeSealed(ctx context.Context, t *testing.T, is *testIssuer, mallory *Client, as string, to session.Address, text string) []byte {
	t.Helper()
	forged, err := sealed.NewSenderCertificate(rand.Reader, as, "", mallory.identity.PublicKey(), 1, time.Now().Add(time.Hour), is.server, is.serverKey.Private)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := content.NewText(text, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pt, err := content.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	mallory.cryptoMu.Lock()
	ct, err := sealed.Encrypt(ctx, rand.Reader, mallory.sigStores(mallory.db).stores(), to, forged, pt, sealed.HintDefault, nil, time.Now())
	mallory.cryptoMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// TestSealedForgedSenderRefused plays a hostile relay: it mints a valid
// certificate saying "alice" for mallory's identity key, and mallory seals
// a message to bob with it. Bob holds alice's real identity key and refuses.
func TestSealedForgedSenderRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 3, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	mallory, malloryEvents := r.enrollSealed(t, code, "mallory", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)
	exchangeProfileKeys(t, mallory, bob, malloryEvents, bobEvents)

	// Mallory's session with bob carries the forgery (a PreKey message of a
	// new session is refused the same way).
	ct := forgeSealed(ctx, t, r.issuer, mallory, "alice", session.Address{Name: "bob", DeviceID: bob.DeviceID()}, "I am alice, send money")
	bobPK, err := bob.ProfileKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ak, _ := sealed.DeriveAccessKey(bobPK)
	conn, err := transport.Dial(ctx, r.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.SealedSend(ctx, &wire.SealedSendRequest{Recipient: "bob", MessageId: []byte("forged-1"), AccessKey: ak,
		Messages: []*wire.OutgoingMessage{{DeviceId: bob.DeviceID(), RegistrationId: bob.acct.RegistrationID, Type: wire.EnvelopeTypeSealed, Content: ct}}}); err != nil {
		t.Fatal(err)
	}
	// The certificate names alice with mallory's key: bob checks that key
	// against the key log (every device pins one since invitations carry
	// it), which holds another key for alice, and refuses the message.
	e := waitEvent(t, bobEvents, EventError)
	if !errors.Is(e.Err, ErrKeyChangeNotInLog) {
		t.Fatalf("bob's error: %v", e.Err)
	}
	// Nothing shown: the genuine alice's message is the next one bob sees.
	if _, err := alice.Send(ctx, "bob", "the real alice"); err != nil {
		t.Fatal(err)
	}
	for {
		ev := waitEvent(t, bobEvents, EventMessage)
		if strings.Contains(ev.Message.Text, "money") {
			t.Fatalf("bob shows the forged message: %+v", ev.Message)
		}
		if ev.Message.Text == "the real alice" {
			break
		}
	}
	h, err := bob.History(ctx, "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if strings.Contains(m.Text, "money") {
			t.Fatalf("the forged message is in bob's history: %+v", m)
		}
	}
}

// TestSealedStaleDevices: the relay's device-list check applies to sealed
// sends. Bob links a phone; alice's next sealed send is answered
// STALE_DEVICES, she starts a session with the phone and both of bob's
// devices get the message, sealed. A sealed send on an authenticated
// connection is refused.
func TestSealedStaleDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)

	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	bobPK, _ := bob.ProfileKey(ctx)
	ak, _ := sealed.DeriveAccessKey(bobPK)
	_, err = conn.SealedSend(ctx, &wire.SealedSendRequest{Recipient: "bob", MessageId: []byte("on-authed"), AccessKey: ak,
		Messages: []*wire.OutgoingMessage{{DeviceId: 1, RegistrationId: bob.acct.RegistrationID, Type: wire.EnvelopeTypeSealed, Content: []byte("x")}}})
	if transport.Code(err) != wire.ErrorCode_BAD_REQUEST {
		t.Fatalf("sealed send on an authenticated connection: %v", err)
	}

	phone, phoneEvents := linkPhone(t, r.testRelay, bob)
	if ok, err := alice.SendsSealed(ctx, "bob"); err != nil || !ok {
		t.Fatalf("alice no longer seals to bob: %v %v", ok, err)
	}
	logMark := len(r.logs.String())
	if _, err := alice.Send(ctx, "bob", "to both of bob's devices"); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan Event{"bob": bobEvents, "phone": phoneEvents} {
		for {
			e := waitEvent(t, ch, EventMessage)
			if e.Message.Text == "to both of bob's devices" {
				if e.Message.From != "alice" {
					t.Fatalf("%s shows sender %s", name, e.Message.From)
				}
				break
			}
		}
	}
	if phone.DeviceID() == bob.DeviceID() {
		t.Fatal("the phone has bob's device id")
	}
	logs := r.logs.String()[logMark:]
	if !strings.Contains(logs, "STALE_DEVICES") {
		t.Logf("relay logs:\n%s", logs)
		t.Fatal("the sealed send was not answered STALE_DEVICES first")
	}
	if strings.Contains(logs, "alice") {
		t.Fatalf("relay logs of the sealed sends name alice:\n%s", logs)
	}
}

// TestSealedProfileKeyLinkedDevice: a linked device makes no profile key of
// its own; it adopts the account's from its sibling's sync, so contacts keep
// one key for the account and sealed sends to it keep working.
func TestSealedProfileKeyLinkedDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startSealedRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enrollSealed(t, code, "alice", true)
	bob, bobEvents := r.enrollSealed(t, code, "bob", true)
	exchangeProfileKeys(t, alice, bob, aliceEvents, bobEvents)
	bobPK, _ := bob.ProfileKey(ctx)

	phone, _ := linkPhone(t, r.testRelay, bob)
	if _, err := phone.Send(ctx, "alice", "from bob's phone"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aliceEvents, EventMessage)
	// The link approval gave the phone the account's key: it made none
	// of its own.
	if k, err := phone.db.Get(ctx, sealedsender.Table, sealedsender.RowProfileKey); err != nil || !bytes.Equal(k, bobPK) {
		t.Fatalf("the linked phone holds another profile key than the account's (%v)", err)
	}
	// Bob's next message syncs to the phone with the same key.
	if _, err := bob.Send(ctx, "alice", "from bob's first device"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aliceEvents, EventMessage)
	if _, err := phone.Send(ctx, "alice", "phone again"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aliceEvents, EventMessage)
	if k, err := alice.db.Get(ctx, sealedsender.Table, sealedsender.ContactKeyRow("bob")); err != nil || !bytes.Equal(k, bobPK) {
		t.Fatalf("alice's key for bob changed: %v", err)
	}
	if _, err := alice.Send(ctx, "bob", "still sealed"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := alice.SendsSealed(ctx, "bob"); !ok {
		t.Fatal("alice's sealed send to bob was refused")
	}
}
