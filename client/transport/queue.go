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
	items  []T
	signal chan struct{}
	out    chan T
}

func newQueue[T any]() *queue[T] {
	return &queue[T]{signal: make(chan struct{}, 1), out: make(chan T)}
}

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run forwards items to out, in order. After done is closed it still
// delivers what was queued, then closes out; when stop is closed it returns
// at once (the owner is closing and may not be reading).
func (q *queue[T]) run(done, stop <-chan struct{}) {
	defer close(q.out)
	for {
		q.mu.Lock()
		var v T
		ok := len(q.items) > 0
		if ok {
			v = q.items[0]
			var zero T
			q.items[0] = zero
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
		select {
		case q.out <- v:
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
