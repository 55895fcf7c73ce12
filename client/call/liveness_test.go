package call

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"sotto/client"
)

// keepConnected runs d's client with reconnection (client.Run), as the
// agent does, until the test ends.
func keepConnected(t *testing.T, d *device) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.c.Run(ctx, client.ConnectOptions{Receive: true}, nil) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// connect places a call from a to b and waits until audio flows both ways.
func connect(t *testing.T, a, b *device) (caller, callee *Call) {
	t.Helper()
	ctx := context.Background()
	caller, err := a.m.Dial(ctx, b.c.Username())
	if err != nil {
		t.Fatal(err)
	}
	callee = waitCall(t, b.incoming, "the incoming call")
	if err := callee.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, caller, "caller")
	waitConnected(t, callee, "callee")
	deadline := time.Now().Add(20 * time.Second)
	for len(heard(a.rec)) < 4000 || len(heard(b.rec)) < 4000 {
		if time.Now().After(deadline) {
			t.Fatalf("audio stalled: %d and %d samples", len(heard(a.rec)), len(heard(b.rec)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return caller, callee
}

// The relay goes down just as the caller hangs up: the HANGUP cannot be
// sent, but the caller's DTLS close reaches the callee directly, which
// ends the call at once, records its real duration and takes new calls.
// (It used to stay "active" for a minute or more: new callers were told
// busy.) The media watchdog is set long here, so only the close can end
// the call in time.
func TestCallEndsOnThePeersCloseWhenTheRelayIsDown(t *testing.T) {
	r := startRelay(t)
	o := Options{MediaTimeout: time.Hour}
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), o)
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), o)
	keepConnected(t, alice)
	keepConnected(t, bob)
	began := time.Now()
	caller, callee := connect(t, alice, bob)
	r.stop()
	if err := caller.Hangup(context.Background()); err != nil {
		t.Fatalf("hang-up with the relay down: %v", err)
	}
	hungUp := time.Now()
	waitDone(t, callee, "the callee's call")
	if err := callee.Err(); err != nil {
		t.Errorf("callee's call ended with %v, want a hang-up", err)
	}
	if n := len(bob.m.Calls()); n != 0 {
		t.Errorf("bob still has %d calls", n)
	}
	// The callee's duration ends at the close, so it cannot exceed the
	// time from the dial to the hang-up plus the close's flight.
	rec := lastCall(t, bob, "alice")
	if rec.Outcome != "answered" || rec.Duration <= 0 || rec.Duration > time.Since(began) {
		t.Errorf("bob's history: %+v (call began %v before the hang-up)", rec, hungUp.Sub(began))
	}
	t.Logf("callee's call ended %v after the hang-up; recorded %v (caller: %v)",
		time.Since(hungUp).Round(time.Millisecond), rec.Duration, lastCall(t, alice, "bob").Duration)

	// Bob's device holds no call any more, so a new caller is not told
	// busy (it used to be, for a minute or more).
}

// A caller cancels a ringing call while the relay is down: its HANGUP is
// tried again until the relay takes it, and the callee's device stops
// ringing then (it used to ring out the full ring timeout).
func TestHangupRetriedUntilTheRelayIsBack(t *testing.T) {
	r := startRelay(t)
	o := Options{RingTimeout: time.Hour}
	alice := r.enroll(t, "alice", nil, o)
	bob := r.enroll(t, "bob", nil, o)
	keepConnected(t, alice)
	keepConnected(t, bob)
	caller, err := alice.m.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	ring := waitCall(t, bob.incoming, "the incoming call")
	r.stop()
	if err := caller.Hangup(context.Background()); err != nil {
		t.Fatalf("hang-up with the relay down: %v", err)
	}
	if !errors.Is(caller.Err(), ErrCanceled) {
		t.Errorf("caller: %v, want %v", caller.Err(), ErrCanceled)
	}
	r.restart(t)
	waitDone(t, ring, "the callee's ringing")
	if !errors.Is(ring.Err(), ErrMissed) {
		t.Errorf("callee: %v, want %v", ring.Err(), ErrMissed)
	}
	if rec := lastCall(t, bob, "alice"); rec.Outcome != "missed" {
		t.Errorf("bob's history: %+v", rec)
	}
}

// A peer that stops sending without closing (its process hung, its
// network vanished) and cannot be told through the relay: the call ends
// after MediaTimeout with the audio's real duration.
func TestCallEndsWhenThePeerFallsSilent(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{MediaTimeout: time.Hour})
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{MediaTimeout: time.Second})
	caller, callee := connect(t, alice, bob)
	alice.m.stallSend.Store(true)
	waitDone(t, callee, "the callee's call")
	if !errors.Is(callee.Err(), ErrConnectionLost) {
		t.Errorf("callee: %v, want %v", callee.Err(), ErrConnectionLost)
	}
	// The caller learns it from the callee's HANGUP (the peer failed) or,
	// when the callee's DTLS close overtakes it by more than a second, as
	// a hang-up.
	waitDone(t, caller, "the caller's call")
	if err := caller.Err(); err != nil && !errors.Is(err, ErrPeerFailed) {
		t.Errorf("caller: %v, want %v or a hang-up", err, ErrPeerFailed)
	}
	if rec := lastCall(t, bob, "alice"); rec.Outcome != "failed" || rec.Duration <= 0 {
		t.Errorf("bob's history: %+v", rec)
	}
	t.Logf("callee: %v", callee.Err())
}
