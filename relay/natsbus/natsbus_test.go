package natsbus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/natsbus"
	"sotto/relay/natsbus/natstest"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testPrefix isolates concurrent test runs on one NATS server.
func testPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "sottotest." + hex.EncodeToString(b[:])
}

type call struct{ envs []relay.Envelope }

func TestTwoNodes(t *testing.T) {
	prefix := testPrefix()
	b1 := natsbus.New(natstest.Conn(t), discard(), natsbus.Options{Prefix: prefix})
	b2 := natsbus.New(natstest.Conn(t), discard(), natsbus.Options{Prefix: prefix})
	ctx := context.Background()
	dev := relay.DeviceAddr{Device: 3}
	dev.Account[0] = 7
	other := relay.DeviceAddr{Device: 4}

	calls := make(chan call, 16)
	cancel := b1.Subscribe(dev, func(envs []relay.Envelope) { calls <- call{envs} })
	cancelOther := b1.Subscribe(other, func([]relay.Envelope) { t.Error("other device notified") })
	defer cancelOther()
	if err := b1.Flush(ctx); err != nil { // the subscription is on the server
		t.Fatal(err)
	}
	next := func() call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no notification within 10s")
		}
		return call{}
	}

	// Same node: the envelopes are passed on; its own NATS echo is
	// ignored (checked below: the next call is node 2's wake-up).
	env := relay.Envelope{Recipient: dev, Content: []byte("x")}
	if err := b1.Notify(ctx, dev, []relay.Envelope{env}); err != nil {
		t.Fatal(err)
	}
	if c := next(); len(c.envs) != 1 || string(c.envs[0].Content) != "x" {
		t.Fatalf("local notify: %+v", c)
	}
	if err := b1.Flush(ctx); err != nil { // node 1 has read its echo
		t.Fatal(err)
	}
	// Another node: a wake-up without envelopes (look in the mailbox).
	if err := b2.Notify(ctx, dev, []relay.Envelope{env}); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.envs != nil {
		t.Fatalf("remote notify carried envelopes: %+v", c)
	}

	// A second subscriber of the same device shares the NATS
	// subscription; cancelling one keeps the other.
	calls2 := make(chan call, 16)
	cancel2 := b1.Subscribe(dev, func(envs []relay.Envelope) { calls2 <- call{envs} })
	cancel()
	cancel() // idempotent
	if err := b1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b2.Notify(ctx, dev, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-calls2:
	case <-time.After(10 * time.Second):
		t.Fatal("remaining subscriber not notified")
	}
	cancel2()
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-calls:
		t.Fatalf("cancelled subscriber called: %+v", c)
	default:
	}
}

func TestSubject(t *testing.T) {
	b := natsbus.New(nil, discard(), natsbus.Options{})
	var a relay.AccountID
	a[15] = 0xab
	got := b.Subject(relay.DeviceAddr{Account: a, Device: 12})
	if want := "sotto.dev.000000000000000000000000000000ab.12"; got != want {
		t.Fatalf("subject %q want %q", got, want)
	}
}

// A group wake-up published by one node reaches the other nodes, not
// itself, with the group, the sender and the commit flag.
func TestGroupWake(t *testing.T) {
	prefix := testPrefix()
	b1 := natsbus.New(natstest.Conn(t), discard(), natsbus.Options{Prefix: prefix})
	b2 := natsbus.New(natstest.Conn(t), discard(), natsbus.Options{Prefix: prefix})
	ctx := context.Background()
	type wake struct {
		group  string
		sender relay.DeviceAddr
		commit bool
	}
	got := make(chan wake, 4)
	defer b2.SubscribeGroups(func(g []byte, s relay.DeviceAddr, c bool) { got <- wake{string(g), s, c} })()
	defer b1.SubscribeGroups(func([]byte, relay.DeviceAddr, bool) { t.Error("a node woken by its own group wake-up") })()
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sender := relay.DeviceAddr{Device: 2}
	sender.Account[3] = 9
	for _, commit := range []bool{true, false} {
		if err := b1.NotifyGroup(ctx, []byte("group-1"), sender, commit); err != nil {
			t.Fatal(err)
		}
		select {
		case w := <-got:
			if w != (wake{"group-1", sender, commit}) {
				t.Fatalf("woken with %+v", w)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no group wake-up within 10s")
		}
	}
	if err := b1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}
