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
	"strings"
	"sync"
	"time"

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
