package relay_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/transparency"
	"sotto/wire"
)

type logRelay struct {
	url   string
	store *sqlitestore.Store
	pub   ed25519.PublicKey
	org   *testOrg // nil before an organization is registered
}

// startLogRelay runs a relay with a key log on store (a fresh one if
// nil), with an organization registered (logRelay.org); opts change its
// config.
func startLogRelay(t *testing.T, store *sqlitestore.Store, opts ...func(*relay.Config)) *logRelay {
	t.Helper()
	l := startBareLogRelay(t, store, opts...)
	l.org = registerOrg(t, l.store)
	return l
}

// startBareLogRelay runs a relay with a key log on store (a fresh one if
// nil) and no organization; tweak, if not nil, changes its config.
func startBareLogRelay(t *testing.T, store *sqlitestore.Store, opts ...func(*relay.Config)) *logRelay {
	t.Helper()
	ctx := context.Background()
	if store == nil {
		var err error
		if store, err = sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.LogKey = priv
	cfg.EnrollRate = relay.Rate{PerSecond: 1000, Burst: 1000}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(runCtx) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { stop(); <-done; srv.Close(); hs.Close(); store.Close() })
	return &logRelay{url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws", store: store, pub: pub}
}

type logClient struct {
	*rawConn
	nonce []byte
	next  uint64
}

func (l *logRelay) dial(t *testing.T) *logClient {
	c, _, err := websocket.Dial(context.Background(), l.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	lc := &logClient{rawConn: &rawConn{t: t, c: c}}
	lc.nonce = lc.read().GetPush().GetChallenge().GetNonce()
	return lc
}

func (c *logClient) do(req *wire.Request) *wire.Response {
	c.t.Helper()
	c.next++
	req.Id = c.next
	b, err := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: req}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(websocket.MessageBinary, b)
	for {
		f := c.read()
		if ch := f.GetPush().GetChallenge(); ch != nil {
			c.nonce = ch.Nonce
		}
		if r := f.GetResponse(); r != nil && r.Id == req.Id {
			return r
		}
	}
}

func (c *logClient) enroll(l *logRelay, user string, identity []byte) *wire.EnrollResponse {
	c.t.Helper()
	r, key := enrollRequest(l.org.invite(user), identity, 5)
	resp := c.tryEnroll(r, key)
	if resp.Code != wire.ErrorCode_OK {
		c.t.Fatalf("enroll %s: %s %s", user, resp.Code, resp.Message)
	}
	return resp.GetEnroll()
}

func checkProof(t *testing.T, pub ed25519.PublicKey, p *wire.TransparencyProof, user string, key []byte) transparency.SignedHead {
	t.Helper()
	head, err := transparency.VerifyHead(pub, p.GetSignedHead())
	if err != nil {
		t.Fatal(err)
	}
	b, err := transparency.DecodeBinding(p.GetLeaf())
	if err != nil || b.Username != user || !bytes.Equal(b.IdentityKey, key) || b.Kind != transparency.KindAdd {
		t.Fatalf("leaf: %+v %v", b, err)
	}
	incl, err := transparency.DecodeProof(p.GetInclusion())
	if err != nil {
		t.Fatal(err)
	}
	if err := transparency.VerifyInclusion(transparency.LeafHash(p.Leaf), p.LeafIndex, head.Size, incl, head.Root); err != nil {
		t.Fatalf("inclusion of %s: %v", user, err)
	}
	return head
}

func TestKeyTransparencyRequests(t *testing.T) {
	l := startLogRelay(t, nil)
	alice, bob := l.dial(t), l.dial(t)
	aliceKey, bobKey := []byte("alice identity key"), []byte("bob identity key")
	if er := alice.enroll(l, "alice", aliceKey); !bytes.Equal(er.LogPublicKey, l.pub) {
		t.Fatalf("enrollment hands out log key %x, want %x", er.LogPublicKey, l.pub)
	}
	bob.enroll(l, "bob", bobKey)

	r := alice.do(&wire.Request{Body: &wire.Request_TransparencyHead{TransparencyHead: &wire.TransparencyHeadRequest{}}})
	head, err := transparency.VerifyHead(l.pub, r.GetTransparencyHead().GetSignedHead())
	if err != nil || head.Size != 2 {
		t.Fatalf("head: %+v %v", head, err)
	}

	// Lookups carry a proof of the binding they serve.
	r = alice.do(&wire.Request{Body: &wire.Request_GetIdentity{GetIdentity: &wire.GetIdentityRequest{Username: "bob"}}})
	if h := checkProof(t, l.pub, r.GetGetIdentity().GetTransparency(), "bob", bobKey); h.Root != head.Root {
		t.Fatal("identity lookup proven against another head")
	}
	r = alice.do(&wire.Request{Body: &wire.Request_FetchPrekeys{FetchPrekeys: &wire.FetchPreKeysRequest{Username: "bob", TransparencyKnownSize: 1}}})
	p := r.GetFetchPrekeys().GetTransparency()
	checkProof(t, l.pub, p, "bob", bobKey)
	cons, _ := transparency.DecodeProof(p.Consistency)
	aliceLeaf := transparency.LeafHash(mustLeaf(t, l.store, 0))
	if p.KnownSize != 1 || transparency.VerifyConsistency(1, 2, aliceLeaf, head.Root, cons) != nil {
		t.Fatal("prekey lookup: consistency from size 1 does not verify")
	}

	// Inclusion by index and by name, consistency, leaves.
	r = bob.do(&wire.Request{Body: &wire.Request_TransparencyInclusion{TransparencyInclusion: &wire.TransparencyInclusionRequest{LeafIndex: 0}}})
	checkProof(t, l.pub, r.GetTransparencyInclusion(), "alice", aliceKey)
	r = bob.do(&wire.Request{Body: &wire.Request_TransparencyInclusion{TransparencyInclusion: &wire.TransparencyInclusionRequest{Username: "Alice"}}})
	checkProof(t, l.pub, r.GetTransparencyInclusion(), "alice", aliceKey)
	r = bob.do(&wire.Request{Body: &wire.Request_TransparencyConsistency{TransparencyConsistency: &wire.TransparencyConsistencyRequest{First: 1}}})
	c := r.GetTransparencyConsistency()
	cons, _ = transparency.DecodeProof(c.GetProof())
	if c.GetSecond() != 2 || transparency.VerifyConsistency(1, 2, aliceLeaf, head.Root, cons) != nil {
		t.Fatalf("consistency 1..2: %v", c)
	}
	r = bob.do(&wire.Request{Body: &wire.Request_TransparencyLeaves{TransparencyLeaves: &wire.TransparencyLeavesRequest{Start: 0, Count: 100}}})
	if lv := r.GetTransparencyLeaves().GetLeaves(); len(lv) != 2 || !bytes.Equal(lv[0], mustLeaf(t, l.store, 0)) {
		t.Fatalf("leaves: %d", len(lv))
	}

	for _, bad := range []*wire.Request{
		{Body: &wire.Request_TransparencyConsistency{TransparencyConsistency: &wire.TransparencyConsistencyRequest{First: 3, Second: 2}}},
		{Body: &wire.Request_TransparencyConsistency{TransparencyConsistency: &wire.TransparencyConsistencyRequest{First: 1, Second: 3}}},
		{Body: &wire.Request_TransparencyInclusion{TransparencyInclusion: &wire.TransparencyInclusionRequest{LeafIndex: 0, KnownSize: 3}}},
	} {
		if r := bob.do(bad); r.Code != wire.ErrorCode_BAD_REQUEST {
			t.Errorf("%v: %s", bad, r.Code)
		}
	}
	if r := bob.do(&wire.Request{Body: &wire.Request_TransparencyInclusion{TransparencyInclusion: &wire.TransparencyInclusionRequest{LeafIndex: 2}}}); r.Code != wire.ErrorCode_NOT_FOUND {
		t.Errorf("leaf past the end: %s", r.Code)
	}
}

func mustLeaf(t *testing.T, s *sqlitestore.Store, i uint64) []byte {
	t.Helper()
	l, err := s.LogLeaves(context.Background(), i, 1)
	if err != nil || len(l) != 1 {
		t.Fatalf("leaf %d: %v", i, err)
	}
	return l[0]
}

// TestKeyLogBackfill: accounts enrolled before the relay kept a log get
// their binding when it starts with one.
func TestKeyLogBackfill(t *testing.T) {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// An account of a relay from before key logs (and organizations).
	old := sha256.Sum256([]byte("an old activation code"))
	if err := store.CreateCode(ctx, relay.Code{ID: "c", Hash: old, Seats: 1,
		Created: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	spk := &relay.SignedPreKey{ID: 1, PublicKey: []byte("p"), Signature: []byte("s")}
	if _, _, err := store.Enroll(ctx, relay.NewAccount{CodeHash: old, Username: "olduser",
		IdentityKey: []byte("old key"), Device: relay.Device{DeviceKey: make([]byte, 32)},
		PreKeys: relay.PreKeys{SignedPreKey: spk, LastResortKyber: spk}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	l := startLogRelay(t, store)
	// Run backfills before it serves its loops; wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n, _ := store.LogSize(ctx); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the existing account was not added to the log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := l.dial(t)
	c.enroll(l, "newuser", []byte("new key"))
	r := c.do(&wire.Request{Body: &wire.Request_GetIdentity{GetIdentity: &wire.GetIdentityRequest{Username: "olduser"}}})
	checkProof(t, l.pub, r.GetGetIdentity().GetTransparency(), "olduser", []byte("old key"))
}
