package relay

import (
	"context"
	"sync"
)

// writeSched writes what is queued for many connections from one
// goroutine, with writes that never block: a connection whose socket
// buffer is full gets a goroutine of its own to finish (conn.flush).
// Frames queued for a connection while it waits its turn leave in the
// same write, and no goroutine is started per write.
type writeSched struct {
	once    sync.Once
	mu      sync.Mutex
	list    []*conn
	stopped bool
	wake    chan struct{}
}

// add puts c, whose flushing flag the caller just set, in the list; it
// reports false when the scheduler has stopped (the caller flushes).
func (w *writeSched) add(ctx context.Context, c *conn) bool {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		go w.run(ctx)
	})
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	w.list = append(w.list, c)
	first := len(w.list) == 1
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// run writes connections as they are added, until ctx (the server's) is
// done; then it hands what is left to flush goroutines.
func (w *writeSched) run(ctx context.Context) {
	var spare []*conn
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
			w.mu.Lock()
			w.stopped = true
			l := w.list
			w.list = nil
			w.mu.Unlock()
			for _, c := range l {
				c.goFlush()
			}
			return
		}
		for {
			w.mu.Lock()
			if len(w.list) == 0 {
				w.mu.Unlock()
				break
			}
			// Swap buffers: l and spare never share an array.
			l := w.list
			w.list = spare[:0]
			w.mu.Unlock()
			for i, c := range l {
				c.tryFlush()
				l[i] = nil
			}
			spare = l
		}
	}
}

// tryFlush writes what is queued for c without blocking (scheduler
// goroutine; c.flushing is set and owned by the caller).
func (c *conn) tryFlush() {
	c.fmu.Lock()
	c.omu.Lock()
	out := c.out
	c.out = nil
	if len(out) == 0 {
		c.flushing = false
		c.omu.Unlock()
		c.fmu.Unlock()
		c.fwg.Done()
		return
	}
	c.omu.Unlock()
	n, err := c.batcher.TryWrite(out)
	c.s.metrics.writes.Add(1)
	if err != nil {
		c.fmu.Unlock()
		c.closeNow(CloseProtocol)
		c.omu.Lock()
		c.flushing = false
		c.omu.Unlock()
		c.fwg.Done()
		return
	}
	if n < len(out) {
		// The socket buffer is full: a goroutine writes the rest, and
		// what is queued after it, blocking.
		c.rest = out[n:]
		c.fmu.Unlock()
		c.goFlush()
		return
	}
	recycleOut(out)
	c.omu.Lock()
	more := len(c.out) > 0
	if !more {
		c.flushing = false
	}
	c.omu.Unlock()
	c.fmu.Unlock()
	switch {
	case !more:
		c.fwg.Done()
	case !c.s.sched.add(c.s.ctx, c):
		c.goFlush()
	}
}
