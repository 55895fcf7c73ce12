package tui

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"sotto/client/store"
	"sotto/internal/safetext"
)

// The idle lock: after Options.IdleLock without a key pressed, the app
// locks the client (its store's keys are zeroed, the relay connection
// closed), forgets what it showed and asks for the passphrase; the right
// one re-derives the keys, reconnects and shows the app again. Wrong
// passphrases count against the failed-unlock limit; reaching it, or the
// duress passphrase, ends the app with Fatal set.

// lockState is the idle lock's part of the model.
type lockState struct {
	locked    bool
	ready     bool // the client is locked (Client.Lock runs as a command)
	lastInput time.Time
	reported  time.Time // the last key press reported to an Activity device
	pass      textinput.Model
	fatal     error
}

// unlockedMsg is the outcome of an unlock attempt.
type unlockedMsg struct{ err error }

// lockedMsg reports that Client.Lock returned.
type lockedMsg struct{}

// Fatal is the error that ended the app from the lock screen (the store
// wiped itself, or the duress passphrase); nil otherwise.
func (m *Model) Fatal() error { return m.lock.fatal }

// Locked reports whether the app is locked.
func (m *Model) Locked() bool { return m.lock.locked }

// idleCheck locks the app when it has been idle for Options.IdleLock.
// Client.Lock runs as a command: it waits for the receive loop, which may
// be waiting for this app to take an event.
func (m *Model) idleCheck(now time.Time) tea.Cmd {
	if m.o.IdleLock <= 0 || m.lock.locked || now.Sub(m.lock.lastInput) < m.o.IdleLock {
		return nil
	}
	m.lock.locked, m.lock.ready = true, false
	// Nothing of the conversations stays on screen or in the model.
	m.convs, m.hist, m.notices, m.safety, m.typing = nil, nil, nil, nil, map[string]time.Time{}
	m.focus, m.status, m.cursor = focusList, "", -1
	m.input.Reset()
	m.lock.pass = textinput.New()
	m.lock.pass.Prompt = "Passphrase: "
	m.lock.pass.EchoMode = textinput.EchoPassword
	m.lock.pass.Focus()
	c := m.c
	return func() tea.Msg {
		c.Lock()
		return lockedMsg{}
	}
}

// lockedKey handles a key on the lock screen.
func (m *Model) lockedKey(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch k.String() {
	case "ctrl+c":
		m.quit = true
		return m, tea.Quit
	case "enter":
		if !m.lock.ready {
			return m, nil // still locking
		}
		pass := []byte(m.lock.pass.Value())
		m.lock.pass.Reset()
		if len(pass) == 0 {
			return m, nil
		}
		m.status = "unlocking..."
		c, ctx := m.c, m.ctx
		return m, func() tea.Msg {
			err := c.Unlock(ctx, pass)
			clear(pass)
			return unlockedMsg{err}
		}
	}
	var cmd tea.Cmd
	m.lock.pass, cmd = m.lock.pass.Update(k)
	return m, cmd
}

// unlocked applies the outcome of an unlock attempt.
func (m *Model) unlocked(msg unlockedMsg) (tea.Model, tea.Cmd) {
	var ae *store.AttemptsError
	switch err := msg.err; {
	case err == nil:
	case errors.As(err, &ae):
		m.status = fmt.Sprintf("! wrong passphrase (%d attempts left before this device wipes itself)", ae.Left)
		return m, nil
	case errors.Is(err, store.ErrWrongPassphrase):
		m.status = "! wrong passphrase"
		return m, nil
	default: // wiped (limit reached, or the duress passphrase)
		m.lock.fatal = err
		m.quit = true
		return m, tea.Quit
	}
	m.lock.locked = false
	m.lock.lastInput = time.Now()
	m.status = ""
	m.reload()
	if m.peer != "" {
		m.open(m.peer)
	}
	if m.o.Notices != nil {
		if ns, err := m.o.Notices.Notices(m.ctx); err == nil {
			for _, n := range ns {
				m.notices = append(m.notices, NoticeMsg{At: n.Issued, Text: n.Text})
			}
		}
	}
	// The device reconnects by itself once unlocked.
	return m, nil
}

// lockView is the whole screen while locked.
func (m *Model) lockView(w, h int) string {
	lines := []string{
		bold.Render("sotto · locked"),
		"",
		fmt.Sprintf("Locked after %v without input.", m.o.IdleLock),
		"Enter the passphrase to unlock (ctrl+c quits).",
		"",
		m.lock.pass.View(),
		"",
		safetext.Line(m.status),
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	return strings.Join(lines[:h], "\n")
}
