package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sotto/agent"
	"sotto/agent/api"
	"sotto/client"
)

// eventFeed reads an agent's event stream into a channel, which closes
// when the stream ends (the agent stopped, or ctx ended). stop closes the
// stream and waits for the reader.
func eventFeed(ctx context.Context, st *api.Stream) (events <-chan *api.Event, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan *api.Event, 64)
	done := make(chan struct{})
	go func() {
		// Owned by stop, which waits for it.
		defer close(done)
		defer close(ch)
		for {
			ev, err := st.Next()
			if err != nil {
				return
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, func() {
		cancel()
		st.Close()
		<-done
	}
}

// connWatch turns the agent's connection events into the lines listen and
// chat print (reconnection itself is the agent's).
type connWatch struct {
	e         *env
	connected bool // a connection was made
	lost      bool
}

// see handles a connection event; it returns an error that ends the
// command (a revoked device).
func (w *connWatch) see(ev *api.Event) error {
	if ev.Connected {
		if w.lost {
			fmt.Fprintln(w.e.stderr, "! reconnected")
		}
		w.connected, w.lost = true, false
		return nil
	}
	if ev.Error != nil && ev.Error.Kind == api.KindRevoked {
		return ev.Error
	}
	if !w.lost && w.connected {
		fmt.Fprintln(w.e.stderr, "! connection to the relay lost; reconnecting")
	}
	w.lost = true
	return nil
}

// endOfStream is why an event stream ended: the hosted agent's error, or
// the agent stopping.
func endOfStream(s *session) error {
	if s.host != nil {
		<-s.ran
		if s.runErr != nil && !errors.Is(s.runErr, agent.ErrStopped) {
			return s.runErr
		}
		return nil
	}
	return errors.New("the agent stopped")
}

func cmdListen(e *env, args []string) error {
	fs := e.flagSet("listen")
	asJSON := fs.Bool("json", false, "print messages as JSON lines")
	drain := fs.Bool("drain", false, "exit once the queued messages are processed")
	count := fs.Int("count", 0, "exit after `N` messages")
	timeout := fs.Duration("timeout", 0, "exit after this long")
	noAck := fs.Bool("no-ack", false, "do not acknowledge (messages will be redelivered): for testing")
	readyFile := fs.String("ready-file", "", "create `FILE` once connected (for scripts)")
	cf := addCallFlags(fs, true)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	calls, err := newListenCalls(e, cf)
	if err != nil {
		return err
	}
	ctx := e.ctx
	if *timeout > 0 {
		var cancel func()
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	cfg := e.agentConfig()
	cfg.NoAck = *noAck
	cfg.OnClientEvent = calls.handle
	s, err := e.hostOrJoin(cfg)
	if err != nil {
		return err
	}
	graceful := false
	defer func() {
		if graceful {
			s.finish()
		} else {
			s.close()
		}
	}()
	hosting := s.host != nil
	if !hosting && *noAck {
		return errors.New("listen --no-ack: the agent for this device already runs (stop it with sotto down)")
	}
	if hosting {
		defer calls.start(s.host.Client())()
	}
	// A hosted agent's events are all wanted (from its start); a running
	// agent's from now on: what it received earlier is in the history.
	st, err := s.api.Events(ctx, hosting, 0)
	if err != nil {
		return agentError(e, err)
	}
	defer st.Close()
	events, stopFeed := eventFeed(ctx, st)
	defer stopFeed()
	watch := &connWatch{e: e}
	ready := func() error {
		if *readyFile == "" {
			return nil
		}
		f := *readyFile
		*readyFile = ""
		return writeFileAtomic(f, nil)
	}
	if !hosting {
		status, err := s.api.Status(ctx)
		if err != nil {
			return agentError(e, err)
		}
		if status.Connected {
			watch.connected = true
			if err := ready(); err != nil {
				return err
			}
			if *drain && status.Idle {
				graceful = true
				return nil
			}
		} else if *drain {
			return errors.New("the agent is not connected to the relay (it keeps trying; sotto status shows it)")
		}
	}
	// A running agent that carries calls rings here: listen answers
	// through it (--auto-answer) and reports them.
	var agentCalls *agentCallWatch
	if !hosting {
		if agentCalls, err = newAgentCallWatch(e, s.api, cf); err != nil {
			return err
		}
	}
	n := 0
	var gnames map[string]string // group names, for group messages
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					graceful = e.ctx.Err() == nil
					return timedOut(e, *timeout, *count, n)
				}
				return endOfStream(s)
			}
			switch ev.Type {
			case api.EventConnection:
				if !ev.Connected && !watch.connected && hosting {
					// The first connection failed: say why, as a
					// command that cannot reach the relay does.
					if ev.Error != nil {
						return agentError(e, ev.Error)
					}
					return errors.New("cannot reach the relay")
				}
				if !ev.Connected && *drain {
					return errors.New("connection to the relay lost")
				}
				if err := watch.see(ev); err != nil {
					return err
				}
				if ev.Connected {
					if err := ready(); err != nil {
						return err
					}
				}
			case api.EventIdle:
				if *drain {
					graceful = true
					return nil
				}
			case api.EventLocked:
				fmt.Fprintln(e.stderr, "! the device locked itself after the idle timeout: unlock it with sotto unlock")
			case api.EventGroupMessage:
				if ev.GroupMessage == nil {
					continue
				}
				if gnames == nil {
					// Asked once (a request counts as use for the
					// idle lock), and again after a group changed.
					gnames = groupNames(e, s.api)
				}
				printGroupMessage(e, gnames, ev.GroupMessage, *asJSON)
				n++
				if *count > 0 && n >= *count {
					graceful = true
					return nil
				}
			case api.EventCallIncoming, api.EventCallConnected, api.EventCallEnded:
				if agentCalls.see(ev) {
					graceful = true
					return nil
				}
			case api.EventGroupUpdate, api.EventGroupRefused:
				gnames = nil
				printGroupNotice(e, ev)
			default:
				cev, ok := ev.Client()
				if !ok {
					continue
				}
				printEvent(e, cev, *asJSON)
				if cev.Kind == client.EventWiped {
					return errWiped
				}
				if cev.Kind == client.EventMessage {
					n++
					if *count > 0 && n >= *count {
						graceful = true
						return nil
					}
				}
			}
		case <-calls.finished():
			graceful = true
			return nil
		case <-ctx.Done():
			graceful = e.ctx.Err() == nil
			return timedOut(e, *timeout, *count, n)
		}
	}
}

// timedOut is how listen ends when its context did: nil when interrupted
// or at its --timeout, an error when --count messages did not come.
func timedOut(e *env, timeout time.Duration, count, n int) error {
	if e.ctx.Err() == nil && timeout > 0 && count > 0 {
		return fmt.Errorf("timed out after %d of %d messages", n, count)
	}
	return nil
}
