package tui

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"

	"sotto/client"
	"sotto/internal/safetext"
)

// Files is what a Device may implement to send and save files (the
// agent's API does). Paths are as the user typed them; the device makes
// them absolute.
type Files interface {
	// SendFile sends the file at path to peer, once if viewOnce.
	SendFile(ctx context.Context, peer, path, caption string, viewOnce bool) (*client.Message, error)
	// Download saves the attachment of message id into dir (empty: the
	// device's attachments folder) and returns where it went.
	Download(ctx context.Context, id []byte, dir string) (string, error)
}

// helpLines is the help screen (/help, F1): every key and command.
var helpLines = []string{
	"Keys",
	"  tab          the conversation list / the open chat",
	"  n            (in the list) start a new conversation",
	"  enter        open the selected conversation; send the line",
	"  ↑ ↓          select a message (esc: back to the newest)",
	"  ctrl+s       the safety number with this contact",
	"  ctrl+y/n     answer / decline a ringing call",
	"  f1           this help (esc closes it)",
	"  ctrl+c       quit",
	"Commands act on the selected message, else on the newest one",
	"  /new USER             start a conversation with USER",
	"  /reply TEXT           reply to the message",
	"  /react EMOJI          react (/unreact removes yours)",
	"  /edit TEXT            change your message",
	"  /delete               delete your message for everyone (asks first)",
	"  /file PATH [CAPTION]  send a file (/file --view-once PATH: opens once)",
	"  /download [DIR]       save the message's file (default HOME/attachments)",
	"  /timer 30s|1h|off     disappearing messages in this chat",
	"  /search TEXT          find messages in every chat",
	"  /safety               the safety number (as ctrl+s)",
	"  /call [USER]          call this contact (or USER); /hangup ends it",
	"  /answer  /decline     a ringing call",
	"  /quit                 leave the app",
	"  //TEXT                send a line that starts with /",
}

// groupHelpLines are the group's own commands: in a group, the help
// screen shows them right after the keys (the screen may be 24 rows).
var groupHelpLines = []string{
	"In a group (#NAME), besides the commands for messages",
	"  /members (ctrl+s)     the members, their roles and verification",
	"  /rename NAME          /describe TEXT: the group's name, description",
	"  /admin USER           /unadmin USER: make or unmake an admin",
	"  /announce on|off      only admins post (on) or everyone (off)",
	"  /leave                leave the group with all your devices (asks first)",
}

// helpView renders the help screen.
func (m *Model) helpView(w, h int) string {
	var b strings.Builder
	b.WriteString(fit(bold.Render("sotto chat · help"), w) + "\n")
	lines := append(slices.Clone(helpLines), groupHelpLines...)
	if m.isGroup() {
		keys := slices.Index(helpLines, "Commands act on the selected message, else on the newest one")
		lines = slices.Concat(helpLines[:keys], groupHelpLines, helpLines[keys:])
	}
	for i, l := range lines {
		if i+3 >= h {
			break
		}
		if !strings.HasPrefix(l, " ") {
			l = bold.Render(l)
		}
		b.WriteString(fit(l, w) + "\n")
	}
	b.WriteString(fit(faint.Render("esc, enter or q: back"), w))
	return b.String()
}

// confirmation is a question shown on the status line, answered with y
// (runs run) or any other key (cancels).
type confirmation struct {
	question string
	run      tea.Cmd
	refused  string
}

// confirmKey answers the pending confirmation.
func (m *Model) confirmKey(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	c := m.confirm
	m.confirm = nil
	if k.String() == "y" || k.String() == "Y" {
		m.status = ""
		return m, c.run
	}
	m.status = c.refused
	return m, nil
}

// newConversation opens a conversation with user, who need not have
// written before.
func (m *Model) newConversation(user string) tea.Cmd {
	user = strings.TrimPrefix(strings.TrimSpace(user), "@")
	if user == "" || strings.ContainsAny(user, " \t/") {
		m.status = "! /new takes a username: /new alice"
		return nil
	}
	if user == m.c.Username() {
		m.status = "! that is you: /new takes another person's username"
		return nil
	}
	m.open(user)
	if len(m.hist) == 0 {
		m.status = "new conversation with " + user + ": type a message and press enter"
	}
	return m.markRead()
}

// sendFile runs /file [--view-once] PATH [CAPTION].
func (m *Model) sendFile(t target, arg string) tea.Cmd {
	if !t.files() {
		m.status = "! this device cannot send files from the chat app"
		return nil
	}
	viewOnce := false
	if rest, found := strings.CutPrefix(arg, "--view-once "); found {
		viewOnce, arg = true, strings.TrimSpace(rest)
	}
	path, caption, _ := strings.Cut(arg, " ")
	if path == "" {
		m.status = "! /file takes a path: /file report.pdf [caption]"
		return nil
	}
	ctx := m.ctx
	m.status = "sending " + safetext.FileName(filepath.Base(path)) + "…"
	m.cursor = -1
	return func() tea.Msg {
		err := t.sendFile(ctx, path, strings.TrimSpace(caption), viewOnce)
		return resultMsg{what: "sent " + filepath.Base(path), err: err}
	}
}

// download runs /download [DIR] on the selected message.
func (m *Model) download(t target, msg *client.Message, dir string) tea.Cmd {
	if !t.files() {
		m.status = "! this device cannot save files from the chat app"
		return nil
	}
	a := msg.Attachment
	switch {
	case a == nil:
		m.status = "! the selected message has no file (↑/↓ to select another)"
		return nil
	case a.ViewOnce:
		m.status = fmt.Sprintf("! a view-once file is never saved: open it once with sotto download %x | VIEWER", msg.ID)
		return nil
	}
	ctx := m.ctx
	m.status = "saving " + safetext.FileName(a.Name) + "…"
	m.cursor = -1
	return func() tea.Msg {
		path, err := t.download(ctx, msg, dir)
		return resultMsg{what: "saved " + path, err: err}
	}
}

// confirmDelete asks before deleting msg for everyone.
func (m *Model) confirmDelete(t target, msg *client.Message) tea.Cmd {
	ctx, id := m.ctx, msg.ID
	m.confirm = &confirmation{
		question: fmt.Sprintf("delete %q for everyone? y/n", excerpt(safetext.Line(msg.Text), 30)),
		refused:  "not deleted",
		run: func() tea.Msg {
			return resultMsg{what: "deleted for everyone", err: t.remove(ctx, id)}
		},
	}
	m.cursor = -1
	return nil
}
