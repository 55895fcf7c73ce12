package main

import (
	"flag"
	"fmt"
	"strings"

	"sotto/agent/api"
	"sotto/internal/safetext"
)

// groupFlags are the flags of the group policy commands.
type groupFlags struct {
	announce    *bool
	description *string
	membersMay  *string
	remove      *bool
	descSet     func() bool
}

func groupPolicyFlags(fs *flag.FlagSet) *groupFlags {
	f := &groupFlags{
		announce:    fs.Bool("announce", false, "create: an announcement group (only admins post)"),
		description: fs.String("description", "", "create, rename: the group's `TEXT` description"),
		membersMay:  fs.String("members-may", "", "create: what every member may do, of `add,remove,rename` (default: admins only)"),
		remove:      fs.Bool("remove", false, "admin: make the users plain members again"),
	}
	f.descSet = func() bool {
		set := false
		fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == "description" })
		return set
	}
	return f
}

// groupPolicyCommand runs the group commands of roles and rules (create,
// rename, leave, members, admin, announce); done is false for the others.
func groupPolicyCommand(e *env, cl *api.Client, sub string, rest []string, f *groupFlags) (done bool, err error) {
	if sub == "create" {
		req := api.GroupCreateRequest{Name: rest[0], Users: rest[1:], Description: *f.description, Announce: *f.announce}
		if *f.membersMay != "" {
			req.MembersMay = strings.Split(*f.membersMay, ",")
		}
		g, err := cl.CreateGroupWith(e.ctx, req)
		if err != nil {
			return true, err
		}
		fmt.Fprintf(e.stdout, "created group %s (%s)\n", safetext.Name(rest[0]), shortID(g.ID))
		printMembers(e, g)
		return true, nil
	}
	switch sub {
	case "rename", "leave", "members", "admin", "announce":
	default:
		return false, nil
	}
	id, err := findGroup(e, cl, rest[0])
	if err != nil {
		return true, err
	}
	var g *api.Group
	switch sub {
	case "rename":
		var desc *string
		if f.descSet() {
			desc = f.description
		}
		if g, err = cl.RenameGroup(e.ctx, id, strings.Join(rest[1:], " "), desc); err == nil {
			fmt.Fprintf(e.stdout, "renamed to %s\n", safetext.Name(g.Name))
		}
		return true, err
	case "leave":
		if err := cl.LeaveGroup(e.ctx, id); err != nil {
			return true, err
		}
		fmt.Fprintf(e.stdout, "you left %s\n", safetext.Name(rest[0]))
		return true, nil
	case "members":
		return true, printGroupMembers(e, cl, id)
	case "admin":
		g, err = cl.SetGroupAdmins(e.ctx, id, rest[1:], !*f.remove)
	default: // announce
		var on bool
		switch rest[1] {
		case "on":
			on = true
		case "off":
		default:
			return true, fmt.Errorf("group announce: on or off, not %s", safetext.Name(rest[1]))
		}
		g, err = cl.SetGroupAnnounce(e.ctx, id, on)
	}
	if err != nil {
		return true, err
	}
	printPolicy(e, g)
	return true, nil
}

// printPolicy prints a group's admins and whether only they post.
func printPolicy(e *env, g *api.Group) {
	if g.Policy == nil {
		fmt.Fprintln(e.stdout, "rules: every member may do everything")
		return
	}
	var admins []string
	for _, a := range g.Policy.Admins {
		admins = append(admins, safetext.Name(a))
	}
	fmt.Fprintf(e.stdout, "admins: %s\n", strings.Join(admins, ", "))
	if g.Policy.Announce {
		fmt.Fprintln(e.stdout, "announcement group: only admins post")
	}
}

// printGroupMembers prints "USER (admin) devices 1, 2: verified".
func printGroupMembers(e *env, cl *api.Client, id api.ID) error {
	g, err := cl.Group(e.ctx, id)
	if err != nil {
		return err
	}
	ms, err := cl.GroupMembers(e.ctx, id)
	if err != nil {
		return err
	}
	if g.Name != "" {
		fmt.Fprintf(e.stdout, "group %s\n", safetext.Name(g.Name))
	}
	if g.Description != "" {
		fmt.Fprintf(e.stdout, "description: %s\n", safetext.Line(g.Description))
	}
	if g.Policy != nil && g.Policy.Announce {
		fmt.Fprintln(e.stdout, "announcement group: only admins post")
	}
	for _, m := range ms {
		role := ""
		if m.Admin {
			role = " (admin)"
		}
		var ds []string
		for _, d := range m.Devices {
			ds = append(ds, fmt.Sprint(d))
		}
		fmt.Fprintf(e.stdout, "%s%s\tdevices %s\t%s\n", safetext.Name(m.User), role, strings.Join(ds, ", "), m.Verification)
	}
	return nil
}
