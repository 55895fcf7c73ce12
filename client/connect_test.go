package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestConnectHoldsNoLockAcrossRelayCalls: a relay that accepts the
// connection and then never answers holds Connect up. Meanwhile local
// reads (history), the connection state (Done, Idle, Drained) and a send
// (which fails: not connected) all return, and Disconnect aborts the
// attempt. Were a lock held across the relay calls, they would wait
// forever (and the test would time out).
func TestConnectHoldsNoLockAcrossRelayCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	_, bev := r.enroll(t, code, "bob", true)
	if _, err := alice.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bev, EventMessage)
	alice.Disconnect()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if nc, err := ln.Accept(); err == nil {
			accepted <- nc
		}
	}()
	relayURL := alice.acct.Relay
	alice.acct.Relay = "http://" + ln.Addr().String() // a relay that says nothing
	errc := make(chan error, 1)
	go func() { errc <- alice.Connect(ctx, ConnectOptions{Receive: true}) }()
	nc := <-accepted // Connect now waits for the handshake's answer
	defer nc.Close()

	if h, err := alice.History(ctx, "bob", 0); err != nil || len(h) != 1 || h[0].Text != "before" {
		t.Fatalf("history while connecting: %+v %v", h, err)
	}
	if alice.Done() != nil || alice.Idle() != nil || alice.Drained() != nil {
		t.Fatal("connection state while connecting: not nil")
	}
	if _, err := alice.Send(ctx, "bob", "while connecting"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("send while connecting: %v", err)
	}
	alice.Disconnect()
	if err := <-errc; !errors.Is(err, errDisconnected) {
		t.Fatalf("the aborted Connect returned %v", err)
	}
	if alice.Done() != nil {
		t.Fatal("an aborted attempt left a connection")
	}

	// The next attempt, on the real relay, connects.
	alice.acct.Relay = relayURL
	if err := alice.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "after"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bev, EventMessage); e.Message.Text != "after" {
		t.Fatalf("bob got %+v", e.Message)
	}
}

// TestConnectConcurrentCallsShareOneAttempt: Connect called from several
// goroutines at once makes one connection.
func TestConnectConcurrentCallsShareOneAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	alice, _ := r.enroll(t, r.code(t, 1, time.Hour), "alice", false)
	alice.Disconnect()
	errc := make(chan error, 4)
	for range 4 {
		go func() { errc <- alice.Connect(ctx, ConnectOptions{}) }()
	}
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	first := alice.Done()
	if first == nil {
		t.Fatal("not connected")
	}
	if err := alice.Connect(ctx, ConnectOptions{}); err != nil || alice.Done() != first {
		t.Fatalf("a further Connect made another connection (%v)", err)
	}
}
