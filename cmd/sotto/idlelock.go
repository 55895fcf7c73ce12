package main

import (
	"errors"
	"fmt"
	"time"

	"sotto/agent/api"
)

// The idle lock of sotto chat's line mode: after the org policy's idle
// lock timeout without a line typed, the chat locks the agent (the store's
// keys leave its memory, the relay connection closes); when the agent
// reports itself locked (for this reason or its own idle lock), the screen
// is cleared and the next lines are read as the passphrase until one
// unlocks it.
//
// In line mode the passphrase is read as an ordinary line: line mode is
// for pipes and scripts; on a terminal the full-screen chat is the default.

// idleTimer fires after the idle lock timeout without user input; it never
// fires when the policy sets none.
type idleTimer struct {
	d time.Duration
	t *time.Timer
}

func newIdleTimer(d time.Duration) *idleTimer {
	if d <= 0 {
		return &idleTimer{}
	}
	return &idleTimer{d: d, t: time.NewTimer(d)}
}

// C is the channel to select on (nil: never fires).
func (i *idleTimer) C() <-chan time.Time {
	if i.t == nil {
		return nil
	}
	return i.t.C
}

// Reset restarts the countdown after user input.
func (i *idleTimer) Reset() {
	if i.t != nil {
		i.t.Reset(i.d)
	}
}

func (i *idleTimer) Stop() {
	if i.t != nil {
		i.t.Stop()
	}
}

// clearScreen clears a terminal (ANSI); elsewhere it is two harmless
// control sequences.
const clearScreen = "\x1b[2J\x1b[H"

// locked shows the lock screen and reads passphrases from lines until one
// unlocks the agent, then shows the recent history again. Events that
// come meanwhile are dropped: what they report is in the history.
func (ch *lineChat) locked(lines <-chan string, events <-chan *api.Event, idle time.Duration) error {
	e := ch.e
	fmt.Fprint(e.stdout, clearScreen)
	if idle > 0 {
		fmt.Fprintf(e.stdout, "locked after %v without input: enter the passphrase to unlock\n", idle)
	} else {
		fmt.Fprintln(e.stdout, "locked: enter the passphrase to unlock")
	}
	for {
		var line string
		select {
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			line = l
		case _, ok := <-events:
			if !ok {
				return endOfStream(ch.s)
			}
			continue
		case <-e.ctx.Done():
			return nil
		}
		if line == "" {
			continue
		}
		pass := []byte(line)
		err := ch.s.api.Unlock(e.ctx, pass)
		clear(pass)
		var ae *api.Error
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.Kind == api.KindWrongPassphrase:
			fmt.Fprintln(e.stdout, errText(agentError(e, err)))
			continue
		default:
			return agentError(e, err)
		}
		fmt.Fprint(e.stdout, clearScreen)
		fmt.Fprintln(e.stdout, "unlocked")
		clear(ch.shown)
		return ch.history()
	}
}
