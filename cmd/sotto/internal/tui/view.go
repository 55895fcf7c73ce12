package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"sotto/client"
	"sotto/internal/safetext"
)

const listWidth = 18

// View renders the screen.
func (m *Model) View() tea.View {
	w, h := m.w, m.h
	if w <= 0 || h <= 0 {
		w, h = 80, 24
	}
	var s string
	if m.lock.locked {
		s = m.lockView(w, h)
	} else if m.focus == focusHelp {
		s = m.helpView(w, h)
	} else if m.focus == focusSafety && m.safety != nil {
		s = m.safetyView(w, h)
	} else {
		s = m.mainView(w, h)
	}
	v := tea.NewView(s)
	v.AltScreen = true
	v.WindowTitle = "sotto"
	return v
}

func (m *Model) mainView(w, h int) string {
	var b strings.Builder
	// Header.
	title := "sotto · " + safetext.Name(m.c.Username())
	if m.isGroup() {
		title += " · group " + safetext.Name(m.peer)
	} else if m.peer != "" {
		title += " · chat with " + safetext.Name(m.peer)
		if d, err := m.c.Timer(m.ctx, m.peer); err == nil && d > 0 {
			title += " · ⏱ " + d.String()
		}
	}
	b.WriteString(fit(bold.Render(title), w) + "\n")

	bodyH := h - 4
	list := m.listLines(bodyH)
	chat := m.chatLines(w-listWidth-1, bodyH)
	if m.members != nil && m.isGroup() {
		chat = m.memberLines(bodyH)
	}
	for i := range bodyH {
		b.WriteString(pad(list[i], listWidth) + "│" + fit(chat[i], w-listWidth-1) + "\n")
	}
	b.WriteString(fit(m.infoLine(), w) + "\n")
	if m.focus == focusChat {
		b.WriteString(fit(m.input.View(), w) + "\n")
	} else {
		b.WriteString(fit(faint.Render("(enter: open · n: new conversation · tab: back to the chat · f1: help)"), w) + "\n")
	}
	b.WriteString(fit(faint.Render(m.statusLine()), w))
	return b.String()
}

// infoLine is the line of the newest notice, or of who is typing.
func (m *Model) infoLine() string {
	if l := m.callLine(); l != "" {
		return l
	}
	switch {
	case len(m.notices) > 0:
		n := m.notices[len(m.notices)-1]
		return fmt.Sprintf("! notice %s: %s", Stamp(n.At, time.Now(), false), safetext.Line(n.Text))
	case m.peer != "" && !m.typing[m.peer].IsZero():
		return safetext.Name(m.peer) + " is typing…"
	}
	return ""
}

// statusLine is the bottom line; it quotes errors, search results and
// names.
func (m *Model) statusLine() string {
	if m.confirm != nil {
		return safetext.Line(m.confirm.question)
	}
	if m.status == "" {
		return "tab list · ↑↓ select · /help · ctrl+s safety number · ctrl+c quit · ✓ sent ✓✓ delivered"
	}
	return safetext.Line(m.status)
}

func (m *Model) listLines(n int) []string {
	lines := make([]string, n)
	lines[0] = bold.Render("Conversations")
	for i, c := range m.convs {
		if i+1 >= n {
			break
		}
		mark := " "
		if c.Peer == m.peer {
			mark = "*"
		}
		if i == m.sel && m.focus == focusList {
			mark = ">"
		}
		unread := ""
		if c.Unread > 0 {
			unread = fmt.Sprintf(" (%d)", c.Unread)
		}
		name := ansi.Truncate(safetext.Name(c.Peer), listWidth-2-len(unread), "…")
		l := mark + name + unread
		if i == m.sel && m.focus == focusList {
			l = reverse.Render(l)
		}
		lines[i+1] = l
	}
	if len(m.convs) == 0 {
		lines[min(1, n-1)] = faint.Render(" (none yet)")
	}
	return lines
}

// chatLines renders the open conversation, newest at the bottom.
func (m *Model) chatLines(width, n int) []string {
	lines := make([]string, n)
	if m.peer == "" {
		lines[0] = " select a conversation (enter)"
		return lines
	}
	var all []string
	byID := map[string]*client.Message{}
	for _, msg := range m.hist {
		byID[string(msg.ID)] = msg
	}
	for i, msg := range m.hist {
		sel := i == m.cursor
		for _, l := range m.messageLines(msg, byID, width-2) {
			prefix := "  "
			if sel {
				prefix = "> "
				l = reverse.Render(l)
			}
			all = append(all, prefix+l)
			sel = false
		}
	}
	// Keep the selected message visible.
	end := len(all)
	if m.cursor >= 0 {
		idx := 0
		for i := range m.cursor + 1 {
			idx += len(m.messageLines(m.hist[i], byID, width-2))
		}
		end = max(min(len(all), idx+n/2), idx)
		end = min(end, len(all))
	}
	start := max(0, end-n)
	copy(lines[n-(end-start):], all[start:end])
	return lines
}

func (m *Model) messageLines(msg *client.Message, byID map[string]*client.Message, width int) []string {
	ts := Stamp(msg.SentAt, time.Now(), false)
	who := safetext.Name(msg.From)
	if msg.Outgoing {
		who = "me"
	}
	if msg.Kind == client.KindTimer {
		set := "off"
		if msg.TimerSeconds > 0 {
			set = (time.Duration(msg.TimerSeconds) * time.Second).String()
		}
		return []string{faint.Render(fmt.Sprintf("%s — %s set disappearing messages: %s —", ts, who, set))}
	}
	if msg.Kind == kindAlert {
		return []string{fmt.Sprintf("%s ! %s", ts, safetext.Line(msg.Text))}
	}
	var out []string
	if msg.QuoteID != nil {
		q := "a message"
		if qm := byID[string(msg.QuoteID)]; qm != nil {
			q = safetext.Name(qm.From) + ": " + safetext.Line(qm.Text)
			if qm.Deleted {
				q = "(deleted)"
			}
		}
		out = append(out, faint.Render("┌ re "+ansi.Truncate(q, width-6, "…")))
	}
	text := safetext.Body(msg.Text)
	switch {
	case msg.Deleted:
		text = "(this message was deleted)"
	case msg.Attachment != nil:
		text = attachmentLine(msg, m.progress[string(msg.ID)])
	}
	line := fmt.Sprintf("%s %s: %s", ts, who, text)
	if msg.Edited() {
		line += " (edited)"
	}
	if msg.ExpireSeconds > 0 {
		line += " ⏱"
	}
	if len(msg.Reactions) > 0 {
		var rs []string
		for _, r := range msg.Reactions {
			rs = append(rs, safetext.Line(r.Emoji)+" "+safetext.Name(r.From))
		}
		line += " [" + strings.Join(rs, ", ") + "]"
	}
	if msg.Outgoing {
		switch {
		case msg.Read:
			line += " ✓✓ read"
		case msg.Delivered:
			line += " ✓✓"
		default:
			line += " ✓"
		}
	}
	if msg.Unverified {
		line += " (UNVERIFIED sender)"
	}
	// Every line after the first, whether the text broke it or the
	// wrapping did, is indented behind contPrefix: none can pass for the
	// first line of another message.
	var lines []string
	for i, l := range strings.Split(line, "\n") {
		w := max(10, width)
		if i > 0 {
			w = max(10, width-len(contPrefix))
		}
		for _, wl := range strings.Split(ansi.Wrap(l, w, " "), "\n") {
			if len(lines) > 0 {
				wl = contPrefix + wl
			}
			lines = append(lines, wl)
		}
	}
	return append(out, lines...)
}

// kindAlert is a group's alert: what this device detected about the
// group (a fork, a withheld commit), as api.GroupMessage.Client passes it.
const kindAlert = "alert"

// contPrefix starts every line of a message after its first.
const contPrefix = "  | "

// attachmentLine shows a file as its name and size, with the transfer's
// progress when one is under way.
func attachmentLine(msg *client.Message, p ProgressMsg) string {
	a := msg.Attachment
	s := fmt.Sprintf("[file %s, %s]", safetext.FileName(a.Name), size(a.Size))
	if p.Total > 0 && p.Done < p.Total {
		s += fmt.Sprintf(" %d%%", p.Done*100/p.Total)
	}
	if msg.Text != "" {
		s += " " + safetext.Body(msg.Text)
	}
	return s
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (m *Model) safetyView(w, h int) string {
	sn := m.safety
	state := "not verified"
	switch {
	case sn.Changed:
		state = "CHANGED: compare before you trust it"
	case sn.Verified:
		state = "verified"
	}
	var b strings.Builder
	user := safetext.Name(sn.User)
	b.WriteString(fit(bold.Render("Safety number with "+user+" — "+state), w) + "\n")
	var qr []string
	if m.o.QR != nil {
		qr = strings.Split(strings.TrimRight(m.o.QR(string(sn.Scannable)), "\n"), "\n")
	}
	groups := strings.Fields(sn.Groups())
	var digits []string
	for i := 0; i < len(groups); i += 4 {
		digits = append(digits, strings.Join(groups[i:min(i+4, len(groups))], " "))
	}
	right := append(append(digits, ""), "Compare with "+user+"'s screen,", "or scan this code.", "", "Then: sotto verify "+user+" --accept", "", "esc: back")
	qw := 0
	for _, l := range qr {
		qw = max(qw, ansi.StringWidth(l))
	}
	rows := max(len(qr), len(right))
	for i := range min(rows, h-1) {
		var l, r string
		if i < len(qr) {
			l = qr[i]
		}
		if i < len(right) {
			r = right[i]
		}
		b.WriteString(fit(pad(l, qw)+"  "+r, w))
		if i < min(rows, h-1)-1 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// fit cuts s to width cells.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	return ansi.Truncate(s, width, "")
}

// pad cuts or pads s to exactly width cells.
func pad(s string, width int) string {
	s = fit(s, width)
	if n := ansi.StringWidth(s); n < width {
		s += strings.Repeat(" ", width-n)
	}
	return s
}
