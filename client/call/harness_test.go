package call

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/sqlitestore"
)

var testKDF = store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// anyPassphrase lets the tests' throwaway passphrases ("pw") through the
// passphrase policy.
const anyPassphrase = store.NoPassphrasePolicy

// testRelay is a real relay (SQLite, WebSockets) with its TURN server, on
// 127.0.0.1.
type testRelay struct {
	url    string
	store  *sqlitestore.Store
	turn   *relay.TURNServer
	allocs *atomic.Int64 // TURN allocations made, ever
	org    *orgtest.Org
	logPub ed25519.PublicKey
	cfg    relay.Config
	stop   func() // stops the relay's server (its store and TURN stay up); idempotent
}

// serve starts the relay's server on addr (its old address on a restart).
func (r *testRelay) serve(t testing.TB, addr string) {
	t.Helper()
	srv, err := relay.New(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(rctx) }()
	r.url = hs.URL
	r.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		hs.CloseClientConnections()
		srv.Close()
		hs.Close()
	})
}

// restart stops the relay's server, if it runs, and starts it again on
// the same address.
func (r *testRelay) restart(t testing.TB) {
	t.Helper()
	r.stop()
	r.serve(t, strings.TrimPrefix(r.url, "http://"))
}

func startRelay(t testing.TB) *testRelay { return startRelayWith(t, nil) }

// startRelayWith runs the relay with its mailbox wrapped by wrap (a hostile
// relay in tests).
func startRelayWith(t testing.TB, wrap func(relay.Mailbox) relay.Mailbox) *testRelay {
	t.Helper()
	return startRelayTURN(t, wrap, nil)
}

// startRelayTURN is startRelayWith with the TURN server's configuration
// changed by turnConf (nil: UDP and TCP on loopback).
func startRelayTURN(t testing.TB, wrap func(relay.Mailbox) relay.Mailbox, turnConf func(*relay.TURNServerConfig)) *testRelay {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	allocs := new(atomic.Int64)
	tc := relay.TURNServerConfig{Secret: secret, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
		OnAllocate: func() { allocs.Add(1) }}
	if turnConf != nil {
		turnConf(&tc)
	}
	ts, err := relay.StartTURN(ctx, tc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = st, st
	if wrap != nil {
		cfg.Mailbox = wrap(st)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.EnrollRate = relay.Rate{PerSecond: 100, Burst: 100}
	cfg.TURN = &relay.TURNCredentials{Secret: secret, URLs: ts.URLs(""), TTL: 10 * time.Minute}
	logPub, logKey, _ := ed25519.GenerateKey(rand.Reader)
	cfg.LogKey = logKey
	r := &testRelay{store: st, turn: ts, allocs: allocs, org: orgtest.New("Test Org"), logPub: logPub, cfg: cfg}
	r.serve(t, "127.0.0.1:0")
	t.Cleanup(func() {
		r.stop()
		ts.Close()
		st.Close()
	})
	if err := r.org.Register(ctx, st); err != nil {
		t.Fatal(err)
	}
	return r
}

// invite mints and registers user's invitation, as the org admin would.
func (r *testRelay) invite(t testing.TB, user string) *org.Opened {
	t.Helper()
	now := time.Now()
	inv, err := r.org.Invitation(context.Background(), r.store, org.MintParams{Username: user, Expires: now.Add(time.Hour),
		RelayURL: "ws://" + strings.TrimPrefix(r.url, "http://"), LogKey: r.logPub, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// device is one enrolled client with its call manager.
type device struct {
	c        *client.Client
	m        *Manager
	incoming chan *Call
	ended    chan *Call
	rec      *Recorder
}

func testOptions(o *Options, d *device, tone []int16) {
	o.LoopbackOnly = true
	if o.ICEFailedTimeout == 0 {
		o.ICEFailedTimeout = 3 * time.Second
	}
	o.OnIncoming = func(c *Call) { d.incoming <- c }
	o.OnEnd = func(c *Call) { d.ended <- c }
	o.NewSource = func(*Call) Source { return NewPCMSourceRate(tone, 8000) }
	o.NewSink = func(*Call) Sink { return d.rec }
}

func newDevice(tone []int16, o Options) *device {
	// Buffered beyond what a test reads: a test that fails early must
	// not leave Manager.Close (its cleanup) waiting on a send.
	d := &device{incoming: make(chan *Call, 64), ended: make(chan *Call, 64), rec: NewRecorder()}
	testOptions(&o, d, tone)
	d.m = NewManager(o)
	return d
}

func (d *device) start(t testing.TB) {
	t.Helper()
	if err := d.c.Connect(context.Background(), client.ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	d.m.Start(d.c)
	t.Cleanup(func() {
		d.m.Close()
		d.c.Close()
	})
}

// enroll enrolls user's first device.
func (r *testRelay) enroll(t testing.TB, user string, tone []int16, o Options) *device {
	t.Helper()
	d := newDevice(tone, o)
	c, err := client.Enroll(context.Background(), client.EnrollParams{Dir: filepath.Join(t.TempDir(), user), Passphrase: []byte("pw"),
		Invitation: r.invite(t, user), DeviceName: "test"}, &client.Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: d.m.HandleEvent})
	if err != nil {
		t.Fatal(err)
	}
	d.c = c
	d.start(t)
	return d
}

// link adds a device to first's account.
func (r *testRelay) link(t testing.TB, first *device, tone []int16, o Options) *device {
	t.Helper()
	ctx := context.Background()
	d := newDevice(tone, o)
	l, err := client.BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	go func() { errc <- first.c.ApproveLink(ctx, l.Code()) }()
	c, err := l.Finish(ctx, filepath.Join(t.TempDir(), "linked"), []byte("pw"), "second", &client.Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: d.m.HandleEvent})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	d.c = c
	d.start(t)
	return d
}

// heard is what r received, at 8 kHz (decimated from Opus's 48 kHz).
func heard(r *Recorder) []int16 {
	if r.Rate() == 48000 {
		return Decimate6(r.PCM())
	}
	return r.PCM()
}

// tone is amp-scaled sines at freqs, at 8 kHz, for d.
func tone(d time.Duration, freqs ...float64) []int16 {
	n := int(d.Seconds() * 8000)
	out := make([]int16, n)
	for i := range out {
		v := 0.0
		for _, f := range freqs {
			v += 6000 * math.Sin(2*math.Pi*f*float64(i)/8000)
		}
		out[i] = int16(v)
	}
	return out
}

// goertzel is the power of x at frequency f (8 kHz), per sample.
func goertzel(x []int16, f float64) float64 {
	w := 2 * math.Pi * f / 8000
	coef := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v) + coef*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - coef*s1*s2
	n := float64(len(x))
	return p / (n * n)
}

// toneSpan is how long x carries energy (20 ms frames whose RMS exceeds
// 1000), in time.
func toneSpan(x []int16) time.Duration {
	frames := 0
	for i := 0; i+160 <= len(x); i += 160 {
		e := 0.0
		for _, v := range x[i : i+160] {
			e += float64(v) * float64(v)
		}
		if math.Sqrt(e/160) > 1000 {
			frames++
		}
	}
	return time.Duration(frames) * FrameDuration
}

// waitCall returns the next call on ch.
func waitCall(t testing.TB, ch chan *Call, what string) *Call {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	return nil
}

func waitDone(t testing.TB, c *Call, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s to end (state %s)", what, c.State())
	}
}

func waitConnected(t testing.TB, c *Call, what string) {
	t.Helper()
	select {
	case <-c.Connected():
	case <-c.Done():
		t.Fatalf("%s ended before connecting: %v", what, c.Err())
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s to connect (state %s)", what, c.State())
	}
}

// lastCall is the newest call record with peer in d's history.
func lastCall(t testing.TB, d *device, peer string) *client.CallRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := d.c.History(context.Background(), peer, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(h) - 1; i >= 0; i-- {
			if h[i].Call != nil {
				return h[i].Call
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call record with %s", peer)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
