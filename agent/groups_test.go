package agent

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"sotto/agent/api"
	"sotto/client/groups"
	"sotto/mls"
	"sotto/relay"
)

// Group chats through two running agents: the receiving agent takes a
// group in and its messages by itself (the relay's push) and streams them
// as events; both keep the messages, their own included.
func TestAgentsGroupChat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	alice := startAgent(t, r.enroll(t, "alice"))
	bob := startAgent(t, r.enroll(t, "bob"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	bst, err := bob.api.Events(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bst.Close()
	ast, err := alice.api.Events(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ast.Close()
	// Connected: each stocked its KeyPackages.
	next(t, bst, api.EventIdle)
	next(t, ast, api.EventIdle)

	g, err := alice.api.CreateGroup(ctx, "team", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "team" || !slices.Equal(g.Users(), []string{"alice", "bob"}) {
		t.Fatalf("created %+v", g)
	}
	if ev := next(t, bst, api.EventGroupUpdate); ev.Change != api.GroupJoined || string(ev.Group) != string(g.ID) {
		t.Fatalf("bob's event %+v", ev)
	}
	if _, err := alice.api.SendGroup(ctx, g.ID, "hello team"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bst, api.EventGroupMessage).GroupMessage; m.Text != "hello team" || m.From != "alice" || m.Outgoing || string(m.Group) != string(g.ID) {
		t.Fatalf("bob got %+v", m)
	}
	sent, err := bob.api.SendGroup(ctx, g.ID, "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	if !sent.Outgoing || sent.From != "bob" || sent.Seq == 0 {
		t.Fatalf("sent %+v", sent)
	}
	if m := next(t, ast, api.EventGroupMessage).GroupMessage; m.Text != "hi alice" || m.From != "bob" || m.Seq != sent.Seq {
		t.Fatalf("alice got %+v", m)
	}

	// Both keep both messages, in the group's order.
	for who, cl := range map[string]*api.Client{"alice": alice.api, "bob": bob.api} {
		ms, err := cl.GroupMessages(ctx, g.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[0].Text != "hello team" || ms[1].Text != "hi alice" || ms[1].Outgoing != (who == "bob") {
			t.Fatalf("%s's messages: %+v", who, ms)
		}
	}
	gs, err := bob.api.Groups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Name != "team" || len(gs[0].Users()) != 2 || gs[0].Policy == nil || gs[0].Policy.Admins[0] != "alice" {
		t.Fatalf("bob's groups: %v %+v", err, gs)
	}
	// The agent took everything in already: a sync finds nothing new.
	if ms, err := bob.api.SyncGroups(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("sync: %v %+v", err, ms)
	}
	// A hostile relay serves a KeyPackage of its own for erin (a ghost
	// the organization never certified): alice's agent refuses to add
	// it, says why, and the group is as it was.
	r.enroll(t, "erin")
	acct, err := r.st.AccountByName(ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}
	ghost := relay.DeviceAddr{Account: acct.ID, Device: 1}
	for {
		if _, last, err := r.st.TakeKeyPackage(ctx, ghost); err != nil || last {
			break
		}
	}
	if err := r.st.StoreKeyPackages(ctx, ghost, [][]byte{forgedKeyPackage(t, "erin/1")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.api.AddToGroup(ctx, g.ID, []string{"erin"}); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("adding a ghost: %v", err)
	}
	if ev := next(t, ast, api.EventGroupRefused); string(ev.Group) != string(g.ID) || !strings.Contains(ev.Detail, "erin") {
		t.Fatalf("alice's event %+v", ev)
	}
	if cur, err := alice.api.Group(ctx, g.ID); err != nil || cur.Epoch != g.Epoch || len(cur.Users()) != 2 {
		t.Fatalf("after the ghost: %v %+v (was %+v)", err, cur, g)
	}

	// alice removes bob: bob is told.
	if g, err = alice.api.RemoveFromGroup(ctx, g.ID, []string{"bob"}); err != nil || len(g.Users()) != 1 {
		t.Fatalf("remove: %v %+v", err, g)
	}
	if ev := next(t, bst, api.EventGroupUpdate); ev.Change != api.GroupRemoved {
		t.Fatalf("bob's event %+v", ev)
	}
	if _, err := bob.api.SendGroup(ctx, g.ID, "still there?"); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("removed member sends: %v", err)
	}
	// The history stays.
	if ms, err := bob.api.GroupMessages(ctx, g.ID, 0); err != nil || len(ms) != 2 {
		t.Fatalf("bob's messages after removal: %v %+v", err, ms)
	}
	if _, err := alice.api.SendGroup(ctx, api.ID{1, 2, 3, 4}, "x"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
}

// forgedKeyPackage is a KeyPackage whose credential no organization
// certified (what a hostile relay could make up).
func forgedKeyPackage(t *testing.T, identity string) []byte {
	t.Helper()
	sig, err := mls.GenerateSignatureKey(groups.Suite)
	if err != nil {
		t.Fatal(err)
	}
	kp, _, err := mls.NewKeyPackage(groups.Suite, []byte(identity), sig)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
