package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"sotto/client"
	"sotto/internal/safetext"
)

// GroupDevice is what a Device implements to show group chats: groups
// join the conversation list (as "#NAME"); in one, a typed line, /reply,
// /react, /edit, /delete, /file, /download and /timer act on the group
// (target.go); /members (or ctrl+s) shows the member pane; /rename,
// /describe, /admin, /announce and /leave change the group. id is the
// group's, msg a message's id.
type GroupDevice interface {
	Groups(ctx context.Context) ([]Group, error)
	GroupHistory(ctx context.Context, id []byte, limit int) ([]*client.Message, error)
	GroupMembers(ctx context.Context, id []byte) ([]GroupMember, error)
	GroupSend(ctx context.Context, id []byte, text string, quote []byte) error
	GroupReact(ctx context.Context, id, msg []byte, emoji string) error
	GroupEdit(ctx context.Context, id, msg []byte, text string) error
	GroupDelete(ctx context.Context, id, msg []byte) error
	GroupTimer(ctx context.Context, id []byte, d time.Duration) error
	// GroupSendFile sends the file at path (as typed); GroupDownload
	// saves msg's file into dir (empty: the device's attachments folder)
	// and returns where it went.
	GroupSendFile(ctx context.Context, id []byte, path, caption string) error
	GroupDownload(ctx context.Context, id []byte, msg *client.Message, dir string) (string, error)
	GroupMarkRead(ctx context.Context, id []byte) error
	GroupRename(ctx context.Context, id []byte, name string) error
	GroupDescribe(ctx context.Context, id []byte, description string) error
	GroupSetAdmin(ctx context.Context, id []byte, user string, admin bool) error
	GroupAnnounce(ctx context.Context, id []byte, announce bool) error
	GroupLeave(ctx context.Context, id []byte) error
}

// Group is a group chat as the list shows it.
type Group struct {
	ID          []byte
	Name        string
	Description string
	Announce    bool // only admins post
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

// followGroup keeps the open group open under its list entry after a
// rename, and closes it once the device is no longer in it.
func (m *Model) followGroup() {
	if m.openGroup == nil {
		return
	}
	for k, id := range m.groups {
		if string(id) == string(m.openGroup) {
			m.peer = k
			return
		}
	}
	m.status = "you are no longer in " + m.peer
	m.peer, m.openGroup, m.hist, m.members, m.focus = "", nil, nil, nil, focusList
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
	m.groups, m.groupInfo = map[string][]byte{}, map[string]Group{}
	for _, g := range gs {
		k := groupKey(g)
		if _, dup := m.groups[k]; dup {
			k = groupKey(Group{ID: g.ID})
		}
		m.groups[k], m.groupInfo[k] = g.ID, g
		convs = append(convs, client.Conversation{Peer: k})
	}
	m.followGroup()
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

// groupCommand runs a group's own /commands (the shared ones are
// submit's); ok is false for any other command or outside a group.
func (m *Model) groupCommand(cmd, arg string) (ok bool, c tea.Cmd) {
	gd, isGD := m.c.(GroupDevice)
	id := m.groupID(m.peer)
	if !isGD || id == nil {
		return false, nil
	}
	ctx := m.ctx
	run := func(what string, fn func() error) tea.Cmd {
		return func() tea.Msg { return resultMsg{what: what, err: fn()} }
	}
	switch cmd {
	case "members", "m":
		m.toggleMembers()
		return true, nil
	case "safety":
		m.status = "in a group: /members lists each member's verification (ctrl+s in a 1:1 chat compares safety numbers)"
		return true, nil
	case "rename":
		if arg == "" {
			m.status = "! /rename takes the group's new name"
			return true, nil
		}
		return true, run("renamed to "+arg, func() error { return gd.GroupRename(ctx, id, arg) })
	case "describe":
		return true, run("description set", func() error { return gd.GroupDescribe(ctx, id, arg) })
	case "admin", "unadmin":
		user := strings.TrimPrefix(arg, "@")
		if user == "" || strings.ContainsAny(user, " \t") {
			m.status = "! /" + cmd + " takes a member's username"
			return true, nil
		}
		what := user + " is an admin"
		if cmd == "unadmin" {
			what = user + " is no longer an admin"
		}
		return true, run(what, func() error { return gd.GroupSetAdmin(ctx, id, user, cmd == "admin") })
	case "announce":
		if arg != "on" && arg != "off" {
			m.status = "! /announce on (only admins post) or /announce off"
			return true, nil
		}
		return true, run("announcement group: "+arg, func() error { return gd.GroupAnnounce(ctx, id, arg == "on") })
	case "leave":
		name := m.peer
		m.confirm = &confirmation{
			question: fmt.Sprintf("leave %s with all your devices? y/n", name),
			refused:  "still in " + name,
			run: func() tea.Msg {
				err := gd.GroupLeave(ctx, id)
				return resultMsg{what: "you left " + name, err: err}
			},
		}
		return true, nil
	}
	return false, nil
}

// markGroupRead marks the open group's received messages read.
func (m *Model) markGroupRead() tea.Cmd {
	gd, ok := m.c.(GroupDevice)
	id := m.groupID(m.peer)
	if !ok || id == nil {
		return nil
	}
	unread := false
	for _, msg := range m.hist {
		if !msg.Outgoing && !msg.Read && msg.Kind == "" && !msg.Deleted {
			msg.Read, unread = true, true
		}
	}
	if !unread {
		return nil
	}
	ctx := m.ctx
	return func() tea.Msg { return resultMsg{what: "read", err: gd.GroupMarkRead(ctx, id)} }
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
	if g := m.groupInfo[m.peer]; g.Announce || g.Description != "" {
		about := safetext.Line(g.Description)
		if g.Announce {
			about = strings.TrimSuffix("announcement group: only admins post · "+about, " · ")
		}
		lines[1] = faint.Render(" " + about)
	}
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
