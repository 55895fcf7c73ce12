package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"sotto/client/groups"
	"sotto/mls"
	"sotto/wire"
)

// hostileGroup is a member's group state as its own store holds it, for
// a hostile client that skips the policy checks of its own: what it sends
// is built with the real MLS library and sent over its real connection.
func hostileGroup(t *testing.T, u *groupUser, id []byte) *mls.Group {
	t.Helper()
	g, err := groups.ReadState(context.Background(), u.c.db, id)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// hostileCommit sends a commit made from u's state with opts, skipping
// u's client's checks; the relay takes it (it cannot read the policy).
func hostileCommit(t *testing.T, u *groupUser, id []byte, opts mls.CommitOptions, added ...*wire.GroupDevice) {
	t.Helper()
	g := hostileGroup(t, u, id)
	p, err := g.Commit(opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := u.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := conn.GroupCommit(context.Background(), &wire.GroupCommitRequest{GroupId: id, Epoch: g.Epoch(), Commit: p.Commit, Welcome: p.Welcome, Added: added})
	if err != nil || !resp.Accepted {
		t.Fatalf("the relay did not take the hostile commit: %+v %v", resp, err)
	}
}

// policyCreate makes a group with the default rules (only admins add,
// remove and rename) and has every other user take it in.
func policyCreate(t *testing.T, admin *groupUser, opts groups.CreateOptions, others ...*groupUser) []byte {
	t.Helper()
	id, err := admin.g.CreateGroup(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range others {
		u.sync(t)
	}
	return id
}

func wantNotAllowed(t *testing.T, u *groupUser, n int) {
	t.Helper()
	if got := len(u.eventsOf(groups.EventNotAllowed)); got != n {
		t.Fatalf("%s was told of %d refused changes, want %d: %+v", u.name, got, n, u.events)
	}
}

// A member who is not an admin cannot add a user: their own client says
// no, and when a hostile client commits the add anyway (the relay takes
// it: it cannot read the group's policy), every other member refuses the
// commit, is told, and keeps the group as it was. The same for a rename.
func TestGroupPolicyNonAdminChangesRefused(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 4, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	dave := newGroupUser(t, r, code, "dave")

	id := policyCreate(t, alice, groups.CreateOptions{Name: "team", Description: "the team", Users: []string{"bob", "carol"}}, bob, carol)
	for _, u := range []*groupUser{alice, bob, carol} {
		info, err := u.g.Info(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "team" || info.Policy == nil || info.Policy.Description != "the team" || !slices.Equal(info.Policy.Admins, []string{"alice"}) {
			t.Fatalf("%s sees %+v %+v", u.name, info, info.Policy)
		}
	}
	epoch := bob.epoch(t, id)

	// bob's own client refuses.
	if err := bob.g.Add(ctx, id, "dave"); !errors.Is(err, groups.ErrNotAllowed) {
		t.Fatalf("a non-admin's add: %v", err)
	}
	if err := bob.g.Rename(ctx, id, "bob's"); !errors.Is(err, groups.ErrNotAllowed) {
		t.Fatalf("a non-admin's rename: %v", err)
	}
	if err := bob.g.SetAdmin(ctx, id, true, "bob"); !errors.Is(err, groups.ErrNotAllowed) {
		t.Fatalf("a non-admin making himself admin: %v", err)
	}
	if bob.epoch(t, id) != epoch {
		t.Fatal("a refused change moved the group")
	}

	// bob's hostile client adds dave anyway.
	conn, err := bob.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	kps, err := conn.FetchKeyPackages(ctx, "dave")
	if err != nil || len(kps.KeyPackages) == 0 {
		t.Fatalf("dave's key packages: %v", err)
	}
	hostileCommit(t, bob, id, mls.CommitOptions{Add: [][]byte{kps.KeyPackages[0].KeyPackage}}, &wire.GroupDevice{Username: "dave", DeviceId: kps.KeyPackages[0].DeviceId})
	for _, u := range []*groupUser{alice, carol} {
		u.sync(t)
		wantNotAllowed(t, u, 1)
		wantMembers(t, id, []string{"alice", "bob", "carol"}, u)
		// Refused, then undone by alice's commit (recover.go).
		if leaves(t, u, id) != 3 {
			t.Fatalf("%s applied the refused add", u.name)
		}
	}
	dave.sync(t)

	// In a second group, bob's hostile client renames it and makes
	// himself admin: refused by every other member.
	id2 := policyCreate(t, alice, groups.CreateOptions{Name: "second", Users: []string{"bob", "carol"}}, bob, carol)
	g := hostileGroup(t, bob, id2)
	var pol *groups.Policy
	for _, e := range g.Extensions() {
		if e.Type == groups.ExtensionPolicy {
			if pol, err = groups.ParsePolicy(e.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if pol == nil {
		t.Fatal("no policy in the group context")
	}
	for i, change := range []func(*groups.Policy){
		func(p *groups.Policy) { p.Name = "bob's" },
		func(p *groups.Policy) { p.Admins = append(p.Admins, "bob") },
	} {
		gid := id2
		if i == 1 {
			gid = policyCreate(t, alice, groups.CreateOptions{Name: "third", Users: []string{"bob", "carol"}}, bob, carol)
		}
		next := *pol
		next.Admins = slices.Clone(pol.Admins)
		change(&next)
		b, err := json.Marshal(&next)
		if err != nil {
			t.Fatal(err)
		}
		hostileCommit(t, bob, gid, mls.CommitOptions{Extensions: []mls.Extension{{Type: groups.ExtensionPolicy, Data: b}}})
		for _, u := range []*groupUser{alice, carol} {
			u.sync(t)
			wantNotAllowed(t, u, 2+i)
			info, err := u.g.Info(ctx, gid)
			if err != nil {
				t.Fatal(err)
			}
			if info.Name == "bob's" || !slices.Equal(info.Policy.Admins, []string{"alice"}) {
				t.Fatalf("%s applied a non-admin's change: %+v", u.name, info.Policy)
			}
		}
	}
}

// In an announcement group only admins post: a member's own client
// refuses, and a hostile client's post is refused by every member.
func TestGroupPolicyAnnouncement(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 3, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	id := policyCreate(t, alice, groups.CreateOptions{Name: "news", Announce: true, Users: []string{"bob", "carol"}}, bob, carol)

	if _, err := bob.g.Send(ctx, id, "me too"); !errors.Is(err, groups.ErrNotAllowed) {
		t.Fatalf("a member's post in an announcement group: %v", err)
	}
	// bob's hostile client posts anyway.
	g := hostileGroup(t, bob, id)
	ct, err := g.Seal(append([]byte{1}, "hostile post"...))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := bob.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.GroupSend(ctx, &wire.GroupSendRequest{GroupId: id, MessageId: []byte("hostile"), Content: ct}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Send(ctx, id, "the news"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, "carol", carol.sync(t), "alice: the news")
	wantNotAllowed(t, carol, 1)
	wantTexts(t, "alice", alice.sync(t))
	wantNotAllowed(t, alice, 1)

	// alice lets everyone post again: bob's message goes through.
	if err := alice.g.SetAnnounce(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)
	if _, err := bob.g.Send(ctx, id, "now I can"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, "carol", carol.sync(t), "bob: now I can")
}

// Roles, rename, leave: an admin makes another member admin, who then
// adds and renames; a member who is not an admin leaves (asks, and the
// next committer removes them); removing a user removes all their
// devices.
func TestGroupPolicyRolesAndLeave(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 4, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	dave := newGroupUser(t, r, code, "dave")
	id := policyCreate(t, alice, groups.CreateOptions{Name: "team", Users: []string{"bob", "carol"}}, bob, carol)

	if err := alice.g.SetAdmin(ctx, id, true, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)
	if err := bob.g.Add(ctx, id, "dave"); err != nil {
		t.Fatalf("a new admin adds: %v", err)
	}
	if err := bob.g.Rename(ctx, id, "renamed"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*groupUser{alice, carol, dave} {
		u.sync(t)
		wantNotAllowed(t, u, 0)
		info, err := u.g.Info(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "renamed" || !slices.Equal(info.Policy.Admins, []string{"alice", "bob"}) {
			t.Fatalf("%s sees %q %v", u.name, info.Name, info.Policy.Admins)
		}
	}
	wantMembers(t, id, []string{"alice", "bob", "carol", "dave"}, alice, bob, carol, dave)

	// carol leaves; dave (not an admin) commits next, and carol's
	// removal goes with it.
	if err := carol.g.Leave(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.g.Info(ctx, id); !errors.Is(err, groups.ErrRemovedHere) {
		t.Fatalf("after leaving: %v", err)
	}
	dave.sync(t)
	if err := dave.g.Update(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*groupUser{alice, bob} {
		u.sync(t)
		wantNotAllowed(t, u, 0)
	}
	wantMembers(t, id, []string{"alice", "bob", "dave"}, alice, bob, dave)

	// dave, not an admin, may not remove bob; alice removes dave.
	if err := dave.g.Remove(ctx, id, "bob"); !errors.Is(err, groups.ErrNotAllowed) {
		t.Fatalf("a non-admin's remove: %v", err)
	}
	if err := alice.g.Remove(ctx, id, "dave"); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	dave.sync(t)
	wantMembers(t, id, []string{"alice", "bob"}, alice, bob)
	if len(dave.eventsOf(groups.EventRemoved)) != 1 {
		t.Fatalf("dave's events: %+v", dave.events)
	}
}
