package redteam

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"sotto/client"
	"sotto/client/call"
	"sotto/client/transport"
	"sotto/internal/testca"
	"sotto/relay"
)

// Calls: the relay's TURN server learns who calls when, if a call
// allocates there.

func callAttacks() []Attack {
	return []Attack{{
		Name:    "turn-for-direct-calls",
		Threat:  "the relay (or anyone watching its TURN port) learns who calls whom and when from TURN allocations, even for calls whose direct path works",
		Defence: "a call starts with host candidates only, asks for no TURN credentials and allocates nothing; TURN only after the direct path failed (client/call/fallback.go)",
		Switch:  "--relay-only (call.Options.RelayOnly: the user's choice to hide addresses from the peer)",
		Run:     runDirectCall,
	}, {
		Name:    "turn-on-path",
		Threat:  "an observer on the path to the TURN server reads the TURN usernames and allocation requests of relayed calls, sent in clear over UDP or TCP",
		Defence: "TURN over TLS (sottod -turns-listen; relay/turn.go), checked with the device's own CA and pin (client/call/turns.go)",
		Switch:  "plain turn: over TCP (no -turns-listen)",
		Run:     runTURNOnPath,
	}}
}

// callMember is a member with a call manager.
type callMember struct {
	*Member
	m *call.Manager
}

func (e *Env) enrollCaller(ctx context.Context, r *Relay, user string, o call.Options) (*callMember, error) {
	m := call.NewManager(o)
	e.OnClose(m.Close)
	events := make(chan client.Event, 256)
	co := MemberOptions(events)
	forward := co.OnEvent
	co.OnEvent = func(ev client.Event) { m.HandleEvent(ev); forward(ev) }
	mem, err := e.EnrollWith(ctx, r, user, "", true, co, events)
	if err != nil {
		return nil, err
	}
	m.Start(mem.Client)
	return &callMember{Member: mem, m: m}, nil
}

func runDirectCall(ctx context.Context, e *Env, on bool) (Outcome, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	var allocs atomic.Int64
	ts, err := relay.StartTURN(ctx, relay.TURNServerConfig{Secret: secret, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
		OnAllocate: func() { allocs.Add(1) }})
	if err != nil {
		return Outcome{}, err
	}
	e.OnClose(func() { ts.Close() })
	r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
		c.TURN = &relay.TURNCredentials{Secret: secret, URLs: ts.URLs(""), TTL: time.Minute}
	}})
	if err != nil {
		return Outcome{}, err
	}
	o := call.Options{LoopbackOnly: true, RelayOnly: !on, ICEFailedTimeout: 3 * time.Second}
	alice, err := e.enrollCaller(ctx, r, "alice", o)
	if err != nil {
		return Outcome{}, err
	}
	o.AutoAnswer = true
	if _, err := e.enrollCaller(ctx, r, "bob", o); err != nil {
		return Outcome{}, err
	}
	local, remote, err := placeCall(ctx, alice)
	if err != nil {
		return Outcome{}, err
	}
	if n := allocs.Load(); n > 0 {
		return through("a call (%s → %s) made %d TURN allocations", local, remote, n), nil
	}
	return stopped("a direct call (%s → %s) asked for no TURN credentials and allocated nothing", local, remote), nil
}

// tap is a TCP forwarder that keeps every byte a client sends: an
// observer on the path to the TURN server.
type tap struct {
	ln    net.Listener
	mu    sync.Mutex
	seen  []byte
	conns []net.Conn // closed with the tap
}

func (e *Env) startTap(target string) (*tap, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &tap{ln: ln}
	var wg sync.WaitGroup
	e.OnClose(func() {
		ln.Close()
		t.mu.Lock()
		for _, c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp4", target)
			if err != nil {
				c.Close()
				continue
			}
			t.mu.Lock()
			t.conns = append(t.conns, c, s)
			t.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); defer s.Close(); io.Copy(s, io.TeeReader(c, t)) }()
			go func() { defer wg.Done(); defer c.Close(); io.Copy(c, s) }()
		}
	}()
	return t, nil
}

func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = append(t.seen, p...)
	return len(p), nil
}

func (t *tap) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.seen...)
}

// turnUsername matches a TURN username as the relay issues them
// (expiry:nonce, relay/turn.go).
var turnUsername = regexp.MustCompile(`[0-9]{10}:[A-Z2-7]{26}`)

func runTURNOnPath(ctx context.Context, e *Env, on bool) (Outcome, error) {
	ca, err := testca.New()
	if err != nil {
		return Outcome{}, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	ts, err := relay.StartTURN(ctx, relay.TURNServerConfig{Secret: secret, TCPAddr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: ca.ServerConfig()})
	if err != nil {
		return Outcome{}, err
	}
	e.OnClose(func() { ts.Close() })
	scheme, target := "turns", ts.TLSAddr()
	if !on {
		scheme, target = "turn", ts.TCPAddr()
	}
	path, err := e.startTap(target)
	if err != nil {
		return Outcome{}, err
	}
	url := scheme + ":" + path.ln.Addr().String() + "?transport=tcp"
	r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
		c.TURN = &relay.TURNCredentials{Secret: secret, URLs: []string{url}, TTL: time.Minute}
	}})
	if err != nil {
		return Outcome{}, err
	}
	o := call.Options{LoopbackOnly: true, RelayOnly: true, ICEFailedTimeout: 3 * time.Second, TLS: transport.Options{RootCAs: ca.Pool}}
	alice, err := e.enrollCaller(ctx, r, "alice", o)
	if err != nil {
		return Outcome{}, err
	}
	o.AutoAnswer = true
	if _, err := e.enrollCaller(ctx, r, "bob", o); err != nil {
		return Outcome{}, err
	}
	if _, _, err := placeCall(ctx, alice); err != nil {
		return Outcome{}, err
	}
	seen := path.bytes()
	if len(seen) == 0 {
		return Outcome{}, errors.New("nothing went through the observed path")
	}
	if u := turnUsername.Find(seen); u != nil {
		return through("the observer read the TURN username %q in %d bytes (%s)", u, len(seen), url), nil
	}
	return stopped("a relayed call through %s: the observer saw %d bytes, no TURN username", scheme, len(seen)), nil
}

// placeCall has caller call bob (who answers at once), waits until the
// call connects, and hangs up; it returns the selected candidate types.
func placeCall(ctx context.Context, caller *callMember) (local, remote webrtc.ICECandidateType, err error) {
	c, err := caller.m.Dial(ctx, "bob")
	if err != nil {
		return 0, 0, err
	}
	select {
	case <-c.Connected():
	case <-c.Done():
		return 0, 0, fmt.Errorf("the call ended before connecting: %v", c.Err())
	case <-time.After(30 * time.Second):
		return 0, 0, errors.New("the call never connected")
	}
	local, remote, _ = c.CandidatePair()
	if err := c.Hangup(ctx); err != nil {
		return 0, 0, err
	}
	<-c.Done()
	return local, remote, nil
}
