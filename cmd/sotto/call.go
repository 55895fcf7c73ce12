package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/call"
	"sotto/internal/safetext"
)

// callFlags are the audio and network flags shared by call and listen.
type callFlags struct {
	audioIn, audioOut string
	relayOnly         bool
	ringTimeout       time.Duration
	autoAnswer        bool
	mute              bool
	exitAfter         int
}

func addCallFlags(fs *flag.FlagSet, listen bool) *callFlags {
	f := &callFlags{}
	fs.StringVar(&f.audioIn, "audio-in", "", "play this WAV `FILE` (16-bit PCM mono, 8 or 48 kHz) into calls (default: silence)")
	fs.StringVar(&f.audioOut, "audio-out", "", "record what the peer says to this WAV `FILE` (16-bit PCM mono; 48 kHz over Opus, 8 kHz over G.711)")
	fs.BoolVar(&f.relayOnly, "relay-only", false, "send call media only through the relay's TURN server (the peer never learns your IP address)")
	fs.DurationVar(&f.ringTimeout, "ring-timeout", 45*time.Second, "give up on an unanswered call after this long")
	fs.BoolVar(&f.mute, "mute", false, "start calls muted (type m and Enter to toggle)")
	if listen {
		fs.BoolVar(&f.autoAnswer, "auto-answer", false, "answer incoming calls at once (headless devices)")
		fs.IntVar(&f.exitAfter, "exit-after-calls", 0, "exit once `N` calls have ended and their audio is saved (for scripts)")
	}
	return f
}

// callSession is the call manager of one command run.
type callSession struct {
	e     *env
	flags *callFlags
	m     *call.Manager
	pcm   []int16
	rate  uint32 // of pcm

	mu       sync.Mutex
	recs     map[*call.Call]*call.Recorder
	ended    int
	finished chan struct{} // closed after flags.exitAfter calls; nil without it
}

func newCallSession(e *env, f *callFlags) (*callSession, error) {
	s := &callSession{e: e, flags: f, recs: map[*call.Call]*call.Recorder{}}
	if f.exitAfter > 0 {
		s.finished = make(chan struct{})
	}
	if f.audioIn != "" {
		pcm, rate, err := call.ReadWAVFileRate(f.audioIn)
		if err != nil {
			return nil, err
		}
		s.pcm, s.rate = pcm, rate
	}
	s.m = call.NewManager(call.Options{
		Logger:      e.logger(),
		RelayOnly:   f.relayOnly,
		RingTimeout: f.ringTimeout,
		AutoAnswer:  f.autoAnswer,
		NewSource: func(c *call.Call) call.Source {
			c.SetMuted(f.mute)
			return call.NewPCMSourceRate(s.pcm, s.rate)
		},
		NewSink: func(c *call.Call) call.Sink {
			r := call.NewRecorder()
			s.mu.Lock()
			s.recs[c] = r
			s.mu.Unlock()
			return r
		},
		OnIncoming: func(c *call.Call) {
			if f.autoAnswer {
				fmt.Fprintf(e.stdout, "incoming call from %s: answering\n", safetext.Name(c.Peer))
			} else {
				fmt.Fprintf(e.stdout, "incoming call from %s (not answered: run sotto listen --auto-answer to answer)\n", safetext.Name(c.Peer))
			}
		},
		OnEnd: func(c *call.Call) { s.end(c) },
	})
	return s, nil
}

// end reports a call and saves its audio.
func (s *callSession) end(c *call.Call) {
	defer s.countEnded()
	if c.Err() != nil {
		fmt.Fprintf(s.e.stdout, "call with %s ended: %s\n", safetext.Name(c.Peer), safetext.Line(strings.TrimPrefix(c.Err().Error(), "call: ")))
	} else {
		fmt.Fprintf(s.e.stdout, "call with %s ended after %s\n", safetext.Name(c.Peer), c.Duration().Round(time.Second))
	}
	s.mu.Lock()
	r := s.recs[c]
	delete(s.recs, c)
	s.mu.Unlock()
	if s.flags.audioOut != "" && r != nil && c.Duration() > 0 {
		var buf bytes.Buffer
		rate := r.Rate()
		if rate == 0 {
			rate = 8000
		}
		err := call.WriteWAV(&buf, r.PCM(), rate)
		if err == nil {
			err = writeFileAtomic(s.flags.audioOut, buf.Bytes())
		}
		if err != nil {
			fmt.Fprintf(s.e.stderr, "sotto: %s\n", errText(err))
		}
	}
}

// cmdCall places a call: sotto call USER [--duration D] ...
func cmdCall(e *env, args []string) error {
	fs := e.flagSet("call")
	f := addCallFlags(fs, false)
	duration := fs.Duration("duration", 0, "hang up after this long once connected (0: Ctrl-C or q to hang up)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	if js, err := e.join(); err != nil {
		return err
	} else if js != nil {
		defer js.close()
		return callThroughAgent(e, js.api, pos[0], f, *duration)
	}
	s, err := newCallSession(e, f)
	if err != nil {
		return err
	}
	c, err := e.connect(true, s.m.HandleEvent)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.AllowedByPolicy(e.ctx, client.FeatureCalls); err != nil {
		return fmt.Errorf("cannot call %s: %w", pos[0], err)
	}
	s.m.Start(c)
	defer s.m.Close()
	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt)
	defer stop()
	fmt.Fprintf(e.stdout, "calling %s...\n", pos[0])
	cl, err := s.m.Dial(ctx, pos[0])
	if err != nil {
		return err
	}
	keys := readKeys(e)
	var timer <-chan time.Time
	connected := cl.Connected()
	for {
		select {
		case <-connected:
			connected = nil
			how := "directly"
			if l, r, err := cl.CandidatePair(); err == nil {
				how = fmt.Sprintf("%s -> %s", l, r)
			}
			fmt.Fprintf(e.stdout, "connected (%s, %s, end-to-end encrypted; m+Enter: mute, q+Enter: hang up)\n", how, call.CodecName(cl.Codec()))
			if *duration > 0 {
				timer = time.After(*duration)
			}
		case k := <-keys:
			switch k {
			case "m":
				cl.SetMuted(!cl.Muted())
				fmt.Fprintf(e.stdout, "muted: %v\n", cl.Muted())
			case "q":
				hangup(cl)
			}
		case <-timer:
			hangup(cl)
		case <-ctx.Done():
			hangup(cl)
		case <-cl.Done():
			// OnEnd reports it (s.m.Close waits for that).
			if err := cl.Err(); err != nil && !errors.Is(err, call.ErrCanceled) {
				return err
			}
			return nil
		}
	}
}

// countEnded closes s.finished once the wanted number of calls has ended.
func (s *callSession) countEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended++
	if s.finished != nil && s.ended == s.flags.exitAfter {
		close(s.finished)
	}
}

func hangup(cl *call.Call) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl.Hangup(ctx)
}

// readKeys delivers lines typed on stdin (an interactive terminal only).
func readKeys(e *env) <-chan string {
	ch := make(chan string)
	f, ok := e.stdin.(*os.File)
	if !ok {
		return ch
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return ch
	}
	go func() { // ends with the process: stdin cannot be unblocked
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ch <- strings.TrimSpace(sc.Text())
		}
	}()
	return ch
}

// listenCalls is sotto listen's call handling: created before the client
// (it receives its events), started once connected.
type listenCalls struct {
	s *callSession
}

func (l *listenCalls) handle(ev client.Event) {
	if l != nil && l.s != nil {
		l.s.m.HandleEvent(ev)
	}
}

func (l *listenCalls) start(c *client.Client) func() {
	if l == nil || l.s == nil {
		return func() {}
	}
	l.s.m.Start(c)
	return l.s.m.Close
}

// finished is closed once --exit-after-calls calls have ended (nil, so
// never ready, without the flag).
func (l *listenCalls) finished() <-chan struct{} {
	if l == nil || l.s == nil {
		return nil
	}
	return l.s.finished
}

func newListenCalls(e *env, f *callFlags) (*listenCalls, error) {
	s, err := newCallSession(e, f)
	if err != nil {
		return nil, err
	}
	return &listenCalls{s: s}, nil
}

// agentCallWatch is listen's call handling as a client of a running agent
// that carries calls (sotto up): the calls ring in the agent; listen
// reports them, answers them through the API with --auto-answer (its
// audio files handed to the agent by absolute path), and counts them for
// --exit-after-calls.
type agentCallWatch struct {
	e     *env
	api   *api.Client
	flags *callFlags
	in    string // absolute paths of --audio-in, --audio-out
	out   string
	ended int
}

func newAgentCallWatch(e *env, cl *api.Client, f *callFlags) (*agentCallWatch, error) {
	w := &agentCallWatch{e: e, api: cl, flags: f}
	var err error
	if f.audioIn != "" {
		if w.in, err = filepath.Abs(f.audioIn); err != nil {
			return nil, err
		}
	}
	if f.audioOut != "" {
		if w.out, err = filepath.Abs(f.audioOut); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// see handles a call event; it reports whether --exit-after-calls calls
// have ended.
func (w *agentCallWatch) see(ev *api.Event) bool {
	c := ev.Call
	if w == nil || c == nil {
		return false
	}
	peer := safetext.Name(c.Peer)
	switch ev.Type {
	case api.EventCallIncoming:
		if !w.flags.autoAnswer {
			fmt.Fprintf(w.e.stdout, "incoming call from %s (not answered: run sotto listen --auto-answer to answer)\n", peer)
			return false
		}
		fmt.Fprintf(w.e.stdout, "incoming call from %s: answering\n", peer)
		if _, err := w.api.Answer(w.e.ctx, c.ID, api.AnswerRequest{AudioIn: w.in, AudioOut: w.out, Muted: w.flags.mute}); err != nil {
			fmt.Fprintf(w.e.stderr, "sotto: answering: %s\n", errText(err))
		}
	case api.EventCallEnded:
		if c.Error != nil {
			fmt.Fprintf(w.e.stdout, "call with %s ended: %s\n", peer, safetext.Line(strings.TrimPrefix(c.Error.Message, "call: ")))
		} else {
			fmt.Fprintf(w.e.stdout, "call with %s ended after %s\n", peer, time.Duration(c.DurationSeconds)*time.Second)
		}
		w.ended++
		return w.flags.exitAfter > 0 && w.ended >= w.flags.exitAfter
	}
	return false
}

// callThroughAgent places a call through the running agent (sotto up),
// which carries it: its media runs there, with the audio files handed to
// it by absolute path.
func callThroughAgent(e *env, cl *api.Client, user string, f *callFlags, duration time.Duration) error {
	w, err := newAgentCallWatch(e, cl, f)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt)
	defer stop()
	st, err := cl.Events(ctx, false, 0)
	if err != nil {
		return agentError(e, err)
	}
	events, stopFeed := eventFeed(ctx, st)
	defer stopFeed()
	fmt.Fprintf(e.stdout, "calling %s...\n", user)
	c, err := cl.Dial(ctx, api.DialRequest{User: user, AudioIn: w.in, AudioOut: w.out, Muted: f.mute})
	if err != nil {
		return agentError(e, err)
	}
	hang := func() {
		hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cl.Hangup(hctx, c.ID)
	}
	keys := readKeys(e)
	var timer <-chan time.Time
	muted := f.mute
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("the agent stopped")
			}
			if ev.Call == nil || string(ev.Call.ID) != string(c.ID) {
				continue
			}
			switch ev.Type {
			case api.EventCallConnected:
				fmt.Fprintf(e.stdout, "connected (through the agent, end-to-end encrypted; m+Enter: mute, q+Enter: hang up)\n")
				if duration > 0 {
					timer = time.After(duration)
				}
			case api.EventCallEnded:
				w.see(ev)
				if ce := ev.Call.Error; ce != nil && ev.Call.Reason != "canceled" {
					return errors.New(strings.TrimPrefix(ce.Message, "call: "))
				}
				return nil
			}
		case k := <-keys:
			switch k {
			case "m":
				muted = !muted
				if _, err := cl.Mute(e.ctx, c.ID, muted); err == nil {
					fmt.Fprintf(e.stdout, "muted: %v\n", muted)
				}
			case "q":
				hang()
			}
		case <-timer:
			hang()
		case <-ctx.Done():
			hang()
			fmt.Fprintf(e.stdout, "call with %s ended\n", safetext.Name(user))
			return nil
		}
	}
}
