package main

import (
	"context"
	"testing"
	"time"

	"sotto/internal/orgtest"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/pgstore"
	"sotto/relay/pgstore/pgtest"
)

// Two relay nodes on one PostgreSQL database and one NATS server: a
// group commit and a group message stored through node A wake the member
// device connected to node B (a GroupWaiting push), which then reads
// them.
func TestGroupWakeAcrossNodes(t *testing.T) {
	pgURL := pgtest.URL(t)
	natsURL := natstest.URL(t)
	schema := pgtest.Schema(t, pgURL)
	a := startNode(t, pgURL, schema, natsURL, "")
	b := startNode(t, pgURL, schema, natsURL, "")
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
	seats, err := org.InviteAll(ctx, admin, []string{"alice", "bob"}, now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	alice := enrollGroupDevice(t, a.URL(), org, seats[0])
	bob := enrollGroupDevice(t, b.URL(), org, seats[1])
	bobConn := bob.connect(t, b.URL())
	woken := func(what string) {
		t.Helper()
		select {
		case <-bobConn.GroupWaiting():
		case <-time.After(20 * time.Second):
			t.Fatalf("bob, on the other node, was not woken by %s", what)
		}
	}
	id, err := alice.m.Create(ctx, "nodes", "bob")
	if err != nil {
		t.Fatal(err)
	}
	woken("the commit adding him")
	bob.sync(t)
	if _, err := alice.m.Send(ctx, id, "across nodes"); err != nil {
		t.Fatal(err)
	}
	woken("a group message")
	bob.sync(t)
	if got := bob.texts(t, id); len(got) != 1 || got[0] != "alice: across nodes" {
		t.Fatalf("bob has %q", got)
	}
}
