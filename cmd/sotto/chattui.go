package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/term"

	"sotto/client"
	"sotto/client/store"
	"sotto/cmd/sotto/internal/tui"
)

// runTUI runs the terminal chat app, opening peer's conversation first
// when peer is not empty.
func runTUI(e *env, peer string) error {
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	events := make(chan client.Event, 64)
	c, err := e.open(func(ev client.Event) {
		select {
		case events <- ev:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return err
	}
	// Closed after cancel (deferred calls run last-in first-out), so the
	// receive loop never blocks on a full channel while closing.
	defer closeAfterReceipts(e, c)
	if err := c.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
		return err
	}
	idle, _ := c.IdleLockTimeout(ctx) // unreadable policy: no idle lock
	m := tui.New(ctx, c, tui.Options{Peer: peer, Events: events, QR: qrString, Notices: c,
		Reconnect: func(ctx context.Context) error { return reconnectQuietly(ctx, c) }, IdleLock: idle})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(e.stdin), tea.WithOutput(e.stdout))
	_, err = p.Run()
	cancel()
	switch ferr := m.Fatal(); {
	case errors.Is(ferr, store.ErrNoStore):
		return e.noDevice() // the duress passphrase at the lock screen
	case errors.Is(ferr, store.ErrWipedAfterFailures):
		return errors.New("too many wrong passphrases: this device's keys and history were wiped")
	case ferr != nil:
		return ferr
	}
	if errors.Is(err, tea.ErrProgramKilled) && e.ctx.Err() != nil {
		return nil
	}
	return err
}

// reconnectQuietly is reconnect without messages on stderr (the screen
// belongs to the app), backing off up to 30s between attempts.
func reconnectQuietly(ctx context.Context, c *client.Client) error {
	c.Disconnect()
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		err := c.Connect(ctx, client.ConnectOptions{Receive: true})
		if err == nil || errors.Is(err, client.ErrRevoked) {
			return err
		}
	}
}

func qrString(data string) string {
	var b strings.Builder
	if err := writeQR(&b, data); err != nil {
		return "(no QR code: " + err.Error() + ")"
	}
	return b.String()
}

// isTerminalIn reports whether r is a terminal.
func isTerminalIn(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
