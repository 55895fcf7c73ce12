package redteam

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"sotto/relay"
	"sotto/wire"
)

// An outsider without an account: connection floods, silent and slow
// connections, provisioning held open, huge announced frames, forged
// forwarding headers, code guessing from many addresses, and the public
// counters.

// Hostile is a raw WebSocket opened by an outsider from a chosen
// loopback address.
type Hostile struct{ c *websocket.Conn }

// DialFrom opens a WebSocket to r from the loopback address from with the
// headers hdr, and waits for the relay's challenge. A refusal returns the
// HTTP status.
func (e *Env) DialFrom(ctx context.Context, r *Relay, from string, hdr http.Header) (*Hostile, int, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, r.WS+"/v1/ws", &websocket.DialOptions{HTTPClient: hc, HTTPHeader: hdr})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, status, err
	}
	e.OnClose(func() { c.CloseNow() })
	h := &Hostile{c: c}
	if f, err := h.Read(ctx); err != nil || f.GetPush().GetChallenge() == nil {
		return nil, 0, fmt.Errorf("no challenge from the relay: %v %v", f, err)
	}
	return h, 0, nil
}

// Read reads one frame.
func (h *Hostile) Read(ctx context.Context) (*wire.Frame, error) {
	_, b, err := h.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	return wire.DecodeFrame(b)
}

// Do sends a request and reads frames up to its response.
func (h *Hostile) Do(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	b, err := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: req}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.c.Write(ctx, websocket.MessageBinary, b); err != nil {
		return nil, err
	}
	for {
		f, err := h.Read(ctx)
		if err != nil {
			return nil, err
		}
		if resp := f.GetResponse(); resp != nil && resp.Id == req.Id {
			return resp, nil
		}
	}
}

// ClosedWithin reports whether the relay closes the connection within d.
func (h *Hostile) ClosedWithin(ctx context.Context, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		if _, err := h.Read(ctx); err != nil {
			return ctx.Err() == nil
		}
	}
}

// flood opens 12 connections from 127.0.0.2, connection i with the
// headers hdr(i) (nil: none), and counts those the relay kept and those it
// refused.
func (e *Env) flood(ctx context.Context, r *Relay, hdr func(int) http.Header) (held, refused int, err error) {
	for i := range 12 {
		var h http.Header
		if hdr != nil {
			h = hdr(i)
		}
		_, status, err := e.DialFrom(ctx, r, "127.0.0.2", h)
		switch {
		case err == nil:
			held++
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			refused++
		default:
			return held, refused, err
		}
	}
	return held, refused, nil
}

// floodRun is the Run of a flood (see flood) against a relay with
// floodLimits, changed by mod: with the defence on, at most the cap of 4
// may be held and another address must still be served.
func floodRun(what string, mod func(c *relay.Config, on bool), hdr func(int) http.Header) func(context.Context, *Env, bool) (Outcome, error) {
	return func(ctx context.Context, e *Env, on bool) (Outcome, error) {
		r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) { floodLimits(c); mod(c, on) }})
		if err != nil {
			return Outcome{}, err
		}
		held, refused, err := e.flood(ctx, r, hdr)
		if err != nil {
			return Outcome{}, err
		}
		if held > 4 {
			return through("12 %s: %d held", what, held), nil
		}
		if _, _, err := e.DialFrom(ctx, r, "127.0.0.3", nil); err != nil {
			return through("another address was refused too: %v", err), nil
		}
		return stopped("12 %s: %d held, %d refused with 429; another address still served", what, held, refused), nil
	}
}

// noLimits raises every connection cap out of reach: the switch of the
// flood attacks (sottod -conns-per-addr, -unauth-per-addr, -max-unauth).
func noLimits(c *relay.Config) {
	c.ConnLimits = relay.ConnLimits{PerAddr: 1 << 20, PerAddrUnauthenticated: 1 << 20, MaxUnauthenticated: 1 << 20, PerAddrHTTP: 1 << 20}
}

// floodLimits are small caps, so that the attacks stay quick.
func floodLimits(c *relay.Config) {
	c.ConnLimits = relay.ConnLimits{PerAddr: 16, PerAddrUnauthenticated: 4, MaxUnauthenticated: 64}
}

func xff(addr string) http.Header { return http.Header{relay.HeaderXForwardedFor: {addr}} }

func outsiderAttacks() []Attack {
	return []Attack{
		{
			Name:    "conn-flood-one-address",
			Threat:  "an outsider without an account opens connections from one address until the relay runs out of descriptors (400 took a relay offline)",
			Defence: "per-address cap on unauthenticated connections (relay/connlimit.go, -unauth-per-addr, default 32): HTTP 429 before the upgrade",
			Switch:  "caps raised out of reach (-unauth-per-addr, -conns-per-addr)",
			Run: floodRun("upgrades from 127.0.0.2", func(c *relay.Config, on bool) {
				if !on {
					noLimits(c)
				}
			}, nil),
		},
		{
			Name:    "conn-flood-ipv6-prefix",
			Threat:  "an outsider steps through the 2^64 addresses of its IPv6 /64 to get a fresh connection budget for each",
			Defence: "limits key on the /64 (relay/clientaddr.go, AddrPrefixV6 = 64)",
			Switch:  "AddrPrefixV6 = 128 (limits per exact address)",
			Run: floodRun("upgrades from addresses of 2001:db8:7:7::/64", func(c *relay.Config, on bool) {
				// The attacker's addresses reach the relay through a
				// trusted proxy: loopback has one IPv6 address only.
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
				if !on {
					c.AddrPrefixV6 = 128
				}
			}, func(i int) http.Header { return xff(fmt.Sprintf("2001:db8:7:7::%x", i+1)) }),
		},
		{
			Name:    "forwarded-header-spoof",
			Threat:  "an outsider sends its own X-Forwarded-For with a new address on every connection to escape the per-address caps and rate limits",
			Defence: "the forwarding header is read only from a configured trusted proxy (-trusted-proxy CIDR, relay/clientaddr.go); anybody else's is ignored",
			Switch:  "-trusted-proxy covering the attacker's own address",
			Run: floodRun("upgrades each claiming another address", func(c *relay.Config, on bool) {
				if !on {
					c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
				}
			}, func(i int) http.Header { return xff(fmt.Sprintf("198.51.100.%d", i+1)) }),
		},
		{
			Name:    "proxy-shared-bucket",
			Threat:  "behind a reverse proxy every client has the proxy's address: one abuser fills the shared per-address budget and locks everybody else behind the proxy out",
			Defence: "with -trusted-proxy, the client address the proxy forwards keys every limit (relay/clientaddr.go)",
			Switch:  "no -trusted-proxy",
			Run: func(ctx context.Context, e *Env, on bool) (Outcome, error) {
				r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
					floodLimits(c)
					if on {
						c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
					}
				}})
				if err != nil {
					return Outcome{}, err
				}
				held, _, err := e.flood(ctx, r, func(int) http.Header { return xff("198.51.100.66") })
				if err != nil {
					return Outcome{}, err
				}
				if _, status, err := e.DialFrom(ctx, r, "127.0.0.2", xff("203.0.113.7")); err != nil {
					return through("the abuser holds %d; another client behind the proxy is refused (%d)", held, status), nil
				}
				return stopped("the abuser behind the proxy holds %d; another client behind the same proxy is served", held), nil
			},
		},
		{
			Name:    "unauthenticated-lockout",
			Threat:  "an outsider with many addresses holds as many unauthenticated connections as the relay accepts in all, so that nobody else can connect",
			Defence: "at -max-unauth open, a newcomer closes the oldest unauthenticated connection (relay/connlimit.go): the attacker can churn, not lock out; memory stays bounded",
			Switch:  "-max-unauth-refuse (refuse newcomers when full)",
			Run: func(ctx context.Context, e *Env, on bool) (Outcome, error) {
				r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
					c.ConnLimits = relay.ConnLimits{PerAddr: 16, PerAddrUnauthenticated: 4, MaxUnauthenticated: 8, RefuseWhenFull: !on}
				}})
				if err != nil {
					return Outcome{}, err
				}
				for i := range 16 {
					e.DialFrom(ctx, r, fmt.Sprintf("127.0.2.%d", i/4+1), nil) // refused past each address's 4
				}
				open, err := r.Metric(ctx, "sotto_connections_unauthenticated")
				if err != nil {
					return Outcome{}, err
				}
				if n, err := strconv.Atoi(open); err != nil || n > 8 {
					return through("%s unauthenticated connections open, past the cap of 8 (%v)", open, err), nil
				}
				if _, status, err := e.DialFrom(ctx, r, "127.0.0.9", nil); err != nil {
					return through("16 attempts from 4 addresses, %s unauthenticated open; a newcomer is refused (%d)", open, status), nil
				}
				return stopped("16 attempts from 4 addresses: %s unauthenticated open at most (cap 8, the oldest closed); a newcomer is served", open), nil
			},
		},
		{
			Name:    "silent-tcp",
			Threat:  "an outsider opens TCP connections and never sends a request: each holds a descriptor and, as an HTTP connection, counts under no WebSocket cap (420 kept a 400-file relay offline for 10 s at a time)",
			Defence: "a cap on HTTP connections per address that have not become WebSockets (-http-per-addr, relay/httpconns.go): the connection over it is closed as soon as accepted",
			Switch:  "-http-per-addr raised out of reach",
			Run: func(ctx context.Context, e *Env, on bool) (Outcome, error) {
				r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
					floodLimits(c)
					c.ConnLimits.PerAddrHTTP = 4
					if !on {
						c.ConnLimits.PerAddrHTTP = 1 << 20
					}
				}})
				if err != nil {
					return Outcome{}, err
				}
				for range 8 {
					if _, err := e.rawTCP(ctx, r, "127.0.0.2"); err != nil {
						return Outcome{}, err
					}
				}
				if e.answered(ctx, r, "127.0.0.2") {
					return through("8 silent connections from 127.0.0.2 held, and a 9th is still served"), nil
				}
				if !e.answered(ctx, r, "127.0.0.3") {
					return through("another address was refused too"), nil
				}
				return stopped("8 silent TCP connections from 127.0.0.2: a 9th is closed unanswered; another address is served"), nil
			},
		},
		{
			Name:    "code-guessing-many-addresses",
			Threat:  "an outsider guesses invitation seat tokens from 40 loopback addresses (780 guesses went through in 0.37 s)",
			Defence: "a global limit on enrollment attempts besides each address's (-enroll-rate-all, relay/ratelimit.go)",
			Switch:  "-enroll-rate-all raised out of reach",
			Run: func(ctx context.Context, e *Env, on bool) (Outcome, error) {
				r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
					c.EnrollRate = relay.Rate{PerSecond: 0.001, Burst: 2}
					c.EnrollRateAll = relay.Rate{PerSecond: 0.001, Burst: 5}
					if !on {
						c.EnrollRateAll = relay.Rate{PerSecond: 1000, Burst: 1000}
					}
				}})
				if err != nil {
					return Outcome{}, err
				}
				checked := 0
				for i := range 10 {
					h, _, err := e.DialFrom(ctx, r, fmt.Sprintf("127.0.1.%d", i+1), nil)
					if err != nil {
						return Outcome{}, err
					}
					for id := uint64(1); id <= 2; id++ {
						resp, err := h.Do(ctx, &wire.Request{Id: id, Body: &wire.Request_Enroll{Enroll: &wire.EnrollRequest{
							ActivationCode: guess(), Username: "mallory"}}})
						if err != nil {
							return Outcome{}, err
						}
						if resp.Code != wire.ErrorCode_RATE_LIMITED {
							checked++
						}
					}
				}
				if checked <= 5 {
					return stopped("20 guesses from 10 addresses (2 each, within each address's burst): %d checked, the rest RATE_LIMITED", checked), nil
				}
				return through("20 guesses from 10 addresses: %d checked", checked), nil
			},
		},
		{
			Name:    "silent-connection",
			Threat:  "an outsider opens a WebSocket and never authenticates, holding a slot and a descriptor",
			Defence: "unauthenticated connections are closed after the login timeout (-login-timeout, 30 s)",
			Switch:  "login timeout of an hour",
			Run: heldOpenRun(func(c *relay.Config, on bool) {
				c.LoginTimeout = 200 * time.Millisecond
				if !on {
					c.LoginTimeout = time.Hour
				}
			}, nil),
		},
		{
			Name:    "provisioning-held-open",
			Threat:  "an outsider starts a device link (Provision) and keeps the connection open, which used to last 10 minutes",
			Defence: "a provisioning connection lives at most -provision-timeout (3 min) from its opening",
			Switch:  "provisioning bound of an hour",
			Run: heldOpenRun(func(c *relay.Config, on bool) {
				c.LoginTimeout = 200 * time.Millisecond
				c.ProvisionTimeout = 300 * time.Millisecond
				if !on {
					c.ProvisionTimeout = time.Hour
				}
			}, &wire.Request{Id: 1, Body: &wire.Request_Provision{Provision: &wire.ProvisionRequest{}}}),
		},
		{
			Name:    "huge-announced-frame",
			Threat:  "an outsider's connections announce a 256 KiB frame and send 100 bytes of it, so the reader allocates up front (1,000 of them: 35 → 100 MB)",
			Defence: "the frame buffer grows with the bytes that arrived (relay/leansocket.go); a frame above wire.MaxFrameSize closes the connection",
			Verified: "no switch; mutation-checked by hand (2026-12-07): a reader that grows its buffer to the announced length at once costs 265 KiB per connection and this attack fails; " +
				"the before/after figures are in docs/BENCHMARKS.md",
			Run: func(ctx context.Context, e *Env, _ bool) (Outcome, error) {
				r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
					c.AcceptWebSocket = relay.AcceptLean // sottod's socket
					c.ConnLimits = relay.ConnLimits{PerAddr: 1000, PerAddrUnauthenticated: 1000, MaxUnauthenticated: 1000}
				}})
				if err != nil {
					return Outcome{}, err
				}
				per, err := e.midFrameCost(ctx, r, 200)
				if err != nil {
					return Outcome{}, err
				}
				if per < 32<<10 {
					return stopped("200 connections in the middle of a %d KiB frame: %.1f KiB of relay heap each", wire.MaxFrameSize>>10, per/1024), nil
				}
				return through("%.1f KiB of relay heap per connection", per/1024), nil
			},
		},
		{
			Name:    "public-metrics",
			Threat:  "anybody reads /metrics on the public listener: counters of traffic volumes",
			Defence: "/metrics and /readyz only on the operator listener (-metrics-listen, default nowhere; relay.Server.PublicHandler)",
			Switch:  "one listener for everything (relay.Server.Handler, as before -metrics-listen)",
			Run: func(ctx context.Context, e *Env, on bool) (Outcome, error) {
				r, err := e.StartRelay(ctx, RelayOptions{SingleListener: !on})
				if err != nil {
					return Outcome{}, err
				}
				status, body, err := Get(ctx, r.HTTP, "/metrics")
				if err != nil {
					return Outcome{}, err
				}
				if status == http.StatusNotFound && !strings.Contains(body, "sotto_") {
					return stopped("GET /metrics on the public listener: %d", status), nil
				}
				return through("GET /metrics on the public listener: %d, %d bytes of counters", status, len(body)), nil
			},
		},
	}
}

// heldOpenRun is the Run of an attack that opens a connection from
// 127.0.0.2 to a relay configured by mod, sends req (if any) and holds
// it: the relay must close it within 10 s with the defence on; with it
// off, it must still be open after 1.5 s (well past the 200 or 300 ms
// bound the attack runs with).
func heldOpenRun(mod func(c *relay.Config, on bool), req *wire.Request) func(context.Context, *Env, bool) (Outcome, error) {
	return func(ctx context.Context, e *Env, on bool) (Outcome, error) {
		r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) { mod(c, on) }})
		if err != nil {
			return Outcome{}, err
		}
		return heldOpen(ctx, e, r, req, on)
	}
}

func heldOpen(ctx context.Context, e *Env, r *Relay, req *wire.Request, on bool) (Outcome, error) {
	h, _, err := e.DialFrom(ctx, r, "127.0.0.2", nil)
	if err != nil {
		return Outcome{}, err
	}
	what := "a silent connection"
	if req != nil {
		what = "a provisioning connection"
		resp, err := h.Do(ctx, req)
		if err != nil || resp.Code != wire.ErrorCode_OK {
			return Outcome{}, fmt.Errorf("provision: %v %v", resp, err)
		}
	}
	wait := 10 * time.Second
	if !on {
		wait = 1500 * time.Millisecond
	}
	if h.ClosedWithin(ctx, wait) {
		return stopped("%s was closed by the relay at its bound", what), nil
	}
	return through("%s was still open after %v", what, wait), nil
}

// midFrameCost opens n raw connections that each announce a frame of
// wire.MaxFrameSize and send 100 bytes of it, and returns the growth of
// the process's heap per connection (the relay runs in this process; the
// raw clients hold no buffers).
func (e *Env) midFrameCost(ctx context.Context, r *Relay, n int) (float64, error) {
	before := heapInUse()
	for range n {
		c, err := rawMidFrame(ctx, strings.TrimPrefix(r.HTTP, "http://"))
		if err != nil {
			return 0, err
		}
		e.OnClose(func() { c.Close() })
	}
	// Wait until the relay has read every partial frame it was sent: its
	// readers block for the rest.
	time.Sleep(500 * time.Millisecond)
	return float64(heapInUse()-before) / float64(n), nil
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// rawMidFrame does a WebSocket handshake over TCP by hand, reads the
// challenge, then sends the header of a masked binary frame of
// wire.MaxFrameSize bytes and the first 100 of them.
func rawMidFrame(ctx context.Context, hostport string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(c, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
		hostport, base64.StdEncoding.EncodeToString(key))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("handshake: %v %v", resp, err)
	}
	// The challenge: one small unfragmented frame.
	var hdr [2]byte
	if _, err := br.Read(hdr[:1]); err != nil {
		c.Close()
		return nil, err
	}
	frame := make([]byte, 0, 114)
	frame = append(frame, 0x82, 0x80|127)
	frame = binary.BigEndian.AppendUint64(frame, wire.MaxFrameSize)
	frame = append(frame, 1, 2, 3, 4)
	frame = append(frame, make([]byte, 100)...)
	if _, err := c.Write(frame); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// guess is a random seat token.
func guess() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// rawTCP opens a TCP connection to r's public listener from the loopback
// address from, and sends nothing.
func (e *Env) rawTCP(ctx context.Context, r *Relay, from string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(r.HTTP, "http://"))
	if err != nil {
		return nil, err
	}
	e.OnClose(func() { c.Close() })
	return c, nil
}

// answered reports whether a new connection from the address from gets an
// answer to GET /healthz.
func (e *Env) answered(ctx context.Context, r *Relay, from string) bool {
	c, err := e.rawTCP(ctx, r, from)
	if err != nil {
		return false
	}
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
