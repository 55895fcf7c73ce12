package call

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"sotto/client"
	"sotto/client/content"
	"sotto/wire"
)

// State is where a call is.
type State int

// States of a call.
const (
	StateDialing    State = iota + 1 // outgoing, offer sent
	StateRinging                     // outgoing: a callee device rings; incoming: ringing here
	StateConnecting                  // answered, media connecting
	StateActive                      // media flowing
	StateEnded
)

func (s State) String() string {
	switch s {
	case StateDialing:
		return "dialing"
	case StateRinging:
		return "ringing"
	case StateConnecting:
		return "connecting"
	case StateActive:
		return "active"
	case StateEnded:
		return "ended"
	}
	return "unknown"
}

// Call is one 1:1 call. Its methods are safe for concurrent use.
type Call struct {
	m        *Manager
	ID       []byte
	Peer     string
	Outgoing bool
	source   Source
	sink     Sink

	// dtlsStarted and dtlsFailed record the DTLS handshake's progress as
	// it happens: pion runs connection-state handlers on goroutines of
	// their own, so one that reads the transport's current state may see a
	// later one (a closed transport after a failed handshake). Atomic,
	// because pion calls the recorder with its transport lock held.
	dtlsStarted atomic.Bool // ICE found a path and the handshake began
	dtlsFailed  atomic.Bool // the handshake failed
	// base is the call's monotonic origin; lastHeard is when the peer last
	// sent audio (RTP), as time since base (liveness.go).
	base      time.Time
	lastHeard atomic.Int64

	mu          sync.Mutex
	peerDevice  uint32
	state       State
	err         error
	offer       string // incoming: the caller's SDP
	remoteFP    string // sha-256 fingerprint from the E2E-signalled SDP
	codec       Codec  // what we send (the peer's choice decodes what we receive)
	pc          *webrtc.PeerConnection
	sender      *webrtc.RTPSender
	track       *webrtc.TrackLocalStaticSample
	ringTimer   *time.Timer
	lostTimer   *time.Timer
	started     time.Time
	connectedAt time.Time
	closedAt    time.Time   // the peer closed the connection or fell silent (liveness.go)
	closeTimer  *time.Timer // ends the call peerCloseGrace after the peer's close
	muted       bool
	sent        pacing       // frames sent and skipped (pace.go)
	rx          receiveStats // once the receiver stopped (jitter.go)
	// withTURN: the peer connection uses the relay's TURN server
	// (relay-only, or after the direct path failed); reoffered: the caller
	// sent an offer with TURN and waits for its answer.
	withTURN  bool
	reoffered bool

	connected chan struct{}
	done      chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
}

func (m *Manager) newCall(id []byte, peer string, dev uint32, outgoing bool) *Call {
	st := StateDialing
	if !outgoing {
		st = StateRinging
	}
	c := &Call{m: m, ID: id, Peer: peer, Outgoing: outgoing, codec: supportedCodecs(m.opts.PCMUOnly)[0], peerDevice: dev, state: st,
		started: m.opts.Now(), base: time.Now(), connected: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{})}
	c.source, c.sink = Source(silence{}), Sink(discard{})
	if m.opts.NewSource != nil {
		c.source = m.opts.NewSource(c)
	}
	if m.opts.NewSink != nil {
		c.sink = m.opts.NewSink(c)
	}
	return c
}

// State returns the call's state.
func (c *Call) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Call) setState(s State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StateEnded {
		c.state = s
	}
}

// PeerDevice is the callee device that answered (outgoing) or the calling
// device (incoming); 0 before an answer.
func (c *Call) PeerDevice() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerDevice
}

// Connected is closed when media starts flowing.
func (c *Call) Connected() <-chan struct{} { return c.connected }

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err says why the call ended: nil for a hang-up by either side after the
// call was answered, else one of the Err values (possibly wrapped).
func (c *Call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// SetMuted mutes (sends silence) or unmutes the microphone.
func (c *Call) SetMuted(muted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.muted = muted
}

// Muted reports whether the microphone is muted.
func (c *Call) Muted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.muted
}

// Duration is how long media flowed (so far).
func (c *Call) Duration() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connectedAt.IsZero() {
		return 0
	}
	return c.m.opts.Now().Sub(c.connectedAt)
}

// CandidatePair returns the types of the selected ICE candidate pair
// (host, srflx, relay...), local then remote.
func (c *Call) CandidatePair() (local, remote webrtc.ICECandidateType, err error) {
	c.mu.Lock()
	pc := c.pc
	c.mu.Unlock()
	if pc == nil || pc.SCTP() == nil {
		return 0, 0, errors.New("call: no connection")
	}
	p, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || p == nil {
		return 0, 0, fmt.Errorf("call: no selected candidate pair: %v", err)
	}
	return p.Local.Typ, p.Remote.Typ, nil
}

// newPeerConnection builds the WebRTC side. DTLS fingerprint verification
// stays on (pion's default; never DisableCertificateFingerprintVerification).
func (c *Call) newPeerConnection(ctx context.Context) error {
	opts := c.m.opts
	c.mu.Lock()
	withTURN := c.withTURN || opts.RelayOnly
	c.mu.Unlock()
	// TURN only when asked for or after the direct path failed: an
	// allocation tells the relay (and anyone on the path) when this
	// device calls, so a call that works directly makes none.
	var urls []string
	var tc *wire.TurnCredentials
	if withTURN {
		var err error
		if urls, tc, err = c.m.iceServers(ctx); err != nil {
			return err
		}
	}
	var me webrtc.MediaEngine
	for _, cd := range supportedCodecs(opts.PCMUOnly) {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: capability(cd),
			PayloadType: webrtc.PayloadType(cd.PayloadType())}, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("call: codec: %w", err)
		}
	}
	c.mu.Lock()
	codec := c.codec
	c.mu.Unlock()
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(opts.ICEFailedTimeout/2, opts.ICEFailedTimeout, 500*time.Millisecond)
	se.SetIncludeLoopbackCandidate(true)
	if opts.LoopbackOnly {
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	}
	if opts.RelayOnly {
		// Only relayed pairs exist: no reason to wait for better ones.
		se.SetRelayAcceptanceMinWait(0)
	}
	if d, err := newTURNSDialer(urls, c.m.tlsOptions().TLSConfig()); err != nil {
		return err
	} else if d != nil {
		se.SetICEProxyDialer(d)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(&me), webrtc.WithSettingEngine(se))
	cfg := webrtc.Configuration{}
	if len(urls) > 0 {
		cfg.ICEServers = []webrtc.ICEServer{{URLs: urls, Username: tc.Username, Credential: tc.Password}}
	}
	if opts.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	track, err := webrtc.NewTrackLocalStaticSample(capability(codec), "audio", "sotto")
	if err != nil {
		pc.Close()
		return fmt.Errorf("call: %w", err)
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		pc.Close()
		return fmt.Errorf("call: %w", err)
	}
	c.wg.Add(1)
	go func() { // drain RTCP until the connection closes
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { c.receive(tr) })
	// The DTLS transport's own handler is free: pion updates the
	// connection state from the transport's return values, not through it.
	// It runs with the transport's lock held, so it only records.
	pc.SCTP().Transport().OnStateChange(func(s webrtc.DTLSTransportState) {
		switch s {
		case webrtc.DTLSTransportStateConnecting:
			c.dtlsStarted.Store(true)
		case webrtc.DTLSTransportStateFailed:
			c.dtlsFailed.Store(true)
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.mu.Lock()
		replaced := c.pc != nil && c.pc != pc
		c.mu.Unlock()
		if !replaced { // not a peer connection given up for one with TURN
			c.connectionState(s)
		}
	})
	c.mu.Lock()
	c.pc, c.sender, c.track = pc, sender, track
	c.mu.Unlock()
	return nil
}

// gather waits for ICE gathering of the call's peer connection.
func (c *Call) gather(ctx context.Context) (string, error) {
	sdp, err := gather(ctx, c.pc)
	if err == nil && c.m.noDirect {
		sdp = withoutHost(sdp)
	}
	return sdp, err
}

// gather waits for ICE gathering (no trickle: the SDP carries every
// candidate, in one end-to-end encrypted message).
func gather(ctx context.Context, pc *webrtc.PeerConnection) (string, error) {
	done := webrtc.GatheringCompletePromise(pc)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
	}
	return pc.LocalDescription().SDP, nil
}

func (c *Call) prepareOffer(ctx context.Context) (string, error) {
	if err := c.newPeerConnection(ctx); err != nil {
		return "", err
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("call: offer: %w", err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("call: offer: %w", err)
	}
	return c.gather(ctx)
}

// Answer accepts an incoming ringing call.
func (c *Call) Answer(ctx context.Context) error {
	c.mu.Lock()
	if c.Outgoing || c.state != StateRinging {
		st := c.state
		c.mu.Unlock()
		return fmt.Errorf("call: cannot answer a call that is %s", st)
	}
	c.state = StateConnecting
	c.remoteFP = sdpFingerprint(c.offer)
	offer := c.offer
	c.codec = chooseCodec(offer, c.m.opts.PCMUOnly)
	c.mu.Unlock()
	c.stopRingTimer()
	err := func() error {
		if err := c.newPeerConnection(ctx); err != nil {
			return err
		}
		return c.answerOffer(ctx, offer)
	}()
	if err != nil {
		c.m.send(c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, ToDevice: c.PeerDevice(), Reason: content.CallSignal_FAILED})
		c.end(err)
		return err
	}
	// Stop the other own devices ringing.
	c.m.send(c.m.sig.Username(), &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_ANSWERED_ELSEWHERE, Peer: c.Peer})
	c.startLostTimer(2 * c.m.opts.ICEFailedTimeout)
	return nil
}

// answerOffer answers offer on the call's peer connection: remote
// description, answer, ICE gathering, and the ANSWER to the peer device.
func (c *Call) answerOffer(ctx context.Context, offer string) error {
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("call: offer: %w", err)
	}
	ans, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("call: answer: %w", err)
	}
	if err := c.pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("call: answer: %w", err)
	}
	sdp, err := c.gather(ctx)
	if err != nil {
		return err
	}
	return c.m.sendNow(ctx, c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_ANSWER, ToDevice: c.PeerDevice(), Sdp: sdp, Media: []string{"audio"}})
}

// Reject declines an incoming ringing call.
func (c *Call) Reject(ctx context.Context) error {
	c.mu.Lock()
	if c.Outgoing || c.state != StateRinging {
		c.mu.Unlock()
		return errors.New("call: only a ringing incoming call can be rejected")
	}
	c.mu.Unlock()
	err := c.m.hangupSignal(ctx, c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_REJECT, ToDevice: c.PeerDevice()})
	c.m.send(c.m.sig.Username(), &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_DECLINED_ELSEWHERE, Peer: c.Peer})
	c.end(ErrRejected)
	return err
}

// Hangup ends the call from this side (for a ringing incoming call:
// rejects it; for an unanswered outgoing one: cancels it everywhere).
func (c *Call) Hangup(ctx context.Context) error {
	c.mu.Lock()
	st, dev := c.state, c.peerDevice
	c.mu.Unlock()
	if st == StateEnded {
		return nil
	}
	if !c.Outgoing && st == StateRinging {
		return c.Reject(ctx)
	}
	var why error
	if c.Outgoing && (st == StateDialing || st == StateRinging) {
		dev, why = 0, ErrCanceled // stop the ringing on every device
	}
	err := c.m.hangupSignal(ctx, c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, ToDevice: dev, Reason: content.CallSignal_NORMAL})
	c.end(why)
	return err
}

// handle processes a signal from the peer for this call.
func (c *Call) handle(cs *client.CallSignal) {
	s := cs.Signal
	c.mu.Lock()
	st, dev := c.state, c.peerDevice
	c.mu.Unlock()
	if st == StateEnded {
		return
	}
	switch s.Kind {
	case content.CallSignal_RINGING:
		if c.Outgoing && st == StateDialing {
			c.setState(StateRinging)
		}
	case content.CallSignal_ANSWER:
		if !c.Outgoing {
			return
		}
		if c.reanswered(cs) {
			return
		}
		if st != StateDialing && st != StateRinging {
			// Another device answered first: stop this one.
			if cs.FromDevice != dev {
				c.m.send(c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, ToDevice: cs.FromDevice, Reason: content.CallSignal_ANSWERED_ELSEWHERE})
			}
			return
		}
		c.mu.Lock()
		c.peerDevice, c.state = cs.FromDevice, StateConnecting
		c.remoteFP = sdpFingerprint(s.Sdp)
		c.mu.Unlock()
		c.stopRingTimer()
		if err := c.useAnswerCodec(s.Sdp); err != nil {
			c.m.send(c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, ToDevice: cs.FromDevice, Reason: content.CallSignal_FAILED})
			c.end(err)
			return
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Sdp}); err != nil {
			c.m.send(c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, ToDevice: cs.FromDevice, Reason: content.CallSignal_FAILED})
			c.end(fmt.Errorf("call: answer: %w", err))
			return
		}
		c.startLostTimer(2 * c.m.opts.ICEFailedTimeout)
	case content.CallSignal_BUSY:
		if c.Outgoing && st == StateDialing {
			c.end(ErrBusy)
		}
	case content.CallSignal_REJECT:
		if c.Outgoing && (st == StateDialing || st == StateRinging) {
			// Stop the callee's other devices ringing.
			c.m.send(c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_DECLINED_ELSEWHERE})
			c.end(ErrRejected)
		}
	case content.CallSignal_HANGUP:
		if dev != 0 && dev != cs.FromDevice {
			return
		}
		switch {
		case !c.Outgoing && s.Reason == content.CallSignal_ANSWERED_ELSEWHERE:
			c.end(ErrAnsweredElsewhere)
		case !c.Outgoing && s.Reason == content.CallSignal_DECLINED_ELSEWHERE:
			c.end(ErrDeclinedElsewhere)
		case s.Reason == content.CallSignal_FAILED:
			// Our own failed handshake is the better reason: the peer's
			// report may simply have overtaken our transport's.
			c.mu.Lock()
			handshake := c.dtlsFailed.Load() && c.connectedAt.IsZero()
			c.mu.Unlock()
			if handshake {
				c.end(ErrFingerprintMismatch)
			} else {
				c.end(ErrPeerFailed)
			}
		case !c.Outgoing && st == StateRinging:
			c.end(ErrMissed)
		default:
			c.end(nil)
		}
	}
}

// connectionState follows the media connection.
func (c *Call) connectionState(s webrtc.PeerConnectionState) {
	c.m.log.Debug("call connection", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if err := c.checkFingerprint(); err != nil {
			c.failed(err)
			return
		}
		c.mu.Lock()
		if c.state == StateEnded || !c.connectedAt.IsZero() {
			c.mu.Unlock()
			return
		}
		c.state, c.connectedAt = StateActive, c.m.opts.Now()
		if c.lostTimer != nil {
			c.lostTimer.Stop()
		}
		c.heard()
		c.wg.Add(2)
		c.mu.Unlock()
		close(c.connected)
		go c.send()
		go c.watchMedia()
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		c.mu.Lock()
		active, ended := !c.connectedAt.IsZero(), c.state == StateEnded
		c.mu.Unlock()
		if ended {
			return // our own Close, or a failure already handled
		}
		// pion closes the connection itself when the DTLS connection
		// closes. On a live call that is the peer hanging up: the call
		// ends even if its HANGUP never comes (the relay may be down;
		// liveness.go). Before the call is live it is a failed handshake,
		// whose Closed can overtake the transport's Failed.
		closed := s == webrtc.PeerConnectionStateClosed
		if closed && active {
			c.peerClosed()
			return
		}
		if closed && !c.dtlsStarted.Load() {
			return
		}
		handshake := c.dtlsFailed.Load() || closed
		var why error
		switch {
		case active:
			why = ErrConnectionLost
		case handshake:
			// ICE found a path; the DTLS handshake on it failed: one side's
			// certificate is not the one the E2E signalling named.
			why = ErrFingerprintMismatch
		default:
			if c.fallBackToTURN() {
				return
			}
			why = ErrConnectionFailed
		}
		c.failed(why)
	}
}

// checkFingerprint makes sure the DTLS certificate pion accepted is the
// one whose fingerprint came in the end-to-end encrypted SDP (pion checks
// it during the handshake; this guards against that ever being disabled).
func (c *Call) checkFingerprint() error {
	c.mu.Lock()
	pc, want := c.pc, c.remoteFP
	c.mu.Unlock()
	if pc == nil || pc.SCTP() == nil {
		return ErrFingerprintMismatch
	}
	cert := pc.SCTP().Transport().GetRemoteCertificate()
	sum := sha256.Sum256(cert)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	got := strings.Join(parts, ":")
	if len(cert) == 0 || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrFingerprintMismatch
	}
	return nil
}

// failed ends the call on a media failure and tells the peer.
func (c *Call) failed(why error) {
	if c.State() == StateEnded {
		return
	}
	c.m.send(c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, ToDevice: c.PeerDevice(), Reason: content.CallSignal_FAILED})
	c.end(why)
}

func (c *Call) startRingTimer(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ringTimer = time.AfterFunc(d, func() {
		st := c.State()
		if st != StateDialing && st != StateRinging {
			return
		}
		if c.Outgoing {
			// Sent before the call ends, so that a caller exiting on
			// ErrNoAnswer (sotto call) has told the callee's devices:
			// they record a missed call, not one still ringing.
			ctx, cancel := context.WithTimeout(c.m.ctx, 15*time.Second)
			defer cancel()
			if err := c.m.hangupSignal(ctx, c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_HANGUP, Reason: content.CallSignal_TIMEOUT}); err != nil {
				c.m.log.Info("call signal not sent", "to", c.Peer, "kind", "HANGUP", "err", err)
			}
			c.end(ErrNoAnswer)
		} else {
			c.end(ErrMissed)
		}
	})
}

func (c *Call) stopRingTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ringTimer != nil {
		c.ringTimer.Stop()
	}
}

// startLostTimer ends a call whose media never connects.
func (c *Call) startLostTimer(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lostTimer != nil {
		c.lostTimer.Stop()
	}
	c.lostTimer = time.AfterFunc(d, func() {
		if c.State() == StateConnecting {
			c.failed(ErrConnectionFailed)
		}
	})
}

// end closes the call once, records it and tells the UI.
func (c *Call) end(why error) {
	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		return
	}
	prev := c.state
	c.state, c.err = StateEnded, why
	pc := c.pc
	if c.ringTimer != nil {
		c.ringTimer.Stop()
	}
	if c.lostTimer != nil {
		c.lostTimer.Stop()
	}
	if c.closeTimer != nil && c.closeTimer.Stop() {
		c.m.wg.Done() // its func, owned by the manager (peerClosed), will not run
	}
	var dur time.Duration
	if !c.connectedAt.IsZero() {
		last := c.m.opts.Now()
		if !c.closedAt.IsZero() && c.closedAt.Before(last) {
			last = c.closedAt // the audio ended then
		}
		dur = max(last.Sub(c.connectedAt), 0)
	}
	c.mu.Unlock()
	close(c.stop)
	if pc != nil {
		// Closing ends the RTCP reader and the OnTrack reader (pion
		// waits for its handlers).
		pc.Close()
	}
	c.wg.Wait()
	c.m.forget(c)
	rec := client.CallRecord{ID: c.ID, Outgoing: c.Outgoing, Duration: dur, Outcome: outcome(c.Outgoing, prev, dur, why)}
	if why != nil {
		rec.Reason = why.Error()
	}
	c.m.record(c.Peer, rec, c.started)
	close(c.done)
	if c.m.opts.OnEnd != nil {
		c.m.goOwned(func() { c.m.opts.OnEnd(c) })
	}
}

func outcome(outgoing bool, prev State, dur time.Duration, why error) string {
	switch {
	case errors.Is(why, ErrBusy):
		return "busy"
	case errors.Is(why, ErrRejected):
		return "rejected"
	case errors.Is(why, ErrDeclinedElsewhere):
		return "declined elsewhere"
	case errors.Is(why, ErrNoAnswer):
		return "no answer"
	case errors.Is(why, ErrMissed):
		return "missed"
	case errors.Is(why, ErrAnsweredElsewhere):
		return "answered elsewhere"
	case errors.Is(why, ErrCanceled):
		return "canceled"
	case why != nil:
		return "failed"
	case dur > 0:
		return "answered"
	case !outgoing && prev == StateRinging:
		return "missed"
	}
	return "ended"
}

// useAnswerCodec switches what we send to the best codec the callee's
// answer accepts (PCMU when the callee has no Opus), before the sender is
// bound to the negotiated codecs.
func (c *Call) useAnswerCodec(answer string) error {
	cd := chooseCodec(answer, c.m.opts.PCMUOnly)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cd.MimeType() == c.codec.MimeType() {
		return nil
	}
	track, err := webrtc.NewTrackLocalStaticSample(capability(cd), "audio", "sotto")
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	if err := c.sender.ReplaceTrack(track); err != nil {
		return fmt.Errorf("call: codec: %w", err)
	}
	c.codec, c.track = cd, track
	return nil
}

// Codec is the MIME type of the codec we send ("audio/opus" or
// "audio/PCMU"), final once the call is connecting.
func (c *Call) Codec() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.codec.MimeType()
}
