package agent

import (
	"sync"
	"time"

	"sotto/agent/api"
)

// eventsKept is how many events the agent keeps for clients that
// reconnect (Last-Event-ID), and how far a client may fall behind.
const eventsKept = 1024

// broker numbers events and fans them out to the subscribed streams,
// keeping the last ones. A subscriber that falls more than its buffer
// behind is dropped (its channel closed): publishing never blocks.
type broker struct {
	mu     sync.Mutex
	seq    uint64
	kept   []api.Event // the last len(kept) <= size events, oldest first
	size   int
	subs   map[chan api.Event]struct{}
	closed bool
}

func newBroker(size int) *broker {
	return &broker{size: size, subs: map[chan api.Event]struct{}{}}
}

func (b *broker) publish(e api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if len(b.kept) == b.size {
		copy(b.kept, b.kept[1:])
		b.kept = b.kept[:b.size-1]
	}
	b.kept = append(b.kept, e)
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *broker) last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// subscribe returns the kept events after since (none when replay is
// false) and a channel of the next ones; cancel unsubscribes.
func (b *broker) subscribe(replay bool, since uint64) (backlog []api.Event, ch <-chan api.Event, cancel func()) {
	c := make(chan api.Event, b.size)
	b.mu.Lock()
	defer b.mu.Unlock()
	if replay {
		for _, e := range b.kept {
			if e.Seq > since {
				backlog = append(backlog, e)
			}
		}
	}
	if b.closed {
		close(c)
		return backlog, c, func() {}
	}
	b.subs[c] = struct{}{}
	return backlog, c, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[c]; ok {
			delete(b.subs, c)
			close(c)
		}
	}
}

// close ends every stream.
func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}
