package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLimitConfigValidate(t *testing.T) {
	c := validConfig()
	c.ConnsPerAddr, c.ProvisionTimeout, c.AddrPrefixV6 = 0, -1, 129
	c.TrustedProxies = []string{"10.0.0.0/8", "not-a-cidr"}
	c.ForwardedHeader, c.MetricsListen = "X-Real-IP", "nonsense"
	err := c.Validate()
	for _, want := range []string{"-conns-per-addr", "-provision-timeout", "-addr-prefix-v6", `"not-a-cidr"`, "-forwarded-header", "-metrics-listen"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s not reported: %v", want, err)
		}
	}
	var p proxyList = proxyList{&c.TrustedProxies}
	c.TrustedProxies = nil
	p.Set("10.0.0.1, 2001:db8::/32")
	p.Set("192.0.2.0/24")
	got, err := parseProxies(c.TrustedProxies)
	if err != nil || len(got) != 3 || got[0].Bits() != 32 {
		t.Fatalf("proxies %v %v", got, err)
	}
}

type fakeListener struct {
	net.Listener
	addr net.Addr
}

func (f fakeListener) Addr() net.Addr { return f.addr }

// TestPlaintextWarning: plaintext on an address other hosts reach is
// warned about; on loopback, or with TLS, it is not.
func TestPlaintextWarning(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": false, "[::1]:8080": false, "0.0.0.0:8080": true, "[::]:8080": true,
		"192.0.2.7:8080": true, "[2001:db8::1]:443": true, "[::ffff:127.0.0.1]:80": false,
	} {
		ap := net.TCPAddrFromAddrPort(mustAddrPort(t, addr))
		d := &Daemon{cfg: DefaultConfig(), ln: fakeListener{addr: ap}}
		if got := len(d.Warnings()) == 1 && strings.Contains(d.Warnings()[0], "WITHOUT TLS"); got != want {
			t.Errorf("%s: warned %v, want %v", addr, got, want)
		}
		d.cfg.TLSCert, d.cfg.TLSKey = "c.pem", "k.pem"
		if len(d.Warnings()) != 0 {
			t.Errorf("%s with TLS: %v", addr, d.Warnings())
		}
	}
}

// TestMetricsListener: the public listener answers 404 for /metrics and
// /readyz; the metrics listener serves them.
func TestMetricsListener(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.MetricsListen = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.TURNListen, cfg.BlobDir = "", "off"
	var logs strings.Builder
	d, err := NewDaemon(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done; d.Close() }()
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	pub := "http" + strings.TrimPrefix(d.URL(), "ws")
	for path, want := range map[string]int{"/metrics": 404, "/readyz": 404, "/healthz": 200} {
		if got := get(pub + path); got != want {
			t.Errorf("public %s: %d, want %d", path, got, want)
		}
	}
	for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
		if got := get(d.MetricsURL() + path); got != 200 {
			t.Errorf("metrics listener %s: %d", path, got)
		}
	}
	if strings.Contains(logs.String(), "WITHOUT TLS") {
		t.Errorf("warned on loopback: %s", logs.String())
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// TestIdleHTTPConnectionClosed: a kept-alive HTTP connection that never
// upgrades (so holds no slot of the caps) is closed after -login-timeout.
func TestIdleHTTPConnectionClosed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.TURNListen, cfg.BlobDir = t.TempDir(), "127.0.0.1:0", "", "off"
	cfg.LoginTimeout = 300 * time.Millisecond
	d, err := NewDaemon(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done; d.Close() }()
	c, err := net.Dial("tcp", strings.TrimPrefix(d.URL(), "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c) // the answer, then EOF when the relay closes
	if err != nil || !strings.Contains(string(b), "200 OK") {
		t.Fatalf("kept-alive connection not closed by the relay: %v (%q)", err, b)
	}
}
