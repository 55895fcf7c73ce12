package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/natsgroups"
	"sotto/relay/pgstore"
	"sotto/relay/pgstore/pgtest"
)

// Two relay nodes with -mailbox jetstream: a group made, joined and
// used by real group clients through both nodes lives in JetStream
// (relay/natsgroups), not in the PostgreSQL store.
func TestGroupOnJetStream(t *testing.T) {
	pgURL := pgtest.URL(t)
	natsURL := natstest.URL(t)
	schema := pgtest.Schema(t, pgURL)
	jsName := strings.ToUpper(schema)
	deleteJetStreamAfter(t, jsName)
	a := startNode(t, pgURL, schema, natsURL, jsName)
	b := startNode(t, pgURL, schema, natsURL, jsName)
	ctx := context.Background()
	admin, err := pgstore.Open(ctx, pgURL, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	org := orgtest.New("Test Org")
	if err := org.Register(ctx, admin); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	seats, err := org.InviteAll(ctx, admin, []string{"alice", "bob", "carol"}, now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	alice := enrollGroupDevice(t, a.URL(), org, seats[0])
	bob := enrollGroupDevice(t, b.URL(), org, seats[1])
	carol := enrollGroupDevice(t, a.URL(), org, seats[2])

	id, err := alice.m.Create(ctx, "on jetstream", "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	if _, err := alice.m.Send(ctx, id, "hello from node A"); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	if _, err := bob.m.Send(ctx, id, "hello from node B"); err != nil {
		t.Fatal(err)
	}
	// bob adds carol through node B: her Welcome is in JetStream.
	if err := bob.m.Add(ctx, id, "carol"); err != nil {
		t.Fatal(err)
	}
	carol.sync(t)
	alice.sync(t)
	if _, err := carol.m.Send(ctx, id, "carol joined"); err != nil {
		t.Fatal(err)
	}
	alice.sync(t)
	bob.sync(t)
	want := []string{"alice: hello from node A", "bob: hello from node B", "carol: carol joined"}
	if got := alice.texts(t, id); !slices.Equal(got, want) {
		t.Fatalf("alice has %q, want %q", got, want)
	}
	if got := bob.texts(t, id); !slices.Equal(got, want) {
		t.Fatalf("bob has %q, want %q", got, want)
	}
	if got := carol.texts(t, id); !slices.Equal(got, want[2:]) {
		t.Fatalf("carol has %q", got)
	}

	// Where it lives: in the JetStream group store, at the members'
	// epoch; the SQL store has no such group.
	info, err := alice.m.Info(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := natsgroups.Open(ctx, natstest.Conn(t), jetStreamGroupOptions(jsName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := gs.Group(ctx, id)
	if err != nil || st.Epoch != info.Epoch || len(st.Members) != 3 {
		t.Fatalf("group in JetStream: epoch %d members %d (%v), the members' epoch %d", st.Epoch, len(st.Members), err, info.Epoch)
	}
	if _, err := admin.Group(ctx, id); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("the group is in the SQL store too: %v", err)
	}
}
