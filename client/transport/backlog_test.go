package transport_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"sotto/relay"
	"sotto/wire"
)

// backlogSize is the backlog of TestBacklogDrains (issue 18).
const backlogSize = 20000

// TestBacklogDrains: a device that comes back to 20,000 queued messages
// gets all of them, each once, and leaves its mailbox empty. It acks every
// envelope on its own as it takes it (AckLater), as the client does; the
// relay keeps its default request limit (500/s, bursts of 1,000) and
// delivery window (256). Before issue 18 the acks were refused past the
// limit and never sent again, the window filled with unacked envelopes
// and the relay pushed nothing more until the device reconnected.
//
// The backlog is written into the relay's mailbox through its store (as
// the relay would have stored it: sending 20,000 messages through the
// request limit would take the test 40 s); the drain is the real relay
// and the real client.
func TestBacklogDrains(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()
	alice, ad := r.join(t, "alice")
	alice.Close()
	bob, bd := r.join(t, "bob")
	bob.Close()
	aliceAcct, err := r.store.AccountByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bobAcct, err := r.store.AccountByName(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bobAddr := relay.DeviceAddr{Account: bobAcct.ID, Device: bd.id}
	fill(t, r.store, relay.DeviceAddr{Account: aliceAcct.ID, Device: ad.id}, ad.username, bobAddr)

	start := time.Now()
	b := r.login(t, bd)
	got := make(map[string]bool, backlogSize)
	timeout := time.After(5 * time.Minute) // bounds a stall; no timing is asserted
	for len(got) < backlogSize {
		select {
		case e, ok := <-b.Envelopes():
			if !ok {
				t.Fatalf("connection ended after %d envelopes: %v", len(got), b.Err())
			}
			id := string(e.MessageId)
			if got[id] {
				t.Fatalf("message %s delivered twice", id)
			}
			if id != string(e.Content) || e.Sender != "alice" {
				t.Fatalf("envelope %q from %q: not what was queued", e.Content, e.Sender)
			}
			got[id] = true
			b.AckLater(e.Id)
		case <-timeout:
			t.Fatalf("delivery stalled: %d of %d envelopes", len(got), backlogSize)
		}
	}
	if err := b.FlushAcks(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("drained %d envelopes in %v", backlogSize, time.Since(start).Round(time.Millisecond))
	left, err := r.store.Fetch(ctx, bobAddr, 0, time.Time{}, 10)
	if err != nil || len(left) != 0 {
		t.Fatalf("mailbox after the drain: %d envelopes, %v", len(left), err)
	}
	select {
	case e := <-b.Envelopes():
		t.Fatalf("envelope %q after the backlog", e.Content)
	default:
	}
}

// fill stores backlogSize sends from sender to dev, through the mailbox's
// asynchronous appends (batched commits).
func fill(t *testing.T, mb relay.Mailbox, sender relay.DeviceAddr, senderName string, dev relay.DeviceAddr) {
	t.Helper()
	am, ok := mb.(relay.AsyncMailbox)
	if !ok {
		t.Fatal("the SQLite mailbox is asynchronous")
	}
	done := make(chan error, backlogSize)
	now := time.Now()
	for i := range backlogSize {
		id := fmt.Sprintf("m%05d", i)
		e := relay.Envelope{Recipient: dev, Sender: senderName, SenderDevice: sender.Device, Timestamp: now,
			Type: 1, Content: []byte(id), MessageID: []byte(id)}
		rand.Read(e.ID[8:])
		am.AppendAsync(&relay.Send{Sender: sender, MessageID: []byte(id), Timestamp: now, Envelopes: []relay.Envelope{e}},
			func(_ relay.AppendResult, err error) { done <- err })
	}
	for range backlogSize {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestAcksOfPushedEnvelopesFree: an Ack of envelopes the relay pushed on
// this connection and that are not yet acked costs no request token (so a
// device draining a backlog is never refused its acks), while an Ack of
// anything else is charged like any request: acks are no way around the
// limit.
func TestAcksOfPushedEnvelopesFree(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.DeviceRate = relay.Rate{PerSecond: 0.001, Burst: 5} })
	ctx := context.Background()
	alice, _ := r.join(t, "alice") // one token
	_, bd := r.join(t, "bob")
	for i := range 3 {
		if _, err := send(t, alice, "bob", fmt.Sprint(i), fmt.Sprint(i), bd); err != nil {
			t.Fatal(err)
		}
	}
	b := r.login(t, bd) // one token
	var envs [][]byte
	for range 3 {
		envs = append(envs, recv(t, b).Id)
	}
	for {
		if _, err := b.Ping(ctx); err != nil {
			wantCode(t, err, wire.ErrorCode_RATE_LIMITED)
			break
		}
	}
	// Out of tokens: the acks of what was pushed still go through, one
	// by one.
	for _, id := range envs {
		if err := b.Ack(ctx, id); err != nil {
			t.Fatalf("ack of a pushed envelope: %v", err)
		}
	}
	// Acked already, or never pushed: charged, and refused.
	wantCode(t, b.Ack(ctx, envs[0]), wire.ErrorCode_RATE_LIMITED)
	wantCode(t, b.Ack(ctx, randBytes(16)), wire.ErrorCode_RATE_LIMITED)
}
