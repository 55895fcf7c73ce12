package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/keylog"
	"sotto/client/org"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/transparency"
	"sotto/witness"

	"google.golang.org/protobuf/proto"
)

// witnessBound is the clients' bound in these tests.
const witnessBound = time.Hour

// recWitness is the relay's witness client that records what the real
// witness answered; corrupt flips a bit of every cosignature it passes on
// (a relay attaching forged cosignatures).
type recWitness struct {
	relay.Witness
	corrupt bool
	mu      sync.Mutex
	refused []int // HTTP statuses of refusals other than 409
}

func (r *recWitness) AddCheckpoint(ctx context.Context, old uint64, proof []transparency.Hash, head []byte) ([]byte, error) {
	cosig, err := r.Witness.AddCheckpoint(ctx, old, proof, head)
	var se *witness.StatusError
	if errors.As(err, &se) {
		r.mu.Lock()
		r.refused = append(r.refused, se.Code)
		r.mu.Unlock()
	}
	if err == nil && r.corrupt {
		cosig[len(cosig)-1] ^= 1
	}
	return cosig, err
}

func (r *recWitness) refusals() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.refused...)
}

// witnessEnv is a relay (SQLite, loopback) whose log a real witness (also
// on loopback) co-signs, and a clock for its clients.
type witnessEnv struct {
	*ktRelay
	wit   *witness.Witness
	rec   *recWitness
	off   atomic.Int64 // the clients' clock offset
	stopR func()
}

func startWitnessEnv(t *testing.T) *witnessEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, wkey, _ := ed25519.GenerateKey(rand.Reader)
	w, err := witness.New(witness.Config{Dir: t.TempDir(), Key: wkey, LogKey: pub, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ws := httptest.NewServer(w.Handler())
	t.Cleanup(ws.Close)
	e := &witnessEnv{
		ktRelay: &ktRelay{testRelay: &testRelay{store: st, logPub: pub}, dir: dir, pub: pub, priv: priv},
		wit:     w,
		rec:     &recWitness{Witness: &witness.Client{URL: ws.URL, HTTP: ws.Client()}},
	}
	e.startRelay(t)
	return e
}

// startRelay starts (or, after stopRelay, restarts: a relay that forgot
// its cosignatures) the relay on the env's store.
func (e *witnessEnv) startRelay(t *testing.T) {
	t.Helper()
	cfg := e.config()
	cfg.DirectoryCacheTTL = time.Nanosecond
	cfg.LogKey = e.priv
	cfg.Witness = e.rec
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(ctx) }()
	var once sync.Once
	e.stopR = func() {
		once.Do(func() {
			cancel()
			<-done
			srv.Close()
			hs.Close()
		})
	}
	t.Cleanup(e.stopR)
	e.url = hs.URL
}

func (e *witnessEnv) now() time.Time { return time.Now().Add(time.Duration(e.off.Load())) }

// enroll enrolls user on the env's clock, pins the witness key (as the
// enrollment will from the org's invitation) and connects without
// receiving, so that only the test's calls audit.
func (e *witnessEnv) enroll(t *testing.T, code, user string, pin bool) (*Client, chan Event) {
	t.Helper()
	ctx := context.Background()
	events := make(chan Event, 100)
	c, err := Enroll(ctx, EnrollParams{Dir: filepath.Join(t.TempDir(), user), Passphrase: []byte("pw"),
		Invitation: e.inviteCode(t, code, user), DeviceName: "test"},
		&Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Now: e.now, WitnessBound: witnessBound, OnEvent: func(ev Event) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if pin {
		if err := keylog.PinWitnessKey(ctx, c.db, e.wit.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	return c, events
}

// waitCosigned waits until the witness co-signed a tree of size n (the
// relay submits in the background after its log grows).
func (e *witnessEnv) waitCosigned(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if h, _ := e.wit.Latest(); h != nil {
			if head, err := transparency.DecodeHead(h); err == nil && head.Size >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not co-sign size %d", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitWitnessed audits until c has seen a witnessed head of size n: the
// relay holds the cosignature a moment after the witness made it.
func waitWitnessed(t *testing.T, c *Client, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		audit(t, c)
		if witnessedSize(t, c) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s saw no witnessed head of size %d", c.acct.Username, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func audit(t *testing.T, c *Client) {
	t.Helper()
	if _, err := c.AuditKeyLog(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func witnessedSize(t *testing.T, c *Client) uint64 {
	t.Helper()
	h, err := c.WitnessedHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		return 0
	}
	return h.Size
}

// honestStart enrolls alice and bob and lets the witness co-sign their
// log; alice has seen it witnessed.
func (e *witnessEnv) honestStart(t *testing.T, code string) (alice, bob *Client) {
	t.Helper()
	alice, _ = e.enroll(t, code, "alice", true)
	bob, _ = e.enroll(t, code, "bob", true)
	audit(t, alice) // the relay signs a head of size 2: it submits it
	e.waitCosigned(t, 2)
	waitWitnessed(t, alice, 2)
	return alice, bob
}

// TestWitnessHonest: with an honest relay and witness, heads are witnessed
// (on audits and on key lookups), and no alarm comes, even long after.
func TestWitnessHonest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := startWitnessEnv(t)
	code := e.code(t, 5, time.Hour)
	alice, bob := e.honestStart(t, code)
	if _, err := alice.Send(ctx, "bob", "hello"); err != nil {
		t.Fatal(err)
	}
	carol, _ := e.enroll(t, code, "carol", true)
	audit(t, carol)
	e.waitCosigned(t, 3)
	// Each has fetched the co-signed head before the bound passes (else
	// one still holding only the unwitnessed head would rightly alarm).
	for _, c := range []*Client{alice, bob, carol} {
		waitWitnessed(t, c, 3)
	}
	e.off.Add(int64(3 * witnessBound))
	for _, c := range []*Client{alice, bob, carol} {
		waitWitnessed(t, c, 3)
		if got := witnessedSize(t, c); got != 3 {
			t.Fatalf("%s: witnessed size %d, want 3", c.acct.Username, got)
		}
		if a := alarmsOf(t, c); len(a) != 0 {
			t.Fatalf("%s: alarms %+v", c.acct.Username, a)
		}
	}
	if r := e.rec.refusals(); len(r) != 0 {
		t.Fatalf("the witness refused an honest log: %v", r)
	}
	if k, _ := alice.WitnessPublicKey(ctx); !ed25519.PublicKey(k).Equal(e.wit.PublicKey()) {
		t.Fatal("the pinned witness key is not the witness's")
	}
}

// TestWitnessSplitView: the relay rewrites its log after the witness
// co-signed it, and shows the rewritten log to carol, who enrolls later;
// alice keeps the log she saw. No one gossips. The witness refuses to
// co-sign the rewritten log, and carol finds out alone: at once (fork)
// when the relay serves her the witnessed head it holds, or once the
// bound passes (unwitnessed) when it withholds it.
func TestWitnessSplitView(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		restart bool // the relay forgets the cosignatures it held
		want    AlarmKind
	}{
		{"witnessed head served", false, AlarmFork},
		{"witnessed head withheld", true, AlarmUnwitnessed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startWitnessEnv(t)
			code := e.code(t, 5, time.Hour)
			alice, _ := e.honestStart(t, code)
			before, _ := alice.TransparencyHead(context.Background())

			if tc.restart {
				e.stopR()
			}
			e.rewriteLeaf(t, 1, "alice", "bob")
			if tc.restart {
				e.startRelay(t)
			}
			carol, cev := e.enroll(t, code, "carol", true)
			if _, err := carol.AuditKeyLog(context.Background()); err != nil && tc.want != AlarmFork {
				t.Fatalf("carol's first audit: %v", err)
			}
			// The witness refuses the rewritten log: it does not extend
			// the tree of size 2 it co-signed.
			deadline := time.Now().Add(30 * time.Second)
			for len(e.rec.refusals()) == 0 {
				if h, _ := e.wit.Latest(); mustDecodeHead(t, h).Root != before.Root {
					t.Error("the witness co-signed the rewritten log")
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the witness did not answer")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if r := e.rec.refusals(); len(r) > 0 && r[0] != http.StatusUnprocessableEntity {
				t.Fatalf("the witness answered %v, want 422", r)
			}
			if tc.want == AlarmFork {
				// The relay may serve its witnessed head now: the fork is
				// certain. (Until then carol's first audit already caught it.)
				_, _ = carol.AuditKeyLog(context.Background())
			}
			if tc.want == AlarmUnwitnessed {
				if a := alarmsOf(t, carol); len(a) != 0 {
					t.Fatalf("carol alarmed before the bound: %+v", a)
				}
				e.off.Add(int64(witnessBound + time.Minute))
				audit(t, carol)
			}
			got := alarmsOf(t, carol)
			if len(got) == 0 || got[0].Kind != tc.want {
				t.Fatalf("carol's alarms %+v, want %s", got, tc.want)
			}
			if witnessedSize(t, carol) >= 3 {
				t.Fatal("carol counts the rewritten log as witnessed")
			}
			waitEvent(t, cev, EventTransparencyAlarm)
			// Once, not on every audit.
			if tc.want == AlarmUnwitnessed {
				audit(t, carol)
				if n := len(alarmsOf(t, carol)); n != 1 {
					t.Fatalf("%d alarms after another audit", n)
				}
			}
			if a := alarmsOf(t, alice); len(a) != 0 {
				t.Fatalf("alice (not audited since) alarmed: %+v", a)
			}
		})
	}
}

func mustDecodeHead(t *testing.T, b []byte) transparency.SignedHead {
	t.Helper()
	h, err := transparency.DecodeHead(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestWitnessBadCosignature: a relay attaching a cosignature that does
// not verify gets a bad-cosignature alarm, and the head is not counted.
func TestWitnessBadCosignature(t *testing.T) {
	t.Parallel()
	e := startWitnessEnv(t)
	e.rec.corrupt = true
	code := e.code(t, 5, time.Hour)
	alice, _ := e.enroll(t, code, "alice", true)
	audit(t, alice)
	e.waitCosigned(t, 1)
	// The witness has co-signed; the relay keeps the (corrupted)
	// cosignature once the witness's answer reaches it, a moment later.
	var got []TransparencyAlarm
	for deadline := time.Now().Add(20 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		audit(t, alice)
		got = alarmsOf(t, alice)
	}
	if len(got) == 0 || got[0].Kind != AlarmBadCosignature {
		t.Fatalf("alarms %+v", got)
	}
	if n := witnessedSize(t, alice); n != 0 {
		t.Fatalf("a bad cosignature counted: witnessed %d", n)
	}
}

// TestWitnessNotPinned: without a pinned witness key nothing changes: no
// witnessed size, no alarm however long heads stay unwitnessed.
func TestWitnessNotPinned(t *testing.T) {
	t.Parallel()
	e := startWitnessEnv(t)
	e.rec.corrupt = true
	code := e.code(t, 5, time.Hour)
	alice, _ := e.enroll(t, code, "alice", false)
	audit(t, alice)
	e.off.Add(int64(10 * witnessBound))
	audit(t, alice)
	if k, _ := alice.WitnessPublicKey(context.Background()); k != nil {
		t.Fatal("a witness key is pinned")
	}
	if a := alarmsOf(t, alice); len(a) != 0 || witnessedSize(t, alice) != 0 {
		t.Fatalf("alarms %+v", a)
	}
}

// The org policy sets the bound on unwitnessed heads; without one the
// client's applies.
func TestWitnessBoundFromPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	c, _ := r.enroll(t, r.code(t, 1, time.Hour), "alice", false)
	if got := c.witnessBound(ctx); got != DefaultWitnessBound {
		t.Fatalf("no policy: %v", got)
	}
	b, err := proto.Marshal(&org.Policy{Version: 1, WitnessBoundSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.db.Put(ctx, tblOrg, []byte("policy"), b); err != nil {
		t.Fatal(err)
	}
	if got := c.witnessBound(ctx); got != 10*time.Minute {
		t.Fatalf("policy of 600 s: %v", got)
	}
}
