package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/org"
	"sotto/client/transport"
	"sotto/internal/hostileproxy"
	"sotto/orgcert"
	"sotto/relay"
	"sotto/transparency"
	"sotto/wire"
)

// The attacks of the outside review, mounted against a real relay whose
// database the test edits or whose frames a hostile proxy rewrites. In each
// the relay controls everything it serves; the roots of trust come from the
// invitation.

// Attack 1: the operator writes its own key into the relay's org_key and
// has the relay fan out a wipe order, a notice and a policy signed with it.
// The relay accepts them (they verify against what it stores); the device
// obeys only the org key its invitation pinned, so nothing happens to it.
// Defence: applyOrgDocument verifies against the pinned key (orgKey), never
// the relay's. Switched off (the key fetched from the relay, as before
// invitations), the wipe goes through and this test fails.
func TestOperatorKeyCannotCommandDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	w.chat(t, bob, "the draft is ready")
	opPub, opKey, _ := ed25519.GenerateKey(rand.Reader)
	if err := w.r.store.SetOrgKey(ctx, opPub); err != nil {
		t.Fatal(err)
	}
	conn, err := w.admin.connection()
	if err != nil {
		t.Fatal(err)
	}
	publish := func(kind wire.OrgDocumentKind, doc *wire.OrgDocument, user string, dev uint32) {
		t.Helper()
		if _, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgPublish{OrgPublish: &wire.OrgPublishRequest{
			Document: doc, Username: user, DeviceId: dev}}}); err != nil {
			t.Fatalf("the relay refused the operator's %v: %v", kind, err)
		}
	}
	publish(wire.OrgDocumentKind_ORG_NOTICE, sign(t, opKey, wire.OrgDocumentKind_ORG_NOTICE,
		&org.Notice{Seq: uint64(time.Now().UnixMicro()), IssuedMs: time.Now().UnixMilli(), Text: "install this update"}), "", 0)
	publish(wire.OrgDocumentKind_ORG_POLICY, sign(t, opKey, wire.OrgDocumentKind_ORG_POLICY,
		&org.Policy{Version: 99, IssuedMs: time.Now().UnixMilli(), CallsDisabled: true}), "", 0)
	publish(wire.OrgDocumentKind_ORG_WIPE, sign(t, opKey, wire.OrgDocumentKind_ORG_WIPE, wipeFor(bob, time.Now(), time.Hour)), "bob", bob.c.DeviceID())
	for range 3 {
		if e := waitEvent(t, bob.events, EventOrgRejected); !errors.Is(e.Err, org.ErrBadSignature) {
			t.Fatalf("operator's document: %v", e.Err)
		}
	}
	if n, _ := bob.c.Notices(ctx); len(n) != 0 {
		t.Fatalf("operator's notice shown: %+v", n)
	}
	if p, _ := bob.c.OrgPolicy(ctx); p != nil {
		t.Fatalf("operator's policy applied: %+v", p)
	}
	assertIntact(t, bob, "the draft is ready")
}

// Attack 2: the operator enrolls its own device under a name (here
// "carol", straight into the relay's database, with a key it chose and no
// certificate from the organization) and serves it to a brand-new contact.
// dave sends nothing to it and is told why; a first message from it is
// refused. Defence: checkCertified in checkServedKey. Switched off, dave's
// message is encrypted to the operator's key and this test fails.
func TestImpostorFirstContactRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	dave, daveEvents := r.enroll(t, r.code(t, 1, time.Hour), "dave", true)
	// The operator's device, enrolled behind the organization's back: the
	// relay renames an account of its own to carol and drops its
	// certificate (it has none for carol: only the org can make one).
	op, _ := r.enroll(t, r.code(t, 1, time.Hour), "mallory", false)
	r.execRaw(t, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`UPDATE accounts SET username = 'carol' WHERE username = 'mallory'`); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE org_documents SET subject = 'carol' WHERE subject = 'mallory'`)
		return err
	})
	op.Disconnect()
	op.acct.Username = "carol" // the operator's device now speaks as carol
	if err := op.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := dave.Send(ctx, "carol", "the source's name is ...")
	if !errors.Is(err, ErrNotCertified) {
		t.Fatalf("send to an uncertified key: %v", err)
	}
	if h, _ := dave.History(ctx, "carol", 10); len(h) != 0 {
		t.Fatalf("something was kept as sent: %+v", h)
	}
	if a := alarmsOf(t, dave); len(a) != 1 || a[0].Kind != AlarmUncertifiedKey || a[0].User != "carol" {
		t.Fatalf("alarms %+v", a)
	}
	// The impostor writes first: refused, nothing of it kept.
	if _, err := op.Send(ctx, "dave", "hi, it's carol"); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, daveEvents, EventError)
	if !errors.Is(e.Err, ErrNotCertified) || !errors.Is(e.Err, ErrSenderNotInLog) {
		t.Fatalf("first message from the impostor: %v", e.Err)
	}
	noContact(t, dave, "carol")
}

// Attack 3: the relay leaves its log key out of the enrollment response,
// or sends another one. Enrollment stops and leaves no store; the device
// never runs unchecked. Defence: enrollWith compares with the invitation's
// key. Switched off, the device enrolls and this test fails.
func TestEnrollmentStopsWithoutThePinnedLogKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"omitted", nil}, {"swapped", otherPub}} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := hostileproxy.New(r.url, func(_ int, dir hostileproxy.Direction, f *wire.Frame) []*wire.Frame {
				if e := f.GetResponse().GetEnroll(); e != nil && dir == hostileproxy.ToClient {
					e.LogPublicKey = tc.key
				}
				return []*wire.Frame{f}
			})
			hs := httptest.NewServer(proxy)
			t.Cleanup(func() { proxy.Close(); hs.Close() })
			url := hs.URL
			dir := filepath.Join(t.TempDir(), "erin")
			_, err := Enroll(ctx, EnrollParams{Dir: dir, Passphrase: []byte("pw"),
				Invitation: r.inviteAt(t, "erin-"+tc.name, time.Hour, url), DeviceName: "test"}, &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase})
			if !errors.Is(err, ErrLogKeyMismatch) {
				t.Fatalf("enroll: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "key.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a store was left behind: %v", err)
			}
		})
	}
}

// Attack 4: a device outside the organization. There is no way to enroll
// without an invitation, a relay with no organization refuses invitations
// and enrollments (and says what to do first), and an invitation whose
// grant another key signed is refused before anything is sent.
func TestNoDeviceOutsideTheOrganization(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := Enroll(ctx, EnrollParams{Dir: t.TempDir(), Passphrase: []byte("pw")}, &Options{KDF: testKDF}); err == nil {
		t.Fatal("enrolled without an invitation")
	}
	r := startRelay(t) // no organization yet: ensureOrg was not called
	_, err := relay.RegisterInvitations(ctx, r.store, []*wire.OrgDocument{{Kind: wire.OrgDocumentKind_ORG_INVITATION}}, time.Now())
	if !errors.Is(err, relay.ErrNoOrg) {
		t.Fatalf("invitation on a relay with no organization: %v", err)
	}
	// An invitation minted by some key the relay does not know: the
	// relay, with no organization, refuses the enrollment and no store is
	// left.
	inv, _, err := org.MintInvitation(mustKey(t), org.MintParams{Username: "frank", Expires: time.Now().Add(time.Hour),
		RelayURL: wsURL(r.url), LogKey: r.logPub, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := inv.Text()
	opened, err := org.ParseInvitation(text, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = Enroll(ctx, EnrollParams{Dir: dir, Passphrase: []byte("pw"), Invitation: opened}, &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase})
	if transport.Code(err) != wire.ErrorCode_FORBIDDEN {
		t.Fatalf("enrollment on a relay with no organization: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "key.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a store was left behind: %v", err)
	}
	// A tampered invitation (grant for another invitation key) does not parse.
	inv.InvitationSeed[0] ^= 1
	text, _ = inv.Text()
	if _, err := org.ParseInvitation(text, time.Now()); !errors.Is(err, org.ErrBadInvitation) {
		t.Fatalf("tampered invitation: %v", err)
	}
}

func mustKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The key log holds each binding's certificate: every leaf the relay
// appended at enrollment chains to the org key for its name and key.
func TestKeyLogHoldsCertificates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	r.enroll(t, code, "bob", false)
	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	lr, err := conn.TransparencyLeaves(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Leaves) != 2 {
		t.Fatalf("%d leaves", len(lr.Leaves))
	}
	for i, leaf := range lr.Leaves {
		b, err := transparency.DecodeBinding(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := orgcert.Verify(r.org.Public(), b.Certificate, b.Username, b.IdentityKey); err != nil {
			t.Fatalf("leaf %d (%s): %v", i, b.Username, err)
		}
	}
}

// Org documents cannot be replayed into, or rolled back on, a new device:
// its invitation carries the newest notice sequence and the policy
// version in force. An old notice the relay copies into the new member's
// mailbox is refused as stale and never shown; an older policy is refused.
// With the floors switched off the old notice shows as new and the old
// policy applies, and this test fails.
func TestNewMemberRefusesOldNoticeAndPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	oldNotice := sign(t, mustAdminKey(t, w), wire.OrgDocumentKind_ORG_NOTICE,
		&org.Notice{Seq: uint64(time.Now().UnixMicro()), IssuedMs: time.Now().UnixMilli(), Text: "the office is closed"})
	if _, err := w.admin.PublishNotice(ctx, "the office is closed"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{FailedUnlockLimit: 5}); err != nil {
		t.Fatal(err)
	}
	oldPolicy := sign(t, mustAdminKey(t, w), wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 1, IssuedMs: time.Now().UnixMilli(), FailedUnlockLimit: 50})
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{FailedUnlockLimit: 6}); err != nil {
		t.Fatal(err)
	}
	// Carol is invited by the admin's client, the way people are.
	inv, err := w.admin.Invite(ctx, InviteParams{Username: "carol", Validity: time.Hour, RelayURL: wsURL(w.purl)})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := inv.Text()
	opened, err := org.ParseInvitation(text, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	carol := &member{events: make(chan Event, 100), dir: filepath.Join(t.TempDir(), "carol"), user: "carol"}
	if carol.c, err = Enroll(ctx, EnrollParams{Dir: carol.dir, Passphrase: []byte("pw"), Invitation: opened, DeviceName: "test"}, carol.options()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { carol.c.Close() })
	// The relay withholds the policy in force (version 2) and serves the
	// old one instead, to a device that has no policy yet.
	w.proxy.SetRule(func(_ int, dir hostileproxy.Direction, f *wire.Frame) []*wire.Frame {
		if r := f.GetResponse().GetOrgDocuments(); r != nil && dir == hostileproxy.ToClient {
			r.Documents = []*wire.OrgDocument{oldPolicy}
		}
		return []*wire.Frame{f}
	})
	if err := carol.c.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, carol.events, EventOrgRejected); !errors.Is(e.Err, org.ErrStale) {
		t.Fatalf("old policy: %v", e.Err)
	}
	w.inject(t, carol, forged(t, oldNotice))
	if e := waitEvent(t, carol.events, EventOrgRejected); !errors.Is(e.Err, org.ErrStale) {
		t.Fatalf("old notice: %v", e.Err)
	}
	if n, _ := carol.c.Notices(ctx); len(n) != 0 {
		t.Fatalf("an old notice was shown: %+v", n)
	}
	if p, _ := carol.c.OrgPolicy(ctx); p != nil {
		t.Fatalf("an old policy applies: %+v", p)
	}
}
