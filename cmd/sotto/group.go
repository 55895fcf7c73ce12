package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"sotto/agent/api"
	"sotto/internal/safetext"
)

const groupUsage = `usage: sotto group COMMAND
  group create NAME [--announce] [--description TEXT] [--members-may add,remove,rename] [USER...]
                                  a group with you (all your devices, its admin) and each USER's
                                  devices; --announce: only admins post
  group add GROUP USER...         (admins, unless members may)
  group remove GROUP USER...      (admins, unless members may)
  group rename GROUP NEW [--description TEXT]
  group leave GROUP               you and all your devices leave
  group members GROUP             members, their devices, roles and verification state
  group admin GROUP USER...       make USERs admins (admins only); --remove: plain members again
  group announce GROUP on|off     only admins post, or everyone (admins only)
  group send GROUP TEXT...          "@user" mentions a member
  group reply GROUP MSGID TEXT...
  group react GROUP MSGID EMOJI     (EMOJI "": withdraw)
  group edit GROUP MSGID TEXT...
  group delete GROUP MSGID          for everyone (your own, within 24 hours)
  group attach GROUP FILE [--caption TEXT]
  group download GROUP MSGID --out PATH
  group timer GROUP DURATION|off    disappearing messages for every member
  group read GROUP                  mark read (read receipts: settings group-receipts on)
  group history GROUP [--limit N] [--json]
  group sync                      fetch and print new group messages (with an agent
                                  running, it has taken them in already: see history)
  group join ID                   join, from this new device, a group your other device is in
                                  (ID: the full id, from group list --full on that device)
  group list [--full]
GROUP: the NAME you created it with, or the start of its id (group list).
MSGID: a message id (group history --json), or "last": the newest message
(your own for edit and delete, another member's otherwise).
`

// cmdGroup runs `sotto group ...` through the device's agent
// (docs/agent-api.md, Groups).
func cmdGroup(e *env, args []string) error {
	fs := e.flagSet("group")
	full := fs.Bool("full", false, "list: print whole group ids")
	limit := fs.Int("limit", 50, "history: the last `N` messages (0: all)")
	asJSON := fs.Bool("json", false, "history, sync: print messages as JSON lines")
	pf := groupPolicyFlags(fs)
	var mo msgOpts
	fs.StringVar(&mo.caption, "caption", "", "attach: a caption")
	fs.StringVar(&mo.out, "out", "", "download: the file to write")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprint(e.stderr, groupUsage)
		return errUsage
	}
	sub, rest := pos[0], pos[1:]
	need := map[string]int{"create": 1, "add": 2, "remove": 2, "send": 2, "sync": 0, "list": 0, "join": 1, "history": 1,
		"rename": 2, "leave": 1, "members": 1, "admin": 2, "announce": 2,
		"reply": 3, "react": 3, "edit": 3, "delete": 2, "attach": 2, "download": 2, "timer": 2, "read": 1}
	n, ok := need[sub]
	if !ok || len(rest) < n {
		fmt.Fprint(e.stderr, groupUsage)
		return errUsage
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	if s.host != nil {
		// An agent hosted for this command only: what it reported about
		// the groups meanwhile is said at the end (a running agent
		// publishes it to its listeners).
		defer groupNotices(e, s.api)
	}
	if groupMessageCommands[sub] {
		return agentError(e, groupMessageCommand(e, s.api, sub, rest, mo))
	}
	if done, err := groupPolicyCommand(e, s.api, sub, rest, pf); done {
		return agentError(e, err)
	}
	return agentError(e, groupCommand(e, s.api, sub, rest, *full, *limit, *asJSON))
}

func groupCommand(e *env, cl *api.Client, sub string, rest []string, full bool, limit int, asJSON bool) error {
	switch sub {
	case "create":
		g, err := cl.CreateGroup(e.ctx, rest[0], rest[1:])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created group %s (%s)\n", safetext.Name(rest[0]), shortID(g.ID))
		printMembers(e, g)
		return nil
	case "sync":
		ms, err := cl.SyncGroups(e.ctx)
		if err != nil {
			return err
		}
		return printGroupMessages(e, cl, ms, asJSON)
	case "join":
		id, err := hex.DecodeString(rest[0])
		if err != nil || len(id) == 0 {
			return fmt.Errorf("group join: ID is the group's whole id in hex (group list --full)")
		}
		g, err := cl.JoinGroup(e.ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "joined group %s\n", shortID(id))
		printMembers(e, g)
		return nil
	case "list":
		gs, err := cl.Groups(e.ctx)
		if err != nil {
			return err
		}
		for _, g := range gs {
			shown := shortID(g.ID)
			if full {
				shown = hex.EncodeToString(g.ID)
			}
			fmt.Fprintf(e.stdout, "%s\t%s\t%d members\n", shown, safetext.Name(g.Name), len(g.Users()))
		}
		return nil
	}
	id, err := findGroup(e, cl, rest[0])
	if err != nil {
		return err
	}
	var g *api.Group
	switch sub {
	case "add":
		g, err = cl.AddToGroup(e.ctx, id, rest[1:])
	case "remove":
		g, err = cl.RemoveFromGroup(e.ctx, id, rest[1:])
	case "history":
		ms, err := cl.GroupMessages(e.ctx, id, limit)
		if err != nil {
			return err
		}
		return printGroupMessages(e, cl, ms, asJSON)
	default: // send
		_, err = cl.SendGroup(e.ctx, id, strings.Join(rest[1:], " "))
		return err
	}
	if err != nil {
		return err
	}
	printMembers(e, g)
	return nil
}

// findGroup resolves a group by its local name or the start of its id.
func findGroup(e *env, cl *api.Client, name string) (api.ID, error) {
	gs, err := cl.Groups(e.ctx)
	if err != nil {
		return nil, err
	}
	var found []api.ID
	for _, g := range gs {
		if g.Name == name || (len(name) >= 4 && strings.HasPrefix(hex.EncodeToString(g.ID), strings.ToLower(name))) {
			found = append(found, g.ID)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no group %s (sotto group list)", safetext.Name(name))
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%s names %d groups: use more of the id (sotto group list)", safetext.Name(name), len(found))
}

func shortID(id []byte) string { return hex.EncodeToString(id)[:12] }

func printMembers(e *env, g *api.Group) {
	var names []string
	for _, n := range g.Users() {
		names = append(names, safetext.Name(n))
	}
	fmt.Fprintf(e.stdout, "members: %s\n", strings.Join(names, ", "))
}

// groupNames maps group ids to the names this device gave them.
func groupNames(e *env, cl *api.Client) map[string]string {
	names := map[string]string{}
	if gs, err := cl.Groups(e.ctx); err == nil {
		for _, g := range gs {
			if g.Name != "" {
				names[string(g.ID)] = g.Name
			}
		}
	}
	return names
}

func printGroupMessages(e *env, cl *api.Client, ms []*api.GroupMessage, asJSON bool) error {
	if len(ms) == 0 {
		return nil
	}
	names := groupNames(e, cl)
	for _, m := range ms {
		printGroupMessage(e, names, m, asJSON)
	}
	return nil
}

// printGroupMessage prints one group message as "[GROUP] FROM: TEXT"
// (GROUP: its local name, else the start of its id).
func printGroupMessage(e *env, names map[string]string, m *api.GroupMessage, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(m)
		fmt.Fprintf(e.stdout, "%s\n", b)
		return
	}
	name := names[string(m.Group)]
	if name == "" {
		name = shortID(m.Group)
	}
	from := safetext.Name(m.From)
	switch {
	case m.Outgoing:
		from = "me"
	case m.Kind == "alert":
		from = "sotto"
	}
	mark := ""
	if m.Updated {
		mark = "* "
	}
	fmt.Fprintf(e.stdout, "%s[%s] %s: %s\n", mark, safetext.Name(name), from, groupMessageText(m))
}

// printGroupNotice prints a group_update or group_refused event as a
// notice line; it reports whether ev was one.
func printGroupNotice(e *env, ev *api.Event) bool {
	switch ev.Type {
	case api.EventGroupRefused, api.EventGroupUpdate:
	default:
		return false
	}
	if ev.Type == api.EventGroupUpdate && ev.Change == api.GroupChanged {
		return true // shown by the command's own answer (members)
	}
	fmt.Fprintf(e.stderr, "! %s\n", safetext.Line(ev.Detail))
	return true
}

// groupNotices prints the group notices among the events an agent hosted
// for this command published (all of them kept: it ran only for it).
func groupNotices(e *env, cl *api.Client) {
	st, err := cl.Status(e.ctx)
	if err != nil || st.LastEvent == 0 {
		return
	}
	stream, err := cl.Events(e.ctx, true, 0)
	if err != nil {
		return
	}
	defer stream.Close()
	for {
		ev, err := stream.Next()
		if err != nil {
			return
		}
		printGroupNotice(e, ev)
		if ev.Seq >= st.LastEvent {
			return
		}
	}
}
