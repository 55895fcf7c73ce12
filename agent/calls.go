package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/call"
)

// The agent carries the device's 1:1 calls when Config.Calls is set: it
// runs a call manager (client/call) fed by the client core's call
// signals, publishes each call's course as events (call_incoming,
// call_connected, call_ended) and serves /v1/calls (dial, answer, reject,
// hang up, mute). The media runs in the agent's process: its audio is a
// WAV file a request names, or silence, and what the peer says is
// recorded to a WAV file a request names, or dropped.

// calls is the agent's call manager and what it keeps per call.
type calls struct {
	m *call.Manager

	mu    sync.Mutex
	audio map[*call.Call]*callAudio
	// wg counts the watchers of calls (one per call, until it ends);
	// Agent.Close waits for them after closing the manager, which ends
	// every call.
	wg sync.WaitGroup
}

// callAudio is a call's audio, set when it is dialled or answered
// (before that, and without a file: silence, and nothing recorded).
type callAudio struct {
	mu  sync.Mutex
	src call.Source
	rec *call.Recorder
	out string // where rec goes when the call ends
	// watched: a watcher follows the call (and forgets it at its end).
	watched bool
}

func (ca *callAudio) ReadFrame(frame []int16) bool {
	ca.mu.Lock()
	src := ca.src
	ca.mu.Unlock()
	if src == nil {
		clear(frame)
		return true
	}
	return src.ReadFrame(frame)
}

func (ca *callAudio) WriteFrame(pcm []int16) {
	ca.mu.Lock()
	rec := ca.rec
	ca.mu.Unlock()
	if rec != nil {
		rec.WriteFrame(pcm)
	}
}

// set gives the call the audio a request named.
func (ca *callAudio) set(in, out string) error {
	var src call.Source
	if in != "" {
		pcm, rate, err := call.ReadWAVFileRate(in)
		if err != nil {
			return badRequest("audio_in: %v", err)
		}
		src = call.NewPCMSourceRate(pcm, rate)
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if src != nil {
		ca.src = src
	}
	if out != "" {
		ca.rec, ca.out = call.NewRecorder(), out
	}
	return nil
}

// save writes what was recorded, if a request asked for it.
func (ca *callAudio) save() error {
	ca.mu.Lock()
	rec, out := ca.rec, ca.out
	ca.mu.Unlock()
	if rec == nil || out == "" {
		return nil
	}
	rate := rec.Rate()
	if rate == 0 {
		rate = 8000
	}
	var buf bytes.Buffer
	if err := call.WriteWAV(&buf, rec.PCM(), rate); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// newCalls makes the call manager of a (Open, when cfg.Calls is set).
func (a *Agent) newCalls(opts call.Options) *calls {
	cs := &calls{audio: map[*call.Call]*callAudio{}}
	if opts.Logger == nil {
		opts.Logger = a.log
	}
	opts.AutoAnswer = false // a front end answers, through the API
	opts.NewSource = func(c *call.Call) call.Source { return cs.audioOf(c) }
	opts.NewSink = func(c *call.Call) call.Sink { return cs.audioOf(c) }
	opts.OnIncoming = func(c *call.Call) {
		a.publishCall(api.EventCallIncoming, c)
		cs.watch(a, c)
	}
	opts.OnEnd = nil // the watcher reports the end
	cs.m = call.NewManager(opts)
	return cs
}

// prune forgets the audio of calls that ended with no watcher (a dial
// that failed).
func (cs *calls) prune() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c, ca := range cs.audio {
		if !ca.watched && c.State() == call.StateEnded {
			delete(cs.audio, c)
		}
	}
}

func (cs *calls) audioOf(c *call.Call) *callAudio {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ca := cs.audio[c]
	if ca == nil {
		ca = &callAudio{}
		cs.audio[c] = ca
	}
	return ca
}

// watch publishes c's connection and end, saves its recording and
// forgets it.
func (cs *calls) watch(a *Agent, c *call.Call) {
	ca := cs.audioOf(c)
	cs.mu.Lock()
	ca.watched = true
	cs.mu.Unlock()
	cs.wg.Add(1)
	go func() {
		// Owned by calls: Agent.Close closes the manager (every call
		// ends), then waits.
		defer cs.wg.Done()
		select {
		case <-c.Connected():
			a.publishCall(api.EventCallConnected, c)
		case <-c.Done():
		}
		<-c.Done()
		if err := ca.save(); err != nil {
			a.log.Warn("call recording not saved", "err", err)
		}
		cs.mu.Lock()
		delete(cs.audio, c)
		cs.mu.Unlock()
		a.publishCall(api.EventCallEnded, c)
	}()
}

func (a *Agent) publishCall(typ string, c *call.Call) {
	a.events.publish(api.Event{Type: typ, Call: callOf(c)})
}

// callOf describes c for the API.
func callOf(c *call.Call) *api.Call {
	out := &api.Call{ID: c.ID, Peer: c.Peer, PeerDevice: c.PeerDevice(), Outgoing: c.Outgoing, State: c.State().String(),
		Muted: c.Muted(), DurationSeconds: int64(c.Duration() / time.Second)}
	if c.State() == call.StateEnded {
		if err := c.Err(); err != nil {
			out.Error = &api.Error{Kind: api.KindInternal, Message: err.Error()}
			for _, r := range callReasons {
				if errors.Is(err, r.err) {
					out.Reason = r.reason
				}
			}
		}
	}
	return out
}

// callReasons name the ends of calls a front end shows differently.
var callReasons = []struct {
	err    error
	reason string
}{
	{call.ErrBusy, "busy"},
	{call.ErrRejected, "rejected"},
	{call.ErrNoAnswer, "no_answer"},
	{call.ErrMissed, "missed"},
	{call.ErrAnsweredElsewhere, "answered_elsewhere"},
	{call.ErrDeclinedElsewhere, "declined_elsewhere"},
	{call.ErrCanceled, "canceled"},
	{call.ErrFingerprintMismatch, "fingerprint_mismatch"},
	{call.ErrConnectionFailed, "connection_failed"},
	{call.ErrConnectionLost, "connection_lost"},
	{call.ErrPeerFailed, "peer_failed"},
	{call.ErrUnverified, "unverified"},
}

var errNoCalls = &api.Error{Kind: api.KindUnavailable, Message: "agent: this agent does not carry calls (a front end hosting it runs them: sotto listen, sotto call)"}

func routeCalls(mux *http.ServeMux, h *handler) {
	p := api.Prefix
	mux.HandleFunc("GET "+p+"/calls", h.device(h.callList))
	mux.HandleFunc("POST "+p+"/calls", h.online(h.callDial))
	mux.HandleFunc("POST "+p+"/calls/{id}/answer", h.online(h.callAnswer))
	mux.HandleFunc("POST "+p+"/calls/{id}/reject", h.online(h.callReject))
	mux.HandleFunc("POST "+p+"/calls/{id}/hangup", h.online(h.callHangup))
	mux.HandleFunc("POST "+p+"/calls/{id}/mute", h.device(h.callMute))
}

func (h *handler) callManager() (*calls, error) {
	if h.a.calls == nil {
		return nil, errNoCalls
	}
	return h.a.calls, nil
}

func (h *handler) findCall(r *http.Request) (*calls, *call.Call, error) {
	cs, err := h.callManager()
	if err != nil {
		return nil, nil, err
	}
	id, err := pathID(r)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cs.m.Calls() {
		if bytes.Equal(c.ID, id) {
			return cs, c, nil
		}
	}
	return nil, nil, &api.Error{Kind: api.KindNotFound, Message: "agent: no such call (it ended, or never rang here)"}
}

func audioPaths(in, out string) error {
	if (in != "" && !filepath.IsAbs(in)) || (out != "" && !filepath.IsAbs(out)) {
		return badRequest("audio_in and audio_out must be absolute paths")
	}
	return nil
}

func (h *handler) callList(*http.Request, *client.Client) (any, error) {
	cs, err := h.callManager()
	if err != nil {
		return nil, err
	}
	out := api.CallsAnswer{Calls: []*api.Call{}}
	for _, c := range cs.m.Calls() {
		out.Calls = append(out.Calls, callOf(c))
	}
	return out, nil
}

func (h *handler) callDial(r *http.Request, _ *client.Client) (any, error) {
	cs, err := h.callManager()
	if err != nil {
		return nil, err
	}
	var req api.DialRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := audioPaths(req.AudioIn, req.AudioOut); err != nil {
		return nil, err
	}
	if req.User == "" {
		return nil, badRequest("missing user")
	}
	// The audio file is read before the call starts: a bad one is
	// refused with nothing sent.
	pre := &callAudio{}
	if err := pre.set(req.AudioIn, req.AudioOut); err != nil {
		return nil, err
	}
	c, err := cs.m.Dial(r.Context(), req.User)
	if err != nil {
		cs.prune()
		if errors.Is(err, call.ErrInCall) {
			return nil, &api.Error{Kind: api.KindBadRequest, Message: err.Error()}
		}
		return nil, err
	}
	ca := cs.audioOf(c)
	ca.mu.Lock()
	ca.src, ca.rec, ca.out = pre.src, pre.rec, pre.out
	ca.mu.Unlock()
	c.SetMuted(req.Muted)
	cs.watch(h.a, c)
	return api.CallAnswer{Call: callOf(c)}, nil
}

func (h *handler) callAnswer(r *http.Request, _ *client.Client) (any, error) {
	cs, c, err := h.findCall(r)
	if err != nil {
		return nil, err
	}
	var req api.AnswerRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := audioPaths(req.AudioIn, req.AudioOut); err != nil {
		return nil, err
	}
	if err := cs.audioOf(c).set(req.AudioIn, req.AudioOut); err != nil {
		return nil, err
	}
	c.SetMuted(req.Muted)
	if err := c.Answer(r.Context()); err != nil {
		return nil, &api.Error{Kind: api.KindBadRequest, Message: err.Error()}
	}
	return api.CallAnswer{Call: callOf(c)}, nil
}

func (h *handler) callReject(r *http.Request, _ *client.Client) (any, error) {
	_, c, err := h.findCall(r)
	if err != nil {
		return nil, err
	}
	if err := c.Reject(r.Context()); err != nil {
		return nil, &api.Error{Kind: api.KindBadRequest, Message: err.Error()}
	}
	return nil, nil
}

func (h *handler) callHangup(r *http.Request, _ *client.Client) (any, error) {
	_, c, err := h.findCall(r)
	if err != nil {
		return nil, err
	}
	if err := c.Hangup(r.Context()); err != nil {
		return nil, fmt.Errorf("agent: hang-up not delivered (the call ended here): %w", err)
	}
	return nil, nil
}

func (h *handler) callMute(r *http.Request, _ *client.Client) (any, error) {
	_, c, err := h.findCall(r)
	if err != nil {
		return nil, err
	}
	var req api.MuteRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	c.SetMuted(req.Muted)
	return api.CallAnswer{Call: callOf(c)}, nil
}
