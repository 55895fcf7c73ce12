package sealed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"sotto/signal/keys"
	"sotto/signal/session"
)

// libsignal's known server certificates (sealed_sender.rs,
// KNOWN_SERVER_CERTIFICATES): the staging one, the production one and the
// test one, each with its trust root.
var knownServerCerts = []struct {
	id        uint32
	trustRoot string // base64, serialized public key
	cert      string // hex
}{
	{2, "BYhU6tPjqP46KGZEzRs1OL4U39V5dlPJ/X09ha4rErkm",
		"0a25080212210539450d63ebd0752c0fd4038b9d07a916f5e174b756d409b5ca79f4c97400631e124064c5a38b1e927497d3d4786b101a623ab34a7da3954fae126b04dba9d7a3604ed88cdc8550950f0d4a9134ceb7e19b94139151d2c3d6e1c81e9d1128aafca806"},
	{3, "BUkY0I+9+oPgDCn4+Ac6Iu813yvqkDr/ga8DzLxFxuk6",
		"0a250803122105bc9d1d290be964810dfa7e94856480a3f7060d004c9762c24c575a1522353a5a1240c11ec3c401eb0107ab38f8600e8720a63169e0e2eb8a3fae24f63099f85ea319c3c1c46d3454706ae2a679d1fee690a488adda98a2290b66c906bb60295ed781"},
	{0x7357C357, "BS/lfaNHzWJDFSjarF+7KQcw//aEr8TPwu2QmV9Yyzt0",
		"0a2908d786df9a07122105847c0d2c375234f365e660955187a3735a0f7613d1609d3a6a4d8c53aeaa5a221240e0b9ebacdfc3aa2827f7924b697784d1c25e44ca05dd433e1a38dc6382eb2730d419ca9a250b1be9d5a9463e61efd6781777a91b83c97b844d014206e2829785"},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKnownServerCertificates(t *testing.T) {
	for _, kc := range knownServerCerts {
		rootBytes, _ := base64.StdEncoding.DecodeString(kc.trustRoot)
		root, err := keys.ParsePublicKey(rootBytes)
		if err != nil {
			t.Fatal(err)
		}
		raw := mustHex(t, kc.cert)
		c, err := ParseServerCertificate(raw)
		if err != nil {
			t.Fatalf("cert %d: %v", kc.id, err)
		}
		if c.KeyID != kc.id {
			t.Fatalf("key id %d, want %d", c.KeyID, kc.id)
		}
		if !c.Validate(root) {
			t.Fatalf("libsignal's server certificate %d does not validate against its trust root", kc.id)
		}
		if !bytes.Equal(c.Serialize(), raw) {
			t.Fatal("serialization changed")
		}
		other := knownServerCerts[(int(kc.id)+1)%len(knownServerCerts)]
		ob, _ := base64.StdEncoding.DecodeString(other.trustRoot)
		oroot, _ := keys.ParsePublicKey(ob)
		if other.id != kc.id && c.Validate(oroot) {
			t.Fatalf("cert %d validates against the wrong trust root", kc.id)
		}
	}
	// The test certificate: trust root from the all-zero private key, server
	// key from the all-0xff private key.
	zero, _ := keys.ParsePrivateKey(make([]byte, 32))
	ff, _ := keys.ParsePrivateKey(bytes.Repeat([]byte{0xff}, 32))
	tc, _ := ParseServerCertificate(mustHex(t, knownServerCerts[2].cert))
	rootBytes, _ := base64.StdEncoding.DecodeString(knownServerCerts[2].trustRoot)
	if !bytes.Equal(zero.PublicKey().Serialize(), rootBytes) || !tc.Key.Equal(ff.PublicKey()) {
		t.Fatal("libsignal's test certificate keys do not match their private keys")
	}
}

func TestAccessKeyKAT(t *testing.T) {
	// libsignal's zkgroup access_key_kat.
	kat := []struct{ pk, ak string }{
		{"b95042a2c2d9e5b3bb09300ee408a172facd96e91b504e043a5a023dc4cff359", "24fb96d4a5e333e9d4451205b9e2faed"},
		{"26197b17e5a2c36d8c9518c35358f123c476000db6da7565c0d41f6674462c4d", "e895c30cf780757d22f7a179708b14a1"},
	}
	for _, k := range kat {
		got, err := DeriveAccessKey(mustHex(t, k.pk))
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != k.ak {
			t.Fatalf("access key %x, want %s", got, k.ak)
		}
	}
	if _, err := DeriveAccessKey(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte profile key was accepted")
	}
}

// chain is a trust root, a server certificate and its key.
type chain struct {
	root      keys.KeyPair
	server    keys.KeyPair
	serverCrt *ServerCertificate
}

func newChain(t testing.TB) *chain {
	t.Helper()
	root, _ := keys.GenerateKeyPair(rand.Reader)
	server, _ := keys.GenerateKeyPair(rand.Reader)
	sc, err := NewServerCertificate(rand.Reader, 7, server.Public, root.Private)
	if err != nil {
		t.Fatal(err)
	}
	return &chain{root: root, server: server, serverCrt: sc}
}

func (c *chain) sender(t testing.TB, name string, dev uint32, id keys.PublicKey, expires time.Time) *SenderCertificate {
	t.Helper()
	sc, err := NewSenderCertificate(rand.Reader, name, "", id, dev, expires, c.serverCrt, c.server.Private)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestCertificateRoundTrip(t *testing.T) {
	ch := newChain(t)
	id, _ := keys.GenerateKeyPair(rand.Reader)
	exp := time.UnixMilli(1_900_000_000_123)
	sc, err := NewSenderCertificate(rand.Reader, "alice", "+15550001", id.Public, 3, exp, ch.serverCrt, ch.server.Private)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSenderCertificate(sc.Serialize())
	if err != nil {
		t.Fatal(err)
	}
	if got.Sender != "alice" || got.E164 != "+15550001" || got.DeviceID != 3 || !got.Expires.Equal(exp) || !got.IdentityKey.Equal(id.Public) || got.Signer.KeyID != 7 {
		t.Fatalf("round trip: %+v", got)
	}
	if err := got.Validate(ch.root.Public, exp); err != nil {
		t.Fatalf("valid at expiry: %v", err)
	}
	if err := got.Validate(ch.root.Public, exp.Add(time.Millisecond)); !errors.Is(err, ErrExpiredCertificate) {
		t.Fatalf("after expiry: %v", err)
	}
	other := newChain(t)
	if err := got.Validate(other.root.Public, exp); !errors.Is(err, ErrUntrustedCertificate) {
		t.Fatalf("wrong trust root: %v", err)
	}
	// A sender certificate signed by a key that is not the server key.
	forged, _ := NewSenderCertificate(rand.Reader, "alice", "", id.Public, 3, exp, ch.serverCrt, other.server.Private)
	if err := forged.Validate(ch.root.Public, exp); !errors.Is(err, ErrUntrustedCertificate) {
		t.Fatalf("forged signature: %v", err)
	}
	// A revoked server certificate id.
	rev, _ := NewServerCertificate(rand.Reader, 0xDEADC357, ch.server.Public, ch.root.Private)
	if rev.Validate(ch.root.Public) {
		t.Fatal("revoked server certificate id validated")
	}
	if _, err := NewSenderCertificate(rand.Reader, "a", "", id.Public, 128, exp, ch.serverCrt, ch.server.Private); err == nil {
		t.Fatal("device 128 accepted")
	}
}

func TestSealUnseal(t *testing.T) {
	ch := newChain(t)
	alice, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	bob, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	cert := ch.sender(t, "alice", 1, alice.PublicKey(), time.Now().Add(time.Hour))
	c, err := NewContent(TypeSignal, cert, []byte("inner"), HintImplicit, []byte("group"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Seal(rand.Reader, alice, bob.PublicKey(), c)
	if err != nil {
		t.Fatal(err)
	}
	if msg[0] != 0x11 {
		t.Fatalf("version byte %#x", msg[0])
	}
	got, err := Unseal(bob, msg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != TypeSignal || !bytes.Equal(got.Contents, []byte("inner")) || got.Hint != HintImplicit || string(got.GroupID) != "group" || got.Sender.Sender != "alice" {
		t.Fatalf("unsealed %+v", got)
	}
	// Not for carol.
	carol, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	if _, err := Unseal(carol, msg); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("wrong recipient: %v", err)
	}
	// Every single-bit flip is refused.
	for i := 1; i < len(msg); i++ {
		bad := bytes.Clone(msg)
		bad[i] ^= 0x01
		if _, err := Unseal(bob, bad); err == nil {
			t.Fatalf("flip at %d accepted", i)
		}
	}
	// Version 2 and unknown versions.
	v2 := append([]byte{0x22}, msg[1:]...)
	if _, err := Unseal(bob, v2); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("v2: %v", err)
	}
	// A certificate naming another key than the static layer's.
	mallory, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	c2, _ := NewContent(TypeSignal, cert, []byte("x"), HintDefault, nil)
	msg2, _ := Seal(rand.Reader, mallory, bob.PublicKey(), c2)
	if _, err := Unseal(bob, msg2); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("key mismatch: %v", err)
	}
}

// party is a session participant with a memory store.
type party struct {
	addr session.Address
	id   *keys.IdentityKeyPair
	mem  *session.MemoryStore
}

func newParty(t testing.TB, name string, dev uint32) *party {
	t.Helper()
	id, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	p := &party{addr: session.Address{Name: name, DeviceID: dev}, id: id, mem: session.NewMemoryStore(id, 1000+dev)}
	return p
}

// bundle makes a one-time bundle of p.
func (p *party) bundle(t testing.TB) *session.PreKeyBundle {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	pks, err := session.GeneratePreKeys(rand.Reader, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.mem.StorePreKey(ctx, 1, pks[0])
	spk, _ := session.GenerateSignedPreKey(rand.Reader, p.id, 1, now)
	_ = p.mem.StoreSignedPreKey(ctx, 1, spk)
	kpk, _ := session.GenerateKyberPreKey(rand.Reader, p.id, 1, now)
	_ = p.mem.StoreKyberPreKey(ctx, 1, kpk, false)
	return &session.PreKeyBundle{
		RegistrationID: 1000 + p.addr.DeviceID, DeviceID: p.addr.DeviceID,
		HasPreKey: true, PreKeyID: 1, PreKey: pks[0].PublicKey(),
		SignedPreKeyID: 1, SignedPreKey: spk.PublicKey(), SignedPreKeySignature: spk.Signature(),
		KyberPreKeyID: 1, KyberPreKey: kpk.PublicKey(), KyberPreKeySignature: kpk.Signature(),
		IdentityKey: p.id.PublicKey().Serialize(),
	}
}

func TestEncryptDecrypt(t *testing.T) {
	ctx := context.Background()
	ch := newChain(t)
	alice, bob := newParty(t, "alice", 1), newParty(t, "bob", 2)
	now := time.Now()
	if err := session.ProcessPreKeyBundle(ctx, rand.Reader, alice.mem.Stores(), bob.addr, bob.bundle(t), now); err != nil {
		t.Fatal(err)
	}
	cert := ch.sender(t, "alice", 1, alice.id.PublicKey(), now.Add(time.Hour))
	for i, text := range []string{"first (prekey)", "second"} {
		msg, err := Encrypt(ctx, rand.Reader, alice.mem.Stores(), bob.addr, cert, []byte(text), HintResendable, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Decrypt(ctx, rand.Reader, bob.mem.Stores(), msg, ch.root.Public, now, bob.addr)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if r.Sender != alice.addr || string(r.Plaintext) != text || r.Hint != HintResendable {
			t.Fatalf("message %d: %+v", i, r)
		}
		if r.Type != TypePreKey {
			t.Fatalf("message %d before any reply: type %d, want a prekey message", i, r.Type)
		}
	}
	// Bob answers sealed too.
	bcert := ch.sender(t, "bob", 2, bob.id.PublicKey(), now.Add(time.Hour))
	msg, err := Encrypt(ctx, rand.Reader, bob.mem.Stores(), alice.addr, bcert, []byte("reply"), HintDefault, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Decrypt(ctx, rand.Reader, alice.mem.Stores(), msg, ch.root.Public, now, alice.addr); err != nil || string(r.Plaintext) != "reply" || r.Type != TypeSignal {
		t.Fatalf("reply: %v %+v", err, r)
	}

	// Refusals: expired, wrong root, self-send, and a certificate for alice
	// carrying mallory's identity key (a relay-minted forgery).
	msg, _ = Encrypt(ctx, rand.Reader, alice.mem.Stores(), bob.addr, cert, []byte("late"), HintDefault, nil, now)
	if _, err := Decrypt(ctx, rand.Reader, bob.mem.Stores(), msg, ch.root.Public, now.Add(2*time.Hour), bob.addr); !errors.Is(err, ErrExpiredCertificate) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := Decrypt(ctx, rand.Reader, bob.mem.Stores(), msg, newChain(t).root.Public, now, bob.addr); !errors.Is(err, ErrUntrustedCertificate) {
		t.Fatalf("wrong root: %v", err)
	}
	if r, err := Decrypt(ctx, rand.Reader, bob.mem.Stores(), msg, ch.root.Public, now, bob.addr); err != nil || string(r.Plaintext) != "late" {
		t.Fatalf("a refused message must leave the session usable: %v", err)
	}
	selfCert := ch.sender(t, "bob", 2, alice.id.PublicKey(), now.Add(time.Hour))
	msg, _ = Encrypt(ctx, rand.Reader, alice.mem.Stores(), bob.addr, selfCert, []byte("me?"), HintDefault, nil, now)
	if _, err := Decrypt(ctx, rand.Reader, bob.mem.Stores(), msg, ch.root.Public, now, bob.addr); !errors.Is(err, ErrSelfSend) {
		t.Fatalf("self send: %v", err)
	}
	mallory := newParty(t, "mallory", 1)
	if err := session.ProcessPreKeyBundle(ctx, rand.Reader, mallory.mem.Stores(), bob.addr, bob.bundle(t), now); err != nil {
		t.Fatal(err)
	}
	forged := ch.sender(t, "alice", 1, mallory.id.PublicKey(), now.Add(time.Hour))
	msg, err = Encrypt(ctx, rand.Reader, mallory.mem.Stores(), bob.addr, forged, []byte("it is alice, honest"), HintDefault, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decrypt(ctx, rand.Reader, bob.mem.Stores(), msg, ch.root.Public, now, bob.addr); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("forged sender: %v", err)
	}
	// Encrypt refuses a certificate that names another identity key.
	if _, err := Encrypt(ctx, rand.Reader, mallory.mem.Stores(), bob.addr, cert, []byte("x"), HintDefault, nil, now); err == nil {
		t.Fatal("sealing under someone else's certificate was allowed")
	}
	// No session, no identity: no sealing.
	if _, err := Encrypt(ctx, rand.Reader, alice.mem.Stores(), mallory.addr, cert, []byte("x"), HintDefault, nil, now); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("no session: %v", err)
	}
}
