package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/term"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/call"
	"sotto/client/store"
	"sotto/cmd/sotto/internal/tui"
)

// runTUI runs the terminal chat app, opening peer's conversation first
// when peer is not empty. It is a client of the device's agent (hosted
// here when none runs).
func runTUI(e *env, peer string) error {
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	cfg := e.agentConfig()
	// The app's own agent carries the device's calls: they ring in the
	// app, and sotto call beside it goes through it.
	cfg.Calls = &call.Options{Logger: e.logger()}
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
	stream, err := s.api.Events(ctx, s.host != nil, 0)
	if err != nil {
		return agentError(e, err)
	}
	defer stream.Close()
	feed, stopFeed := eventFeed(ctx, stream)
	defer stopFeed()
	if s.host != nil {
		// As the app did before it had an agent: connected first (the
		// policy in force, with its idle lock, comes with it), or the
		// reason why not.
		if err := firstConnection(e, feed); err != nil {
			return err
		}
	}
	st, err := s.api.Status(ctx)
	if err != nil {
		return agentError(e, err)
	}
	events := make(chan client.Event, 64)
	callEvents := make(chan tui.CallMsg, 16)
	converted := make(chan struct{})
	defer func() {
		cancel()
		stopFeed()
		<-converted
	}()
	go func() {
		// Owned by runTUI, which waits for it: ends with the feed.
		defer close(converted)
		defer close(events)
		defer close(callEvents)
		for ev := range feed {
			if cm, ok := callMsg(ev); ok {
				select {
				case callEvents <- cm:
				case <-ctx.Done():
					return
				}
				continue
			}
			cev, ok := ev.Client()
			if !ok {
				cev, ok = groupEvent(ev)
			}
			if ok {
				select {
				case events <- cev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	dev := &agentDevice{ctx: ctx, api: s.api, user: st.User, dialed: make(chan tui.CallMsg, 4)}
	go func() {
		// Owned by runTUI: ends with ctx. Calls placed from the app join
		// the agent's events.
		for {
			select {
			case cm := <-dev.dialed:
				select {
				case callEvents <- cm:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	m := tui.New(ctx, dev, tui.Options{Peer: peer, Events: events, QR: qrString, Notices: dev,
		IdleLock: time.Duration(st.IdleLockSeconds) * time.Second, Calls: dev, CallEvents: callEvents})
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
	graceful = err == nil
	return err
}

// firstConnection waits for a hosted agent's first connection event: nil
// once connected, the reason when it could not connect.
func firstConnection(e *env, feed <-chan *api.Event) error {
	for ev := range feed {
		if ev.Type != api.EventConnection {
			continue
		}
		if ev.Connected {
			return nil
		}
		if ev.Error != nil {
			return agentError(e, ev.Error)
		}
		return errors.New("cannot reach the relay")
	}
	if e.ctx.Err() != nil {
		return e.ctx.Err()
	}
	return errors.New("the agent stopped")
}

// agentDevice is the chat app's device (tui.Device): the agent's API.
type agentDevice struct {
	ctx    context.Context
	api    *api.Client
	user   string
	dialed chan tui.CallMsg // calls placed from the app
}

// callMsg is the chat app's view of a call event of the agent's.
func callMsg(ev *api.Event) (tui.CallMsg, bool) {
	switch ev.Type {
	case api.EventCallIncoming, api.EventCallConnected, api.EventCallEnded:
	default:
		return tui.CallMsg{}, false
	}
	if ev.Call == nil {
		return tui.CallMsg{}, false
	}
	return callInfo(ev.Call), true
}

func callInfo(c *api.Call) tui.CallMsg {
	return tui.CallMsg{ID: c.ID, Peer: c.Peer, Outgoing: c.Outgoing, State: c.State,
		Reason: strings.ReplaceAll(c.Reason, "_", " "), Duration: time.Duration(c.DurationSeconds) * time.Second}
}

// Dial implements tui.CallControl.
func (d *agentDevice) Dial(ctx context.Context, peer string) error {
	c, err := d.api.Dial(ctx, api.DialRequest{User: peer})
	if err != nil {
		return err
	}
	select {
	case d.dialed <- callInfo(c):
	case <-ctx.Done():
	}
	return nil
}

// Answer implements tui.CallControl.
func (d *agentDevice) Answer(ctx context.Context, id []byte) error {
	_, err := d.api.Answer(ctx, id, api.AnswerRequest{})
	return err
}

// Reject implements tui.CallControl.
func (d *agentDevice) Reject(ctx context.Context, id []byte) error { return d.api.Reject(ctx, id) }

// Hangup implements tui.CallControl.
func (d *agentDevice) Hangup(ctx context.Context, id []byte) error { return d.api.Hangup(ctx, id) }

func (d *agentDevice) Username() string { return d.user }

func (d *agentDevice) Conversations(ctx context.Context) ([]client.Conversation, error) {
	cs, err := d.api.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]client.Conversation, 0, len(cs))
	for _, c := range cs {
		out = append(out, client.Conversation{Peer: c.Peer, Unread: c.Unread, Last: c.Last.Client()})
	}
	return out, nil
}

func (d *agentDevice) History(ctx context.Context, peer string, limit int) ([]*client.Message, error) {
	ms, err := d.api.History(ctx, peer, limit)
	return api.ClientMessages(ms), err
}

func (d *agentDevice) MarkRead(ctx context.Context, peer string, ids ...[]byte) error {
	aids := make([]api.ID, 0, len(ids))
	for _, id := range ids {
		aids = append(aids, id)
	}
	return d.api.MarkRead(ctx, peer, aids...)
}

func (d *agentDevice) SafetyNumber(ctx context.Context, peer string) (*client.SafetyNumber, error) {
	sn, err := d.api.SafetyNumber(ctx, peer)
	if err != nil {
		return nil, err
	}
	return sn.Client(), nil
}

func (d *agentDevice) SendTyping(ctx context.Context, peer string, started bool) error {
	return d.api.Typing(ctx, peer, started)
}

func (d *agentDevice) SendText(ctx context.Context, peer, text string, quoteID []byte) (*client.Message, error) {
	a, err := d.api.Send(ctx, peer, text, quoteID)
	if err != nil {
		return nil, err
	}
	return a.Message.Client(), nil
}

func (d *agentDevice) React(ctx context.Context, peer string, id []byte, emoji string) error {
	return d.api.React(ctx, peer, id, emoji)
}

func (d *agentDevice) Edit(ctx context.Context, peer string, id []byte, text string) error {
	return d.api.Edit(ctx, peer, id, text)
}

func (d *agentDevice) DeleteForEveryone(ctx context.Context, peer string, id []byte) error {
	return d.api.Delete(ctx, peer, id)
}

func (d *agentDevice) SetTimer(ctx context.Context, peer string, t time.Duration) error {
	return d.api.SetTimer(ctx, peer, t)
}

func (d *agentDevice) Timer(ctx context.Context, peer string) (time.Duration, error) {
	return d.api.Timer(ctx, peer)
}

func (d *agentDevice) Search(ctx context.Context, query string, limit int) ([]*client.Message, error) {
	ms, err := d.api.Search(ctx, query, limit)
	return api.ClientMessages(ms), err
}

func (d *agentDevice) Notices(ctx context.Context) ([]client.Notice, error) {
	a, err := d.api.Notices(ctx)
	if err != nil {
		return nil, err
	}
	return a.Notices, nil
}

// SendFile sends a file (tui.Files); the agent reads it, so it is named
// by its absolute path.
func (d *agentDevice) SendFile(ctx context.Context, peer, path, caption string, viewOnce bool) (*client.Message, error) {
	abs, err := absFile(path)
	if err != nil {
		return nil, err
	}
	a, err := d.api.SendFile(ctx, peer, api.FileRequest{Path: abs, Caption: caption, ViewOnce: viewOnce})
	if err != nil {
		return nil, err
	}
	return a.Message.Client(), nil
}

// absFile is the absolute path of a file the agent is to read (the
// agent's working folder is not the app's).
func absFile(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", err
	}
	return abs, nil
}

// Download saves an attachment (tui.Files) into dir, or the device's
// attachments folder when dir is empty.
func (d *agentDevice) Download(ctx context.Context, id []byte, dir string) (string, error) {
	req := api.DownloadRequest{}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		req.Dir = abs
	}
	a, err := d.api.Download(ctx, id, req)
	if err != nil {
		return "", err
	}
	return a.Path, nil
}

func (d *agentDevice) Lock() { _ = d.api.Lock(d.ctx) }

func (d *agentDevice) Active() { _ = d.api.Activity(d.ctx) }

// Unlock unlocks the agent; its errors are the store's, as tui.Device
// says.
func (d *agentDevice) Unlock(ctx context.Context, passphrase []byte) error {
	return storeError(d.api.Unlock(ctx, passphrase))
}

// storeError turns the agent's unlock errors back into the store's.
func storeError(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Kind {
	case api.KindWrongPassphrase:
		if ae.AttemptsLeft > 0 {
			return &store.AttemptsError{Left: ae.AttemptsLeft}
		}
		return store.ErrWrongPassphrase
	case api.KindNoDevice:
		return store.ErrNoStore
	case api.KindWiped:
		return store.ErrWipedAfterFailures
	}
	return err
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
