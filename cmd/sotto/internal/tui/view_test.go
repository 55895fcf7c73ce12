package tui

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"charm.land/lipgloss/v2"

	"sotto/client"
)

// spoof is the message of issue 12: a carriage return, an erase-line
// escape, and a newline followed by a fake line.
const spoof = "hi\r\x1b[2K\n15:04 mallory: fake\n[12:00] organization (verified): update"

// rawHostile matches what must never reach the screen from a peer.
var rawHostile = regexp.MustCompile("[\x1b\r\u009b\u202a-\u202e\u2066-\u2069\u200b\ufeff]")

// The chat pane, the conversation list, the notice line and the status
// line show hostile text neutralized: no raw escape or bidi control, and
// no line of a message that starts like a message of its own.
func TestViewNeutralizesHostileText(t *testing.T) {
	// The test looks for raw escapes: the app's own styling is off here.
	defer func(b, f, r lipgloss.Style) { bold, faint, reverse = b, f, r }(bold, faint, reverse)
	bold, faint, reverse = lipgloss.NewStyle(), lipgloss.NewStyle(), lipgloss.NewStyle()
	at := time.Date(2026, 12, 7, 15, 4, 0, 0, time.Local)
	m := &Model{
		peer:     "mal\u200blory",
		convs:    []client.Conversation{{Peer: "mal\u202elory"}},
		cursor:   -1,
		progress: map[string]ProgressMsg{},
		typing:   map[string]time.Time{},
		hist: []*client.Message{
			{ID: []byte{1}, From: "mal\u200blory", Peer: "mallory", SentAt: at, Text: spoof,
				Reactions: []client.Reaction{{From: "x\u202ey", Emoji: "\x1b[31m👍"}}},
			{ID: []byte{2}, From: "mallory", Peer: "mallory", SentAt: at, Text: spoof,
				Attachment: &client.Attachment{Name: "invoice\u202egnp.exe", Size: 11}},
			{ID: []byte{3}, From: "mallory", Peer: "mallory", SentAt: at, QuoteID: []byte{1}, Text: "re"},
		},
		notices: []NoticeMsg{{At: at, Text: "org\x1b]0;title\x07\nfake"}},
		status:  "! " + errors.New("relay said \x1b[2J\u202eevil").Error(),
	}
	lines := append(m.chatLines(60, 40), m.listLines(10)...)
	lines = append(lines, m.infoLine(), m.statusLine())
	var starts int
	for _, l := range lines {
		if rawHostile.MatchString(l) {
			t.Errorf("raw hostile character on screen: %q", l)
		}
		if strings.Contains(l, "\n") {
			t.Errorf("a line break inside a line: %q", l)
		}
		// Only the first line of each message starts with its time.
		if strings.HasPrefix(strings.TrimLeft(l, " >"), "15:04 ") {
			starts++
		}
	}
	if starts != len(m.hist) {
		t.Errorf("%d lines start like a message, want %d (one per message):\n%s", starts, len(m.hist), strings.Join(lines, "\n"))
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{`hi\x0d\x1b[2K`, `  | 15:04 mallory: fake`, `invoice\u202egnp.exe`, `mal\u200blory`, `\x1b[31m👍`, `org\x1b]0;title\x07\x0afake`} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in:\n%s", want, joined)
		}
	}
}
