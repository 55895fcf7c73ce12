package call

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"sotto/client"
	"sotto/client/content"
	"sotto/client/transport"
	"sotto/wire"
)

// Errors and reasons callers branch on. A call that ended normally (a
// hang-up by either side) has a nil Err.
var (
	ErrBusy                = errors.New("call: the callee is busy")
	ErrRejected            = errors.New("call: the callee declined")
	ErrNoAnswer            = errors.New("call: no answer")
	ErrMissed              = errors.New("call: missed")
	ErrAnsweredElsewhere   = errors.New("call: answered on another device")
	ErrDeclinedElsewhere   = errors.New("call: declined on another device")
	ErrCanceled            = errors.New("call: canceled before it was answered")
	ErrFingerprintMismatch = errors.New("call: the peer's DTLS certificate does not match the fingerprint in its end-to-end encrypted call setup: possible man in the middle, call refused")
	ErrConnectionFailed    = errors.New("call: no network path to the peer (ICE failed)")
	ErrConnectionLost      = errors.New("call: the connection to the peer was lost")
	ErrPeerFailed          = errors.New("call: the peer's side of the call failed")
	ErrUnverified          = errors.New("call: the caller's safety number changed and was not verified; call refused")
	ErrInCall              = errors.New("call: already in a call")
	ErrNoTURN              = errors.New("call: relay-only calls need the relay's TURN server")
)

// Signaller is what a call needs from the client: *client.Client.
type Signaller interface {
	Username() string
	DeviceID() uint32
	SendCallSignal(ctx context.Context, user string, s *content.CallSignal) error
	TURNCredentials(ctx context.Context) (*wire.TurnCredentials, error)
	RecordCall(ctx context.Context, peer string, rec client.CallRecord, at time.Time) (*client.Message, error)
}

// Options configure a Manager.
type Options struct {
	Logger *slog.Logger
	// RelayOnly forces media through the relay's TURN server
	// (ICETransportPolicyRelay): the peers never learn each other's IP.
	RelayOnly bool
	// TURNTransport keeps only TURN URLs of this transport ("udp",
	// "tcp", "tls": turns: only; empty: all).
	TURNTransport string
	// TLS is the device's TLS settings for the relay (its CA and pin, as
	// for the relay's WebSocket): turns: servers are checked with them
	// (turns.go). Unset (no CA, no pin): the Signaller's RelayTransport
	// when it has one (a *client.Client does), else the system's roots.
	TLS transport.Options
	// PCMUOnly offers and accepts only G.711 (what a build without the
	// opus tag does) even when this build has Opus.
	PCMUOnly bool
	// RingTimeout ends unanswered calls (45 s).
	RingTimeout time.Duration
	// AutoAnswer answers incoming calls at once (headless devices).
	AutoAnswer bool
	// NewSource and NewSink give each call its audio (nil: silence,
	// discard).
	NewSource func(*Call) Source
	NewSink   func(*Call) Sink
	// OnIncoming is told about a ringing incoming call; OnEnd about
	// every call that ended. Both run on their own goroutine.
	OnIncoming func(*Call)
	OnEnd      func(*Call)
	// LoopbackOnly gathers only loopback host candidates (tests and
	// benchmarks on one machine).
	LoopbackOnly bool
	// ICEFailedTimeout is how long a call survives without connectivity
	// before it ends (5 s).
	ICEFailedTimeout time.Duration
	// MediaTimeout ends a connected call that hears nothing from the peer
	// for this long (10 s; liveness.go).
	MediaTimeout time.Duration
	// SignalRetryFor is how long a HANGUP or REJECT that could not be sent
	// is tried again (2 min).
	SignalRetryFor time.Duration
	Now            func() time.Time
}

// Manager runs the calls of one device: it receives call signals from the
// client (HandleEvent), places calls (Dial) and answers them.
type Manager struct {
	opts Options
	log  *slog.Logger
	sig  Signaller

	events chan client.Event
	flush  chan chan struct{} // Close asks the loop to handle what is queued
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	calls map[string]*Call // by call id

	// noDirect, in tests only, leaves host candidates out of the SDP, so
	// that no direct path exists.
	noDirect bool

	// stallSend, in tests only, stops every call's audio from leaving
	// (a peer that hangs without closing its connection).
	stallSend atomic.Bool

	// netem, in tests only, stands between the network and each call's
	// receiver (loss, reordering); plainReceive plays packets as they come,
	// without jitter buffer or concealment (the pipeline before them).
	netem        func(read func() (*rtp.Packet, error)) func() (*rtp.Packet, error)
	plainReceive bool

	// tamper, in tests only, rewrites decrypted signals before they are
	// processed (a man in the middle that could break the encryption).
	tamper func(from string, s *content.CallSignal)
}

// NewManager returns a Manager; call Start once the client exists.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RingTimeout <= 0 {
		opts.RingTimeout = 45 * time.Second
	}
	if opts.ICEFailedTimeout <= 0 {
		opts.ICEFailedTimeout = 5 * time.Second
	}
	if opts.MediaTimeout <= 0 {
		opts.MediaTimeout = 10 * time.Second
	}
	if opts.SignalRetryFor <= 0 {
		opts.SignalRetryFor = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{opts: opts, log: opts.Logger, events: make(chan client.Event, 256), flush: make(chan chan struct{}),
		ctx: ctx, cancel: cancel, calls: map[string]*Call{}}
}

// HandleEvent queues call signals from the client's OnEvent; other events
// are ignored. It never blocks.
func (m *Manager) HandleEvent(ev client.Event) {
	if ev.Kind != client.EventCallSignal || ev.Call == nil || ev.Call.Signal == nil {
		return
	}
	select {
	case m.events <- ev:
	default:
		m.log.Warn("call signal dropped: queue full")
	}
}

// Start processes queued signals with sig until Close.
func (m *Manager) Start(sig Signaller) {
	m.sig = sig
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-m.ctx.Done():
				return
			case ev := <-m.events:
				m.dispatch(ev.Call)
			case done := <-m.flush:
				m.dispatchQueued()
				close(done)
			}
		}
	}()
}

// dispatchQueued handles the signals already queued.
func (m *Manager) dispatchQueued() {
	for {
		select {
		case ev := <-m.events:
			m.dispatch(ev.Call)
		default:
			return
		}
	}
}

// Close handles the signals already queued (so that a caller's hang-up
// queued behind its offer makes a missed call, not one this device
// declined), then hangs up every call and stops the manager.
func (m *Manager) Close() {
	if m.sig != nil {
		done := make(chan struct{})
		select {
		case m.flush <- done:
			<-done
		case <-m.ctx.Done():
		}
	}
	for _, c := range m.Calls() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c.Hangup(ctx)
		cancel()
	}
	m.cancel()
	m.wg.Wait()
}

// Calls returns the live calls.
func (m *Manager) Calls() []*Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Call
	for _, c := range m.calls {
		out = append(out, c)
	}
	return out
}

func (m *Manager) busy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls) > 0
}

func (m *Manager) lookup(id []byte) *Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[string(id)]
}

func (m *Manager) forget(c *Call) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls[string(c.ID)] == c {
		delete(m.calls, string(c.ID))
	}
}

// send delivers s to user on its own goroutine, owned by the manager; a
// HANGUP or REJECT is retried until delivered (liveness.go).
func (m *Manager) send(user string, s *content.CallSignal) {
	m.goOwned(func() {
		var err error
		if retried(s) {
			err = m.sendRetrying(m.ctx, user, s)
		} else {
			ctx, cancel := context.WithTimeout(m.ctx, 15*time.Second)
			err = m.sendNow(ctx, user, s)
			cancel()
		}
		if err != nil {
			m.log.Info("call signal not sent", "to", user, "kind", s.Kind.String(), "err", err)
		}
	})
}

// sendNow delivers s and waits.
func (m *Manager) sendNow(ctx context.Context, user string, s *content.CallSignal) error {
	err := m.sig.SendCallSignal(ctx, user, s)
	if errors.Is(err, client.ErrNoDevices) {
		return nil
	}
	return err
}

func (m *Manager) goOwned(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Dial calls user: every device of theirs rings until one answers, one
// declines, or the ring timeout passes.
func (m *Manager) Dial(ctx context.Context, user string) (*Call, error) {
	user = strings.TrimSpace(user)
	if user == "" || user == m.sig.Username() {
		return nil, fmt.Errorf("call: cannot call %q", user)
	}
	if m.busy() {
		return nil, ErrInCall
	}
	id := make([]byte, 16)
	rand.Read(id)
	c := m.newCall(id, user, 0, true)
	m.mu.Lock()
	m.calls[string(id)] = c
	m.mu.Unlock()
	sdp, err := c.prepareOffer(ctx)
	if err != nil {
		c.end(err)
		return nil, err
	}
	if err := m.sendNow(ctx, user, &content.CallSignal{CallId: id, Kind: content.CallSignal_OFFER, Sdp: sdp, Media: []string{"audio"}}); err != nil {
		c.end(err)
		return nil, fmt.Errorf("call: offer to %s: %w", user, err)
	}
	c.startRingTimer(m.opts.RingTimeout)
	return c, nil
}

// dispatch runs one received signal through the state machine.
func (m *Manager) dispatch(cs *client.CallSignal) {
	s := cs.Signal
	if len(s.CallId) != 16 {
		return
	}
	if m.tamper != nil {
		m.tamper(cs.From, s)
	}
	self := m.sig.Username()
	c := m.lookup(s.CallId)
	if cs.From == self {
		// An own other device answered or declined a call ringing here.
		if c != nil && !c.Outgoing && c.Peer == s.Peer && s.Kind == content.CallSignal_HANGUP && c.State() == StateRinging {
			switch s.Reason {
			case content.CallSignal_ANSWERED_ELSEWHERE:
				c.end(ErrAnsweredElsewhere)
			case content.CallSignal_DECLINED_ELSEWHERE:
				c.end(ErrDeclinedElsewhere)
			}
		}
		return
	}
	if s.Kind == content.CallSignal_OFFER {
		if c != nil && c.isReoffer(cs, m.sig.DeviceID()) {
			// The direct path failed: the caller offers again with TURN.
			ctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
			defer cancel()
			if err := c.reanswer(ctx, s.Sdp); err != nil {
				c.failed(fmt.Errorf("%w: %w", ErrConnectionFailed, err))
			}
			return
		}
		m.incoming(cs)
		return
	}
	if c == nil || c.Peer != cs.From {
		return
	}
	c.handle(cs)
}

func (m *Manager) incoming(cs *client.CallSignal) {
	s := cs.Signal
	if m.lookup(s.CallId) != nil {
		return // a duplicate
	}
	at := cs.ServerTime
	if m.opts.Now().Sub(at) > m.opts.RingTimeout {
		// Delivered after the caller gave up (this device was offline).
		m.record(cs.From, client.CallRecord{ID: s.CallId, Outcome: "missed"}, at)
		return
	}
	if cs.Unverified {
		m.record(cs.From, client.CallRecord{ID: s.CallId, Outcome: "refused", Reason: ErrUnverified.Error()}, at)
		m.send(cs.From, &content.CallSignal{CallId: s.CallId, Kind: content.CallSignal_REJECT, ToDevice: cs.FromDevice})
		return
	}
	if m.busy() {
		m.record(cs.From, client.CallRecord{ID: s.CallId, Outcome: "missed", Reason: "busy"}, at)
		m.send(cs.From, &content.CallSignal{CallId: s.CallId, Kind: content.CallSignal_BUSY, ToDevice: cs.FromDevice})
		return
	}
	c := m.newCall(s.CallId, cs.From, cs.FromDevice, false)
	c.offer = s.Sdp
	m.mu.Lock()
	m.calls[string(s.CallId)] = c
	m.mu.Unlock()
	m.send(cs.From, &content.CallSignal{CallId: s.CallId, Kind: content.CallSignal_RINGING, ToDevice: cs.FromDevice})
	c.startRingTimer(m.opts.RingTimeout + 5*time.Second)
	if m.opts.OnIncoming != nil {
		m.goOwned(func() { m.opts.OnIncoming(c) })
	}
	if m.opts.AutoAnswer {
		m.goOwned(func() {
			ctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
			defer cancel()
			if err := c.Answer(ctx); err != nil {
				m.log.Warn("auto-answer failed", "err", err)
			}
		})
	}
}

func (m *Manager) record(peer string, rec client.CallRecord, at time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.sig.RecordCall(ctx, peer, rec, at); err != nil {
		m.log.Warn("call not recorded in the history", "err", err)
	}
}

// iceServers fetches TURN credentials from the relay.
func (m *Manager) iceServers(ctx context.Context) ([]string, *wire.TurnCredentials, error) {
	tc, err := m.sig.TURNCredentials(ctx)
	if err != nil {
		if m.opts.RelayOnly {
			return nil, nil, fmt.Errorf("%w: %w", ErrNoTURN, err)
		}
		m.log.Info("no TURN server; direct media only", "err", err)
		return nil, nil, nil
	}
	var urls []string
	for _, u := range tc.Urls {
		if keepTURN(u, m.opts.TURNTransport) {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 && m.opts.RelayOnly {
		return nil, nil, ErrNoTURN
	}
	return urls, tc, nil
}

// keepTURN reports whether the TURN URL u is of transport ("udp", "tcp",
// "tls"; "": any).
func keepTURN(u, transport string) bool {
	secure := strings.HasPrefix(u, "turns:")
	switch transport {
	case "":
		return true
	case "tls":
		return secure
	}
	return !secure && strings.HasSuffix(u, "transport="+transport)
}

// relayTransport is a Signaller that tells how its device reaches the
// relay (client.Client.RelayTransport).
type relayTransport interface{ RelayTransport() transport.Options }

// tlsOptions are the TLS settings turns: servers are checked with.
func (m *Manager) tlsOptions() transport.Options {
	if m.opts.TLS.RootCAs != nil || len(m.opts.TLS.Pin) > 0 {
		return m.opts.TLS
	}
	if rt, ok := m.sig.(relayTransport); ok {
		return rt.RelayTransport()
	}
	return m.opts.TLS
}
