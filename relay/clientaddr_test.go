package relay

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func testKeyer(header string, trusted ...string) addrKeyer {
	cfg := Config{AddrPrefixV4: 32, AddrPrefixV6: 64, ForwardedHeader: header}
	for _, p := range trusted {
		cfg.TrustedProxies = append(cfg.TrustedProxies, netip.MustParsePrefix(p))
	}
	return newAddrKeyer(&cfg)
}

func TestAddrKey(t *testing.T) {
	k := testKeyer("")
	same := [][2]string{
		{"[2001:db8:1:2::1]:5", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:7"},
		{"[2001:db8:1:2::1%eth0]:5", "2001:db8:1:2::9"},
		{"192.0.2.1:1", "192.0.2.1:2"},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1"},
	}
	for _, p := range same {
		if k.key(p[0]) != k.key(p[1]) {
			t.Errorf("%s and %s: keys %s and %s, want one", p[0], p[1], k.key(p[0]), k.key(p[1]))
		}
	}
	differ := [][2]string{
		{"[2001:db8:1:2::1]:5", "[2001:db8:1:3::1]:5"},
		{"192.0.2.1:1", "192.0.2.2:1"},
		{"[::1]:1", "127.0.0.1:1"},
	}
	for _, p := range differ {
		if k.key(p[0]) == k.key(p[1]) {
			t.Errorf("%s and %s share key %s", p[0], p[1], k.key(p[0]))
		}
	}
	if got := k.key("[2001:db8:1:2:3:4:5:6]:443"); got != "2001:db8:1:2::/64" {
		t.Errorf("IPv6 key %s", got)
	}
	wide := Config{AddrPrefixV4: 24, AddrPrefixV6: 48}
	if w := newAddrKeyer(&wide); w.key("192.0.2.1:1") != w.key("192.0.2.200:1") || w.key("[2001:db8:1:2::1]:1") != w.key("[2001:db8:1:ffff::1]:1") {
		t.Error("configured prefixes not applied")
	}
}

func TestClientAddr(t *testing.T) {
	xff := testKeyer(HeaderXForwardedFor, "10.0.0.0/8", "2001:db8:ffff::/48")
	fwd := testKeyer(HeaderForwarded, "10.0.0.1/32")
	none := testKeyer("")
	cases := []struct {
		name   string
		k      addrKeyer
		remote string
		hdr    http.Header
		want   string
	}{
		{"no proxy configured: header ignored", none, "192.0.2.1:5", http.Header{"X-Forwarded-For": {"198.51.100.9"}}, "192.0.2.1:5"},
		{"untrusted peer: header ignored", xff, "192.0.2.1:5", http.Header{"X-Forwarded-For": {"198.51.100.9"}}, "192.0.2.1:5"},
		{"trusted peer", xff, "10.1.2.3:5", http.Header{"X-Forwarded-For": {"198.51.100.9"}}, "198.51.100.9"},
		{"rightmost untrusted hop", xff, "10.1.2.3:5", http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.9, 10.9.9.9"}}, "198.51.100.9"},
		{"several header lines", xff, "10.1.2.3:5", http.Header{"X-Forwarded-For": {"6.6.6.6", "198.51.100.9"}}, "198.51.100.9"},
		{"garbage hop stops the walk", xff, "10.1.2.3:5", http.Header{"X-Forwarded-For": {"6.6.6.6, junk, 10.2.2.2"}}, "10.2.2.2"},
		{"no header: the proxy", xff, "10.1.2.3:5", nil, "10.1.2.3"},
		{"IPv6 proxy and client", xff, "[2001:db8:ffff::1]:5", http.Header{"X-Forwarded-For": {"2001:db8:1::7"}}, "2001:db8:1::7"},
		{"Forwarded", fwd, "10.0.0.1:5", http.Header{"Forwarded": {`for=6.6.6.6, for="[2001:db8::1]:4711";proto=https`}}, "2001:db8::1"},
		{"Forwarded obfuscated", fwd, "10.0.0.1:5", http.Header{"Forwarded": {"for=_hidden"}}, "10.0.0.1"},
		{"Forwarded proxy ignores X-Forwarded-For", fwd, "10.0.0.1:5", http.Header{"X-Forwarded-For": {"6.6.6.6"}}, "10.0.0.1"},
	}
	for _, c := range cases {
		r := &http.Request{RemoteAddr: c.remote, Header: c.hdr}
		if got := c.k.clientAddr(r); got != c.want {
			t.Errorf("%s: got %s want %s", c.name, got, c.want)
		}
	}
}

// FuzzClientAddr feeds hostile forwarding headers from a trusted peer:
// whatever they say, the answer is an address (or the peer), never a panic.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.9", "6.6.6.6, junk, 10.2.2.2", `for="[2001:db8::1]:4711";proto=https`, "for=_hidden, for=unknown", "[::1", ""} {
		f.Add(s)
	}
	k := testKeyer(HeaderXForwardedFor, "10.0.0.0/8")
	kf := testKeyer(HeaderForwarded, "10.0.0.0/8")
	f.Fuzz(func(t *testing.T, h string) {
		for _, k := range []addrKeyer{k, kf} {
			r := &http.Request{RemoteAddr: "10.0.0.1:5", Header: http.Header{HeaderXForwardedFor: {h}, HeaderForwarded: {h}}}
			got := k.clientAddr(r)
			if _, ok := parseHostAddr(got); !ok {
				t.Fatalf("%q gave %q, not an address", h, got)
			}
		}
	})
}

func TestSlotsCountExactly(t *testing.T) {
	l := newConnLimiter(ConnLimits{PerAddr: 2, PerAddrUnauthenticated: 1, MaxUnauthenticated: 10})
	a, err := l.acquire("k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.acquire("k"); err == nil {
		t.Fatal("second unauthenticated slot")
	}
	a.authenticated()
	a.authenticated()
	b, err := l.acquire("k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.acquire("k"); err == nil {
		t.Fatal("third slot")
	}
	b.release()
	b.release()
	b.authenticated() // after release: nothing
	a.release()
	if un, addrs, _, _, _ := l.counts(); un != 0 || addrs != 0 {
		t.Fatalf("after release: %d unauthenticated, %d addresses", un, addrs)
	}
}

func TestSlotEviction(t *testing.T) {
	l := newConnLimiter(ConnLimits{PerAddr: 10, PerAddrUnauthenticated: 10, MaxUnauthenticated: 2})
	closed := map[string]bool{}
	take := func(name string) *slot {
		s, err := l.acquire(name)
		if err != nil {
			t.Fatal(err)
		}
		s.setCloser(func() { closed[name] = true })
		return s
	}
	a, b := take("a"), take("b")
	b.authenticated() // no longer a candidate
	take("c")
	take("d") // full: a (the oldest unauthenticated) goes
	if !closed["a"] || closed["b"] || closed["c"] {
		t.Fatalf("closed %v, want a only", closed)
	}
	a.release() // its connection ends later: counted once
	if un, _, _, _, ev := l.counts(); un != 2 || ev != 1 {
		t.Fatalf("%d unauthenticated, %d evicted", un, ev)
	}
	// A slot taken back before its connection exists closes it at once.
	e, _ := l.acquire("e") // evicts c
	f, _ := l.acquire("f") // evicts d
	g, _ := l.acquire("g") // evicts e, which has no connection yet
	e.setCloser(func() { closed["e"] = true })
	if !closed["e"] || f == nil || g == nil {
		t.Fatalf("closed %v", closed)
	}
}

func TestEnrollLimiterGlobal(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newEnrollLimiter(Rate{PerSecond: 0.001, Burst: 1}, Rate{PerSecond: 0.001, Burst: 3})
	ok := 0
	for _, key := range []string{"a", "b", "c", "d", "e", "a"} {
		if l.allow(key, now) == nil {
			ok++
		}
	}
	if ok != 3 {
		t.Fatalf("%d enrollments passed, want 3", ok)
	}
	// A failed login spends only its address's token.
	if l.allowAddr("f", now) != nil {
		t.Fatal("failed login refused by the global limit")
	}
}
