// Package agent is the device agent: one process per device home that
// unlocks the store once, owns the client core (store, the one relay
// connection with its reconnection, prekey refills, timers, the idle lock)
// and turns what arrives into a stream of typed events, served to every
// front end (the CLI, the chat app, the web app) by the local API of
// docs/agent-api.md (NewHandler; types and Go client in package api).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/call"
	"sotto/client/store"
)

// Config configures an agent.
type Config struct {
	// Home is the device's home folder (the store's).
	Home string
	// Options are the client core's options; OnEvent is the agent's.
	Options client.Options
	// NoAck keeps received envelopes unacknowledged (for testing).
	NoAck bool
	// OnClientEvent, when set, sees every event of the client core before
	// it is published (the call manager of a front end hosting the agent
	// in its own process). It must not block for long.
	OnClientEvent func(client.Event)
	// Listeners are served the API (NewHandler) while Run runs; Run
	// closes them.
	Listeners []net.Listener
	// Mounts are more servers Run runs: each serves what its Wrap makes
	// of the API handler (its own authentication, its own files; the web
	// app's loopback server).
	Mounts []Mount
	// IdleLock, when set, is an idle lock timeout of the device's own:
	// the stricter of it and the organization policy's applies.
	IdleLock time.Duration
	// Calls, when set, has the agent carry the device's calls with a
	// call manager of these options (calls.go; AutoAnswer, NewSource,
	// NewSink, OnIncoming and OnEnd are the agent's). Nil: incoming calls
	// are left to a front end hosting the agent (OnClientEvent).
	Calls *call.Options
	// ReceiptWait bounds how long a stopping agent waits, still
	// connected, for the receipts it owes (their random delay); zero: it
	// does not wait.
	ReceiptWait time.Duration
}

// Mount is a server of the API behind its own handler.
type Mount struct {
	Listener net.Listener
	// Wrap returns the server's handler given the API's (nil: the API
	// as is).
	Wrap func(api http.Handler) http.Handler
}

// Agent is a device's agent. Its methods are safe for concurrent use.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	c       *client.Client
	started time.Time
	events  *broker
	calls   *calls    // nil: the agent does not carry calls
	web     *webCalls // calls whose media runs in a browser page (webcalls.go)

	stop     chan struct{} // closed by Shutdown
	stopOnce sync.Once
	// An unlock happened: one signal for each loop that waits for it
	// (buffered 1 each).
	wakeConn, wakeIdle chan struct{}

	mu        sync.Mutex
	running   bool          // Run keeps the device connected
	online    chan struct{} // closed while connected (Run)
	unlocks   int
	connects  int
	connected bool
	idle      bool
	lastUse   time.Time
}

// ErrStopped is what Run returns when the agent was asked to stop
// (Shutdown, a wipe).
var ErrStopped = errors.New("agent: stopped")

// Open unlocks the store in cfg.Home with passphrase: the one unlock of
// the agent's life (unless it is locked and unlocked again). Its errors
// are client.Open's.
func Open(ctx context.Context, passphrase []byte, cfg Config) (*Agent, error) {
	a := &Agent{cfg: cfg, log: cfg.Options.Logger, started: time.Now(), events: newBroker(eventsKept),
		stop: make(chan struct{}), wakeConn: make(chan struct{}, 1), wakeIdle: make(chan struct{}, 1), unlocks: 1, online: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.lastUse = a.started
	if cfg.Calls != nil {
		a.calls = a.newCalls(*cfg.Calls)
	}
	a.web = newWebCalls(a)
	o := cfg.Options
	o.OnEvent = a.onEvent
	c, err := client.Open(ctx, cfg.Home, passphrase, &o)
	if err != nil {
		if a.calls != nil {
			a.calls.m.Close()
		}
		return nil, err
	}
	a.c = c
	if a.calls != nil {
		a.calls.m.Start(c)
	}
	return a, nil
}

// Client is the client core the agent owns, for a front end hosting the
// agent in its own process (calls, checks at start). Closing it is the
// agent's job.
func (a *Agent) Client() *client.Client { return a.c }

// Connect connects once without receiving (no reconnection): for a
// one-shot command hosting the agent only for itself, which must leave
// what is queued for the device to the receiving agent. Run does not need
// it.
func (a *Agent) Connect(ctx context.Context) error {
	return a.c.Connect(ctx, client.ConnectOptions{})
}

// onEvent publishes an event of the client core.
func (a *Agent) onEvent(ev client.Event) {
	if f := a.cfg.OnClientEvent; f != nil {
		f(ev)
	}
	if a.calls != nil && !a.web.take(ev) {
		a.calls.m.HandleEvent(ev)
	}
	e, ok := api.FromEvent(ev)
	if !ok {
		return
	}
	a.events.publish(e)
	if ev.Kind == client.EventWiped {
		// The store is gone: nothing is left to serve.
		a.Shutdown()
	}
}

// Shutdown asks Run to return.
func (a *Agent) Shutdown() { a.stopOnce.Do(func() { close(a.stop) }) }

// Stopping is closed once the agent was asked to stop.
func (a *Agent) Stopping() <-chan struct{} { return a.stop }

// Run stays connected (with Receive, reconnecting with backoff), runs the
// idle lock and serves the API on cfg.Listeners until ctx ends (nil),
// Shutdown is called (ErrStopped) or the device is revoked
// (client.ErrRevoked). Every goroutine it starts has ended when it
// returns.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	a.running = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running = false
		a.mu.Unlock()
	}()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.connectLoop(ctx) })
	g.Go(func() error { return a.idleLockLoop(ctx) })
	g.Go(func() error { return a.groupLoop(ctx) })
	g.Go(func() error {
		select {
		case <-a.stop:
			// Still connected: the receipts of what was received leave
			// after their random delay (an interrupt does not wait).
			if w := a.cfg.ReceiptWait; w > 0 && !a.c.Locked() {
				wctx, cancel := context.WithTimeout(ctx, w)
				_ = a.c.WaitReceipts(wctx)
				cancel()
			}
			return ErrStopped
		case <-ctx.Done():
			return nil
		}
	})
	h := NewHandler(a)
	mounts := append([]Mount(nil), a.cfg.Mounts...)
	for _, ln := range a.cfg.Listeners {
		mounts = append(mounts, Mount{Listener: ln})
	}
	for _, m := range mounts {
		ln, sh := m.Listener, http.Handler(h)
		if m.Wrap != nil {
			sh = m.Wrap(h)
		}
		srv := &http.Server{Handler: sh, ReadHeaderTimeout: 10 * time.Second,
			BaseContext: func(net.Listener) context.Context { return ctx }}
		g.Go(func() error {
			err := srv.Serve(ln)
			if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agent: serve: %w", err)
		})
		g.Go(func() error {
			<-ctx.Done()
			// Request contexts derive from ctx: the event streams end.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
			}
			return nil
		})
	}
	return g.Wait()
}

// connectLoop keeps the device connected while it is unlocked.
func (a *Agent) connectLoop(ctx context.Context) error {
	co := client.ConnectOptions{Receive: true, NoAck: a.cfg.NoAck}
	for {
		if a.c.Locked() {
			select {
			case <-ctx.Done():
				return nil
			case <-a.wakeConn:
				continue
			}
		}
		err := a.c.Run(ctx, co, a.onConnState)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, client.ErrLocked):
			continue
		default:
			return err
		}
	}
}

func (a *Agent) onConnState(s client.ConnState) {
	a.mu.Lock()
	changed := a.connected != s.Connected || a.idle != s.Idle
	if s.Connected && !a.connected {
		a.connects++
		close(a.online)
	}
	if !s.Connected && a.connected {
		a.online = make(chan struct{})
	}
	a.connected, a.idle = s.Connected, s.Idle
	a.mu.Unlock()
	switch {
	case s.Idle:
		a.events.publish(api.Event{Type: api.EventIdle})
	case s.Connected:
		a.events.publish(api.Event{Type: api.EventConnection, Connected: true})
	case changed || s.Err != nil:
		e := api.Event{Type: api.EventConnection}
		if s.Err != nil {
			e.Error = api.ErrorOf(s.Err)
		}
		a.events.publish(e)
	}
}

// connectWait bounds how long a request that needs the relay waits for
// the agent to (re)connect, after an unlock or a lost connection.
const connectWait = 15 * time.Second

// awaitOnline waits, when Run keeps the device connected and it is not
// connected now, until it is (or connectWait, or ctx, ends).
func (a *Agent) awaitOnline(ctx context.Context) {
	a.mu.Lock()
	running, online := a.running, a.online
	a.mu.Unlock()
	if !running {
		return
	}
	t := time.NewTimer(connectWait)
	defer t.Stop()
	select {
	case <-online:
	case <-t.C:
	case <-ctx.Done():
	case <-a.stop:
	}
}

// touch records a request from a client, for the idle lock.
func (a *Agent) touch() {
	a.mu.Lock()
	a.lastUse = time.Now()
	a.mu.Unlock()
}

// policyRecheck is how often the idle lock looks at the policy when it
// sets no timeout (a new policy may arrive).
const policyRecheck = time.Minute

// idleLockLoop locks the agent after the organization policy's idle lock
// timeout without a request.
func (a *Agent) idleLockLoop(ctx context.Context) error {
	for {
		wait := policyRecheck
		if !a.c.Locked() {
			d := a.idleLock(ctx)
			if d > 0 {
				a.mu.Lock()
				left := time.Until(a.lastUse.Add(d))
				a.mu.Unlock()
				if left <= 0 {
					a.Lock()
					continue
				}
				wait = left
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-a.wakeIdle:
			t.Stop() // an unlock: look again
		}
	}
}

// idleLock is the idle lock timeout in force (0: none): the stricter of
// the policy's and the configuration's.
func (a *Agent) idleLock(ctx context.Context) time.Duration {
	d, err := a.c.IdleLockTimeout(ctx)
	if err != nil {
		d = 0
	}
	if c := a.cfg.IdleLock; c > 0 && (d <= 0 || c < d) {
		d = c
	}
	return d
}

func (a *Agent) signalWake() {
	for _, ch := range []chan struct{}{a.wakeConn, a.wakeIdle} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Lock disconnects and drops the store's keys until Unlock.
func (a *Agent) Lock() {
	if a.c.Locked() {
		return
	}
	a.c.Lock()
	a.events.publish(api.Event{Type: api.EventLocked})
}

// Unlock re-derives the store's keys from passphrase (store.Unlock's
// errors: counted failures; the duress passphrase wipes the device, and
// the agent then stops).
func (a *Agent) Unlock(ctx context.Context, passphrase []byte) error {
	if !a.c.Locked() {
		return nil
	}
	err := a.c.Unlock(ctx, passphrase)
	if errors.Is(err, store.ErrNoStore) || errors.Is(err, store.ErrWipedAfterFailures) {
		a.Shutdown()
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.unlocks++
	a.lastUse = time.Now()
	a.mu.Unlock()
	a.events.publish(api.Event{Type: api.EventUnlocked})
	a.signalWake()
	return nil
}

// Status reports the agent's state.
func (a *Agent) Status(ctx context.Context) *api.Status {
	a.mu.Lock()
	s := &api.Status{API: api.Version, Started: a.started, Home: a.cfg.Home, Unlocks: a.unlocks,
		Connects: a.connects, Connected: a.connected, Idle: a.idle}
	a.mu.Unlock()
	s.PID = os.Getpid()
	s.LastEvent = a.events.last()
	s.Locked = a.c.Locked()
	s.User, s.Device, s.Relay = a.c.Username(), a.c.DeviceID(), a.c.Relay()
	if s.Locked {
		return s
	}
	if name, err := a.c.OrgName(ctx); err == nil {
		if fp, err := a.c.OrgFingerprint(ctx); err == nil && fp != "" {
			s.Org = &api.Org{Name: name, Fingerprint: fp}
		}
	}
	if w, err := a.c.SubscriptionWarning(ctx); err == nil {
		s.Warning = w
	}
	s.IdleLockSeconds = int64(a.idleLock(ctx) / time.Second)
	return s
}

// Close closes the client core: the store's keys leave memory. Call it
// after Run returned.
func (a *Agent) Close() error {
	a.web.close()
	if a.calls != nil {
		// Every call ends (hung up), then its watcher.
		a.calls.m.Close()
		a.calls.wg.Wait()
	}
	a.events.close()
	return a.c.Close()
}
