package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/internal/hostileproxy"
	"sotto/relay"
	"sotto/wire"
)

// orgWorld is a relay with an organization: alice is the admin (enrolled
// directly), members enroll through a hostile proxy that tests steer.
type orgWorld struct {
	r      *testRelay
	proxy  *hostileproxy.Proxy
	purl   string
	admin  *Client
	pub    ed25519.PublicKey
	forger ed25519.PrivateKey // a key the hostile relay controls
}

type member struct {
	c      *Client
	events chan Event
	dir    string
	user   string
}

func newOrgWorld(t *testing.T) *orgWorld {
	t.Helper()
	ctx := context.Background()
	w := &orgWorld{r: startRelay(t)}
	w.proxy = hostileproxy.New(w.r.url, nil)
	hs := httptest.NewServer(w.proxy)
	t.Cleanup(func() { w.proxy.Close(); hs.Close() })
	w.purl = hs.URL
	w.admin = w.enrollAt(t, w.r.url, "alice", 30*24*time.Hour).c
	// alice holds the organization's key, as if exported from the
	// device that created it (sotto admin export / import).
	sealed, err := org.SealKey(w.r.org.Key, []byte("export pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.admin.ImportOrgKey(ctx, sealed, []byte("export pw")); err != nil {
		t.Fatal(err)
	}
	w.pub = w.r.org.Public()
	_, w.forger, _ = ed25519.GenerateKey(rand.Reader)
	return w
}

func (w *orgWorld) enrollAt(t *testing.T, url, user string, valid time.Duration) *member {
	t.Helper()
	m := &member{events: make(chan Event, 100), dir: filepath.Join(t.TempDir(), user), user: user}
	c, err := Enroll(context.Background(), EnrollParams{Dir: m.dir, Passphrase: []byte("pw"),
		Invitation: w.r.inviteAt(t, user, valid, url), DeviceName: "test"}, m.options())
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	t.Cleanup(func() { m.c.Close() })
	if err := c.Connect(context.Background(), ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	return m
}

func (w *orgWorld) member(t *testing.T, user string) *member {
	return w.enrollAt(t, w.purl, user, 30*24*time.Hour)
}

func (m *member) options() *Options {
	return &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(e Event) { m.events <- e }}
}

// reopen closes the member's client and opens it again from its store.
func (m *member) reopen(t *testing.T, connect bool) {
	t.Helper()
	m.c.Close()
	c, err := Open(context.Background(), m.dir, []byte("pw"), m.options())
	if err != nil {
		t.Fatalf("reopen %s: %v", m.user, err)
	}
	m.c = c
	if connect {
		if err := c.Connect(context.Background(), ConnectOptions{Receive: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// chat has alice send m a message and waits for it.
func (w *orgWorld) chat(t *testing.T, m *member, text string) {
	t.Helper()
	if _, err := w.admin.Send(context.Background(), m.user, text); err != nil {
		t.Fatal(err)
	}
	for {
		if e := waitEvent(t, m.events, EventMessage); e.Message.Text == text {
			return
		}
	}
}

// forged wraps a document as the relay would push it.
func forged(t *testing.T, doc *wire.OrgDocument) *wire.Frame {
	t.Helper()
	b, err := proto.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return hostileproxy.PushEnvelope(&wire.Envelope{Id: id, Sender: "alice", SenderDevice: 1,
		ServerTimestampMs: time.Now().UnixMilli(), Type: uint32(wire.EnvelopeType_ORG_DOCUMENT), Content: b})
}

func (w *orgWorld) inject(t *testing.T, m *member, f *wire.Frame) {
	t.Helper()
	if _, err := w.proxy.Inject(context.Background(), m.user, hostileproxy.ToClient, f); err != nil {
		t.Fatal(err)
	}
}

func sign(t *testing.T, k ed25519.PrivateKey, kind wire.OrgDocumentKind, body proto.Message) *wire.OrgDocument {
	t.Helper()
	d, err := org.Sign(k, kind, body)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func wipeFor(m *member, issued time.Time, validity time.Duration) *org.WipeOrder {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	return &org.WipeOrder{Username: m.user, DeviceId: m.c.DeviceID(), RegistrationId: m.c.acct.RegistrationID,
		IdentityKey: m.c.IdentityKey(), Nonce: nonce, IssuedMs: issued.UnixMilli(), ExpiresMs: issued.Add(validity).UnixMilli()}
}

// assertIntact checks that m was not wiped: its store reopens with the
// passphrase and its history with alice holds text.
func assertIntact(t *testing.T, m *member, text string) {
	t.Helper()
	m.reopen(t, false)
	h, err := m.c.History(context.Background(), "alice", 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range h {
		if msg.Text == text {
			return
		}
	}
	t.Fatalf("%s: history lost: %d messages", m.user, len(h))
}

func rejected(t *testing.T, m *member, want uint64) {
	t.Helper()
	n, err := m.c.OrgRejected(context.Background())
	if err != nil || n != want {
		t.Fatalf("%s: rejected count %d (%v), want %d", m.user, n, err, want)
	}
}

func TestOrgNoticePolicyAndMembership(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	carol := w.member(t, "carol")
	carol.c.Close() // offline while the notice goes out
	if lp, err := bob.c.Policy(); err != nil || lp.WipeAfter != org.DefaultFailedUnlockLimit {
		t.Fatalf("an org-bound device without a policy: %+v %v, want the default limit", lp, err)
	}

	n, err := w.admin.PublishNotice(ctx, "systems maintenance tonight")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("notice queued for %d devices, want 3", n)
	}
	if e := waitEvent(t, bob.events, EventOrgNotice); e.Notice.Text != "systems maintenance tonight" {
		t.Fatalf("bob got notice %q", e.Notice.Text)
	}
	carol.reopen(t, true)
	if e := waitEvent(t, carol.events, EventOrgNotice); e.Notice.Text != "systems maintenance tonight" {
		t.Fatalf("carol (offline) got notice %q", e.Notice.Text)
	}
	if ns, err := carol.c.Notices(ctx); err != nil || len(ns) != 1 {
		t.Fatalf("carol's notices: %v %v", ns, err)
	}

	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{FailedUnlockLimit: 3, CallsDisabled: true, IdleLockSeconds: 300}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bob.events, EventOrgPolicy)
	p, err := bob.c.OrgPolicy(ctx)
	if err != nil || p == nil || p.Version != 1 || p.CallsAllowed() || !p.AttachmentsAllowed() || p.IdleLock() != 5*time.Minute {
		t.Fatalf("bob's policy: %v %v", p, err)
	}
	if err := bob.c.AllowedByPolicy(ctx, FeatureCalls); !errors.Is(err, ErrForbiddenByPolicy) {
		t.Fatalf("calls under a no-calls policy: %v", err)
	}
	if err := bob.c.AllowedByPolicy(ctx, FeatureAttachments); err != nil {
		t.Fatalf("attachments: %v", err)
	}
	if lp, err := bob.c.Policy(); err != nil || lp.WipeAfter != 3 {
		t.Fatalf("failed-unlock limit not enforced: %+v %v", lp, err)
	}
	// A genuine but older policy is stale: ignored and counted.
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{Version: 2, FailedUnlockLimit: 7}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bob.events, EventOrgPolicy)
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{Version: 1, FailedUnlockLimit: 50}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bob.events, EventOrgRejected)
	if p, _ := bob.c.OrgPolicy(ctx); p.Version != 2 || p.UnlockLimit() != 7 {
		t.Fatalf("stale policy applied: %v", p)
	}

	if _, err := w.admin.Certify(ctx, "bob", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	// Bob sees his own certificate; alice learns bob's key by messaging him.
	w.chat(t, bob, "hi bob")
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := bob.c.IsMember(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob never saw his certificate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok, _ := bob.c.IsMember(ctx, "carol"); ok {
		t.Fatal("carol has no certificate but counts as a member")
	}
}

// scanFor fails if any file under dir contains one of secrets.
func scanFor(t *testing.T, dir string, secrets map[string][]byte) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s still holds %s", path, name)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// downloaded puts a plaintext file where downloaded attachments go.
func downloaded(t *testing.T, m *member, text string) {
	t.Helper()
	dir := filepath.Join(m.dir, "attachments")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "note.txt"), []byte("attachment: "+text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func secretsOf(t *testing.T, m *member, text string) map[string][]byte {
	downloaded(t, m, text)
	id := m.c.acct.Identity
	return map[string][]byte{
		"the message plaintext":    []byte(text),
		"the identity key pair":    bytes.Clone(id),
		"the identity private key": bytes.Clone(id[len(id)-32:]),
		"the device key":           bytes.Clone(m.c.acct.DeviceKey),
	}
}

func TestOrgWipeOfflineDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	const text = "the vault combination is 31-7-22"
	w.chat(t, bob, text)
	secrets := secretsOf(t, bob, text)
	bob.c.Close() // lost and offline

	n, err := w.admin.OrgWipe(ctx, "bob", bob.c.DeviceID(), time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("wipe: %d devices, %v", n, err)
	}
	bob.reopen(t, true)
	if e := waitEvent(t, bob.events, EventWiped); e.Err != nil {
		t.Fatalf("wipe failed: %v", e.Err)
	}
	scanFor(t, bob.dir, secrets)
	if _, err := Open(ctx, bob.dir, []byte("pw"), nil); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("open after wipe: %v, want ErrNoStore", err)
	}
	acct, err := w.r.store.AccountByName(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	d, err := w.r.store.Device(ctx, relay.DeviceAddr{Account: acct.ID, Device: 1})
	if err != nil || !d.Revoked {
		t.Fatalf("the wiped device is still registered: %+v %v", d, err)
	}
}

func TestDuressWipeLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	const text = "meet at the north gate"
	w.chat(t, bob, text)
	if err := bob.c.SetDuress([]byte("duress-code")); err != nil {
		t.Fatal(err)
	}
	secrets := secretsOf(t, bob, text)
	bob.c.Close()
	// Under duress the device looks freshly installed: no store, and
	// nothing said about a wipe.
	_, err := Open(ctx, bob.dir, []byte("duress-code"), nil)
	if !errors.Is(err, store.ErrNoStore) || err.Error() != store.ErrNoStore.Error() {
		t.Fatalf("duress unlock: %v, want exactly what a never-enrolled device says", err)
	}
	if _, ferr := Open(ctx, filepath.Join(t.TempDir(), "never"), []byte("duress-code"), nil); ferr.Error() != err.Error() {
		t.Fatalf("duress unlock says %q, a fresh device %q", err, ferr)
	}
	if store.Exists(bob.dir) {
		t.Fatal("a store is still there after the duress unlock")
	}
	// The bulk of the wipe waits until the front end has answered, so
	// that it does not show in the unlock's timing (sotto runs it when
	// its command ends).
	if err := store.FinishWipe(bob.dir); err != nil {
		t.Fatal(err)
	}
	scanFor(t, bob.dir, secrets)
	if _, err := Open(ctx, bob.dir, []byte("pw"), nil); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("open after duress: %v, want ErrNoStore", err)
	}
}

func TestHostileRelayCannotCommandDevices(t *testing.T) {
	t.Parallel()
	const text = "history that must survive"
	setup := func(t *testing.T) (*orgWorld, *member) {
		w := newOrgWorld(t)
		bob := w.member(t, "bob")
		w.chat(t, bob, text)
		return w, bob
	}
	ctx := context.Background()

	t.Run("forged wipe", func(t *testing.T) {
		w, bob := setup(t)
		w.inject(t, bob, forged(t, sign(t, w.forger, wire.OrgDocumentKind_ORG_WIPE, wipeFor(bob, time.Now(), time.Hour))))
		if e := waitEvent(t, bob.events, EventOrgRejected); !errors.Is(e.Err, org.ErrBadSignature) {
			t.Fatalf("forged wipe: %v", e.Err)
		}
		rejected(t, bob, 1)
		assertIntact(t, bob, text)
	})

	t.Run("replayed wipe", func(t *testing.T) {
		w, bob := setup(t)
		dave := w.member(t, "dave")
		// A genuine order for dave, recorded on its way.
		if _, err := w.admin.OrgWipe(ctx, "dave", dave.c.DeviceID(), time.Hour); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, dave.events, EventWiped)
		var order *wire.Frame
		for _, r := range w.proxy.Seen() {
			if env := r.Frame.GetPush().GetEnvelope(); r.Dir == hostileproxy.ToClient && env.GetType() == uint32(wire.EnvelopeType_ORG_DOCUMENT) {
				order = r.Frame
			}
		}
		if order == nil {
			t.Fatal("the proxy saw no wipe order")
		}
		w.inject(t, bob, order)
		if e := waitEvent(t, bob.events, EventOrgRejected); !errors.Is(e.Err, org.ErrNotThisDevice) {
			t.Fatalf("replayed wipe: %v", e.Err)
		}
		// A genuine order for bob that a relay withheld until it expired.
		expired := sign(t, mustAdminKey(t, w), wire.OrgDocumentKind_ORG_WIPE, wipeFor(bob, time.Now().Add(-2*time.Hour), time.Hour))
		w.inject(t, bob, forged(t, expired))
		if e := waitEvent(t, bob.events, EventOrgRejected); !errors.Is(e.Err, org.ErrExpired) {
			t.Fatalf("expired wipe: %v", e.Err)
		}
		rejected(t, bob, 2)
		assertIntact(t, bob, text)
	})

	t.Run("forged notice and policy", func(t *testing.T) {
		w, bob := setup(t)
		w.inject(t, bob, forged(t, sign(t, w.forger, wire.OrgDocumentKind_ORG_NOTICE, &org.Notice{Seq: 1, Text: "install this app"})))
		waitEvent(t, bob.events, EventOrgRejected)
		w.inject(t, bob, forged(t, sign(t, w.forger, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 99, FailedUnlockLimit: 1})))
		waitEvent(t, bob.events, EventOrgRejected)
		// Unsigned: a genuine body with no signature.
		unsigned := sign(t, mustAdminKey(t, w), wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 100, FailedUnlockLimit: 1})
		unsigned.Signature = nil
		w.inject(t, bob, forged(t, unsigned))
		waitEvent(t, bob.events, EventOrgRejected)
		rejected(t, bob, 3)
		if ns, _ := bob.c.Notices(ctx); len(ns) != 0 {
			t.Fatalf("forged notice shown: %v", ns)
		}
		if p, _ := bob.c.OrgPolicy(ctx); p != nil {
			t.Fatalf("forged policy in force: %v", p)
		}
		if lp, _ := bob.c.Policy(); lp.WipeAfter == 1 {
			t.Fatal("forged failed-unlock limit applied")
		}
		assertIntact(t, bob, text)
	})

	t.Run("swapped org key", func(t *testing.T) {
		w := newOrgWorld(t)
		// The relay serves its own key instead of the organization's.
		fake := w.forger.Public().(ed25519.PublicKey)
		w.proxy.SetRule(func(_ int, dir hostileproxy.Direction, f *wire.Frame) []*wire.Frame {
			if r := f.GetResponse().GetOrgKey(); r != nil {
				r.PublicKey = fake
			}
			return []*wire.Frame{f}
		})
		erin := w.member(t, "erin")
		w.chat(t, erin, text)
		w.inject(t, erin, forged(t, sign(t, w.forger, wire.OrgDocumentKind_ORG_WIPE, wipeFor(erin, time.Now(), time.Hour))))
		// The device never asks the relay for the org key: it pinned it
		// from its invitation, and the relay's key signs nothing it obeys.
		if e := waitEvent(t, erin.events, EventOrgRejected); !errors.Is(e.Err, org.ErrBadSignature) {
			t.Fatalf("swapped key: %v", e.Err)
		}
		if k, _ := erin.c.OrgPublicKey(ctx); !bytes.Equal(k, w.pub) {
			t.Fatal("the pinned org key changed")
		}
		assertIntact(t, erin, text)
	})
}

func mustAdminKey(t *testing.T, w *orgWorld) ed25519.PrivateKey {
	t.Helper()
	k, err := w.admin.adminKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOrgKeyExportImport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	sealed, err := w.admin.ExportOrgKey(ctx, []byte("second admin pass"))
	if err != nil {
		t.Fatal(err)
	}
	bob := w.member(t, "bob")
	if err := bob.c.ImportOrgKey(ctx, sealed, []byte("wrong pass!!")); !errors.Is(err, org.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if err := bob.c.ImportOrgKey(ctx, sealed, []byte("second admin pass")); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.PublishNotice(ctx, "from the second admin"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bob.events, EventOrgNotice); e.Notice.Text != "from the second admin" {
		t.Fatalf("notice %q", e.Notice.Text)
	}
	// A key of another organization is refused on a bound device.
	other := w.member(t, "carol")
	_, k2, _ := ed25519.GenerateKey(rand.Reader)
	s2, err := org.SealKey(k2, []byte("another pass"))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.c.ImportOrgKey(ctx, s2, []byte("another pass")); !errors.Is(err, org.ErrKeyMismatch) {
		t.Fatalf("foreign org key imported: %v", err)
	}
}

func TestLinkedDeviceJoinsTheOrganization(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	l, err := BeginLink(ctx, w.purl)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.c.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	phone := &member{events: make(chan Event, 100), dir: filepath.Join(t.TempDir(), "phone"), user: "bob"}
	phone.c, err = l.Finish(ctx, phone.dir, []byte("pw"), "phone", phone.options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.c.Close() })
	if err := phone.c.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	want, _ := bob.c.OrgFingerprint(ctx)
	if got, err := phone.c.OrgFingerprint(ctx); err != nil || got != want || got == "" {
		t.Fatalf("linked device bound to %q (%v), want %q", got, err, want)
	}
	if _, err := w.admin.PublishNotice(ctx, "to every device"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, phone.events, EventOrgNotice); e.Notice.Text != "to every device" {
		t.Fatalf("linked device got %q", e.Notice.Text)
	}

	// A member cannot have the relay fan out what the org key did not sign.
	conn, err := bob.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	doc := sign(t, w.forger, wire.OrgDocumentKind_ORG_NOTICE, &org.Notice{Seq: 9, Text: "spam"})
	_, err = conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgPublish{OrgPublish: &wire.OrgPublishRequest{Document: doc}}})
	if code := transport.Code(err); code != wire.ErrorCode_FORBIDDEN {
		t.Fatalf("publish under another key: %v (%v), want FORBIDDEN", code, err)
	}
	// The org key's fingerprint as the relay computes it is the client's.
	if relay.OrgFingerprint(w.pub) != org.Fingerprint(w.pub) {
		t.Fatal("relay and client disagree on the org key fingerprint")
	}
}

func TestSubscriptionWarnings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	soon := w.enrollAt(t, w.purl, "soon", 10*24*time.Hour)
	if msg, err := soon.c.SubscriptionWarning(ctx); err != nil || msg == "" || !bytes.Contains([]byte(msg), []byte("ends in 10 days")) {
		t.Fatalf("10 days left: %q %v", msg, err)
	}
	if msg, _ := w.admin.SubscriptionWarning(ctx); msg != "" {
		t.Fatalf("30 days left, yet a warning: %q", msg)
	}
	// Offline, the last known end still warns.
	soon.reopen(t, false)
	if msg, _ := soon.c.SubscriptionWarning(ctx); msg == "" {
		t.Fatal("no warning offline")
	}
}

// An own device's wipe order (DeviceOrder) that a relay withheld past its
// expiry is ignored; a fresh one wipes.
func TestDeviceOrderExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	l, err := BeginLink(ctx, w.purl)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.c.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	phone := &member{events: make(chan Event, 100), dir: filepath.Join(t.TempDir(), "phone"), user: "bob"}
	if phone.c, err = l.Finish(ctx, phone.dir, []byte("pw"), "phone", phone.options()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.c.Close() })
	if err := phone.c.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	old, err := content.NewWipeOrder(phone.c.DeviceID(), time.Now().Add(-8*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	old.GetDeviceOrder().ExpiresMs = time.Now().Add(-time.Hour).UnixMilli()
	if _, err := bob.c.sendContent(ctx, "bob", old, old.Id); err != nil {
		t.Fatal(err)
	}
	// Delivered after the stale order: the phone got past it alive.
	if _, err := w.admin.Send(ctx, "bob", "still here?"); err != nil {
		t.Fatal(err)
	}
	for {
		if e := waitEvent(t, phone.events, EventMessage); e.Message.Text == "still here?" {
			break
		}
	}
	if !store.Exists(phone.dir) {
		t.Fatal("an expired own-device wipe order was obeyed")
	}
	if err := bob.c.WipeDevice(ctx, phone.c.DeviceID()); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, phone.events, EventWiped); e.Device != bob.c.DeviceID() {
		t.Fatalf("wiped by device %d", e.Device)
	}
}

// A device enrolled after the policy and its certificate went out gets
// them from the relay's store when it connects.
func TestLateDeviceGetsPolicyAndCertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{FailedUnlockLimit: 6, AttachmentsDisabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{FailedUnlockLimit: 5, AttachmentsDisabled: true}); err != nil {
		t.Fatal(err)
	}
	frank := w.member(t, "frank")
	if _, err := w.admin.Certify(ctx, "frank", time.Hour); err != nil {
		t.Fatal(err)
	}
	frank.c.Close()
	// Frank's queued copies are lost (a relay dropped them, or the TTL passed).
	acct, err := w.r.store.AccountByName(ctx, "frank")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.r.store.DeleteDevice(ctx, relay.DeviceAddr{Account: acct.ID, Device: 1}); err != nil {
		t.Fatal(err)
	}
	frank.reopen(t, true)
	p, err := frank.c.OrgPolicy(ctx)
	if err != nil || p == nil || p.Version != 2 || p.AttachmentsAllowed() {
		t.Fatalf("late device's policy: %v %v", p, err)
	}
	if lp, _ := frank.c.Policy(); lp.WipeAfter != 5 {
		t.Fatalf("failed-unlock limit %d, want 5", lp.WipeAfter)
	}
	if ok, err := frank.c.IsMember(ctx, "frank"); err != nil || !ok {
		t.Fatalf("own certificate not fetched: %v %v", ok, err)
	}
	// Seen again on the next connection: nothing counted as rejected.
	frank.reopen(t, true)
	rejected(t, frank, 0)
}

// A device may deregister itself; it cannot connect afterwards.
func TestDeviceRemovesItself(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	conn, err := bob.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.RemoveDevice(ctx, bob.c.DeviceID()); err != nil {
		t.Fatalf("self-removal: %v", err)
	}
	bob.reopen(t, false)
	if err := bob.c.Connect(ctx, ConnectOptions{}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("connect after self-removal: %v, want ErrRevoked", err)
	}
}
