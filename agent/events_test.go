package agent

import (
	"testing"

	"sotto/agent/api"
)

// Events are numbered; a subscriber that reconnects gets the kept ones
// after its last; the oldest are dropped beyond the broker's size.
func TestBrokerReplay(t *testing.T) {
	b := newBroker(3)
	for range 5 {
		b.publish(api.Event{Type: api.EventIdle})
	}
	backlog, _, cancel := b.subscribe(true, 3)
	defer cancel()
	if len(backlog) != 2 || backlog[0].Seq != 4 || backlog[1].Seq != 5 {
		t.Fatalf("after 3: %+v", backlog)
	}
	all, _, cancel2 := b.subscribe(true, 0)
	defer cancel2()
	if len(all) != 3 || all[0].Seq != 3 {
		t.Fatalf("kept: %+v", all)
	}
	if b.last() != 5 {
		t.Fatalf("last %d", b.last())
	}
}

// Publishing never blocks: a subscriber that falls a whole buffer behind
// is dropped (its channel closed) while the others go on.
func TestBrokerDropsSlowSubscriber(t *testing.T) {
	b := newBroker(2)
	_, slow, cancelSlow := b.subscribe(false, 0)
	defer cancelSlow()
	for range 3 {
		b.publish(api.Event{Type: api.EventIdle})
	}
	n := 0
	for range slow {
		n++
	}
	if n != 2 {
		t.Fatalf("slow subscriber got %d events before being dropped, want 2", n)
	}
	_, live, cancel := b.subscribe(false, 0)
	defer cancel()
	b.publish(api.Event{Type: api.EventLocked})
	if e := <-live; e.Type != api.EventLocked || e.Seq != 4 {
		t.Fatalf("live subscriber got %+v", e)
	}
	b.close()
	if _, ok := <-live; ok {
		t.Fatal("channel open after close")
	}
}
