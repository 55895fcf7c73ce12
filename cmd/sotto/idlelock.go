package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sotto/client"
	"sotto/client/store"
)

// The idle lock of sotto chat's line mode: after the org policy's idle
// lock timeout without a line typed, the screen is cleared, the client
// locked (the store's keys zeroed, the relay connection closed) and the
// next lines are read as the passphrase until one unlocks it.
//
// In line mode the passphrase is read as an ordinary line: line mode is
// for pipes and scripts; on a terminal the full-screen chat is the default.

// idleTimer fires after the idle lock timeout without user input; it never
// fires when the policy sets none.
type idleTimer struct {
	d time.Duration
	t *time.Timer
}

func newIdleTimer(ctx context.Context, c *client.Client) *idleTimer {
	d, err := c.IdleLockTimeout(ctx)
	if err != nil || d <= 0 {
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

// lockLine locks c and reads passphrases from lines until one unlocks it,
// then reconnects and shows the recent history with peer again.
func lockLine(ctx context.Context, e *env, c *client.Client, peer string, lines <-chan string, events <-chan client.Event, idle time.Duration) error {
	// Lock waits for the receive loop, which may be waiting to hand over
	// an event: take them meanwhile (they are stored; the history shown
	// after the unlock includes them).
	locked := make(chan struct{})
	go func() {
		defer close(locked)
		c.Lock()
	}()
	for waiting := true; waiting; {
		select {
		case <-locked:
			waiting = false
		case <-events:
		}
	}
	fmt.Fprint(e.stdout, clearScreen)
	fmt.Fprintf(e.stdout, "locked after %v without input: enter the passphrase to unlock\n", idle)
	for {
		var line string
		var ok bool
		select {
		case line, ok = <-lines:
			if !ok {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
		if line == "" {
			continue
		}
		pass := []byte(line)
		err := c.Unlock(ctx, pass)
		clear(pass)
		var ae *store.AttemptsError
		switch {
		case err == nil:
		case errors.As(err, &ae):
			fmt.Fprintf(e.stdout, "wrong passphrase (%d attempts left before this device wipes itself)\n", ae.Left)
			continue
		case errors.Is(err, store.ErrWrongPassphrase):
			fmt.Fprintln(e.stdout, "wrong passphrase")
			continue
		case errors.Is(err, store.ErrWipedAfterFailures):
			return errors.New("too many wrong passphrases: this device's keys and history were wiped")
		case errors.Is(err, store.ErrNoStore):
			return e.noDevice() // the duress passphrase: as on a fresh device
		default:
			return err
		}
		fmt.Fprint(e.stdout, clearScreen)
		fmt.Fprintln(e.stdout, "unlocked")
		if hist, err := c.History(ctx, peer, 20); err == nil {
			for _, m := range hist {
				printMessage(e, m, false)
			}
		}
		if err := c.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
			return reconnect(ctx, e, c, client.ConnectOptions{Receive: true})
		}
		return nil
	}
}
