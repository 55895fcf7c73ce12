package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/internal/safetext"
)

func cmdChat(e *env, args []string) error {
	fs := e.flagSet("chat")
	line := fs.Bool("line", false, "line mode (the default when not on a terminal)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if !*line && isTerminal(e.stdout) && isTerminalIn(e.stdin) && len(pos) <= 1 {
		return runTUI(e, strings.Join(pos, ""))
	}
	if len(pos) != 1 {
		return errUsage
	}
	return chatLines(e, pos[0])
}

// lineChat is the chat's line mode: a client of the device's agent
// (hosted here when none runs).
type lineChat struct {
	e     *env
	s     *session
	peer  string
	shown map[string]bool // message ids already printed (history, then events)
}

func chatLines(e *env, peer string) error {
	ctx := e.ctx
	s, err := e.hostOrJoin(e.agentConfig())
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
	status, err := s.api.Status(ctx)
	if err != nil {
		return agentError(e, err)
	}
	// The stream first, so that nothing falls between the history and it.
	stream, err := s.api.Events(ctx, s.host != nil, 0)
	if err != nil {
		return agentError(e, err)
	}
	defer stream.Close()
	events, stopFeed := eventFeed(ctx, stream)
	defer stopFeed()
	ch := &lineChat{e: e, s: s, peer: peer, shown: map[string]bool{}}
	if err := ch.history(); err != nil {
		return err
	}
	watch := &connWatch{e: e, connected: status.Connected}
	// Show what was queued before taking input.
	for backlog := !status.Idle; backlog; {
		select {
		case ev, ok := <-events:
			if !ok {
				return endOfStream(s)
			}
			switch ev.Type {
			case api.EventIdle:
				backlog = false
			case api.EventConnection:
				if !ev.Connected && !watch.connected {
					backlog = false // offline: the history is what there is
				}
				if err := watch.see(ev); err != nil {
					return err
				}
			default:
				if stop, err := ch.show(ev); stop {
					return err
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
	lines := make(chan string)
	go func() {
		// Owned by chat: ends at EOF; a blocked read ends with the process.
		defer close(lines)
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	// The policy in force is known once connected.
	if status, err = s.api.Status(ctx); err != nil {
		return agentError(e, err)
	}
	idle := newIdleTimer(time.Duration(status.IdleLockSeconds) * time.Second) // idlelock.go
	defer idle.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				graceful = true
				return nil
			}
			idle.Reset()
			if strings.TrimSpace(line) == "" {
				continue
			}
			a, err := s.api.Send(ctx, peer, line, nil)
			if err != nil {
				fmt.Fprintf(e.stderr, "! not sent: %s\n", errText(agentError(e, err)))
				continue
			}
			ch.shown[hex.EncodeToString(a.Message.ID)] = true
			noteDowngrade(e, a, peer)
		case ev, ok := <-events:
			if !ok {
				return endOfStream(s)
			}
			switch ev.Type {
			case api.EventConnection:
				if err := watch.see(ev); err != nil {
					return err
				}
			case api.EventLocked:
				if err := ch.locked(lines, events, idle.d); err != nil {
					return err
				}
				idle.Reset()
			default:
				if stop, err := ch.show(ev); stop {
					return err
				}
			}
		case <-idle.C():
			// The agent locks; its locked event brings the lock screen.
			if err := s.api.Lock(ctx); err != nil {
				fmt.Fprintf(e.stderr, "! lock: %s\n", errText(err))
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// history prints the recent history with the peer.
func (ch *lineChat) history() error {
	hist, err := ch.s.api.History(ch.e.ctx, ch.peer, 20)
	if err != nil {
		return agentError(ch.e, err)
	}
	for _, m := range hist {
		ch.shown[hex.EncodeToString(m.ID)] = true
		printMessage(ch.e, m.Client(), false)
	}
	return nil
}

// show prints an event of the chat; a message from the peer is shown, so
// it is acknowledged with a read receipt. It reports whether the chat
// ends (a wipe).
func (ch *lineChat) show(ev *api.Event) (bool, error) {
	e := ch.e
	cev, ok := ev.Client()
	if !ok {
		return false, nil
	}
	if cev.Kind == client.EventMessage {
		id := hex.EncodeToString(cev.Message.ID)
		if ch.shown[id] {
			return false, nil
		}
		ch.shown[id] = true
		if cev.Message.Peer != ch.peer {
			fmt.Fprintf(e.stderr, "(new message from %s)\n", safetext.Name(cev.Message.From))
			return false, nil
		}
	}
	printEvent(e, cev, false)
	if cev.Kind == client.EventWiped {
		return true, errWiped
	}
	if cev.Kind == client.EventMessage && !cev.Message.Outgoing {
		if err := ch.s.api.MarkRead(e.ctx, ch.peer, cev.Message.ID); err != nil {
			fmt.Fprintf(e.stderr, "! read receipt not sent: %s\n", errText(err))
		}
	}
	return false, nil
}
