package org

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func mustSign(t testing.TB, k ed25519.PrivateKey, kind wire.OrgDocumentKind, m proto.Message) *wire.OrgDocument {
	d, err := Sign(k, kind, m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func sampleWipe() *WipeOrder {
	return &WipeOrder{Username: "alice", DeviceId: 2, RegistrationId: 77, IdentityKey: []byte("identity-key-of-alice"),
		Nonce: make([]byte, 16), IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(24 * time.Hour).UnixMilli()}
}

func TestDocumentsVerifyOnlyWithTheirKeyAndKind(t *testing.T) {
	k, other := newKey(t), newKey(t)
	notice := mustSign(t, k, wire.OrgDocumentKind_ORG_NOTICE, &Notice{Seq: 1, IssuedMs: now.UnixMilli(), Text: "hello"})
	n, err := OpenNotice(pubOf(k), notice)
	if err != nil || n.Text != "hello" {
		t.Fatalf("genuine notice: %v %v", n, err)
	}
	if _, err := OpenNotice(pubOf(other), notice); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("notice under another key: %v", err)
	}
	// The same signed bytes relabelled as another kind fail: the domain differs.
	relabelled := &wire.OrgDocument{Kind: wire.OrgDocumentKind_ORG_WIPE, Body: notice.Body, Signature: notice.Signature}
	if _, err := OpenWipe(pubOf(k), relabelled); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("relabelled notice as wipe: %v", err)
	}
	if _, err := OpenWipe(pubOf(k), notice); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("notice opened as wipe: %v", err)
	}
	tampered := proto.Clone(notice).(*wire.OrgDocument)
	tampered.Body[len(tampered.Body)-1] ^= 1
	if _, err := OpenNotice(pubOf(k), tampered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered notice: %v", err)
	}
}

func TestWipeOrderTargetsOneEnrollment(t *testing.T) {
	k := newKey(t)
	w, err := OpenWipe(pubOf(k), mustSign(t, k, wire.OrgDocumentKind_ORG_WIPE, sampleWipe()))
	if err != nil {
		t.Fatal(err)
	}
	self := Enrollment{Username: "alice", DeviceID: 2, RegistrationID: 77, IdentityKey: []byte("identity-key-of-alice")}
	if err := w.Targets(self, now); err != nil {
		t.Fatalf("genuine target: %v", err)
	}
	reenrolled := self
	reenrolled.RegistrationID = 78
	if err := w.Targets(reenrolled, now); !errors.Is(err, ErrNotThisDevice) {
		t.Fatalf("re-enrolled device: %v", err)
	}
	newIdentity := self
	newIdentity.IdentityKey = []byte("another identity")
	if err := w.Targets(newIdentity, now); !errors.Is(err, ErrNotThisDevice) {
		t.Fatalf("new identity: %v", err)
	}
	if err := w.Targets(self, now.Add(25*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired order: %v", err)
	}
	long := sampleWipe()
	long.ExpiresMs = now.Add(MaxWipeValidity + time.Hour).UnixMilli()
	if _, err := OpenWipe(pubOf(k), mustSign(t, k, wire.OrgDocumentKind_ORG_WIPE, long)); !errors.Is(err, ErrBadDocument) {
		t.Fatalf("order valid too long: %v", err)
	}
}

func TestPolicyRules(t *testing.T) {
	var none *Policy
	if none.UnlockLimit() != DefaultFailedUnlockLimit || !none.AttachmentsAllowed() || !none.CallsAllowed() {
		t.Fatal("no policy must mean the defaults")
	}
	p := &Policy{Version: 2, FailedUnlockLimit: 5, DisappearingMinSeconds: 60, DisappearingMaxSeconds: 3600, CallsDisabled: true}
	if p.UnlockLimit() != 5 || p.CallsAllowed() || !p.AttachmentsAllowed() {
		t.Fatal("policy fields not honoured")
	}
	for d, want := range map[time.Duration]bool{0: false, 30 * time.Second: false, time.Minute: true, time.Hour: true, 2 * time.Hour: false} {
		if p.AllowsDisappearing(d) != want {
			t.Errorf("disappearing %v: want %v", d, want)
		}
	}
	k := newKey(t)
	bad := &Policy{Version: 1, DisappearingMinSeconds: 10, DisappearingMaxSeconds: 5}
	if _, err := OpenPolicy(pubOf(k), mustSign(t, k, wire.OrgDocumentKind_ORG_POLICY, bad)); !errors.Is(err, ErrBadDocument) {
		t.Fatalf("inconsistent policy: %v", err)
	}
}

func TestCertificateAndFingerprint(t *testing.T) {
	k := newKey(t)
	c, err := OpenCertificate(pubOf(k), mustSign(t, k, wire.OrgDocumentKind_ORG_CERTIFICATE,
		&Certificate{Username: "bob", IdentityKey: []byte("bob-id"), IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(time.Hour).UnixMilli()}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Covers("bob", []byte("bob-id"), now) || c.Covers("bob", []byte("other"), now) || c.Covers("bob", []byte("bob-id"), now.Add(2*time.Hour)) {
		t.Fatal("certificate coverage wrong")
	}
	code := CodeWithFingerprint("secret-part", pubOf(k))
	fp, err := CodeFingerprint(code)
	if err != nil || !MatchesFingerprint(pubOf(k), fp) || MatchesFingerprint(pubOf(newKey(t)), fp) {
		t.Fatalf("fingerprint round trip: %q %v", fp, err)
	}
	if fp, err := CodeFingerprint("plainsecret"); fp != "" || err != nil {
		t.Fatalf("code without fingerprint: %q %v", fp, err)
	}
	if _, err := CodeFingerprint("secret.zz"); err == nil {
		t.Fatal("malformed fingerprint accepted")
	}
}

func TestKeyExport(t *testing.T) {
	k := newKey(t)
	sealed, err := SealKey(k, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenKey(sealed, []byte("correct horse"))
	if err != nil || !got.Equal(k) {
		t.Fatalf("open: %v", err)
	}
	if _, err := OpenKey(sealed, []byte("wrong horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if pub, err := SealedPublicKey(sealed); err != nil || !pub.Equal(pubOf(k)) {
		t.Fatalf("sealed public key: %v", err)
	}
}

func TestSubscriptionWarning(t *testing.T) {
	exp := now.Add(30 * 24 * time.Hour)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{now, ""},
		{exp.Add(-15 * 24 * time.Hour), ""},
		{exp.Add(-14 * 24 * time.Hour), "the subscription ends in 14 days, on 2026-12-26"},
		{exp.Add(-3 * 24 * time.Hour), "the subscription ends in 3 day(s), on 2026-12-26: after that this device cannot send"},
		{exp.Add(-time.Hour), "the subscription ends in 1 day(s), on 2026-12-26: after that this device cannot send"},
		{exp, "the subscription ended on 2026-12-26: history stays readable, sending is disabled; ask your organization to extend it"},
	} {
		if got := SubscriptionWarning(exp, c.at); got != c.want {
			t.Errorf("at %v: %q, want %q", c.at, got, c.want)
		}
	}
	if SubscriptionWarning(time.Time{}, now) != "" {
		t.Error("unknown expiry must not warn")
	}
}
