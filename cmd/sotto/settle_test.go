package main

import (
	"errors"
	"testing"

	"sotto/client"
)

// TestSettleSeesWipeAfterConnectionEnds: a wipe order ends the relay
// connection before the receive loop emits EventWiped, so listen and chat
// see the connection end first. settle must still pass the wipe (emitted
// while the loop is being stopped) to the handler, which ends the command,
// instead of letting it reconnect a wiped device forever.
func TestSettleSeesWipeAfterConnectionEnds(t *testing.T) {
	events := make(chan client.Event, 64)
	// The receive loop, still running when the connection has ended: it
	// emits a message and then the wipe, and returns.
	disconnect := func() {
		events <- client.Event{Kind: client.EventMessage, Message: &client.Message{Text: "last"}}
		events <- client.Event{Kind: client.EventWiped, Device: 0}
	}
	var seen []client.EventKind
	stop, err := settle(disconnect, events, func(ev client.Event) (bool, error) {
		seen = append(seen, ev.Kind)
		if ev.Kind == client.EventWiped {
			return true, errWiped
		}
		return false, nil
	})
	if !stop || !errors.Is(err, errWiped) {
		t.Fatalf("settle: stop %v, err %v; want the wipe to end the command", stop, err)
	}
	if len(seen) != 2 || seen[0] != client.EventMessage || seen[1] != client.EventWiped {
		t.Fatalf("handled %v, want the message then the wipe", seen)
	}
}

// TestSettleTakesEventsWhileStopping: the receive loop blocks while the
// event channel is full; settle takes events while it waits for the loop,
// so stopping it cannot deadlock, and after the handler ended the command
// the remaining events are dropped without being handled.
func TestSettleTakesEventsWhileStopping(t *testing.T) {
	events := make(chan client.Event, 1)
	const n = 100
	disconnect := func() {
		for range n {
			events <- client.Event{Kind: client.EventMessage, Message: &client.Message{}}
		}
	}
	handled := 0
	stop, err := settle(disconnect, events, func(client.Event) (bool, error) {
		handled++
		return false, nil
	})
	if stop || err != nil || handled != n {
		t.Fatalf("settle: stop %v, err %v, %d handled; want all %d handled and no stop", stop, err, handled, n)
	}

	handled = 0
	stop, err = settle(disconnect, events, func(client.Event) (bool, error) {
		handled++
		return handled == 3, nil
	})
	if !stop || err != nil || handled != 3 {
		t.Fatalf("settle: stop %v, err %v, %d handled; want a stop after 3", stop, err, handled)
	}
	if len(events) != 0 {
		t.Fatalf("%d events left in the channel", len(events))
	}
}
