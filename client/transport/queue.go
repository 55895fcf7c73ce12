package transport

import (
	"fmt"
	"net/url"
	"sync"
)

// queue is an unbounded FIFO feeding a channel, so that the read loop never
// blocks on a slow consumer (which could otherwise deadlock a consumer that
// calls Ack while the read loop waits to hand it the next envelope).
type queue[T any] struct {
	mu     sync.Mutex
	items  []queued[T]
	signal chan struct{}
	out    chan T
}

// queued is an item, or a mark: a function run once every item queued
// before it was taken from out.
type queued[T any] struct {
	v    T
	mark func()
}

func newQueue[T any]() *queue[T] {
	return &queue[T]{signal: make(chan struct{}, 1), out: make(chan T)}
}

func (q *queue[T]) push(v T) { q.add(queued[T]{v: v}) }

// after runs fn (in the goroutine of run) once the consumer has taken
// every item pushed before: out is unbuffered, so "sent" is "taken".
func (q *queue[T]) after(fn func()) { q.add(queued[T]{mark: fn}) }

func (q *queue[T]) add(e queued[T]) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run forwards items to out, in order, and runs the marks as it reaches
// them. After done is closed it still delivers what was queued, then
// closes out; when stop is closed it returns at once (the owner is
// closing and may not be reading).
func (q *queue[T]) run(done, stop <-chan struct{}) {
	defer close(q.out)
	for {
		q.mu.Lock()
		var e queued[T]
		ok := len(q.items) > 0
		if ok {
			e = q.items[0]
			q.items[0] = queued[T]{}
			q.items = q.items[1:]
		}
		q.mu.Unlock()
		if !ok {
			select {
			case <-q.signal:
				continue
			case <-stop:
				return
			case <-done:
				q.mu.Lock()
				empty := len(q.items) == 0
				q.mu.Unlock()
				if empty {
					return
				}
				continue
			}
		}
		if e.mark != nil {
			e.mark()
			continue
		}
		select {
		case q.out <- e.v:
		case <-stop:
			return
		}
	}
}

// wsURL turns a relay URL into the WebSocket endpoint URL.
func wsURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("transport: relay url: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("transport: relay url: unsupported scheme %q", u.Scheme)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/ws"
	}
	return u.String(), nil
}
