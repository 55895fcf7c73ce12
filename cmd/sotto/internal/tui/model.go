package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"sotto/client"
)

// Options configure the app.
type Options struct {
	// Peer opens this conversation first (empty: the list).
	Peer string
	// Events delivers the client's events (its Options.OnEvent feeds it).
	Events <-chan client.Event
	// QR renders data as a QR code (text lines); nil: no code drawn.
	QR func(data string) string
	// Notices supplies the organization notices already received, shown
	// at start (new ones arrive as events or NoticeMsg); nil: none.
	Notices NoticeSource
	// IdleLock locks the app after this long without a key pressed (the
	// org policy's idle lock timeout; 0: never). See lock.go.
	IdleLock time.Duration
	// Calls places and answers calls, whose changes CallEvents delivers
	// (calls.go); nil: no calls.
	Calls      CallControl
	CallEvents <-chan CallMsg
}

// Device is what the app uses of the device: its agent (sotto's
// session.go adapts the agent's API; *client.Client is one too). The
// connection to the relay, and reconnecting it, are the device's.
type Device interface {
	Username() string
	Conversations(ctx context.Context) ([]client.Conversation, error)
	History(ctx context.Context, peer string, limit int) ([]*client.Message, error)
	MarkRead(ctx context.Context, peer string, ids ...[]byte) error
	SafetyNumber(ctx context.Context, peer string) (*client.SafetyNumber, error)
	SendTyping(ctx context.Context, peer string, started bool) error
	SendText(ctx context.Context, peer, text string, quoteID []byte) (*client.Message, error)
	React(ctx context.Context, peer string, id []byte, emoji string) error
	Edit(ctx context.Context, peer string, id []byte, text string) error
	DeleteForEveryone(ctx context.Context, peer string, id []byte) error
	SetTimer(ctx context.Context, peer string, d time.Duration) error
	Timer(ctx context.Context, peer string) (time.Duration, error)
	Search(ctx context.Context, query string, limit int) ([]*client.Message, error)
	// Lock drops the keys until Unlock (the idle lock); Unlock's errors
	// are the store's (store.AttemptsError, store.ErrWrongPassphrase,
	// store.ErrNoStore, store.ErrWipedAfterFailures).
	Lock()
	Unlock(ctx context.Context, passphrase []byte) error
}

// NoticeSource is where the organization's verified notices are kept
// (*client.Client is one).
type NoticeSource interface {
	Notices(ctx context.Context) ([]client.Notice, error)
}

// NoticeMsg adds an organization notice to the notices area. The
// organization side feeds verified notices with Program.Send, or through
// client.EventOrgNotice events.
type NoticeMsg struct {
	At   time.Time
	Text string
}

// ProgressMsg reports an attachment transfer (the attachments side sends
// it): shown on the message's line until Done == Total.
type ProgressMsg struct {
	ID          []byte
	Done, Total int64
}

// Internal messages.
type (
	eventMsg   struct{ ev client.Event }
	eventsDone struct{}
	resultMsg  struct {
		what string
		err  error
	}
	safetyMsg struct {
		sn  *client.SafetyNumber
		err error
	}
	tickMsg time.Time
)

type focus int

const (
	focusList focus = iota
	focusChat
	focusSafety
	focusHelp
)

// Model is the app's state.
type Model struct {
	ctx    context.Context
	c      Device
	o      Options
	w, h   int
	focus  focus
	convs  []client.Conversation
	sel    int // selected conversation in the list
	peer   string
	hist   []*client.Message
	cursor int // selected message in hist; -1: none (the newest)
	input  textinput.Model
	status string
	// typing is who is typing in which conversation, until when.
	typing     map[string]time.Time
	lastTyping time.Time
	notices    []NoticeMsg
	progress   map[string]ProgressMsg
	safety     *client.SafetyNumber
	quit       bool
	lock       lockState
	// confirm is the question awaiting y/n (deleting for everyone).
	confirm *confirmation
	// groups maps the list's group entries to group ids (groups.go);
	// members is the open group's member pane (nil: closed).
	groups    map[string][]byte
	groupInfo map[string]Group
	openGroup []byte // the open group's id (nil: a 1:1 chat or none)
	members   []GroupMember
	call      *CallMsg // the call ringing or in progress (calls.go)
}

// New returns the app for c.
func New(ctx context.Context, c Device, o Options) *Model {
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "type a message, /help for commands"
	in.Focus()
	m := &Model{ctx: ctx, c: c, o: o, input: in, cursor: -1, typing: map[string]time.Time{}, progress: map[string]ProgressMsg{}}
	m.lock.lastInput = time.Now()
	m.reload()
	if o.Notices != nil {
		ns, err := o.Notices.Notices(ctx)
		if err != nil {
			m.status = "! notices: " + err.Error()
		}
		for _, n := range ns {
			m.notices = append(m.notices, NoticeMsg{At: n.Issued, Text: n.Text})
		}
	}
	if o.Peer != "" {
		m.open(o.Peer)
	}
	return m
}

// Init starts listening for events.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.waitEvent(), tick(), m.markRead(), m.waitCall())
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m *Model) waitEvent() tea.Cmd {
	if m.o.Events == nil {
		return nil
	}
	ch, ctx := m.o.Events, m.ctx
	return func() tea.Msg {
		select {
		case ev, ok := <-ch:
			if !ok {
				return eventsDone{}
			}
			return eventMsg{ev}
		case <-ctx.Done():
			return nil
		}
	}
}

// reload reads the conversation list and the open conversation from the
// store.
func (m *Model) reload() {
	if m.lock.locked {
		return
	}
	convs, err := m.c.Conversations(m.ctx)
	if err != nil {
		m.status = "! " + err.Error()
		return
	}
	convs, isGroup := m.reloadGroups(convs)
	if m.peer != "" && !containsPeer(convs, m.peer) {
		convs = append([]client.Conversation{{Peer: m.peer}}, convs...)
	}
	m.convs = convs
	if m.sel >= len(m.convs) {
		m.sel = max(0, len(m.convs)-1)
	}
	if m.peer != "" && !isGroup {
		hist, err := m.c.History(m.ctx, m.peer, 200)
		if err != nil {
			m.status = "! " + err.Error()
			return
		}
		m.hist = hist
		if m.cursor >= len(m.hist) {
			m.cursor = -1
		}
	}
}

func containsPeer(cs []client.Conversation, p string) bool {
	for _, c := range cs {
		if c.Peer == p {
			return true
		}
	}
	return false
}

func (m *Model) open(peer string) {
	m.peer, m.cursor, m.focus, m.members = peer, -1, focusChat, nil
	m.openGroup = m.groups[peer]
	m.reload()
	for i, c := range m.convs {
		if c.Peer == peer {
			m.sel = i
		}
	}
}

// markRead marks the open conversation's unread messages read (a read
// receipt goes out unless switched off).
func (m *Model) markRead() tea.Cmd {
	if m.peer == "" || m.focus == focusList || m.lock.locked {
		return nil
	}
	if m.isGroup() {
		return m.markGroupRead()
	}
	var ids [][]byte
	for _, msg := range m.hist {
		if !msg.Outgoing && !msg.Read && msg.Kind == "" && !msg.Deleted {
			ids = append(ids, msg.ID)
			msg.Read = true
		}
	}
	if len(ids) == 0 {
		return nil
	}
	c, ctx, peer := m.c, m.ctx, m.peer
	return func() tea.Msg {
		return resultMsg{what: "read", err: c.MarkRead(ctx, peer, ids...)}
	}
}

// selected is the message commands act on: the one under the cursor, else
// the newest one of the conversation.
func (m *Model) selected(own bool) *client.Message {
	if m.cursor >= 0 && m.cursor < len(m.hist) {
		return m.hist[m.cursor]
	}
	for i := len(m.hist) - 1; i >= 0; i-- {
		h := m.hist[i]
		if h.Kind == "" && !h.Deleted && (!own || h.Outgoing) {
			return h
		}
	}
	return nil
}

// Update handles a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		m.input.SetWidth(max(10, m.w-4))
		return m, nil
	case eventMsg:
		return m, tea.Batch(m.handleEvent(msg.ev), m.waitEvent())
	case eventsDone:
		m.status = "! disconnected"
		return m, nil
	case CallMsg:
		return m, m.onCall(msg)
	case callsDone:
		return m, nil
	case NoticeMsg:
		m.notices = append(m.notices, msg)
		return m, nil
	case ProgressMsg:
		m.progress[string(msg.ID)] = msg
		return m, nil
	case resultMsg:
		if msg.err != nil && msg.what == "" {
			m.status = fmt.Sprintf("! %v", msg.err)
		} else if msg.err != nil {
			m.status = fmt.Sprintf("! %s: %v", msg.what, msg.err)
		} else if msg.what != "read" && msg.what != "typing" {
			m.status = msg.what
		}
		m.reload()
		return m, nil
	case safetyMsg:
		if msg.err != nil {
			m.status = "! safety number: " + msg.err.Error()
			return m, nil
		}
		m.safety, m.focus = msg.sn, focusSafety
		return m, nil
	case unlockedMsg:
		return m.unlocked(msg)
	case lockedMsg:
		m.lock.ready = true
		return m, nil
	case tickMsg:
		now := time.Time(msg)
		lock := m.idleCheck(now)
		for u, until := range m.typing {
			if now.After(until) {
				delete(m.typing, u)
			}
		}
		return m, tea.Batch(tick(), lock)
	case tea.KeyPressMsg:
		active := m.active(time.Now())
		m.lock.lastInput = time.Now()
		if m.lock.locked {
			return m.lockedKey(msg)
		}
		mm, cmd := m.key(msg)
		return mm, tea.Batch(cmd, active)
	}
	var cmd tea.Cmd
	if m.lock.locked {
		m.lock.pass, cmd = m.lock.pass.Update(msg)
		return m, cmd
	}
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// Activity is what a Device may implement to hear that its user is active
// (the agent's own idle lock counts it).
type Activity interface{ Active() }

// activity is how often key presses are reported to an Activity device.
const activity = 5 * time.Second

// active reports a key press to the device, at most every few seconds.
func (m *Model) active(now time.Time) tea.Cmd {
	a, ok := m.c.(Activity)
	if !ok || m.lock.locked || now.Sub(m.lock.reported) < activity {
		return nil
	}
	m.lock.reported = now
	return func() tea.Msg {
		a.Active()
		return nil
	}
}

func (m *Model) handleEvent(ev client.Event) tea.Cmd {
	if m.lock.locked && ev.Kind != client.EventWiped {
		return nil // shown after the unlock, from the store
	}
	switch ev.Kind {
	case client.EventTyping:
		if ev.Typing {
			m.typing[ev.User] = time.Now().Add(6 * time.Second)
		} else {
			delete(m.typing, ev.User)
		}
		return nil
	case client.EventOrgNotice:
		if ev.Notice != nil {
			m.notices = append(m.notices, NoticeMsg{At: ev.Notice.Issued, Text: ev.Notice.Text})
		}
		return nil
	case client.EventIdentityChanged:
		m.status = fmt.Sprintf("! the safety number with %s changed: ctrl+s to compare it", ev.User)
	case client.EventError:
		m.status = fmt.Sprintf("! %v", ev.Err)
	case client.EventTransparencyAlarm:
		m.status = fmt.Sprintf("!!! %v (sotto keylog)", ev.Err)
	case client.EventWiped:
		m.status = "! this device was wiped"
		m.quit = true
		return tea.Quit
	case client.EventMessage:
		if ev.Message != nil && !ev.Message.Outgoing {
			delete(m.typing, ev.Message.From)
		}
	}
	m.reload()
	return m.markRead()
}

func (m *Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch k.String() {
	case "ctrl+c":
		m.quit = true
		return m, tea.Quit
	}
	if m.confirm != nil {
		return m.confirmKey(k)
	}
	if cmd, ok := m.callKey(k.String()); ok {
		return m, cmd
	}
	if m.focus == focusSafety || m.focus == focusHelp {
		switch k.String() {
		case "esc", "q", "enter":
			m.focus, m.safety = focusChat, nil
			if m.peer == "" {
				m.focus = focusList
			}
		}
		return m, nil
	}
	switch k.String() {
	case "f1":
		m.focus = focusHelp
		return m, nil
	case "tab":
		if m.focus == focusList && m.peer != "" {
			m.focus = focusChat
			return m, m.markRead()
		}
		m.focus = focusList
		return m, nil
	case "esc":
		if m.focus == focusChat && m.cursor >= 0 {
			m.cursor = -1
			return m, nil
		}
		m.focus = focusList
		return m, nil
	case "ctrl+s":
		if m.isGroup() {
			m.toggleMembers()
			return m, nil
		}
		if m.peer == "" {
			return m, nil
		}
		c, ctx, peer := m.c, m.ctx, m.peer
		return m, func() tea.Msg {
			sn, err := c.SafetyNumber(ctx, peer)
			return safetyMsg{sn, err}
		}
	}
	if m.focus == focusList {
		switch k.String() {
		case "up", "k":
			m.sel = max(0, m.sel-1)
		case "down", "j":
			m.sel = min(len(m.convs)-1, m.sel+1)
		case "enter":
			if m.sel < len(m.convs) {
				m.open(m.convs[m.sel].Peer)
				return m, m.markRead()
			}
		case "n":
			m.focus = focusChat
			m.input.SetValue("/new ")
			m.input.CursorEnd()
		}
		return m, nil
	}
	switch k.String() {
	case "up":
		if len(m.hist) == 0 {
			return m, nil
		}
		if m.cursor < 0 {
			m.cursor = len(m.hist) - 1
		} else {
			m.cursor = max(0, m.cursor-1)
		}
		return m, nil
	case "down":
		if m.cursor >= 0 {
			m.cursor++
			if m.cursor >= len(m.hist) {
				m.cursor = -1
			}
		}
		return m, nil
	case "enter":
		line := strings.TrimSpace(m.input.Value())
		m.input.Reset()
		if line == "" {
			return m, nil
		}
		return m, m.submit(line)
	}
	var cmd tea.Cmd
	before := m.input.Value()
	m.input, cmd = m.input.Update(k)
	if m.input.Value() != before && !strings.HasPrefix(m.input.Value(), "/") && time.Since(m.lastTyping) > 5*time.Second && !m.isGroup() {
		m.lastTyping = time.Now()
		c, ctx, peer := m.c, m.ctx, m.peer
		cmd = tea.Batch(cmd, func() tea.Msg { return resultMsg{what: "typing", err: c.SendTyping(ctx, peer, true)} })
	}
	return m, cmd
}

// submit sends a line or runs a /command on the selected message, in a
// 1:1 chat or a group alike (target.go).
func (m *Model) submit(line string) tea.Cmd {
	ctx, peer, t := m.ctx, m.peer, m.target()
	run := func(what string, fn func() error) tea.Cmd {
		m.cursor = -1
		return func() tea.Msg { return resultMsg{what: what, err: fn()} }
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		if t == nil {
			m.status = "! no conversation open: /new USER starts one, tab opens the list"
			return nil
		}
		text := strings.TrimPrefix(line, "/")
		m.lastTyping = time.Time{}
		return run("", func() error { return t.send(ctx, text, nil) })
	}
	cmd, arg, _ := strings.Cut(line[1:], " ")
	arg = strings.TrimSpace(arg)
	need := func(own bool) *client.Message {
		sm := m.selected(own)
		if sm == nil {
			m.status = "! no message selected (↑/↓ to select)"
		}
		return sm
	}
	switch cmd {
	case "quit", "q":
		m.quit = true
		return tea.Quit
	case "help", "h", "?":
		m.focus = focusHelp
		return nil
	case "call":
		if arg == "" && m.isGroup() {
			m.status = "! calls are 1:1: /call USER"
			return nil
		}
		return m.callAction("call", arg)
	case "answer", "decline", "hangup":
		return m.callAction(cmd)
	case "new", "n":
		return m.newConversation(arg)
	case "search":
		return m.search(arg)
	}
	if t == nil {
		m.status = "! no conversation open: /new USER starts one, tab opens the list"
		return nil
	}
	if ok, c := m.groupCommand(cmd, arg); ok {
		return c
	}
	switch cmd {
	case "file", "f":
		return m.sendFile(t, arg)
	case "download", "dl":
		if sm := need(false); sm != nil {
			return m.download(t, sm, arg)
		}
	case "reply", "r":
		if sm := need(false); sm != nil {
			return run("replied", func() error { return t.send(ctx, arg, sm.ID) })
		}
	case "react":
		if sm := need(false); sm != nil {
			return run("reacted", func() error { return t.react(ctx, sm.ID, arg) })
		}
	case "unreact":
		if sm := need(false); sm != nil {
			return run("reaction removed", func() error { return t.react(ctx, sm.ID, "") })
		}
	case "edit", "e":
		if sm := need(true); sm != nil {
			return run("edited", func() error { return t.edit(ctx, sm.ID, arg) })
		}
	case "delete", "del":
		if sm := need(true); sm != nil {
			return m.confirmDelete(t, sm)
		}
	case "timer":
		var d time.Duration
		if arg != "off" {
			var err error
			if d, err = time.ParseDuration(arg); err != nil || d <= 0 {
				m.status = "! /timer takes a duration (30s, 1h, 168h) or off"
				return nil
			}
		}
		return run("timer set", func() error { return t.setTimer(ctx, d) })
	case "safety":
		c := m.c
		return func() tea.Msg {
			sn, err := c.SafetyNumber(ctx, peer)
			return safetyMsg{sn, err}
		}
	default:
		m.status = "! unknown command /" + cmd + " (/help)"
	}
	return nil
}

// search runs /search TEXT: the first matches, on the status line.
func (m *Model) search(arg string) tea.Cmd {
	found, err := m.c.Search(m.ctx, arg, 5)
	if err != nil {
		m.status = "! " + err.Error()
		return nil
	}
	var parts []string
	for _, f := range found {
		parts = append(parts, f.Peer+": "+excerpt(f.Text, 30))
	}
	m.status = fmt.Sprintf("%d found: %s", len(found), strings.Join(parts, " | "))
	return nil
}

func excerpt(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Quit reports whether the user asked to quit.
func (m *Model) Quit() bool { return m.quit }

var (
	bold    = lipgloss.NewStyle().Bold(true)
	faint   = lipgloss.NewStyle().Faint(true)
	reverse = lipgloss.NewStyle().Reverse(true)
)
