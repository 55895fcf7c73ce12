package transport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/transport"
	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// clock is a settable clock for the relay under test.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// testRelay is a real relay (real SQLite store, real WebSockets) on
// 127.0.0.1:0.
type testRelay struct {
	url   string
	srv   *relay.Server
	store *sqlitestore.Store
	clock *clock
	dir   string
	org   *orgtest.Org // registered in store
}

// leanSockets makes startRelay use relay.AcceptLean (see TestLeanSocket).
var leanSockets bool

func startRelay(t *testing.T, tweak func(*relay.Config)) *testRelay {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := new(clock)
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = clk.now
	cfg.RevocationPoll = 20 * time.Millisecond
	cfg.EnrollRate = relay.Rate{PerSecond: 100, Burst: 100}
	if leanSockets {
		cfg.AcceptWebSocket = relay.AcceptLean
	}
	if tweak != nil {
		tweak(&cfg)
	}
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
		store.Close()
	})
	org := orgtest.New("Test Org")
	if err := org.Register(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	return &testRelay{url: hs.URL, srv: srv, store: store, clock: clk, dir: dir, org: org}
}

// invite registers the organization's invitation for username, whose
// seat enrolls one device until valid has passed.
func (r *testRelay) invite(t *testing.T, username string, valid time.Duration) *orgtest.Seat {
	t.Helper()
	now := r.clock.now()
	s, err := r.org.Invite(context.Background(), r.store, username, now.Add(valid), now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *testRelay) dial(t *testing.T) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(context.Background(), r.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// device is an enrolled test device.
type device struct {
	username string
	id       uint32
	reg      uint32
	key      ed25519.PrivateKey
	identity []byte
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func prekeys(firstID uint32, n int) *wire.PreKeys {
	p := &wire.PreKeys{
		SignedPrekey:    &wire.SignedPreKey{Id: firstID, PublicKey: randBytes(33), Signature: randBytes(64)},
		LastResortKyber: &wire.SignedPreKey{Id: firstID + 1, PublicKey: randBytes(1569), Signature: randBytes(64)},
	}
	for i := range n {
		p.OneTimePrekeys = append(p.OneTimePrekeys, &wire.PreKey{Id: firstID + 100 + uint32(i), PublicKey: randBytes(33)})
		p.OneTimeKyberPrekeys = append(p.OneTimeKyberPrekeys, &wire.SignedPreKey{Id: firstID + 200 + uint32(i), PublicKey: randBytes(1569), Signature: randBytes(64)})
	}
	return p
}

// enrollRequest enrolls username (as typed) with seat's code and a fresh
// identity key the seat certifies.
func enrollRequest(seat *orgtest.Seat, username string, prekeys *wire.PreKeys) *wire.EnrollRequest {
	ik := randBytes(33)
	return &wire.EnrollRequest{ActivationCode: seat.Code, Username: username, IdentityKey: ik,
		IdentityCertificate: seat.Certify(ik), Prekeys: prekeys}
}

// join invites username for a day and enrolls its first device.
func (r *testRelay) join(t *testing.T, username string) (*transport.Conn, *device) {
	t.Helper()
	return r.enroll(t, r.invite(t, username, 24*time.Hour), username)
}

func (r *testRelay) enroll(t *testing.T, seat *orgtest.Seat, username string) (*transport.Conn, *device) {
	t.Helper()
	c := r.dial(t)
	_, key, _ := ed25519.GenerateKey(nil)
	req := enrollRequest(seat, username, prekeys(1, 5))
	d := &device{username: username, reg: 1000 + uint32(len(username)), key: key, identity: req.IdentityKey}
	req.RegistrationId, req.DeviceName = d.reg, username+"-laptop"
	resp, err := c.Enroll(context.Background(), req, key)
	if err != nil {
		t.Fatalf("enroll %s: %v", username, err)
	}
	d.id = resp.DeviceId
	return c, d
}

func (r *testRelay) login(t *testing.T, d *device) *transport.Conn {
	t.Helper()
	c := r.dial(t)
	if _, err := c.Authenticate(context.Background(), d.username, d.id, d.key); err != nil {
		t.Fatalf("authenticate %s.%d: %v", d.username, d.id, err)
	}
	return c
}

func wantCode(t *testing.T, err error, code wire.ErrorCode) *transport.Error {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
	return te
}

func send(t *testing.T, c *transport.Conn, to string, msgID string, content string, devs ...*device) (*wire.SendMessageResponse, error) {
	t.Helper()
	req := &wire.SendMessageRequest{Recipient: to, MessageId: []byte(msgID)}
	for _, d := range devs {
		req.Messages = append(req.Messages, &wire.OutgoingMessage{DeviceId: d.id, RegistrationId: d.reg, Type: 3, Content: []byte(content)})
	}
	return c.SendMessage(context.Background(), req)
}

func recv(t *testing.T, c *transport.Conn) *wire.Envelope {
	t.Helper()
	select {
	case e, ok := <-c.Envelopes():
		if !ok {
			t.Fatalf("connection ended: %v", c.Err())
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no envelope within 10s")
	}
	return nil
}

// expectNothing checks that the backlog is drained without any envelope.
func expectNothing(t *testing.T, c *transport.Conn) {
	t.Helper()
	select {
	case e := <-c.Envelopes():
		t.Fatalf("unexpected envelope %q", e.Content)
	case <-c.Drained():
	case <-time.After(10 * time.Second):
		t.Fatal("queue not drained within 10s")
	}
	select {
	case e := <-c.Envelopes():
		t.Fatalf("unexpected envelope %q", e.Content)
	default:
	}
}

func TestEnrollAndAuthenticate(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	seat := r.invite(t, "alice", 24*time.Hour)
	alice, ad := r.enroll(t, seat, "Alice")
	if ad.id != 1 {
		t.Fatalf("first device id %d", ad.id)
	}
	// Enrolling authenticates the connection.
	devs, err := alice.ListDevices(ctx)
	if err != nil || len(devs.Devices) != 1 || devs.Username != "alice" || devs.Devices[0].Name != "Alice-laptop" {
		t.Fatalf("list devices: %v %v", devs, err)
	}

	// Usernames are unique after normalization; a seat enrolls once.
	c := r.dial(t)
	_, k, _ := ed25519.GenerateKey(nil)
	_, err = c.Enroll(ctx, enrollRequest(r.invite(t, "alice", time.Hour), "ALICE", prekeys(1, 0)), k)
	wantCode(t, err, wire.ErrorCode_CONFLICT)
	_, err = c.Enroll(ctx, enrollRequest(seat, "a!", prekeys(1, 0)), k)
	wantCode(t, err, wire.ErrorCode_BAD_REQUEST)
	wrong := enrollRequest(r.invite(t, "mallory", time.Hour), "mallory", prekeys(1, 0))
	wrong.ActivationCode = "WRONG-CODE"
	_, err = c.Enroll(ctx, wrong, k)
	wantCode(t, err, wire.ErrorCode_FORBIDDEN)
	bobSeat := r.invite(t, "bob", time.Hour)
	r.enroll(t, bobSeat, "bob")
	_, err = c.Enroll(ctx, enrollRequest(bobSeat, "bob", prekeys(1, 0)), k)
	wantCode(t, err, wire.ErrorCode_FORBIDDEN)

	// Good signature.
	c2 := r.login(t, ad)
	if _, err := c2.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Requests before authentication are refused.
	c3 := r.dial(t)
	_, err = c3.GetIdentity(ctx, "alice")
	wantCode(t, err, wire.ErrorCode_UNAUTHENTICATED)
	// Bad signature (another key).
	_, other, _ := ed25519.GenerateKey(nil)
	_, err = c3.Authenticate(ctx, "alice", 1, other)
	wantCode(t, err, wire.ErrorCode_UNAUTHENTICATED)
	// Unknown user and unknown device look the same as a bad signature.
	_, err = c3.Authenticate(ctx, "nobody", 1, ad.key)
	wantCode(t, err, wire.ErrorCode_UNAUTHENTICATED)
	_, err = c3.Authenticate(ctx, "alice", 7, ad.key)
	wantCode(t, err, wire.ErrorCode_UNAUTHENTICATED)

	// Replayed challenge: a signature over a nonce that was already used
	// (on this connection or another one) is refused.
	c4 := r.dial(t)
	nonce := c4.Challenge()
	sig := ed25519.Sign(ad.key, wire.AuthTranscript(nonce, "alice", 1))
	authReq := func() *wire.Request {
		return &wire.Request{Body: &wire.Request_Authenticate{Authenticate: &wire.AuthenticateRequest{Username: "alice", DeviceId: 1, Signature: sig}}}
	}
	if _, err := c4.Do(ctx, authReq()); err != nil {
		t.Fatalf("first use of the challenge: %v", err)
	}
	c5 := r.dial(t)
	_, err = c5.Do(ctx, authReq())
	wantCode(t, err, wire.ErrorCode_UNAUTHENTICATED)
	_, err = c5.Do(ctx, authReq())
	wantCode(t, err, wire.ErrorCode_UNAUTHENTICATED)
	if got := string(c5.Challenge()); got == string(nonce) {
		t.Fatal("challenge not renewed")
	}
	// The identity lookup returns what was enrolled.
	// (c4 authenticated as the same device and replaced c2.)
	select {
	case <-c2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("older connection of the device not replaced")
	}
	id, err := c4.GetIdentity(ctx, "ALICE")
	if err != nil || string(id.IdentityKey) != string(ad.identity) || id.Username != "alice" {
		t.Fatalf("identity: %v %v", id, err)
	}
	_, err = c4.GetIdentity(ctx, "nobody")
	wantCode(t, err, wire.ErrorCode_NOT_FOUND)
}

func TestPreKeyExhaustion(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	alice, ad := r.join(t, "alice")
	bob, _ := r.join(t, "bob")
	// Replace alice's keys with exactly 2 one-time keys of each kind.
	for range 5 {
		if _, err := bob.FetchPreKeys(ctx, "alice", 1); err != nil {
			t.Fatal(err)
		}
	}
	n, err := alice.PreKeyCount(ctx)
	if err != nil || n.OneTimePrekeys != 0 || n.OneTimeKyberPrekeys != 0 || !n.HasSignedPrekey || !n.HasLastResortKyber {
		t.Fatalf("count after using the enrolled keys: %v %v", n, err)
	}
	up := prekeys(50, 2)
	if err := alice.UploadPreKeys(ctx, up); err != nil {
		t.Fatal(err)
	}
	if n, _ := alice.PreKeyCount(ctx); n.OneTimePrekeys != 2 || n.OneTimeKyberPrekeys != 2 {
		t.Fatalf("count after upload: %v", n)
	}
	seenEC := map[uint32]bool{}
	for i := range 3 {
		resp, err := bob.FetchPreKeys(ctx, "alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Bundles) != 1 || string(resp.IdentityKey) != string(ad.identity) {
			t.Fatalf("bundles: %v", resp)
		}
		b := resp.Bundles[0]
		if b.SignedPrekey.GetId() != 50 || b.RegistrationId != ad.reg {
			t.Fatalf("signed prekey: %v", b.SignedPrekey)
		}
		if i < 2 {
			if b.OneTimePrekey == nil || seenEC[b.OneTimePrekey.Id] || b.KyberLastResort {
				t.Fatalf("fetch %d: %v", i, b)
			}
			seenEC[b.OneTimePrekey.Id] = true
		} else {
			if b.OneTimePrekey != nil || !b.KyberLastResort || b.KyberPrekey.GetId() != 51 {
				t.Fatalf("exhausted fetch: %v", b)
			}
		}
	}
	_, err = bob.FetchPreKeys(ctx, "alice", 9)
	wantCode(t, err, wire.ErrorCode_NOT_FOUND)
	err = alice.UploadPreKeys(ctx, &wire.PreKeys{OneTimePrekeys: []*wire.PreKey{{Id: 1}}})
	wantCode(t, err, wire.ErrorCode_BAD_REQUEST)
}

func TestSendReceiveOnlineAndOffline(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	alice, _ := r.join(t, "alice")
	bob, bd := r.join(t, "bob")
	expectNothing(t, bob)

	// Online: pushed at once.
	resp, err := send(t, alice, "bob", "m1", "hello", bd)
	if err != nil || resp.ServerTimestampMs == 0 || resp.Duplicate {
		t.Fatalf("send: %v %v", resp, err)
	}
	e := recv(t, bob)
	if string(e.Content) != "hello" || e.Sender != "alice" || e.SenderDevice != 1 || string(e.MessageId) != "m1" || len(e.Id) != 16 || e.Type != 3 {
		t.Fatalf("envelope: %v", e)
	}
	// Idempotent retry: acknowledged as a duplicate, not stored twice.
	resp2, err := send(t, alice, "bob", "m1", "hello", bd)
	if err != nil || !resp2.Duplicate || resp2.ServerTimestampMs != resp.ServerTimestampMs {
		t.Fatalf("retry: %v %v", resp2, err)
	}
	if err := bob.Ack(ctx, e.Id); err != nil {
		t.Fatal(err)
	}
	bob.Close()

	// Offline: more than one delivery window (256), drained in order on
	// login; the last 200 are left unacknowledged (less than a window).
	const n, keep = 400, 100
	for i := range n {
		if _, err := send(t, alice, "bob", fmt.Sprint("o", i), fmt.Sprint(i), bd); err != nil {
			t.Fatal(err)
		}
	}
	bob2 := r.login(t, bd)
	var unacked, batch [][]byte
	for i := range n {
		e := recv(t, bob2)
		if string(e.Content) != fmt.Sprint(i) {
			t.Fatalf("envelope %d: got %q (out of order)", i, e.Content)
		}
		if i < n-keep {
			// Acks are batched, as a client would.
			if batch = append(batch, e.Id); len(batch) == 50 {
				if err := bob2.Ack(ctx, batch...); err != nil {
					t.Fatal(err)
				}
				batch = nil
			}
		} else {
			unacked = append(unacked, e.Id)
		}
	}
	select {
	case <-bob2.Drained():
	case <-time.After(10 * time.Second):
		t.Fatal("no QueueEmpty")
	}
	bob2.Close()

	// What was not acked is delivered again, with the same ids; then ack.
	bob3 := r.login(t, bd)
	for i := range keep {
		e := recv(t, bob3)
		if string(e.Id) != string(unacked[i]) {
			t.Fatalf("redelivery %d: different id", i)
		}
		batch = append(batch, e.Id)
	}
	if err := bob3.Ack(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	bob3.Close()
	expectNothing(t, r.login(t, bd))
	if r.srv.Metrics().Acked() != n+1 {
		t.Fatalf("acked %d", r.srv.Metrics().Acked())
	}
}

func TestSendToOwnDevicesAndStaleList(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	alice, ad := r.join(t, "alice")
	bob1, bd1 := r.join(t, "bob")

	// Link a second device to bob through the provisioning channel.
	newDev := r.dial(t)
	addr, err := newDev.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := bob1.LinkToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The provisioning message is opaque to the relay (in real use it
	// is encrypted to a key the new device showed in a QR code).
	secret := append([]byte(tok.Token+"|"), bd1.identity...)
	if err := bob1.SendProvisioning(ctx, addr, secret); err != nil {
		t.Fatal(err)
	}
	var got []byte
	select {
	case got = <-newDev.ProvisioningMessages():
	case <-time.After(10 * time.Second):
		t.Fatal("no provisioning message")
	}
	token, identity, _ := strings.Cut(string(got), "|")
	_, k2, _ := ed25519.GenerateKey(nil)
	bd2 := &device{username: "bob", reg: 4242, key: k2, identity: []byte(identity)}
	lresp, err := newDev.LinkDevice(ctx, &wire.LinkDeviceRequest{LinkToken: token, IdentityKey: []byte(identity),
		RegistrationId: bd2.reg, DeviceName: "bob-phone", Prekeys: prekeys(1, 1)}, k2)
	if err != nil || lresp.DeviceId != 2 || lresp.Username != "bob" {
		t.Fatalf("link: %v %v", lresp, err)
	}
	bd2.id = lresp.DeviceId
	bob2 := newDev
	// The token is single-use.
	other := r.dial(t)
	_, k3, _ := ed25519.GenerateKey(nil)
	_, err = other.LinkDevice(ctx, &wire.LinkDeviceRequest{LinkToken: token, IdentityKey: []byte(identity), Prekeys: prekeys(1, 1)}, k3)
	wantCode(t, err, wire.ErrorCode_FORBIDDEN)

	// Alice still believes bob has one device.
	_, err = send(t, alice, "bob", "s1", "hi", bd1)
	te := wantCode(t, err, wire.ErrorCode_STALE_DEVICES)
	if fmt.Sprint(te.Stale.Missing) != "[2]" || len(te.Stale.Extra) != 0 || len(te.Stale.Current.GetDevices()) != 2 {
		t.Fatalf("stale: %v", te.Stale)
	}
	ghost := &device{id: 9, reg: 1}
	wrongReg := &device{id: 2, reg: 1}
	_, err = send(t, alice, "bob", "s1", "hi", bd1, wrongReg, ghost)
	te = wantCode(t, err, wire.ErrorCode_STALE_DEVICES)
	if fmt.Sprint(te.Stale.Extra) != "[9]" || fmt.Sprint(te.Stale.Mismatched) != "[2]" || len(te.Stale.Missing) != 0 {
		t.Fatalf("stale: %v", te.Stale)
	}
	// With the current list the send goes to both devices.
	if _, err := send(t, alice, "bob", "s1", "hi", bd1, bd2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*transport.Conn{bob1, bob2} {
		if e := recv(t, c); string(e.Content) != "hi" {
			t.Fatalf("got %q", e.Content)
		}
	}
	// Sending to one's own account: every other own device, never oneself.
	_, err = send(t, bob1, "bob", "sync1", "note to self", bd1, bd2)
	te = wantCode(t, err, wire.ErrorCode_STALE_DEVICES)
	if fmt.Sprint(te.Stale.Extra) != "[1]" {
		t.Fatalf("self send stale: %v", te.Stale)
	}
	if _, err := send(t, bob1, "bob", "sync1", "note to self", bd2); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, bob2); string(e.Content) != "note to self" || e.SenderDevice != 1 {
		t.Fatalf("got %v", e)
	}
	_ = ad

	// Removing bob's phone from the laptop closes the phone's connection
	// and the phone can no longer authenticate.
	if err := bob1.RemoveDevice(ctx, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bob2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("revoked device still connected")
	}
	c := r.dial(t)
	_, err = c.Authenticate(ctx, "bob", 2, k2)
	wantCode(t, err, wire.ErrorCode_REVOKED)
	if devs, _ := alice.GetDevices(ctx, "bob"); len(devs.Devices) != 1 {
		t.Fatalf("devices after removal: %v", devs)
	}
}

func TestRevokedByAdminProcess(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	alice, ad := r.join(t, "alice")
	// The admin command revokes through the store only (as another
	// process would); the relay polls the revocation log.
	acct, err := r.store.AccountByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.store.Revoke(ctx, relay.DeviceAddr{Account: acct.ID}, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-alice.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("revoked account still connected")
	}
	c := r.dial(t)
	_, err = c.Authenticate(ctx, "alice", ad.id, ad.key)
	wantCode(t, err, wire.ErrorCode_REVOKED)
}

func TestExpiredSubscriptionCanReceiveNotSend(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	alice, ad := r.enroll(t, r.invite(t, "alice", time.Hour), "alice")
	bob, bd := r.enroll(t, r.invite(t, "bob", 100*24*time.Hour), "bob")
	if _, err := send(t, bob, "alice", "b1", "before", ad); err != nil {
		t.Fatal(err)
	}
	alice.Close()
	r.clock.advance(2 * time.Hour)
	if _, err := send(t, bob, "alice", "b2", "after", ad); err != nil {
		t.Fatal(err)
	}
	a2 := r.dial(t)
	auth, err := a2.Authenticate(ctx, "alice", ad.id, ad.key)
	if err != nil || !auth.SubscriptionExpired {
		t.Fatalf("auth: %v %v", auth, err)
	}
	for _, want := range []string{"before", "after"} {
		if e := recv(t, a2); string(e.Content) != want {
			t.Fatalf("got %q want %q", e.Content, want)
		}
	}
	_, err = send(t, a2, "bob", "a1", "reply", bd)
	wantCode(t, err, wire.ErrorCode_SUBSCRIPTION_EXPIRED)
}

func TestMailboxTTL(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.MailboxTTL = 24 * time.Hour })
	alice, _ := r.enroll(t, r.invite(t, "alice", 100*24*time.Hour), "alice")
	bob, bd := r.enroll(t, r.invite(t, "bob", 100*24*time.Hour), "bob")
	bob.Close()
	if _, err := send(t, alice, "bob", "x", "stale soon", bd); err != nil {
		t.Fatal(err)
	}
	r.clock.advance(25 * time.Hour)
	expectNothing(t, r.login(t, bd))
}

func TestRateLimits(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) {
		c.DeviceRate = relay.Rate{PerSecond: 0.001, Burst: 5}
		c.EnrollRate = relay.Rate{PerSecond: 0.001, Burst: 2}
	})
	ctx := context.Background()
	alice, _ := r.join(t, "alice") // enroll: IP token 1, request 1
	for range 4 {
		if _, err := alice.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err := alice.Ping(ctx)
	te := wantCode(t, err, wire.ErrorCode_RATE_LIMITED)
	if te.RetryAfter <= 0 {
		t.Fatal("no retry hint")
	}
	r.join(t, "bob") // IP token 2
	c := r.dial(t)
	_, k, _ := ed25519.GenerateKey(nil)
	_, err = c.Enroll(ctx, enrollRequest(r.invite(t, "carol", time.Hour), "carol", prekeys(1, 0)), k)
	wantCode(t, err, wire.ErrorCode_RATE_LIMITED)
}

// TestDroppedConnectionLosesNothingAcknowledged sends concurrently and
// drops the sender's connection mid-way: every send the relay acknowledged
// is delivered.
func TestDroppedConnectionLosesNothingAcknowledged(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	alice, _ := r.join(t, "alice")
	bob, bd := r.join(t, "bob")
	bob.Close()
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
		count atomic.Int64
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				req := &wire.SendMessageRequest{Recipient: "bob", MessageId: []byte(id),
					Messages: []*wire.OutgoingMessage{{DeviceId: bd.id, RegistrationId: bd.reg, Content: []byte(id)}}}
				if _, err := alice.SendMessage(ctx, req); err != nil {
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
				if count.Add(1) == 200 {
					alice.Close()
				}
			}
		}()
	}
	wg.Wait()
	if len(acked) < 200 {
		t.Fatalf("only %d sends acknowledged", len(acked))
	}
	// Bob takes envelopes until he has every acknowledged send (others
	// may come too). The timeout only bounds a loaded machine: a lost
	// send never comes.
	b := r.login(t, bd)
	got := map[string]bool{}
	missing := len(acked)
	timeout := time.After(20 * time.Second)
	for missing > 0 {
		select {
		case e := <-b.Envelopes():
			if id := string(e.MessageId); !got[id] {
				got[id] = true
				if acked[id] {
					missing--
				}
			}
			if err := b.Ack(ctx, e.Id); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			for id := range acked {
				if !got[id] {
					t.Fatalf("acknowledged message %s lost", id)
				}
			}
		}
	}
	t.Logf("%d acknowledged, %d delivered", len(acked), len(got))
}

// TestConcurrentSendersOnlineReceiver checks ordering and completeness
// while envelopes reach an online device both directly from the bus and
// from mailbox reads (the receiver acks slowly enough to fill its window).
func TestConcurrentSendersOnlineReceiver(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.DeliveryWindow = 16 })
	ctx := context.Background()
	const senders, each = 6, 80
	bob, bd := r.join(t, "bob")
	expectNothing(t, bob)
	var wg sync.WaitGroup
	for s := range senders {
		c, _ := r.join(t, fmt.Sprint("sender", s))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := send(t, c, "bob", fmt.Sprint(s, "-", i), fmt.Sprint(i), bd); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := map[string]int{}
	seen := map[string]bool{}
	var batch [][]byte
	for n := 0; n < senders*each; n++ {
		e := recv(t, bob)
		if seen[string(e.Id)] {
			t.Fatalf("envelope %s delivered twice", e.MessageId)
		}
		seen[string(e.Id)] = true
		if want := fmt.Sprint(next[e.Sender]); string(e.Content) != want {
			t.Fatalf("%s: got %s, want %s", e.Sender, e.Content, want)
		}
		next[e.Sender]++
		if batch = append(batch, e.Id); len(batch) == 5 {
			if err := bob.Ack(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	wg.Wait()
	bob.Ack(ctx, batch...)
	for s, n := range next {
		if n != each {
			t.Fatalf("%s: %d messages", s, n)
		}
	}
}
