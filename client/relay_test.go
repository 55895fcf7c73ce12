package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/account"
	"sotto/client/org"
	"sotto/client/transport"
	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/signal/session"
)

// testRelay is a real relay (SQLite store, WebSockets) on 127.0.0.1 with a
// settable clock.
type testRelay struct {
	url    string
	store  *sqlitestore.Store
	off    atomic.Int64
	org    *orgtest.Org
	logPub ed25519.PublicKey
}

func (r *testRelay) now() time.Time { return time.Now().Add(time.Duration(r.off.Load())) }

func startRelay(t *testing.T) *testRelay {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &testRelay{store: st}
	r.serve(t, r.config())
	return r
}

// config is the relay configuration every test relay starts from: r's
// store and clock, no logs, enrollment fast enough for tests, and a key
// transparency log (transparency.go), whose key invitations carry.
func (r *testRelay) config() relay.Config {
	cfg := relay.DefaultConfig()
	_, cfg.LogKey, _ = ed25519.GenerateKey(rand.Reader)
	cfg.Directory, cfg.Mailbox = r.store, r.store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = r.now
	cfg.EnrollRate = relay.Rate{PerSecond: 100, Burst: 100}
	return cfg
}

// serve runs a relay with cfg over HTTP until the test ends, then stops
// it and closes r's store.
func (r *testRelay) serve(t *testing.T, cfg relay.Config) {
	t.Helper()
	r.useLogKey(cfg)
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		hs.Close()
		r.store.Close()
	})
	r.url = hs.URL
}

// code stands for what used to be an activation code: the validity of
// the invitations that enroll mints from it, one per user.
func (r *testRelay) code(t *testing.T, _ int, valid time.Duration) string {
	t.Helper()
	return valid.String()
}

// invite mints and registers an invitation for user, valid for valid, as
// the org admin's client would (sotto admin invite).
func (r *testRelay) invite(t *testing.T, user string, valid time.Duration) *org.Opened {
	t.Helper()
	return r.inviteAt(t, user, valid, r.url)
}

// useLogKey notes the log key of the relay r runs with cfg.
func (r *testRelay) useLogKey(cfg relay.Config) {
	if cfg.LogKey != nil {
		r.logPub = cfg.LogKey.Public().(ed25519.PublicKey)
	}
}

// ensureOrg creates r's organization, as its first admin device would,
// on first use.
func (r *testRelay) ensureOrg() *orgtest.Org {
	if r.org == nil {
		r.org = orgtest.New("Test Org")
		if err := r.org.Register(context.Background(), r.store); err != nil {
			panic(err)
		}
	}
	return r.org
}

// inviteAt is invite with the relay reached at url (a hostile proxy).
func (r *testRelay) inviteAt(t *testing.T, user string, valid time.Duration, url string) *org.Opened {
	t.Helper()
	r.ensureOrg()
	now := r.now()
	inv, err := r.org.Invitation(context.Background(), r.store, org.MintParams{Username: user, Expires: now.Add(valid),
		RelayURL: wsURL(url), LogKey: r.logPub, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// wsURL is the WebSocket form of an httptest server's URL.
func wsURL(u string) string {
	if rest, ok := strings.CutPrefix(u, "http://"); ok {
		return "ws://" + rest
	}
	return u
}

// inviteCode mints an invitation for user from a code of r.code.
func (r *testRelay) inviteCode(t *testing.T, code, user string) *org.Opened {
	t.Helper()
	valid, err := time.ParseDuration(code)
	if err != nil {
		t.Fatalf("test code %q: %v", code, err)
	}
	return r.invite(t, user, valid)
}

// testReceiptDelay is the receipt delay of test clients that do not look
// at it: short, so that tests waiting for a receipt do not wait seconds.
const testReceiptDelay = 5 * time.Millisecond

// enroll enrolls user and returns its client, connected, with its events.
func (r *testRelay) enroll(t *testing.T, code, user string, receive bool) (*Client, chan Event) {
	t.Helper()
	return r.enrollWith(t, code, user, receive, &Options{ReceiptDelayMin: time.Millisecond, ReceiptDelayMax: testReceiptDelay})
}

// enrollWith is enroll with options o (its KDF, passphrase policy and
// OnEvent are set here).
func (r *testRelay) enrollWith(t *testing.T, code, user string, receive bool, o *Options) (*Client, chan Event) {
	t.Helper()
	ctx := context.Background()
	events := make(chan Event, 100)
	o.KDF, o.MinPassphraseBits, o.OnEvent = testKDF, anyPassphrase, func(e Event) { events <- e }
	c, err := Enroll(ctx, EnrollParams{Dir: filepath.Join(t.TempDir(), user), Passphrase: []byte("pw"),
		Invitation: r.inviteCode(t, code, user), DeviceName: "test"}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(ctx, ConnectOptions{Receive: receive}); err != nil {
		t.Fatal(err)
	}
	return c, events
}

func waitEvent(t *testing.T, events chan Event, kind EventKind) Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no event of kind %d", kind)
		}
	}
}

func TestSendReceiveAndDeliveryReceipt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enroll(t, code, "alice", true)
	bob, bobEvents := r.enroll(t, code, "bob", true)

	sent, err := alice.Send(ctx, "bob", "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, bobEvents, EventMessage)
	if e.Message.Text != "hello bob" || e.Message.From != "alice" || string(e.Message.ID) != string(sent.ID) {
		t.Fatalf("bob got %+v", e.Message)
	}
	// Bob's device sent a delivery receipt; Alice's history records it.
	e = waitEvent(t, aliceEvents, EventReceipt)
	if e.Receipt.From != "bob" || e.Receipt.Read || len(e.Receipt.IDs) != 1 || string(e.Receipt.IDs[0]) != string(sent.ID) {
		t.Fatalf("receipt %+v", e.Receipt)
	}
	h, err := alice.History(ctx, "bob", 0)
	if err != nil || len(h) != 1 || !h[0].Delivered || !h[0].Outgoing {
		t.Fatalf("alice history %+v %v", h, err)
	}
	if _, err := bob.Send(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, aliceEvents, EventMessage); e.Message.Text != "hi" {
		t.Fatalf("alice got %+v", e.Message)
	}
}

func TestPreKeysReplenished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	bob, _ := r.enroll(t, code, "bob", false)
	alice, _ := r.enroll(t, code, "alice", false)
	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	// Others start sessions with Bob until few one-time prekeys are left.
	for range account.InitialPreKeys - account.ReplenishBelow + 1 {
		if _, err := conn.FetchPreKeys(ctx, "bob", 0); err != nil {
			t.Fatal(err)
		}
	}
	bconn, err := bob.connection()
	if err != nil {
		t.Fatal(err)
	}
	before, err := bconn.PreKeyCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.OneTimePrekeys >= account.ReplenishBelow {
		t.Fatalf("setup: %d one-time prekeys left", before.OneTimePrekeys)
	}
	if err := bob.replenishPreKeys(ctx, bconn); err != nil {
		t.Fatal(err)
	}
	after, err := bconn.PreKeyCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.OneTimePrekeys < before.OneTimePrekeys+account.InitialPreKeys {
		t.Fatalf("one-time prekeys %d -> %d", before.OneTimePrekeys, after.OneTimePrekeys)
	}
	// A session built on a replenished prekey works.
	for range after.OneTimePrekeys - 1 {
		if _, err := conn.FetchPreKeys(ctx, "bob", 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "on a fresh prekey"); err != nil {
		t.Fatal(err)
	}
}

func TestExpiredSubscriptionCannotSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	r.enroll(t, code, "bob", false)
	if _, err := alice.Send(ctx, "bob", "before expiry"); err != nil {
		t.Fatal(err)
	}
	alice.Disconnect()
	r.off.Store(int64(2 * time.Hour))
	if err := alice.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "after expiry"); !errors.Is(err, ErrExpired) {
		t.Fatalf("send after expiry: %v, want ErrExpired", err)
	}
	h, err := alice.History(ctx, "bob", 0)
	if err != nil || len(h) != 1 || h[0].Text != "before expiry" {
		t.Fatalf("history after expiry: %+v %v", h, err)
	}
}

func TestLinkedDeviceReceivesAndSyncs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enroll(t, code, "alice", true)
	bob, bobEvents := r.enroll(t, code, "bob", true)

	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	phoneEvents := make(chan Event, 100)
	phone, err := l.Finish(ctx, filepath.Join(t.TempDir(), "phone"), []byte("pw"), "phone", &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(e Event) { phoneEvents <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	if phone.Username() != "alice" || phone.DeviceID() == alice.DeviceID() || string(phone.IdentityKey()) != string(alice.IdentityKey()) {
		t.Fatalf("linked device: %s.%d", phone.Username(), phone.DeviceID())
	}
	if err := phone.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "to both"); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []chan Event{aliceEvents, phoneEvents} {
		if e := waitEvent(t, ev, EventMessage); e.Message.Text != "to both" {
			t.Fatalf("got %+v", e.Message)
		}
	}
	if _, err := phone.Send(ctx, "bob", "from the phone"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bobEvents, EventMessage); e.Message.FromDevice != phone.DeviceID() {
		t.Fatalf("bob got %+v", e.Message)
	}
	e := waitEvent(t, aliceEvents, EventMessage)
	if !e.Message.Outgoing || !e.Message.Synced || e.Message.Peer != "bob" || e.Message.Text != "from the phone" {
		t.Fatalf("laptop got transcript %+v", e.Message)
	}
	if err := alice.ApproveLink(ctx, "sotto-link:garbage"); !errors.Is(err, ErrBadLinkCode) {
		t.Fatalf("bad code: %v", err)
	}
	var te *transport.Error
	if err := alice.RemoveDevice(ctx, phone.DeviceID()); err != nil {
		t.Fatal(err)
	}
	phone.Disconnect()
	if err := phone.Connect(ctx, ConnectOptions{}); !errors.Is(err, ErrRevoked) || !errors.As(err, &te) {
		t.Fatalf("revoked device connect: %v", err)
	}
}

func TestSignedPreKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 3, time.Hour)
	var off atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	bobEvents := make(chan Event, 100)
	bob, err := Enroll(ctx, EnrollParams{Dir: filepath.Join(t.TempDir(), "bob"), Passphrase: []byte("pw"), Invitation: r.inviteCode(t, code, "bob")}, &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Now: now, OnEvent: func(e Event) { bobEvents <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	alice, _ := r.enroll(t, code, "alice", false)
	carol, _ := r.enroll(t, code, "carol", false)
	aconn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	signedID := func() uint32 {
		t.Helper()
		resp, err := aconn.FetchPreKeys(ctx, "bob", 0)
		if err != nil || len(resp.Bundles) != 1 {
			t.Fatalf("fetch: %v", err)
		}
		return resp.Bundles[0].SignedPrekey.Id
	}
	first := signedID()

	// A message encrypted to the old signed prekey waits at the relay
	// while Bob's device rotates its keys a week later.
	if _, err := alice.Send(ctx, "bob", "to the old key"); err != nil {
		t.Fatal(err)
	}
	off.Store(int64(8 * 24 * time.Hour))
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bobEvents, EventMessage); e.Message.Text != "to the old key" {
		t.Fatalf("got %+v", e.Message)
	}
	// Connect rotated the keys before returning.
	bob.Disconnect()
	second := signedID()
	if second == first {
		t.Fatalf("signed prekey %d not rotated", first)
	}
	// A new session is built on the new key.
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Send(ctx, "bob", "to the new key"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bobEvents, EventMessage); e.Message.Text != "to the new key" {
		t.Fatalf("got %+v", e.Message)
	}
	// Old keys are kept a while, then deleted.
	ss := bob.sigStores(bob.db)
	if _, err := ss.LoadSignedPreKey(ctx, first); err != nil {
		t.Fatalf("rotated key dropped too early: %v", err)
	}
	bob.Disconnect()
	off.Store(int64(50 * 24 * time.Hour))
	if err := bob.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	bob.Disconnect()
	if _, err := ss.LoadSignedPreKey(ctx, first); !errors.Is(err, session.ErrInvalidKeyID) {
		t.Fatalf("old signed prekey kept: %v", err)
	}
	if _, err := ss.LoadSignedPreKey(ctx, signedID()); err != nil {
		t.Fatalf("current signed prekey: %v", err)
	}
}
