package signalpeer_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/interop/signalpeer"
	"sotto/signal/keys"
	"sotto/signal/sealed"
)

// TestSealedSenderPairing runs the sealed-sender scenarios for every pairing (see
// pairings): A's parties seal, B's unseal, and back; the certificates of A's
// parties are made by B's peer and B's by A's, so each side validates the other's.
//
//	go test ./interop/signalpeer -run 'TestSealedSenderPairing/go-node'
func TestSealedSenderPairing(t *testing.T) {
	for _, pair := range pairings() {
		a, b := pair[0], pair[1]
		t.Run(a.name+"-"+b.name, func(t *testing.T) {
			t.Parallel() // each pairing has its own peer processes
			needPeers(t, a, b)
			t.Run("RoundTrip", func(t *testing.T) { sealedRoundTrip(newEnv(t, a, b)) })
			t.Run("Refusals", func(t *testing.T) { sealedRefusals(newEnv(t, a, b)) })
			t.Run("AccessKey", func(t *testing.T) { sealedAccessKey(newEnv(t, a, b)) })
			t.Run("CertificateLayout", func(t *testing.T) { sealedCertificateLayout(newEnv(t, a, b)) })
		})
	}
}

func randomKey(t *testing.T) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// cert has party `maker` on peer p make a certificate naming `sender` (device 1) with
// the given identity key.
func (e *env) cert(p *signalpeer.Peer, maker signalpeer.Address, root []byte, sender string, identity []byte, expires time.Time) *signalpeer.Certificates {
	e.t.Helper()
	c, err := p.SenderCertificate(e.ctx, maker, signalpeer.CertificateRequest{
		TrustRootPrivate: root, KeyID: 0x5077, Expires: expires, Sender: sender, IdentityKey: identity,
	})
	if err != nil {
		e.t.Fatalf("sender certificate for %s on %s: %v", sender, p.Label(), err)
	}
	return c
}

func (e *env) seal(p *signalpeer.Peer, l, r signalpeer.Address, cert []byte, text string, o signalpeer.SealOptions) []byte {
	e.t.Helper()
	ct, err := p.SealedEncrypt(e.ctx, l, r, cert, []byte(text), o)
	if err != nil {
		e.t.Fatalf("%s seals to %s on %s: %v", l, r, p.Label(), err)
	}
	if len(ct) == 0 || ct[0] != 0x11 {
		e.t.Fatalf("%s seals on %s: version byte %x, want 0x11", l, p.Label(), ct[:1])
	}
	return ct
}

func (e *env) unseal(p *signalpeer.Peer, l signalpeer.Address, ct, root []byte, now time.Time, from signalpeer.Address, want string) {
	e.t.Helper()
	u, err := p.SealedDecrypt(e.ctx, l, ct, root, now)
	if err != nil {
		e.t.Fatalf("%s unseals on %s: %v", l, p.Label(), err)
	}
	if u.Sender != from.Name || u.SenderDeviceID != from.DeviceID || string(u.Plaintext) != want {
		e.t.Fatalf("%s unseals on %s: got %s.%d %q, want %s %q", l, p.Label(), u.Sender, u.SenderDeviceID, u.Plaintext, from, want)
	}
}

func sealedRoundTrip(e *env) {
	alice, bob := addr("alice"), addr("bob")
	aliceID := e.create(e.a, alice, 5)
	bobID := e.create(e.b, bob, 5)
	root := randomKey(e.t)
	now := time.Now()
	exp := now.Add(time.Hour)
	// Each side's certificate is made by the other implementation.
	ac := e.cert(e.b, bob, root, "alice", aliceID, exp)
	bc := e.cert(e.a, alice, root, "bob", bobID, exp)

	// A first sealed message carries a PreKeySignalMessage.
	e.process(e.a, alice, bob, e.bundle(e.b, bob, true))
	for i := range 3 {
		text := fmt.Sprintf("sealed %d before any reply", i)
		e.unseal(e.b, bob, e.seal(e.a, alice, bob, ac.SenderCertificate, text, signalpeer.SealOptions{}), ac.TrustRoot, now, alice, text)
	}
	for i := range 5 {
		text := fmt.Sprintf("pong %d", i)
		e.unseal(e.a, alice, e.seal(e.b, bob, alice, bc.SenderCertificate, text, signalpeer.SealOptions{}), bc.TrustRoot, now, bob, text)
		text = fmt.Sprintf("ping %d", i)
		e.unseal(e.b, bob, e.seal(e.a, alice, bob, ac.SenderCertificate, text, signalpeer.SealOptions{}), ac.TrustRoot, now, alice, text)
	}
	// An empty and a large plaintext.
	e.unseal(e.b, bob, e.seal(e.a, alice, bob, ac.SenderCertificate, "", signalpeer.SealOptions{}), ac.TrustRoot, now, alice, "")
	big := string(bytes.Repeat([]byte("0123456789abcdef"), 4096))
	e.unseal(e.a, alice, e.seal(e.b, bob, alice, bc.SenderCertificate, big, signalpeer.SealOptions{}), bc.TrustRoot, now, bob, big)

	// The content fields: type, certificate, hint and group id survive.
	gid := []byte("group-0123456789")
	ct := e.seal(e.a, alice, bob, ac.SenderCertificate, "typing", signalpeer.SealOptions{ContentHint: 2, GroupID: gid})
	c, err := e.b.SealedUnseal(e.ctx, bob, ct)
	if err != nil {
		e.t.Fatalf("unseal on %s: %v", e.b.Label(), err)
	}
	if c.Type != signalpeer.TypeSignal || c.ContentHint != 2 || !bytes.Equal(c.GroupID, gid) || !bytes.Equal(c.SenderCertificate, ac.SenderCertificate) || len(c.Contents) == 0 {
		e.t.Fatalf("unsealed content on %s: %+v", e.b.Label(), c)
	}
	// Unsealing alone leaves the session untouched: the message still decrypts.
	e.unseal(e.b, bob, ct, ac.TrustRoot, now, alice, "typing")
	ct = e.seal(e.b, bob, alice, bc.SenderCertificate, "resendable", signalpeer.SealOptions{ContentHint: 1})
	if c, err = e.a.SealedUnseal(e.ctx, alice, ct); err != nil || c.ContentHint != 1 || c.GroupID != nil {
		e.t.Fatalf("unseal on %s: %v %+v", e.a.Label(), err, c)
	}
}

func sealedRefusals(e *env) {
	alice, bob, mallory, carol := addr("alice"), addr("bob"), addr("mallory"), addr("carol")
	aliceID := e.create(e.a, alice, 5)
	bobID := e.create(e.b, bob, 5)
	malloryID := e.create(e.a, mallory, 5)
	carolID := e.create(e.a, carol, 5)
	root := randomKey(e.t)
	now := time.Now()
	ac := e.cert(e.b, bob, root, "alice", aliceID, now.Add(time.Hour))
	bc := e.cert(e.a, alice, root, "bob", bobID, now.Add(time.Hour))
	e.connect(e.a, alice, e.b, bob)

	check := func(p *signalpeer.Peer, l signalpeer.Address, ct, trustRoot []byte, at time.Time, kind signalpeer.Kind, what string) {
		e.t.Helper()
		_, err := p.SealedDecrypt(e.ctx, l, ct, trustRoot, at)
		e.wantKind(err, kind, what+" on "+p.Label())
	}
	otherRoot := e.cert(e.a, alice, randomKey(e.t), "alice", aliceID, now.Add(time.Hour)).TrustRoot
	for _, dir := range []struct {
		ps, pr   *signalpeer.Peer
		from, to signalpeer.Address
		cert     *signalpeer.Certificates
	}{{e.a, e.b, alice, bob, ac}, {e.b, e.a, bob, alice, bc}} {
		ct := e.seal(dir.ps, dir.from, dir.to, dir.cert.SenderCertificate, "genuine", signalpeer.SealOptions{})
		check(dir.pr, dir.to, ct, otherRoot, now, signalpeer.KindInvalidCertificate, "a wrong trust root")
		check(dir.pr, dir.to, ct, dir.cert.TrustRoot, now.Add(2*time.Hour), signalpeer.KindInvalidCertificate, "an expired certificate")
		for _, i := range []int{1, 40, len(ct) / 2, len(ct) - 1} {
			bad := bytes.Clone(ct)
			bad[i] ^= 0x04
			check(dir.pr, dir.to, bad, dir.cert.TrustRoot, now, signalpeer.KindInvalidMessage, fmt.Sprintf("a message tampered at byte %d", i))
		}
		check(dir.pr, dir.to, ct[:len(ct)-1], dir.cert.TrustRoot, now, signalpeer.KindInvalidMessage, "a truncated message")
		// None of it hurt the session: the genuine message decrypts.
		e.unseal(dir.pr, dir.to, ct, dir.cert.TrustRoot, now, dir.from, "genuine")
	}

	// libsignal's "sender certificate key does not match message key": alice seals
	// under a certificate naming carol's identity key.
	mismatch := e.cert(e.b, bob, root, "alice", carolID, now.Add(time.Hour))
	ct := e.seal(e.a, alice, bob, mismatch.SenderCertificate, "whose key?", signalpeer.SealOptions{})
	check(e.b, bob, ct, mismatch.TrustRoot, now, signalpeer.KindInvalidMessage, "a certificate key that is not the static key")

	// A hostile server mints a valid certificate saying "alice" for mallory's key;
	// mallory starts a session with bob and seals as alice. Bob holds alice's real
	// identity key and refuses.
	forged := e.cert(e.b, bob, root, "alice", malloryID, now.Add(time.Hour))
	e.process(e.a, mallory, bob, e.bundle(e.b, bob, true))
	ct = e.seal(e.a, mallory, bob, forged.SenderCertificate, "it is alice, honest", signalpeer.SealOptions{})
	check(e.b, bob, ct, forged.TrustRoot, now, signalpeer.KindUntrustedIdentity, "a forged sender with another identity key")

	// The real alice still gets through.
	e.unseal(e.b, bob, e.seal(e.a, alice, bob, ac.SenderCertificate, "still me", signalpeer.SealOptions{}), ac.TrustRoot, now, alice, "still me")
}

func sealedAccessKey(e *env) {
	// libsignal's zkgroup access_key_kat, then a random profile key on both sides.
	pk, _ := hex.DecodeString("b95042a2c2d9e5b3bb09300ee408a172facd96e91b504e043a5a023dc4cff359")
	for _, p := range []*signalpeer.Peer{e.a, e.b} {
		got, err := p.AccessKey(e.ctx, pk)
		if err != nil || hex.EncodeToString(got) != "24fb96d4a5e333e9d4451205b9e2faed" {
			e.t.Fatalf("access key on %s: %x %v", p.Label(), got, err)
		}
	}
	pk = randomKey(e.t)
	ka, err := e.a.AccessKey(e.ctx, pk)
	if err != nil {
		e.t.Fatal(err)
	}
	kb, err := e.b.AccessKey(e.ctx, pk)
	if err != nil || !bytes.Equal(ka, kb) || len(ka) != 16 {
		e.t.Fatalf("access keys differ: %s %x, %s %x (%v)", e.a.Label(), ka, e.b.Label(), kb, err)
	}
}

// innerCertificate returns field 1 (the signed certificate bytes) of a
// serialized server or sender certificate.
func innerCertificate(t *testing.T, b []byte) []byte {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal("bad certificate encoding")
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatal("bad certificate encoding")
		}
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			return v
		}
		b = b[m:]
	}
	t.Fatal("certificate without field 1")
	return nil
}

// sealedCertificateLayout: the certificates each peer makes are, before
// their (randomized) signatures, byte for byte what signal/sealed encodes
// from the same fields, with and without an E164; and signal/sealed
// validates both peers' certificates.
func sealedCertificateLayout(e *env) {
	for _, p := range []*signalpeer.Peer{e.a, e.b} {
		l := signalpeer.Address{Name: "maker-" + p.Label(), DeviceID: 3}
		if _, err := p.Create(e.ctx, l, e.regID(), 1); err != nil {
			e.t.Fatal(err)
		}
		root, server := randomKey(e.t), randomKey(e.t)
		id := make([]byte, 33)
		id[0] = 5
		copy(id[1:], randomKey(e.t))
		exp := time.UnixMilli(1_900_000_000_123)
		for _, e164 := range []string{"", "+15550100"} {
			c, err := p.SenderCertificate(e.ctx, l, signalpeer.CertificateRequest{
				TrustRootPrivate: root, ServerKeyPrivate: server, KeyID: 0x7fffffff, Expires: exp,
				Sender: "9d0652a3-dcc3-4d11-975f-74d61598733f", E164: e164, IdentityKey: id,
			})
			if err != nil {
				e.t.Fatalf("certificate on %s: %v", p.Label(), err)
			}
			sc, err := sealed.ParseServerCertificate(c.ServerCertificate)
			if err != nil {
				e.t.Fatal(err)
			}
			rootPriv, _ := keys.ParsePrivateKey(root)
			serverPriv, _ := keys.ParsePrivateKey(server)
			idKey, _ := keys.ParsePublicKey(id)
			mine, err := sealed.NewServerCertificate(rand.Reader, 0x7fffffff, serverPriv.PublicKey(), rootPriv)
			if err != nil {
				e.t.Fatal(err)
			}
			if !bytes.Equal(innerCertificate(e.t, mine.Serialize()), innerCertificate(e.t, c.ServerCertificate)) {
				e.t.Fatalf("server certificate layout differs from %s's", p.Label())
			}
			cert, err := sealed.NewSenderCertificate(rand.Reader, "9d0652a3-dcc3-4d11-975f-74d61598733f", e164, idKey, 3, exp, sc, serverPriv)
			if err != nil {
				e.t.Fatal(err)
			}
			if got, want := innerCertificate(e.t, cert.Serialize()), innerCertificate(e.t, c.SenderCertificate); !bytes.Equal(got, want) {
				e.t.Fatalf("sender certificate layout differs from %s's (e164 %q):\n go   %x\n peer %x", p.Label(), e164, got, want)
			}
			theirs, err := sealed.ParseSenderCertificate(c.SenderCertificate)
			if err != nil {
				e.t.Fatal(err)
			}
			if err := theirs.Validate(rootPriv.PublicKey(), exp); err != nil {
				e.t.Fatalf("%s's certificate does not validate: %v", p.Label(), err)
			}
			if theirs.E164 != e164 || theirs.DeviceID != 3 || !theirs.Expires.Equal(exp) {
				e.t.Fatalf("%s's certificate fields: %+v", p.Label(), theirs)
			}
		}
	}
}
