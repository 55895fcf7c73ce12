package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"sotto/client/groups"
	"sotto/internal/safetext"
)

const groupUsage = `usage: sotto group COMMAND
  group create NAME [USER...]     a group with you (all your devices) and each USER's devices
  group add GROUP USER...
  group remove GROUP USER...
  group send GROUP TEXT...
  group sync                      fetch and print new group messages
  group join ID                   join, from this new device, a group your other device is in
                                  (ID: the full id, from group list --full on that device)
  group list [--full]
GROUP: the NAME you created it with, or the start of its id (group list).
`

// cmdGroup runs `sotto group ...` (client/groups).
func cmdGroup(e *env, args []string) error {
	fs := e.flagSet("group")
	full := fs.Bool("full", false, "list: print whole group ids")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprint(e.stderr, groupUsage)
		return errUsage
	}
	sub, rest := pos[0], pos[1:]
	need := map[string]int{"create": 1, "add": 2, "remove": 2, "send": 2, "sync": 0, "list": 0, "join": 1}
	n, ok := need[sub]
	if !ok || len(rest) < n {
		fmt.Fprint(e.stderr, groupUsage)
		return errUsage
	}
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	g, err := c.Groups(e.ctx, func(ev groups.Event) {
		fmt.Fprintf(e.stderr, "! %s\n", safetext.Line(ev.Detail))
	})
	if err != nil {
		return err
	}
	// Take in what waits first: a commit made now must be on top of it.
	msgs, err := g.Sync(e.ctx)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		id, err := g.Create(e.ctx, rest[0], rest[1:]...)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created group %s (%s)\n", safetext.Name(rest[0]), shortID(id))
		return printMembers(e, g, id)
	case "sync":
		return printGroupMessages(e, g, msgs)
	case "join":
		id, err := hex.DecodeString(rest[0])
		if err != nil || len(id) == 0 {
			return fmt.Errorf("group join: ID is the group's whole id in hex (group list --full)")
		}
		if err := g.JoinExternal(e.ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "joined group %s\n", shortID(id))
		return printMembers(e, g, id)
	case "list":
		infos, err := g.List(e.ctx)
		if err != nil {
			return err
		}
		for _, info := range infos {
			shown := shortID(info.ID)
			if *full {
				shown = hex.EncodeToString(info.ID)
			}
			fmt.Fprintf(e.stdout, "%s\t%s\t%d members\n", shown, safetext.Name(info.Name), len(memberNames(info.Members)))
		}
		return nil
	}
	id, err := findGroup(e, g, rest[0])
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		if err := g.Add(e.ctx, id, rest[1:]...); err != nil {
			return err
		}
		return printMembers(e, g, id)
	case "remove":
		if err := g.Remove(e.ctx, id, rest[1:]...); err != nil {
			return err
		}
		return printMembers(e, g, id)
	default: // send
		return g.Send(e.ctx, id, strings.Join(rest[1:], " "))
	}
}

// findGroup resolves a group by its local name or the start of its id.
func findGroup(e *env, g *groups.Manager, name string) ([]byte, error) {
	infos, err := g.List(e.ctx)
	if err != nil {
		return nil, err
	}
	var found [][]byte
	for _, info := range infos {
		if info.Name == name || (len(name) >= 4 && strings.HasPrefix(hex.EncodeToString(info.ID), strings.ToLower(name))) {
			found = append(found, info.ID)
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

// memberNames lists each member user once, in leaf order.
func memberNames(ms []groups.Member) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.Username] {
			seen[m.Username] = true
			out = append(out, m.Username)
		}
	}
	return out
}

func printMembers(e *env, g *groups.Manager, id []byte) error {
	info, err := g.Info(e.ctx, id)
	if err != nil {
		return err
	}
	var names []string
	for _, n := range memberNames(info.Members) {
		names = append(names, safetext.Name(n))
	}
	fmt.Fprintf(e.stdout, "members: %s\n", strings.Join(names, ", "))
	return nil
}

func printGroupMessages(e *env, g *groups.Manager, msgs []groups.Message) error {
	infos, err := g.List(e.ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		name := shortID(m.Group)
		for _, info := range infos {
			if bytes.Equal(info.ID, m.Group) && info.Name != "" {
				name = info.Name
			}
		}
		fmt.Fprintf(e.stdout, "[%s] %s: %s\n", safetext.Name(name), safetext.Name(m.From), safetext.Body(m.Text))
	}
	return nil
}
