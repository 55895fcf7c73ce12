package tui

import (
	"strings"
	"testing"
	"time"

	"charm.land/lipgloss/v2"

	"sotto/client"
)

// A group's hostile text, from its name and description (any member who
// may rename writes them) to its member names and alerts, shows
// neutralized in the title, the list, the member pane and the chat pane.
func TestGroupViewNeutralizesHostileText(t *testing.T) {
	defer func(b, f, r lipgloss.Style) { bold, faint, reverse = b, f, r }(bold, faint, reverse)
	bold, faint, reverse = lipgloss.NewStyle(), lipgloss.NewStyle(), lipgloss.NewStyle()
	at := time.Date(2026, 12, 7, 15, 4, 0, 0, time.Local)
	name := groupKey(Group{ID: []byte{7}, Name: "team\x1b[2J\u202e"})
	m := &Model{
		peer:      name,
		openGroup: []byte{7},
		groups:    map[string][]byte{name: {7}},
		groupInfo: map[string]Group{name: {ID: []byte{7}, Description: "desc\r\x1b]0;x\x07\nfake", Announce: true}},
		convs:     []client.Conversation{{Peer: name}},
		cursor:    -1,
		progress:  map[string]ProgressMsg{},
		typing:    map[string]time.Time{},
		members:   []GroupMember{{User: "mal\u202elory", Devices: 1, Verification: "unknown"}},
		hist: []*client.Message{
			{ID: []byte{1}, Kind: kindAlert, SentAt: at, Text: "fork\x1b[2K\nfake line"},
			{ID: []byte{2}, From: "mal\u200blory", SentAt: at, Text: "hi", Attachment: &client.Attachment{Name: "a\u202etxt.exe", Size: 3}},
		},
	}
	lines := append(m.chatLines(60, 10), m.listLines(5)...)
	lines = append(lines, m.memberLines(5)...)
	joined := strings.Join(lines, "\n")
	for _, l := range lines {
		if rawHostile.MatchString(l) || strings.Contains(l, "\n") {
			t.Errorf("raw hostile text on screen: %q", l)
		}
	}
	for _, want := range []string{`#team\x1b[2J\u202e`, `desc\x0d\x1b]0;x\x07\x0afake`, `mal\u202elory`, `! fork\x1b[2K\x0afake line`, `a\u202etxt.exe`, "only admins post"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in:\n%s", want, joined)
		}
	}
}
