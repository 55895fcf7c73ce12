package call

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client"
	"sotto/relay"
)

// hostileMailbox is a relay that alters what it forwards: once armed, it
// flips a byte in the middle of every envelope (where a call offer's SDP
// and fingerprint would be, were they not encrypted).
type hostileMailbox struct {
	relay.Mailbox
	armed    atomic.Bool
	tampered atomic.Int64
}

func (h *hostileMailbox) Append(ctx context.Context, s *relay.Send) (relay.AppendResult, error) {
	if h.armed.Load() {
		for i := range s.Envelopes {
			c := append([]byte(nil), s.Envelopes[i].Content...)
			c[len(c)/2] ^= 0x01
			s.Envelopes[i].Content = c
			h.tampered.Add(1)
		}
	}
	return h.Mailbox.Append(ctx, s)
}

// The relay cannot rewrite the call setup: the signalling is end-to-end
// encrypted and authenticated, so an altered offer does not decrypt, the
// callee never rings and the call never connects to anyone.
func TestCallRelayCannotAlterSignalling(t *testing.T) {
	var hm *hostileMailbox
	r := startRelayWith(t, func(m relay.Mailbox) relay.Mailbox {
		hm = &hostileMailbox{Mailbox: m}
		return hm
	})
	alice := r.enroll(t, "alice", nil, Options{RingTimeout: 3 * time.Second})
	errs := make(chan client.Event, 10)
	bob := newDevice(nil, Options{})
	c, err := client.Enroll(context.Background(), client.EnrollParams{Dir: t.TempDir(), Passphrase: []byte("pw"),
		Invitation: r.invite(t, "bob"), DeviceName: "test"}, &client.Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(ev client.Event) {
		if ev.Kind == client.EventError {
			errs <- ev
		}
		bob.m.HandleEvent(ev)
	}})
	if err != nil {
		t.Fatal(err)
	}
	bob.c = c
	bob.start(t)
	hm.armed.Store(true)
	caller, err := alice.m.Dial(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-errs:
		t.Logf("bob: %v", ev.Err)
	case <-time.After(20 * time.Second):
		t.Fatal("bob did not report the altered message")
	}
	waitDone(t, caller, "caller")
	if !errors.Is(caller.Err(), ErrNoAnswer) {
		t.Errorf("caller ended with %v", caller.Err())
	}
	select {
	case c := <-bob.incoming:
		t.Errorf("bob rang for an altered offer (call %x)", c.ID)
	default:
	}
	if hm.tampered.Load() == 0 {
		t.Fatal("the hostile relay altered nothing")
	}
}
