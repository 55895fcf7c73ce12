package call

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCallRingsEveryDeviceFirstAnswerWins(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{})
	bob1 := r.enroll(t, "bob", nil, Options{})
	bob2 := r.link(t, bob1, tone(toneLen, bobFreqs...), Options{})
	ctx := context.Background()
	caller, err := alice.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	ring1 := waitCall(t, bob1.incoming, "ringing on bob's first device")
	ring2 := waitCall(t, bob2.incoming, "ringing on bob's second device")
	if err := ring2.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ring1, "the first device's ringing")
	if !errors.Is(ring1.Err(), ErrAnsweredElsewhere) {
		t.Errorf("first device: %v, want %v", ring1.Err(), ErrAnsweredElsewhere)
	}
	if err := ring1.Answer(ctx); err == nil {
		t.Error("a call answered elsewhere could still be answered")
	}
	waitConnected(t, caller, "caller")
	if got := caller.PeerDevice(); got != bob2.c.DeviceID() {
		t.Errorf("connected to bob's device %d, want %d", got, bob2.c.DeviceID())
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(heard(bob2.rec)) < 16000 {
		if time.Now().After(deadline) {
			t.Fatal("audio stalled")
		}
		time.Sleep(100 * time.Millisecond)
	}
	caller.Hangup(ctx)
	waitDone(t, ring2, "the answered call")
	checkHeard(t, "bob's second device", heard(bob2.rec), aliceFreqs, bobFreqs)
	if n := len(heard(bob1.rec)); n != 0 {
		t.Errorf("the device that did not answer received %d samples", n)
	}
	if rec := lastCall(t, bob1, "alice"); rec.Outcome != "answered elsewhere" {
		t.Errorf("first device's history: %+v", rec)
	}
	if rec := lastCall(t, bob2, "alice"); rec.Outcome != "answered" {
		t.Errorf("second device's history: %+v", rec)
	}
}

func TestCallRejected(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", nil, Options{})
	bob := r.enroll(t, "bob", nil, Options{})
	ctx := context.Background()
	caller, err := alice.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	callee := waitCall(t, bob.incoming, "the incoming call")
	if err := callee.Reject(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, caller, "caller")
	if !errors.Is(caller.Err(), ErrRejected) {
		t.Errorf("caller: %v", caller.Err())
	}
	if rec := lastCall(t, alice, "bob"); rec.Outcome != "rejected" || !rec.Outgoing {
		t.Errorf("alice's history: %+v", rec)
	}
	if rec := lastCall(t, bob, "alice"); rec.Outcome != "rejected" || rec.Outgoing {
		t.Errorf("bob's history: %+v", rec)
	}
}

func TestCallBusy(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", nil, Options{})
	bob := r.enroll(t, "bob", nil, Options{})
	carol := r.enroll(t, "carol", nil, Options{})
	ctx := context.Background()
	first, err := carol.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, bob.incoming, "carol's call")
	caller, err := alice.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, caller, "alice's call")
	if !errors.Is(caller.Err(), ErrBusy) {
		t.Errorf("alice: %v, want %v", caller.Err(), ErrBusy)
	}
	if rec := lastCall(t, alice, "bob"); rec.Outcome != "busy" {
		t.Errorf("alice's history: %+v", rec)
	}
	if rec := lastCall(t, bob, "alice"); rec.Outcome != "missed" {
		t.Errorf("bob's history: %+v", rec)
	}
	if first.State() == StateEnded {
		t.Errorf("carol's call ended: %v", first.Err())
	}
}

func TestCallRingTimeout(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", nil, Options{RingTimeout: 2 * time.Second})
	bob := r.enroll(t, "bob", nil, Options{})
	caller, err := alice.m.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	callee := waitCall(t, bob.incoming, "the incoming call")
	waitDone(t, caller, "caller")
	waitDone(t, callee, "callee")
	if !errors.Is(caller.Err(), ErrNoAnswer) || !errors.Is(callee.Err(), ErrMissed) {
		t.Errorf("caller %v, callee %v", caller.Err(), callee.Err())
	}
	if rec := lastCall(t, bob, "alice"); rec.Outcome != "missed" {
		t.Errorf("bob's history: %+v", rec)
	}
	if rec := lastCall(t, alice, "bob"); rec.Outcome != "no answer" {
		t.Errorf("alice's history: %+v", rec)
	}
}

func TestCallCanceledWhileRinging(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", nil, Options{})
	bob := r.enroll(t, "bob", nil, Options{})
	ctx := context.Background()
	caller, err := alice.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	callee := waitCall(t, bob.incoming, "the incoming call")
	if err := caller.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, callee, "callee")
	if !errors.Is(caller.Err(), ErrCanceled) || !errors.Is(callee.Err(), ErrMissed) {
		t.Errorf("caller %v, callee %v", caller.Err(), callee.Err())
	}
	if rec := lastCall(t, bob, "alice"); rec.Outcome != "missed" {
		t.Errorf("bob's history: %+v", rec)
	}
}

// The network drops mid-call (the TURN server carrying the media goes
// away): both sides end the call with a clear reason.
func TestCallNetworkDrops(t *testing.T) {
	r := startRelay(t)
	o := Options{RelayOnly: true, TURNTransport: "udp", ICEFailedTimeout: 2 * time.Second}
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), o)
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), o)
	ctx := context.Background()
	caller, err := alice.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	callee := waitCall(t, bob.incoming, "the incoming call")
	if err := callee.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, caller, "caller")
	waitConnected(t, callee, "callee")
	r.turn.Close()
	waitDone(t, caller, "caller")
	waitDone(t, callee, "callee")
	lost := 0
	for _, c := range []*Call{caller, callee} {
		switch {
		case errors.Is(c.Err(), ErrConnectionLost):
			lost++
		case errors.Is(c.Err(), ErrPeerFailed):
		default:
			t.Errorf("call ended with %v", c.Err())
		}
	}
	if lost == 0 {
		t.Error("neither side saw the connection drop")
	}
	if rec := lastCall(t, alice, "bob"); rec.Outcome != "failed" {
		t.Errorf("alice's history: %+v", rec)
	}
}

func TestCallMuted(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{})
	src := alice.m.opts.NewSource
	alice.m.opts.NewSource = func(c *Call) Source {
		c.SetMuted(true)
		return src(c)
	}
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{})
	talk(t, alice, bob, true)
	if span := toneSpan(heard(bob.rec)); span != 0 {
		t.Errorf("bob heard a muted alice for %v", span)
	}
	checkHeard(t, "alice", heard(alice.rec), bobFreqs, aliceFreqs)
}
