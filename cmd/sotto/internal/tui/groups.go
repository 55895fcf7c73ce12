package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"

	"sotto/client"
	"sotto/internal/safetext"
)

// GroupDevice is what a Device implements to show group chats: groups
// join the conversation list (as "#NAME"), a message typed in one goes to
// the group, and /members (or ctrl+s) shows the member pane.
type GroupDevice interface {
	Groups(ctx context.Context) ([]Group, error)
	GroupHistory(ctx context.Context, id []byte, limit int) ([]*client.Message, error)
	GroupSend(ctx context.Context, id []byte, text string) error
	GroupMembers(ctx context.Context, id []byte) ([]GroupMember, error)
}

// Group is a group chat as the list shows it.
type Group struct {
	ID       []byte
	Name     string
	Announce bool // only admins post
}

// GroupMember is a member user of a group, for the member pane.
type GroupMember struct {
	User         string
	Devices      int
	Admin        bool
	Verification string // "you", "verified", "unverified", "changed", "unknown"
}

// groupPrefix marks a group in the conversation list (usernames cannot
// start with it).
const groupPrefix = "#"

// groupKey is a group's entry in the conversation list.
func groupKey(g Group) string {
	if g.Name == "" {
		return groupPrefix + fmt.Sprintf("%x", g.ID[:min(6, len(g.ID))])
	}
	return groupPrefix + g.Name
}

// isGroup reports whether the open conversation is a group.
func (m *Model) isGroup() bool { return m.groupID(m.peer) != nil }

// groupID is the id of the group behind a list entry (nil: a 1:1 peer).
func (m *Model) groupID(peer string) []byte {
	if !strings.HasPrefix(peer, groupPrefix) {
		return nil
	}
	return m.groups[peer]
}

// reloadGroups adds the device's groups to the conversation list and
// reads the open group's messages; it reports whether it read them.
func (m *Model) reloadGroups(convs []client.Conversation) ([]client.Conversation, bool) {
	gd, ok := m.c.(GroupDevice)
	if !ok {
		return convs, false
	}
	gs, err := gd.Groups(m.ctx)
	if err != nil {
		m.status = "! groups: " + err.Error()
		return convs, false
	}
	slices.SortFunc(gs, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	m.groups = map[string][]byte{}
	for _, g := range gs {
		k := groupKey(g)
		if _, dup := m.groups[k]; dup {
			k = groupKey(Group{ID: g.ID})
		}
		m.groups[k] = g.ID
		convs = append(convs, client.Conversation{Peer: k})
	}
	id := m.groupID(m.peer)
	if id == nil {
		return convs, false
	}
	hist, err := gd.GroupHistory(m.ctx, id, 200)
	if err != nil {
		m.status = "! " + err.Error()
		return convs, true
	}
	m.hist = hist
	if m.cursor >= len(m.hist) {
		m.cursor = -1
	}
	if m.members != nil {
		m.members, _ = gd.GroupMembers(m.ctx, id)
	}
	return convs, true
}

// groupSubmit sends a line typed in a group, or runs its /command.
func (m *Model) groupSubmit(line string) (handled bool, cmd tea.Cmd) {
	gd, ok := m.c.(GroupDevice)
	id := m.groupID(m.peer)
	if !ok || id == nil {
		return false, nil
	}
	ctx := m.ctx
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		text := strings.TrimPrefix(line, "/")
		m.cursor = -1
		return true, func() tea.Msg { return resultMsg{err: gd.GroupSend(ctx, id, text)} }
	}
	c, _, _ := strings.Cut(line[1:], " ")
	switch c {
	case "members", "m":
		m.toggleMembers()
		return true, nil
	case "help", "h":
		m.status = "in a group: type to send · /members (or ctrl+s) the member pane · tab list · /quit"
		return true, nil
	case "quit", "q":
		return false, nil
	}
	m.status = "! /" + c + " is not available in groups yet (/help)"
	return true, nil
}

// toggleMembers opens or closes the member pane of the open group.
func (m *Model) toggleMembers() {
	gd, ok := m.c.(GroupDevice)
	id := m.groupID(m.peer)
	if !ok || id == nil {
		return
	}
	if m.members != nil {
		m.members = nil
		return
	}
	ms, err := gd.GroupMembers(m.ctx, id)
	if err != nil {
		m.status = "! members: " + err.Error()
		return
	}
	m.members = ms
	if m.members == nil {
		m.members = []GroupMember{}
	}
}

// memberLines renders the member pane.
func (m *Model) memberLines(n int) []string {
	lines := make([]string, n)
	lines[0] = bold.Render(fmt.Sprintf(" Members of %s (%d)", safetext.Name(m.peer), len(m.members)))
	for i, mb := range m.members {
		if i+2 >= n {
			break
		}
		role := ""
		if mb.Admin {
			role = " · admin"
		}
		devs := "device"
		if mb.Devices != 1 {
			devs = "devices"
		}
		lines[i+2] = fmt.Sprintf(" %s%s · %d %s · %s", safetext.Name(mb.User), role, mb.Devices, devs, mb.Verification)
	}
	return lines
}
