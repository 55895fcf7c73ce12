package relay_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sotto/internal/testneed"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// limitRelay is a real relay on loopback, with its store and an
// organization, for the attack tests of the connection caps.
type limitRelay struct {
	srv *relay.Server
	hs  *httptest.Server
	url string // ws://.../v1/ws
	org *testOrg
}

func startLimitRelay(t *testing.T, mod func(*relay.Config)) *limitRelay {
	t.Helper()
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := registerOrg(t, store)
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.AcceptWebSocket = relay.AcceptLean
	if mod != nil {
		mod(&cfg)
	}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Listen on every loopback address, so that clients can come from
	// 127.0.0.2, 127.0.0.3, ... as distinct addresses.
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close(); store.Close() })
	return &limitRelay{srv: srv, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws", org: o}
}

// dialFrom opens a WebSocket from the loopback address from, with extra
// request headers; it returns the HTTP status of a refusal.
func dialFrom(t *testing.T, url, from string, hdr http.Header) (*websocket.Conn, int, error) {
	c, _, status, err := dialNonce(t, url, from, hdr)
	return c, status, err
}

// dialNonce is dialFrom that also returns the challenge's nonce.
func dialNonce(t *testing.T, url, from string, hdr http.Header) (*websocket.Conn, []byte, int, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: hdr})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, nil, status, err
	}
	t.Cleanup(func() { c.CloseNow() })
	// Wait for the challenge: the relay is serving this connection.
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("no challenge on a connection from %s: %v", from, err)
	}
	f, err := wire.DecodeFrame(b)
	if err != nil || f.GetPush().GetChallenge() == nil {
		t.Fatalf("first frame from the relay: %v %v", f, err)
	}
	return c, f.GetPush().GetChallenge().Nonce, 0, nil
}

// mustDial opens a connection that must be accepted.
func mustDial(t *testing.T, url, from string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, status, err := dialFrom(t, url, from, hdr)
	if err != nil {
		t.Fatalf("connection from %s refused (%d): %v", from, status, err)
	}
	return c
}

// mustRefuse checks that a connection is refused with want.
func mustRefuse(t *testing.T, url, from string, hdr http.Header, want int) {
	t.Helper()
	if _, status, err := dialFrom(t, url, from, hdr); err == nil || status != want {
		t.Fatalf("connection from %s: got status %d (%v), want %d", from, status, err, want)
	}
}

// metric reads one line of the relay's /metrics.
func (r *limitRelay) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(r.hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// waitMetric waits (generously) for a gauge to reach want.
func (r *limitRelay) waitMetric(t *testing.T, name, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.metric(t, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed %s, want %s", name, r.metric(t, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConnCapPerAddress: one address holds at most its share of
// unauthenticated connections (HTTP 429 past it, before any upgrade),
// other addresses still connect, an authenticated connection leaves the
// unauthenticated count, and a closed connection frees its slot.
func TestConnCapPerAddress(t *testing.T) {
	r := startLimitRelay(t, func(c *relay.Config) {
		c.ConnLimits = relay.ConnLimits{PerAddr: 3, PerAddrUnauthenticated: 2, MaxUnauthenticated: 100}
	})
	// The attacker at 127.0.0.2.
	first := mustDial(t, r.url, "127.0.0.2", nil)
	mustDial(t, r.url, "127.0.0.2", nil)
	mustRefuse(t, r.url, "127.0.0.2", nil, http.StatusTooManyRequests)
	mustRefuse(t, r.url, "127.0.0.2", nil, http.StatusTooManyRequests)
	// Somebody else is not affected.
	mustDial(t, r.url, "127.0.0.3", nil)
	if got := r.metric(t, "sotto_connections_unauthenticated"); got != "3" {
		t.Fatalf("unauthenticated gauge %s, want 3", got)
	}
	// Closing a connection frees its slot, exactly.
	first.Close(websocket.StatusNormalClosure, "")
	r.waitMetric(t, "sotto_connections_unauthenticated", "2")
	mustDial(t, r.url, "127.0.0.2", nil)
	mustRefuse(t, r.url, "127.0.0.2", nil, http.StatusTooManyRequests)

	// At 127.0.0.4: a device that logs in no longer counts as
	// unauthenticated (else the second connection would be refused)...
	enrollFrom(t, r, "127.0.0.4", "carol")
	mustDial(t, r.url, "127.0.0.4", nil)
	mustDial(t, r.url, "127.0.0.4", nil)
	// ... but still counts against the address's total (3).
	enrollFrom(t, r, "127.0.0.5", "dave")
	enrollFrom(t, r, "127.0.0.5", "erin")
	mustDial(t, r.url, "127.0.0.5", nil)
	mustRefuse(t, r.url, "127.0.0.5", nil, http.StatusTooManyRequests)
	if got := r.metric(t, `sotto_connections_refused_total{cap="address"}`); got != "4" {
		t.Fatalf("refusals by address: %s, want 4", got)
	}
}

// enrollFrom enrolls a device over a connection from the address from
// and returns the authenticated connection.
func enrollFrom(t *testing.T, r *limitRelay, from, name string) *msgDevice {
	t.Helper()
	c, nonce, status, err := dialNonce(t, r.url, from, nil)
	if err != nil {
		t.Fatalf("dial (%d): %v", status, err)
	}
	d := &msgDevice{rawConn: &rawConn{t: t, c: c}, name: name, nonce: nonce}
	pub, key, _ := ed25519.GenerateKey(nil)
	ik := make([]byte, 33)
	seat := r.org.invite(name)
	d.send(1, &wire.EnrollRequest{ActivationCode: seat.Code, IdentityCertificate: seat.Certify(ik), Username: name, DeviceKey: pub, IdentityKey: ik,
		RegistrationId: 7, Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: make([]byte, 33), Signature: make([]byte, 64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: make([]byte, 100), Signature: make([]byte, 64)},
		},
		Signature: ed25519.Sign(key, wire.EnrollTranscript(d.nonce, name, pub, ik, 7))})
	d.id = d.login().GetEnroll().DeviceId
	return d
}

// TestUnauthenticatedCap: past the global cap on unauthenticated
// connections, a new one closes the oldest unauthenticated connection
// (an attacker churns but cannot lock newcomers out), or, configured so,
// is refused with HTTP 503; the count never exceeds the cap.
func TestUnauthenticatedCap(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		r := startLimitRelay(t, func(c *relay.Config) {
			c.ConnLimits = relay.ConnLimits{PerAddr: 10, PerAddrUnauthenticated: 10, MaxUnauthenticated: 3, RefuseWhenFull: refuse}
		})
		oldest := mustDial(t, r.url, "127.0.0.2", nil)
		mustDial(t, r.url, "127.0.0.3", nil)
		c := mustDial(t, r.url, "127.0.0.4", nil)
		if refuse {
			mustRefuse(t, r.url, "127.0.0.5", nil, http.StatusServiceUnavailable)
			c.Close(websocket.StatusNormalClosure, "")
			r.waitMetric(t, "sotto_connections_unauthenticated", "2")
			mustDial(t, r.url, "127.0.0.5", nil)
			continue
		}
		// A newcomer gets in; the oldest is closed to make room.
		enrollFrom(t, r, "127.0.0.5", "frank")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			if _, _, err := oldest.Read(ctx); err != nil {
				if ctx.Err() != nil {
					t.Fatal("the oldest unauthenticated connection stayed open")
				}
				if websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
					t.Fatalf("evicted with %v, want try again later", err)
				}
				break
			}
		}
		cancel()
		if got := r.metric(t, "sotto_connections_unauthenticated"); got != "2" {
			t.Fatalf("unauthenticated gauge %s, want 2 (frank logged in)", got)
		}
		if got := r.metric(t, "sotto_connections_evicted_total"); got != "1" {
			t.Fatalf("evictions %s, want 1", got)
		}
	}
}

// TestProvisioningBound: a provisioning connection counts as
// unauthenticated and is closed ProvisionTimeout after it opened, however
// long the link tokens live; its slot is then free.
func TestProvisioningBound(t *testing.T) {
	r := startLimitRelay(t, func(c *relay.Config) {
		c.ConnLimits = relay.ConnLimits{PerAddr: 10, PerAddrUnauthenticated: 1, MaxUnauthenticated: 10}
		c.LoginTimeout = 200 * time.Millisecond
		c.ProvisionTimeout = time.Second
		c.LinkTokenTTL = time.Hour
	})
	c := mustDial(t, r.url, "127.0.0.2", nil)
	d := &msgDevice{rawConn: &rawConn{t: t, c: c}, name: "new device"}
	b, _ := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: &wire.Request{Id: 1,
		Body: &wire.Request_Provision{Provision: &wire.ProvisionRequest{}}}}})
	d.write(websocket.MessageBinary, b)
	if resp := d.next().GetResponse(); resp.GetProvision().GetAddress() == "" {
		t.Fatalf("provision: %v", resp)
	}
	// It holds the address's only unauthenticated slot.
	mustRefuse(t, r.url, "127.0.0.2", nil, http.StatusTooManyRequests)
	// The relay closes it (generous wait: the bound is 1 s).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the provisioning connection outlived its bound")
			}
			break
		}
	}
	r.waitMetric(t, "sotto_connections_unauthenticated", "0")
	mustDial(t, r.url, "127.0.0.2", nil)
}

// TestTrustedProxy: behind a trusted proxy the forwarded client address
// keys the caps (IPv6 by /64); a forwarding header from a peer that is not
// a trusted proxy is ignored, so spoofing it gains nothing.
func TestTrustedProxy(t *testing.T) {
	r := startLimitRelay(t, func(c *relay.Config) {
		c.ConnLimits = relay.ConnLimits{PerAddr: 10, PerAddrUnauthenticated: 1, MaxUnauthenticated: 100}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	xff := func(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }
	// The proxy at 127.0.0.2 forwards distinct clients: each has its slot.
	mustDial(t, r.url, "127.0.0.2", xff("198.51.100.1, 203.0.113.7"))
	mustDial(t, r.url, "127.0.0.2", xff("203.0.113.8"))
	mustRefuse(t, r.url, "127.0.0.2", xff("203.0.113.7"), http.StatusTooManyRequests)
	// IPv6 clients in one /64 share a key; the next /64 does not.
	mustDial(t, r.url, "127.0.0.2", xff("2001:db8:1:2::1"))
	mustRefuse(t, r.url, "127.0.0.2", xff("2001:db8:1:2:ffff::9"), http.StatusTooManyRequests)
	mustDial(t, r.url, "127.0.0.2", xff("2001:db8:1:3::1"))
	// A client that prepends its own hop to the header gains nothing: the
	// proxy appended the real address, which is the rightmost.
	mustRefuse(t, r.url, "127.0.0.2", xff("192.0.2.99, 203.0.113.8"), http.StatusTooManyRequests)
	// An untrusted peer's header is ignored: 127.0.0.3 is one client.
	mustDial(t, r.url, "127.0.0.3", xff("192.0.2.1"))
	mustRefuse(t, r.url, "127.0.0.3", xff("192.0.2.2"), http.StatusTooManyRequests)
}

// TestGlobalEnrollLimit: enrollment attempts from many addresses share a
// global budget besides each address's own.
func TestGlobalEnrollLimit(t *testing.T) {
	r := startLimitRelay(t, func(c *relay.Config) {
		c.EnrollRate = relay.Rate{PerSecond: 0.001, Burst: 2}
		c.EnrollRateAll = relay.Rate{PerSecond: 0.001, Burst: 5}
	})
	limited := 0
	for i := range 10 {
		from := netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}).String()
		c := mustDial(t, r.url, from, nil)
		d := &msgDevice{rawConn: &rawConn{t: t, c: c}, name: from}
		for id := uint64(1); id <= 2; id++ {
			d.send(id, &wire.EnrollRequest{ActivationCode: "guess", Username: "mallory"})
			if resp := d.next().GetResponse(); resp.GetCode() == wire.ErrorCode_RATE_LIMITED {
				limited++
			}
		}
		c.CloseNow()
	}
	// 20 attempts, each address within its own burst: 5 pass, 15 wait.
	if limited != 15 {
		t.Fatalf("%d of 20 guesses rate limited, want 15", limited)
	}
}

func TestPublicHandlerHidesMetrics(t *testing.T) {
	r := startLimitRelay(t, nil)
	pub := httptest.NewServer(r.srv.PublicHandler())
	defer pub.Close()
	ops := httptest.NewServer(r.srv.OpsHandler())
	defer ops.Close()
	get := func(base, path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{"/metrics": 404, "/readyz": 404, "/healthz": 200} {
		if got := get(pub.URL, path); got != want {
			t.Errorf("public %s: %d, want %d", path, got, want)
		}
	}
	for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
		if got := get(ops.URL, path); got != 200 {
			t.Errorf("ops %s: %d", path, got)
		}
	}
	if get(ops.URL, "/v1/ws") != 404 {
		t.Error("the ops listener serves WebSockets")
	}
}

// sendReq writes one request on a raw connection.
func sendReq(t *testing.T, r *rawConn, req *wire.Request) {
	t.Helper()
	b, err := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: req}})
	if err != nil {
		t.Fatal(err)
	}
	r.write(websocket.MessageBinary, b)
}

// TestSealedConnectionLifetime: a sealed-send connection never
// authenticates; each accepted sealed send keeps it open for
// SealedIdleTimeout (past the login timeout), and once idle it is closed
// and its slot freed (the client redials when it next sends).
//
// No step races a short timer: in each case the timer that must not fire
// before a step is long (enrolling and the first send have all the time
// they need on a loaded machine), and "past the login timeout" is shown by
// an event, the close of a bare connection opened after the sealed one.
func TestSealedConnectionLifetime(t *testing.T) {
	for _, tc := range []struct {
		name               string
		login, sealedIdle  time.Duration
		wantOpenAfterLogin bool
	}{
		// Sends keep it open well past the login timeout.
		{"kept open by sends", 3 * time.Second, time.Hour, true},
		// Once idle it is closed by the sealed idle timeout (the login
		// timeout cannot be what closes it).
		{"closed when idle", time.Hour, 300 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, send := sealedToBob(t, tc.login, tc.sealedIdle)
			send(1)
			if tc.wantOpenAfterLogin {
				// A bare connection opened after the sealed one: once the
				// relay closed it, the sealed one's login timeout is over
				// too, and it still sends.
				waitClosed(t, mustDial(t, r.url, "127.0.0.4", nil), 10*tc.login, "a bare connection outlived the login timeout")
				send(2)
				return
			}
			// Idle: closed, and its slot is free again.
			waitClosed(t, c, 30*time.Second, "an idle sealed connection stayed open")
			r.waitMetric(t, "sotto_connections_unauthenticated", "0")
		})
	}
}

// waitClosed reads c until the relay closes it, failing with msg when it
// is still open after d (a bound for failing, never reached on success).
func waitClosed(t *testing.T, c *websocket.Conn, d time.Duration, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal(msg)
			}
			return
		}
	}
}

// TestConnCapIPv6: over ::1 the caps key on the /64 (the keying itself is
// tested in clientaddr_test.go, and /64 grouping end to end through a
// trusted proxy in TestTrustedProxy).
func TestConnCapIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testneed.Skip(t, "no IPv6 loopback: %v", err)
	}
	r := startLimitRelay(t, func(c *relay.Config) {
		c.ConnLimits = relay.ConnLimits{PerAddr: 10, PerAddrUnauthenticated: 2, MaxUnauthenticated: 100}
	})
	hs := httptest.NewUnstartedServer(r.srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	url := "ws://" + ln.Addr().String() + "/v1/ws"
	mustDial(t, url, "::1", nil)
	mustDial(t, url, "::1", nil)
	mustRefuse(t, url, "::1", nil, http.StatusTooManyRequests)
	mustDial(t, r.url, "127.0.0.2", nil)
}

// TestHTTPConnCap: TCP connections that have not become WebSockets are
// capped per address (each holds a file descriptor, and the WebSocket
// caps count only upgraded ones); an upgraded one stops counting.
func TestHTTPConnCap(t *testing.T) {
	r := startLimitRelay(t, func(c *relay.Config) {
		c.ConnLimits = relay.ConnLimits{PerAddr: 10, PerAddrUnauthenticated: 10, MaxUnauthenticated: 100, PerAddrHTTP: 2}
	})
	hs := httptest.NewUnstartedServer(r.srv.Handler())
	hs.Config.ConnState = r.srv.ConnState
	hs.Start()
	t.Cleanup(hs.Close)
	host := strings.TrimPrefix(hs.URL, "http://")
	raw := func(from string) net.Conn {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// answered reports whether a request on c gets an answer.
	answered := func(c net.Conn) bool {
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b := make([]byte, 12)
		n, _ := io.ReadFull(c, b)
		return strings.HasPrefix(string(b[:n]), "HTTP/1.1 200")
	}
	// Two silent connections from 127.0.0.2 hold its share.
	raw("127.0.0.2")
	raw("127.0.0.2")
	if answered(raw("127.0.0.2")) {
		t.Fatal("a third HTTP connection from one address was served")
	}
	if !answered(raw("127.0.0.3")) {
		t.Fatal("another address was refused")
	}
	// Upgraded connections are WebSockets, not HTTP connections.
	ws := "ws://" + host + "/v1/ws"
	mustDial(t, ws, "127.0.0.4", nil)
	mustDial(t, ws, "127.0.0.4", nil)
	mustDial(t, ws, "127.0.0.4", nil)
	if !answered(raw("127.0.0.4")) {
		t.Fatal("upgraded connections still count as HTTP connections")
	}
}
