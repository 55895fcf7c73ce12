package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/content"
)

// Calls in the browser. The web app's page is the media endpoint: it
// captures the microphone and runs its own RTCPeerConnection. The agent
// keeps the call's state and carries its offer and answer inside end-to-end
// encrypted CallSignal messages, with the same protocol as the device's
// other calls (client/call): an offer rings every device of the callee,
// the first answer wins, the other devices are told, and a pion device
// (sotto call, sotto listen) is an ordinary peer.
//
// The agent checks the DTLS fingerprints:
//   - an SDP the page hands over must name exactly one sha-256 DTLS
//     certificate; it is signalled end to end as is, and its fingerprint
//     kept;
//   - an SDP received end to end must too, or the call is refused;
//   - the page gets the peer's SDP only from the agent, exactly as it
//     arrived (the remote_sdp of the stream's events);
//   - once connected, the page reports the fingerprints its DTLS
//     transport saw (RTCCertificateStats); the agent compares them with
//     the signalled ones in constant time and ends the call on a mismatch.
//
// A page claims the device's incoming calls while it holds the web call
// stream (GET /v1/webcalls/events) open: offers then ring there instead of
// in the agent's own call manager (calls.go). When the last stream closes
// (the page closed or reloaded), its calls end: their media was in it.

// webRingTimeout is how long an outgoing call rings before it gives up
// (as client/call's default); an incoming one rings a little longer, for
// the caller's hang-up to arrive first. webConnectTimeout ends a call
// answered whose media never connected.
const (
	webRingTimeout    = 45 * time.Second
	webConnectTimeout = 30 * time.Second
)

// webCall is one call whose media runs in a page.
type webCall struct {
	id         []byte
	peer       string
	outgoing   bool
	peerDevice uint32
	state      string
	remoteSDP  string
	remoteFP   string // from the SDP received end to end
	localFP    string // from the SDP the page handed over
	started    time.Time
	connected  time.Time
	reason     string
	timer      *time.Timer
}

func (c *webCall) api(withSDP bool) *api.WebCall {
	w := &api.WebCall{ID: c.id, Peer: c.peer, PeerDevice: c.peerDevice, Outgoing: c.outgoing, State: c.state, Reason: c.reason}
	if !c.connected.IsZero() {
		w.DurationSeconds = int64(time.Since(c.connected) / time.Second)
	}
	if withSDP {
		w.RemoteSDP = c.remoteSDP
	}
	return w
}

// webCalls is the agent's calls in the browser.
type webCalls struct {
	a   *Agent
	ctx context.Context // ends when the agent closes
	end context.CancelFunc
	wg  sync.WaitGroup // signals in flight, history writes

	mu    sync.Mutex
	calls map[string]*webCall
	subs  map[chan api.WebCallEvent]struct{}

	// noCheck, in tests only, switches the fingerprint checks off.
	noCheck atomic.Bool
}

func newWebCalls(a *Agent) *webCalls {
	ctx, cancel := context.WithCancel(context.Background())
	return &webCalls{a: a, ctx: ctx, end: cancel, calls: map[string]*webCall{}, subs: map[chan api.WebCallEvent]struct{}{}}
}

// close hangs up every call and waits for what is in flight (the
// hang-ups, each bounded by its own timeout).
func (w *webCalls) close() {
	w.hangupAll()
	w.wg.Wait()
	w.end()
}

// Errors the API answers.
var (
	errNoWebCall = &api.Error{Kind: api.KindNotFound, Message: "agent: no such call (it ended, or never rang here)"}
	errNoPage    = &api.Error{Kind: api.KindBadRequest, Message: "agent: calls in the browser need the page's call stream open (GET /v1/webcalls/events)"}
	// errFingerprintMismatch: the certificate the page's DTLS saw is not
	// the one signalled end to end.
	errFingerprintMismatch = errors.New("agent: the DTLS certificate the browser saw does not match the fingerprint signalled end to end: possible man in the middle, call ended")
)

// subscribe opens a page's stream; cancel closes it (and, for the last
// one, ends the calls).
func (w *webCalls) subscribe() (<-chan api.WebCallEvent, []api.WebCallEvent, func()) {
	ch := make(chan api.WebCallEvent, 32)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	var live []api.WebCallEvent
	for _, c := range w.calls {
		typ := api.WebCallRinging
		if !c.outgoing && c.state == "ringing" {
			typ = api.WebCallIncoming
		}
		live = append(live, api.WebCallEvent{Type: typ, Call: c.api(true)})
	}
	w.mu.Unlock()
	return ch, live, func() {
		w.mu.Lock()
		delete(w.subs, ch)
		last := len(w.subs) == 0
		w.mu.Unlock()
		if last {
			w.hangupAll()
		}
	}
}

// publishLocked sends an event to every page; a page too slow to read
// misses it (its stream is buffered). w.mu is held.
func (w *webCalls) publishLocked(typ string, c *webCall, withSDP bool) {
	ev := api.WebCallEvent{Type: typ, Call: c.api(withSDP)}
	for ch := range w.subs {
		select {
		case ch <- ev:
		default:
			w.a.log.Warn("web call event dropped: page too slow")
		}
	}
}

// send delivers s on a goroutine of its own (owned by w).
func (w *webCalls) send(user string, s *content.CallSignal) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		ctx, cancel := context.WithTimeout(w.ctx, 15*time.Second)
		defer cancel()
		if err := w.sendNow(ctx, user, s); err != nil {
			w.a.log.Info("call signal not sent", "to", user, "kind", s.Kind.String(), "err", err)
		}
	}()
}

func (w *webCalls) sendNow(ctx context.Context, user string, s *content.CallSignal) error {
	err := w.a.c.SendCallSignal(ctx, user, s)
	if errors.Is(err, client.ErrNoDevices) {
		return nil
	}
	return err
}

// busy: a call runs here, in a page or in the agent's call manager.
func (w *webCalls) busyLocked() bool {
	return len(w.calls) > 0 || (w.a.calls != nil && len(w.a.calls.m.Calls()) > 0)
}

// take handles a call signal that belongs to the pages: one of their
// calls, or a new offer while a page holds the stream. It reports whether
// it took ev; the agent's call manager gets the rest. It never blocks on
// the network.
func (w *webCalls) take(ev client.Event) bool {
	if ev.Kind != client.EventCallSignal || ev.Call == nil || ev.Call.Signal == nil {
		return false
	}
	cs := ev.Call
	s := cs.Signal
	if len(s.CallId) != 16 {
		return false
	}
	self := w.a.c.Username()
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls[string(s.CallId)]
	switch {
	case cs.From == self:
		// An own other device answered or declined a call ringing here.
		if c == nil {
			return false
		}
		if !c.outgoing && c.peer == s.Peer && s.Kind == content.CallSignal_HANGUP && c.state == "ringing" {
			switch s.Reason {
			case content.CallSignal_ANSWERED_ELSEWHERE:
				w.endLocked(c, "answered_elsewhere")
			case content.CallSignal_DECLINED_ELSEWHERE:
				w.endLocked(c, "declined_elsewhere")
			}
		}
		return true
	case c != nil:
		if c.peer == cs.From {
			w.handleLocked(c, cs)
		}
		return true
	case s.Kind == content.CallSignal_OFFER && len(w.subs) > 0:
		w.incomingLocked(cs)
		return true
	}
	return false
}

// incomingLocked rings the pages for an offer.
func (w *webCalls) incomingLocked(cs *client.CallSignal) {
	s := cs.Signal
	switch {
	case time.Since(cs.ServerTime) > webRingTimeout:
		// Delivered after the caller gave up (this device was offline).
		w.record(cs.From, client.CallRecord{ID: s.CallId, Outcome: "missed"}, cs.ServerTime)
		return
	case cs.Unverified:
		w.record(cs.From, client.CallRecord{ID: s.CallId, Outcome: "refused", Reason: "the caller's safety number changed and was not verified"}, cs.ServerTime)
		w.send(cs.From, &content.CallSignal{CallId: s.CallId, Kind: content.CallSignal_REJECT, ToDevice: cs.FromDevice})
		return
	case w.busyLocked():
		w.record(cs.From, client.CallRecord{ID: s.CallId, Outcome: "missed", Reason: "busy"}, cs.ServerTime)
		w.send(cs.From, &content.CallSignal{CallId: s.CallId, Kind: content.CallSignal_BUSY, ToDevice: cs.FromDevice})
		return
	}
	fp, err := sdpFingerprint(s.Sdp)
	if err != nil && !w.noCheck.Load() {
		// Nothing to check the peer's certificate against: refused
		// before it rings.
		w.a.log.Warn("call refused", "from", cs.From, "err", err)
		w.record(cs.From, client.CallRecord{ID: s.CallId, Outcome: "failed", Reason: err.Error()}, cs.ServerTime)
		w.send(cs.From, &content.CallSignal{CallId: s.CallId, Kind: content.CallSignal_HANGUP, ToDevice: cs.FromDevice, Reason: content.CallSignal_FAILED})
		return
	}
	c := &webCall{id: s.CallId, peer: cs.From, peerDevice: cs.FromDevice, state: "ringing", remoteSDP: s.Sdp, remoteFP: fp, started: cs.ServerTime}
	w.calls[string(c.id)] = c
	w.send(cs.From, &content.CallSignal{CallId: s.CallId, Kind: content.CallSignal_RINGING, ToDevice: cs.FromDevice})
	w.timeoutLocked(c, webRingTimeout+5*time.Second, "ringing", "missed")
	w.publishLocked(api.WebCallIncoming, c, true)
}

// handleLocked processes a signal from the peer of c.
func (w *webCalls) handleLocked(c *webCall, cs *client.CallSignal) {
	s := cs.Signal
	switch s.Kind {
	case content.CallSignal_RINGING:
		if c.outgoing && c.state == "dialing" {
			c.state = "ringing"
			w.publishLocked(api.WebCallRinging, c, false)
		}
	case content.CallSignal_ANSWER:
		if !c.outgoing {
			return
		}
		if c.state != "dialing" && c.state != "ringing" {
			// Another device answered first: stop this one.
			if cs.FromDevice != c.peerDevice {
				w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, ToDevice: cs.FromDevice, Reason: content.CallSignal_ANSWERED_ELSEWHERE})
			}
			return
		}
		fp, err := sdpFingerprint(s.Sdp)
		if err != nil && !w.noCheck.Load() {
			w.a.log.Warn("call answer refused", "from", cs.From, "err", err)
			c.peerDevice = cs.FromDevice
			w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, ToDevice: cs.FromDevice, Reason: content.CallSignal_FAILED})
			// The callee's other devices stop ringing too.
			w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_NORMAL})
			w.endLocked(c, "fingerprint_missing")
			return
		}
		c.peerDevice, c.state, c.remoteSDP, c.remoteFP = cs.FromDevice, "connecting", s.Sdp, fp
		w.timeoutLocked(c, webConnectTimeout, "connecting", "connection_failed")
		w.publishLocked(api.WebCallAnswered, c, true)
	case content.CallSignal_BUSY:
		if c.outgoing && c.state == "dialing" {
			w.endLocked(c, "busy")
		}
	case content.CallSignal_REJECT:
		if c.outgoing && (c.state == "dialing" || c.state == "ringing") {
			w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_DECLINED_ELSEWHERE})
			w.endLocked(c, "rejected")
		}
	case content.CallSignal_HANGUP:
		if c.peerDevice != 0 && c.peerDevice != cs.FromDevice {
			return
		}
		switch {
		case !c.outgoing && s.Reason == content.CallSignal_ANSWERED_ELSEWHERE:
			w.endLocked(c, "answered_elsewhere")
		case !c.outgoing && s.Reason == content.CallSignal_DECLINED_ELSEWHERE:
			w.endLocked(c, "declined_elsewhere")
		case s.Reason == content.CallSignal_FAILED:
			w.endLocked(c, "peer_failed")
		case !c.outgoing && c.state == "ringing":
			w.endLocked(c, "missed")
		default:
			w.endLocked(c, "")
		}
	}
}

// timeoutLocked ends c with reason if it is still in state after d
// (dialing and ringing count as one).
func (w *webCalls) timeoutLocked(c *webCall, d time.Duration, state, reason string) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		ringing := state == "ringing" || state == "dialing"
		if w.calls[string(c.id)] != c || (c.state != state && !(ringing && (c.state == "ringing" || c.state == "dialing"))) {
			return
		}
		switch {
		case c.outgoing && ringing:
			w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_TIMEOUT})
			reason = "no_answer"
		case state == "connecting":
			w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, ToDevice: c.peerDevice, Reason: content.CallSignal_FAILED})
		}
		w.endLocked(c, reason)
	})
}

// endLocked ends c: the pages are told, the history records it.
func (w *webCalls) endLocked(c *webCall, reason string) {
	if w.calls[string(c.id)] != c {
		return
	}
	delete(w.calls, string(c.id))
	if c.timer != nil {
		c.timer.Stop()
	}
	prev := c.state
	c.state, c.reason = "ended", reason
	w.publishLocked(api.WebCallEnded, c, false)
	rec := client.CallRecord{ID: c.id, Outgoing: c.outgoing, Outcome: webOutcome(c, prev, reason)}
	if !c.connected.IsZero() {
		rec.Duration = time.Since(c.connected)
	}
	if reason != "" && rec.Outcome == "failed" {
		rec.Reason = strings.ReplaceAll(reason, "_", " ")
	}
	w.record(c.peer, rec, c.started)
}

func webOutcome(c *webCall, prev, reason string) string {
	switch reason {
	case "":
		if !c.connected.IsZero() {
			return "answered"
		}
		if !c.outgoing && prev == "ringing" {
			return "missed"
		}
		return "ended"
	case "busy", "rejected", "missed", "canceled":
		return reason
	case "no_answer", "answered_elsewhere", "declined_elsewhere":
		return strings.ReplaceAll(reason, "_", " ")
	}
	return "failed"
}

// record writes a call to the history, off the caller's goroutine.
func (w *webCalls) record(peer string, rec client.CallRecord, at time.Time) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := w.a.c.RecordCall(ctx, peer, rec, at); err != nil {
			w.a.log.Warn("call not recorded in the history", "err", err)
		}
	}()
}

// dial places a call with the page's offer.
func (w *webCalls) dial(ctx context.Context, user, sdp string) (*api.WebCall, error) {
	user = strings.TrimSpace(user)
	if user == "" || user == w.a.c.Username() {
		return nil, badRequest("cannot call %q", user)
	}
	fp, err := sdpFingerprint(sdp)
	if err != nil && !w.noCheck.Load() {
		return nil, badRequest("%v", err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	c := &webCall{id: id, peer: user, outgoing: true, state: "dialing", localFP: fp, started: time.Now()}
	w.mu.Lock()
	if len(w.subs) == 0 {
		w.mu.Unlock()
		return nil, errNoPage
	}
	if w.busyLocked() {
		w.mu.Unlock()
		return nil, badRequest("already in a call")
	}
	w.calls[string(id)] = c
	w.mu.Unlock()
	// The offer as the page made it: its fingerprint is the page's
	// certificate, signalled end to end.
	err = w.sendNow(ctx, user, &content.CallSignal{CallId: id, Kind: content.CallSignal_OFFER, Sdp: sdp, Media: []string{"audio"}})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.endLocked(c, "connection_failed")
		return nil, fmt.Errorf("agent: offer to %s: %w", user, err)
	}
	if c.state == "dialing" {
		w.timeoutLocked(c, webRingTimeout, "dialing", "no_answer")
	}
	return c.api(false), nil
}

// find returns the live call id.
func (w *webCalls) findLocked(id []byte) (*webCall, error) {
	c := w.calls[string(id)]
	if c == nil {
		return nil, errNoWebCall
	}
	return c, nil
}

// answer answers a ringing call with the page's answer.
func (w *webCalls) answer(ctx context.Context, id []byte, sdp string) (*api.WebCall, error) {
	fp, err := sdpFingerprint(sdp)
	if err != nil && !w.noCheck.Load() {
		return nil, badRequest("%v", err)
	}
	w.mu.Lock()
	c, err := w.findLocked(id)
	if err == nil && (c.outgoing || c.state != "ringing") {
		err = badRequest("cannot answer a call that is %s", c.state)
	}
	if err != nil {
		w.mu.Unlock()
		return nil, err
	}
	c.state, c.localFP = "connecting", fp
	w.timeoutLocked(c, webConnectTimeout, "connecting", "connection_failed")
	peer, dev := c.peer, c.peerDevice
	w.mu.Unlock()
	err = w.sendNow(ctx, peer, &content.CallSignal{CallId: id, Kind: content.CallSignal_ANSWER, ToDevice: dev, Sdp: sdp, Media: []string{"audio"}})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.send(peer, &content.CallSignal{CallId: id, Kind: content.CallSignal_HANGUP, ToDevice: dev, Reason: content.CallSignal_FAILED})
		w.endLocked(c, "connection_failed")
		return nil, fmt.Errorf("agent: answer to %s: %w", peer, err)
	}
	// Stop the other own devices ringing.
	w.send(w.a.c.Username(), &content.CallSignal{CallId: id, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_ANSWERED_ELSEWHERE, Peer: peer})
	return c.api(false), nil
}

// connected takes the page's report of its connected DTLS transport. A
// certificate other than the ones signalled end to end ends the call.
func (w *webCalls) connected(id []byte, r api.WebConnectedRequest) (*api.WebCall, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.findLocked(id)
	if err != nil {
		return nil, err
	}
	if c.state == "active" {
		return c.api(false), nil
	}
	if c.state != "connecting" {
		return nil, badRequest("the call is %s, not connecting", c.state)
	}
	if !w.noCheck.Load() && (!sameFingerprint(r.RemoteFingerprint, c.remoteFP) || !sameFingerprint(r.LocalFingerprint, c.localFP)) {
		w.a.log.Warn("call ended: DTLS fingerprint mismatch", "peer", c.peer)
		w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, ToDevice: c.peerDevice, Reason: content.CallSignal_FAILED})
		w.endLocked(c, "fingerprint_mismatch")
		return nil, &api.Error{Kind: api.KindForbidden, Message: errFingerprintMismatch.Error()}
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.state, c.connected = "active", time.Now()
	w.publishLocked(api.WebCallActive, c, false)
	return c.api(false), nil
}

// hangup ends a call from the page.
func (w *webCalls) hangup(id []byte, failed bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.findLocked(id)
	if err != nil {
		return err
	}
	w.hangupLocked(c, failed)
	return nil
}

func (w *webCalls) hangupLocked(c *webCall, failed bool) {
	switch {
	case !c.outgoing && c.state == "ringing":
		w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_REJECT, ToDevice: c.peerDevice})
		w.send(w.a.c.Username(), &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_DECLINED_ELSEWHERE, Peer: c.peer})
		w.endLocked(c, "rejected")
	case c.outgoing && (c.state == "dialing" || c.state == "ringing"):
		// Stop the ringing on every device.
		w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_NORMAL})
		w.endLocked(c, "canceled")
	case failed:
		w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, ToDevice: c.peerDevice, Reason: content.CallSignal_FAILED})
		w.endLocked(c, "connection_failed")
	default:
		w.send(c.peer, &content.CallSignal{CallId: c.id, Kind: content.CallSignal_HANGUP, ToDevice: c.peerDevice, Reason: content.CallSignal_NORMAL})
		w.endLocked(c, "")
	}
}

// hangupAll ends every call (the last page left, or the agent closes).
func (w *webCalls) hangupAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.calls {
		w.hangupLocked(c, false)
	}
}

// ice is the page's RTCConfiguration.
func (w *webCalls) ice(ctx context.Context) (*api.WebICEAnswer, error) {
	out := &api.WebICEAnswer{ICEServers: []api.ICEServer{}}
	if w.a.cfg.Calls != nil {
		out.RelayOnly = w.a.cfg.Calls.RelayOnly
	}
	tc, err := w.a.c.TURNCredentials(ctx)
	if err != nil {
		if out.RelayOnly {
			return nil, fmt.Errorf("agent: relay-only calls need the relay's TURN server: %w", err)
		}
		w.a.log.Info("no TURN server; direct media only", "err", err)
		return out, nil
	}
	var urls []string
	for _, u := range tc.Urls {
		// A browser checks turns: against the system's roots, not the
		// relay's own CA: it gets turn: only (the media is DTLS-SRTP
		// either way; TURN over TLS only hides it from the network).
		if strings.HasPrefix(u, "turn:") {
			urls = append(urls, u)
		}
	}
	if len(urls) > 0 {
		out.ICEServers = append(out.ICEServers, api.ICEServer{URLs: urls, Username: tc.Username, Credential: tc.Password})
	}
	return out, nil
}
