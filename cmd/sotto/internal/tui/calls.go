package tui

import (
	"context"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"sotto/internal/safetext"
)

// Calls in the chat app: a ring line for an incoming call (ctrl+y to
// answer, ctrl+n to decline, or /answer and /decline), /call to call the
// open conversation's person (or /call USER), /hangup. The call's media
// runs in the device's agent; the history shows each call (incoming,
// outgoing, missed, with its duration) as the agent records it.

// CallControl places and answers calls: the agent's /v1/calls. Nil in
// Options: the app has no calls.
type CallControl interface {
	Dial(ctx context.Context, peer string) error
	Answer(ctx context.Context, id []byte) error
	Reject(ctx context.Context, id []byte) error
	Hangup(ctx context.Context, id []byte) error
}

// CallMsg is a change in a call of the device's: the front end feeds them
// from the agent's events (Options.CallEvents).
type CallMsg struct {
	ID       []byte
	Peer     string
	Outgoing bool
	// State: dialing, ringing, connecting, active, ended.
	State string
	// Reason says why an ended call ended when it was not a hang-up.
	Reason   string
	Duration time.Duration
}

type callsDone struct{}

// waitCall delivers the next call event.
func (m *Model) waitCall() tea.Cmd {
	ch := m.o.CallEvents
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		c, ok := <-ch
		if !ok {
			return callsDone{}
		}
		return c
	}
}

// onCall follows a call's state.
func (m *Model) onCall(c CallMsg) tea.Cmd {
	if c.State != "ended" {
		same := m.call != nil && string(m.call.ID) == string(c.ID)
		if same && m.call.State == "active" && (c.State == "dialing" || c.State == "ringing") {
			return m.waitCall() // the dial's answer overtaken by the connection
		}
		if m.call == nil || same {
			m.call = &c
		}
		return m.waitCall()
	}
	if m.call != nil && string(m.call.ID) == string(c.ID) {
		m.call = nil
	}
	switch {
	case c.Reason != "":
		m.status = fmt.Sprintf("call with %s ended: %s", c.Peer, c.Reason)
	case c.Duration > 0:
		m.status = fmt.Sprintf("call with %s ended after %s", c.Peer, c.Duration.Round(time.Second))
	default:
		m.status = fmt.Sprintf("call with %s ended", c.Peer)
	}
	m.reload() // the call's history entry
	return m.waitCall()
}

// ringing is the incoming call ringing here, or nil.
func (m *Model) ringing() *CallMsg {
	if m.call != nil && !m.call.Outgoing && m.call.State == "ringing" {
		return m.call
	}
	return nil
}

// callKey handles ctrl+y and ctrl+n while a call rings; false: not a
// call key.
func (m *Model) callKey(key string) (tea.Cmd, bool) {
	r := m.ringing()
	if r == nil || m.o.Calls == nil {
		return nil, false
	}
	switch key {
	case "ctrl+y":
		return m.callAction("answer"), true
	case "ctrl+n":
		return m.callAction("decline"), true
	}
	return nil, false
}

// callAction runs /call, /answer, /decline or /hangup.
func (m *Model) callAction(what string, arg ...string) tea.Cmd {
	cc, ctx := m.o.Calls, m.ctx
	if cc == nil {
		m.status = "! calls are not available here"
		return nil
	}
	if what == "call" {
		peer := m.peer
		if len(arg) > 0 && arg[0] != "" {
			peer = arg[0]
		}
		if peer == "" {
			m.status = "! /call USER, or open a conversation first"
			return nil
		}
		if m.call != nil {
			m.status = "! already in a call (/hangup first)"
			return nil
		}
		m.status = "calling " + peer + "…"
		return func() tea.Msg { return resultMsg{what: "call placed", err: cc.Dial(ctx, peer)} }
	}
	c := m.call
	if c == nil {
		m.status = "! no call"
		return nil
	}
	id := c.ID
	switch what {
	case "answer":
		if m.ringing() == nil {
			m.status = "! no call is ringing"
			return nil
		}
		return func() tea.Msg { return resultMsg{what: "answered", err: cc.Answer(ctx, id)} }
	case "decline":
		if m.ringing() == nil {
			m.status = "! no call is ringing"
			return nil
		}
		return func() tea.Msg { return resultMsg{what: "declined", err: cc.Reject(ctx, id)} }
	}
	return func() tea.Msg { return resultMsg{what: "hung up", err: cc.Hangup(ctx, id)} }
}

// callLine is the ring line or the call in progress ("" without one).
func (m *Model) callLine() string {
	c := m.call
	if c == nil {
		return ""
	}
	who := safetext.Name(c.Peer)
	switch {
	case !c.Outgoing && c.State == "ringing":
		return "☎ incoming call from " + who + " · ctrl+y answer · ctrl+n decline"
	case c.State == "active":
		return "☎ in call with " + who + " · /hangup"
	case c.Outgoing:
		return "☎ calling " + who + "… · /hangup to cancel"
	}
	return "☎ connecting to " + who + "… · /hangup"
}
