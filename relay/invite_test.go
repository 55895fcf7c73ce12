package relay_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"sotto/internal/orgtest"
	"sotto/orgcert"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// testOrg is the organization the relay tests enroll into: its key is
// registered in the relay's store and it invites each user with a seat
// of their own, as the org admin's client does (internal/orgtest).
type testOrg struct {
	*orgtest.Org
	t     *testing.T
	store *sqlitestore.Store
}

// registerOrg makes an organization and registers its key in store.
func registerOrg(t *testing.T, store *sqlitestore.Store) *testOrg {
	t.Helper()
	o := &testOrg{Org: orgtest.New("Test Org"), t: t, store: store}
	if err := o.Register(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	return o
}

// invite registers an invitation for user, redeemable for an hour.
func (o *testOrg) invite(user string) *orgtest.Seat {
	o.t.Helper()
	now := time.Now()
	return o.inviteUntil(user, now.Add(time.Hour), now)
}

func (o *testOrg) inviteUntil(user string, expires, now time.Time) *orgtest.Seat {
	o.t.Helper()
	s, err := o.Invite(context.Background(), o.store, user, expires, now)
	if err != nil {
		o.t.Fatal(err)
	}
	return s
}

// enrollRequest is the enrollment of a new device of seat's user with
// identity key ik, carrying the seat's code and an identity certificate
// from it; it returns the device key that signEnroll signs it with.
func enrollRequest(seat *orgtest.Seat, ik []byte, reg uint32) (*wire.EnrollRequest, ed25519.PrivateKey) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	return &wire.EnrollRequest{ActivationCode: seat.Code, Username: seat.Username, DeviceKey: pub, IdentityKey: ik,
		RegistrationId: reg, IdentityCertificate: seat.Certify(ik), Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: make([]byte, 33), Signature: make([]byte, 64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: make([]byte, 100), Signature: make([]byte, 64)},
		}}, key
}

// signEnroll signs r for the connection's current challenge.
func signEnroll(r *wire.EnrollRequest, key ed25519.PrivateKey, nonce []byte) *wire.EnrollRequest {
	r.Signature = ed25519.Sign(key, wire.EnrollTranscript(nonce, r.Username, r.DeviceKey, r.IdentityKey, r.RegistrationId))
	return r
}

// tryEnroll sends r signed with key and returns the relay's answer.
func (c *logClient) tryEnroll(r *wire.EnrollRequest, key ed25519.PrivateKey) *wire.Response {
	c.t.Helper()
	// The nonce of the request is the one current when it is sent.
	return c.do(&wire.Request{Body: &wire.Request_Enroll{Enroll: signEnroll(r, key, c.nonce)}})
}

func (c *logClient) refused(what string, r *wire.EnrollRequest, key ed25519.PrivateKey, code wire.ErrorCode, msg error) {
	c.t.Helper()
	resp := c.tryEnroll(r, key)
	if resp.Code != code || (msg != nil && resp.Message != msg.Error()) {
		c.t.Fatalf("%s: got %s %q, want %s %q", what, resp.Code, resp.Message, code, msg)
	}
}

func randomKey(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// grantFor signs a grant for user with key: a fresh invitation key and
// the seat token hash seatHash (a fresh one if nil). It returns the grant,
// the invitation's private key and the seat token (nil if seatHash was
// given).
func grantFor(t *testing.T, key ed25519.PrivateKey, user string, seatHash []byte, expires, now time.Time) (*wire.OrgDocument, ed25519.PrivateKey, []byte) {
	t.Helper()
	invPub, invPriv, _ := ed25519.GenerateKey(rand.Reader)
	var token []byte
	if seatHash == nil {
		token = randomKey(orgcert.SeatTokenSize)
		h := orgcert.HashSeatToken(token)
		seatHash = h[:]
	}
	g, err := orgcert.SignGrant(key, &orgcert.Grant{Username: user, InvitationKey: invPub, SeatTokenHash: seatHash,
		IssuedMs: now.UnixMilli(), ExpiresMs: expires.UnixMilli(), OrgName: "Test Org"})
	if err != nil {
		t.Fatal(err)
	}
	return g, invPriv, token
}

func issue(t *testing.T, grant *wire.OrgDocument, inv ed25519.PrivateKey, ik []byte) []byte {
	t.Helper()
	c, err := orgcert.Issue(grant, inv, ik, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seatHashOf is the seat token hash of a registered seat's grant.
func seatHashOf(t *testing.T, o *testOrg, s *orgtest.Seat) []byte {
	t.Helper()
	g, err := orgcert.OpenGrant(o.Public(), s.Grant)
	if err != nil {
		t.Fatal(err)
	}
	return g.SeatTokenHash
}

// TestEnrollmentNeedsCertificate: the relay enrolls a device only with a
// seat of the organization's invitation for that name and an identity
// certificate that chains from the org key through that very grant to
// the identity key enrolled. Every refusal leaves the seat unused.
func TestEnrollmentNeedsCertificate(t *testing.T) {
	l := startLogRelay(t, nil)
	c := l.dial(t)
	ik := randomKey(33)
	alice := l.org.invite("alice")
	bob := l.org.invite("bob")
	now := time.Now()

	attempt := func(what string, change func(r *wire.EnrollRequest)) {
		t.Helper()
		r, key := enrollRequest(alice, ik, 5)
		change(r)
		c.refused(what, r, key, wire.ErrorCode_FORBIDDEN, nil)
	}
	attempt("no certificate", func(r *wire.EnrollRequest) { r.IdentityCertificate = nil })
	attempt("garbage certificate", func(r *wire.EnrollRequest) { r.IdentityCertificate = []byte("not a certificate") })
	attempt("bob's certificate on alice's seat", func(r *wire.EnrollRequest) { r.IdentityCertificate = bob.Certify(ik) })
	attempt("alice's seat and certificate for the name bob", func(r *wire.EnrollRequest) { r.Username = "bob" })
	attempt("bob's certificate and seat for the name alice", func(r *wire.EnrollRequest) {
		r.ActivationCode, r.IdentityCertificate = bob.Code, bob.Certify(ik)
	})
	attempt("a certificate of another identity key", func(r *wire.EnrollRequest) { r.IdentityCertificate = alice.Certify(randomKey(33)) })
	attempt("another identity key than the certified one", func(r *wire.EnrollRequest) { r.IdentityKey = randomKey(33) })
	other := orgtest.New("Other Org")
	attempt("a grant for the seat signed by another org key", func(r *wire.EnrollRequest) {
		g, inv, _ := grantFor(t, other.Key, "alice", seatHashOf(t, l.org, alice), now.Add(time.Hour), now)
		r.IdentityCertificate = issue(t, g, inv, ik)
	})
	alice2 := l.org.invite("alice")
	attempt("a valid certificate from another seat of alice", func(r *wire.EnrollRequest) { r.IdentityCertificate = alice2.Certify(ik) })
	attempt("another seat's code with alice's certificate", func(r *wire.EnrollRequest) { r.ActivationCode = alice2.Code })
	attempt("an org-signed grant for the seat that is not the registered one", func(r *wire.EnrollRequest) {
		g, inv, _ := grantFor(t, l.org.Key, "alice", seatHashOf(t, l.org, alice), now.Add(time.Hour), now)
		r.IdentityCertificate = issue(t, g, inv, ik)
	})
	attempt("a seat that was never registered", func(r *wire.EnrollRequest) {
		g, inv, token := grantFor(t, l.org.Key, "alice", nil, now.Add(time.Hour), now)
		r.ActivationCode, r.IdentityCertificate = base64.RawURLEncoding.EncodeToString(token), issue(t, g, inv, ik)
	})
	attempt("a bootstrap key once the organization exists", func(r *wire.EnrollRequest) { r.BootstrapOrgKey = l.org.Public() })

	// The seat is still good, once.
	r, key := enrollRequest(alice, ik, 5)
	if resp := c.tryEnroll(r, key); resp.Code != wire.ErrorCode_OK {
		t.Fatalf("enrollment with the seat: %s %s", resp.Code, resp.Message)
	}
	// The certificate is kept and served with the identity.
	got := c.do(&wire.Request{Body: &wire.Request_GetIdentity{GetIdentity: &wire.GetIdentityRequest{Username: "alice"}}}).GetGetIdentity()
	if _, err := orgcert.Verify(l.org.Public(), got.GetIdentityCertificate(), "alice", ik); err != nil {
		t.Fatalf("served certificate: %v", err)
	}
	again := l.dial(t)
	r, key = enrollRequest(alice, randomKey(33), 6)
	r.Username = "alice" // (the name is taken too; the seat is refused first)
	again.refused("a second enrollment with the same seat", r, key, wire.ErrorCode_FORBIDDEN, relay.ErrBadCode)
	// Another invitation of the same name finds the name taken.
	r, key = enrollRequest(alice2, randomKey(33), 7)
	again.refused("a second invitation for a name taken", r, key, wire.ErrorCode_CONFLICT, nil)
}

// TestEnrollmentSeatExpires: a seat is redeemable until its grant
// expires, even with a certificate issued before.
func TestEnrollmentSeatExpires(t *testing.T) {
	var offset atomic.Int64
	l := startBareLogRelay(t, nil, func(cfg *relay.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	l.org = registerOrg(t, l.store)
	now := time.Now()
	seat := l.org.inviteUntil("alice", now.Add(time.Hour), now)
	r, key := enrollRequest(seat, randomKey(33), 5) // certified now, within the grant
	offset.Store(int64(2 * time.Hour))
	l.dial(t).refused("an expired seat", r, key, wire.ErrorCode_FORBIDDEN, relay.ErrBadCode)
	offset.Store(0)
	if resp := l.dial(t).tryEnroll(r, key); resp.Code != wire.ErrorCode_OK {
		t.Fatalf("the same enrollment before expiry: %s %s", resp.Code, resp.Message)
	}
	// A grant that has expired is not registered at all.
	g, _, _ := grantFor(t, l.org.Key, "bob", nil, now.Add(-time.Minute), now.Add(-time.Hour))
	if _, err := relay.RegisterInvitations(context.Background(), l.store, []*wire.OrgDocument{g}, now); !errors.Is(err, relay.ErrBadRequest) {
		t.Fatalf("registering an expired grant: %v", err)
	}
}

// bootstrapRequest is the first admin's enrollment with a bootstrap
// secret: a grant for the seat signed by the new org key.
func bootstrapRequest(t *testing.T, org ed25519.PrivateKey, secret []byte, ik []byte) (*wire.EnrollRequest, ed25519.PrivateKey) {
	t.Helper()
	now := time.Now()
	h := orgcert.HashSeatToken(secret)
	g, inv, _ := grantFor(t, org, "admin", h[:], now.Add(time.Hour), now)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	return &wire.EnrollRequest{ActivationCode: base64.RawURLEncoding.EncodeToString(secret), Username: "admin", DeviceKey: pub,
		IdentityKey: ik, RegistrationId: 9, IdentityCertificate: issue(t, g, inv, ik), BootstrapOrgKey: org.Public().(ed25519.PublicKey),
		Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: make([]byte, 33), Signature: make([]byte, 64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: make([]byte, 100), Signature: make([]byte, 64)},
		}}, key
}

// TestBootstrap: before an organization exists only the bootstrap
// enrollment works, with the relay's current bootstrap code and a
// certificate chaining to the org key it registers; once the
// organization exists there is no bootstrap any more.
func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	l := startBareLogRelay(t, nil)
	c := l.dial(t)
	ik := randomKey(33)
	orgKey := orgtest.New("First Org").Key
	now := time.Now()

	// No organization: no invitation registers, no enrollment passes.
	if _, err := orgtest.New("x").Invite(ctx, l.store, "alice", now.Add(time.Hour), now); !errors.Is(err, relay.ErrNoOrg) {
		t.Fatalf("invitation before the organization: %v", err)
	}
	g, inv, token := grantFor(t, orgKey, "alice", nil, now.Add(time.Hour), now)
	r := &wire.EnrollRequest{ActivationCode: base64.RawURLEncoding.EncodeToString(token), Username: "alice", IdentityKey: ik,
		RegistrationId: 5, IdentityCertificate: issue(t, g, inv, ik), Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: make([]byte, 33), Signature: make([]byte, 64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: make([]byte, 100), Signature: make([]byte, 64)},
		}}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	r.DeviceKey = pub
	c.refused("an enrollment before the organization", r, key, wire.ErrorCode_FORBIDDEN, relay.ErrNoOrg)

	replaced, err := relay.CreateBootstrap(ctx, l.store, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := relay.CreateBootstrap(ctx, l.store, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	attempt := func(what string, secret []byte, change func(r *wire.EnrollRequest), msg error) {
		t.Helper()
		r, key := bootstrapRequest(t, orgKey, secret, ik)
		change(r)
		c.refused(what, r, key, wire.ErrorCode_FORBIDDEN, msg)
	}
	attempt("a bootstrap code that was replaced", replaced, func(*wire.EnrollRequest) {}, relay.ErrBadCode)
	attempt("another secret", randomKey(32), func(*wire.EnrollRequest) {}, relay.ErrBadCode)
	attempt("the bootstrap code without a bootstrap key", secret, func(r *wire.EnrollRequest) { r.BootstrapOrgKey = nil }, relay.ErrNoOrg)
	attempt("a certificate of another org key", secret, func(r *wire.EnrollRequest) {
		r.BootstrapOrgKey = orgtest.New("y").Public()
	}, relay.ErrNotCertified)
	attempt("no certificate", secret, func(r *wire.EnrollRequest) { r.IdentityCertificate = nil }, relay.ErrNotCertified)
	attempt("a certificate for another seat", secret, func(r *wire.EnrollRequest) {
		g, inv, _ := grantFor(t, orgKey, "admin", nil, now.Add(time.Hour), now)
		r.IdentityCertificate = issue(t, g, inv, ik)
	}, relay.ErrNotCertified)
	if _, err := l.store.OrgKey(ctx); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("an org key registered by a refused bootstrap: %v", err)
	}

	r, key = bootstrapRequest(t, orgKey, secret, ik)
	if resp := c.tryEnroll(r, key); resp.Code != wire.ErrorCode_OK {
		t.Fatalf("bootstrap: %s %s", resp.Code, resp.Message)
	}
	if k, err := l.store.OrgKey(ctx); err != nil || !bytes.Equal(k, orgKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("org key after bootstrap: %x %v", k, err)
	}
	cert, err := l.store.OrgDocument(ctx, wire.OrgDocumentKind_RELAY_IDENTITY_CERTIFICATE, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orgcert.Verify(orgKey.Public().(ed25519.PublicKey), cert, "admin", ik); err != nil {
		t.Fatalf("the first admin's certificate: %v", err)
	}

	// Once the organization exists: no new bootstrap code, and a
	// bootstrap enrollment is refused even with a code made before.
	if _, err := relay.CreateBootstrap(ctx, l.store, now, time.Hour); !errors.Is(err, relay.ErrConflict) {
		t.Fatalf("bootstrap code once the organization exists: %v", err)
	}
	c2 := l.dial(t)
	takeover := orgtest.New("Takeover").Key
	r, key = bootstrapRequest(t, takeover, secret, randomKey(33))
	r.Username = "mallory"
	c2.refused("the used bootstrap code again", r, key, wire.ErrorCode_FORBIDDEN, relay.ErrBadCode)
	if k, _ := l.store.OrgKey(ctx); !bytes.Equal(k, orgKey.Public().(ed25519.PublicKey)) {
		t.Fatal("the org key changed")
	}
}

// TestOrgInvite: an enrolled device registers the org's grants with
// OrgInvite; the relay refuses a grant the org key did not sign, an
// expired one, and an invitation published as an org document.
func TestOrgInvite(t *testing.T) {
	l := startLogRelay(t, nil)
	admin := l.dial(t)
	admin.enroll(l, "admin", randomKey(33))
	now := time.Now()
	invite := func(grants ...*wire.OrgDocument) *wire.Response {
		return admin.do(&wire.Request{Body: &wire.Request_OrgInvite{OrgInvite: &wire.OrgInviteRequest{Grants: grants}}})
	}

	g, inv, token := grantFor(t, l.org.Key, "bob", nil, now.Add(time.Hour), now)
	resp := invite(g)
	if resp.Code != wire.ErrorCode_OK || len(resp.GetOrgInvite().GetIds()) != 1 {
		t.Fatalf("invite: %v", resp)
	}
	ik := randomKey(33)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	r := &wire.EnrollRequest{ActivationCode: base64.RawURLEncoding.EncodeToString(token), Username: "bob", DeviceKey: pub,
		IdentityKey: ik, RegistrationId: 3, IdentityCertificate: issue(t, g, inv, ik), Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: make([]byte, 33), Signature: make([]byte, 64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: make([]byte, 100), Signature: make([]byte, 64)},
		}}
	if resp := l.dial(t).tryEnroll(r, key); resp.Code != wire.ErrorCode_OK {
		t.Fatalf("enrollment with the invited seat: %s %s", resp.Code, resp.Message)
	}

	forged, _, _ := grantFor(t, orgtest.New("Other").Key, "carol", nil, now.Add(time.Hour), now)
	if resp := invite(forged); resp.Code != wire.ErrorCode_FORBIDDEN {
		t.Fatalf("a grant of another key: %v", resp)
	}
	good, _, _ := grantFor(t, l.org.Key, "dave", nil, now.Add(time.Hour), now)
	if resp := invite(good, forged); resp.Code != wire.ErrorCode_FORBIDDEN {
		t.Fatalf("a batch with a grant of another key: %v", resp)
	}
	if codes, _ := l.store.Codes(context.Background()); len(codes) != 2 {
		t.Fatalf("a refused batch registered seats: %d seats", len(codes))
	}
	expired, _, _ := grantFor(t, l.org.Key, "erin", nil, now.Add(-time.Minute), now.Add(-time.Hour))
	if resp := invite(expired); resp.Code != wire.ErrorCode_BAD_REQUEST {
		t.Fatalf("an expired grant: %v", resp)
	}
	if resp := invite(); resp.Code != wire.ErrorCode_BAD_REQUEST {
		t.Fatalf("no grant: %v", resp)
	}
	if resp := l.dial(t).do(&wire.Request{Body: &wire.Request_OrgInvite{OrgInvite: &wire.OrgInviteRequest{Grants: []*wire.OrgDocument{good}}}}); resp.Code != wire.ErrorCode_UNAUTHENTICATED {
		t.Fatalf("invite before authentication: %v", resp)
	}

	// A grant is no org document to publish and fan out.
	resp = admin.do(&wire.Request{Body: &wire.Request_OrgPublish{OrgPublish: &wire.OrgPublishRequest{Document: good, Username: "dave"}}})
	if resp.Code != wire.ErrorCode_BAD_REQUEST || resp.Message != "unknown organization document kind" {
		t.Fatalf("publishing an invitation: %v", resp)
	}
}
