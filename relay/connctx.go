package relay

import (
	"context"
	"sync"
	"time"
)

// connCtx is a connection's context: canceled when the connection
// closes (conn.closeNow), and carrying the server's values. It replaces a
// context.WithCancel child of the server's context plus a
// context.AfterFunc per connection, which cost an idle connection about
// half a KiB (the child, its entry in the parent's children, the
// AfterFunc's own context and its entry in the child's). It costs nothing
// until used: the Done channel and the AfterFunc list are made on demand,
// and the list is dropped once empty.
//
// The server's context is canceled only by Server.Close, which closes
// every connection, so a connection's context ends with it; Err also
// reports the server's error in the moment between the two.
type connCtx struct {
	parent context.Context // the server's: values and deadline

	mu    sync.Mutex
	done  chan struct{}         // made by Done; closed by cancel
	err   error                 // set by cancel
	after map[*afterFn]struct{} // functions to start at cancel (AfterFunc)
}

// afterFn is one function registered with connCtx.AfterFunc.
type afterFn struct{ f func() }

// closedDone is the Done channel of a context canceled before Done was
// first called.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (x *connCtx) Deadline() (time.Time, bool) { return x.parent.Deadline() }

func (x *connCtx) Value(key any) any { return x.parent.Value(key) }

func (x *connCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		if x.err != nil {
			x.done = closedDone
		} else {
			x.done = make(chan struct{})
		}
	}
	return x.done
}

func (x *connCtx) Err() error {
	x.mu.Lock()
	err := x.err
	x.mu.Unlock()
	if err != nil {
		return err
	}
	return x.parent.Err()
}

// AfterFunc arranges for f to run in its own goroutine once x is
// canceled, as context.AfterFunc does; context.WithCancel and friends use
// it (through an interface) instead of starting a goroutine per derived
// context. stop reports whether it kept f from running.
func (x *connCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFn{f: f}
	x.mu.Lock()
	if x.err != nil {
		x.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if x.after == nil {
		x.after = make(map[*afterFn]struct{})
	}
	x.after[a] = struct{}{}
	x.mu.Unlock()
	return func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		if _, ok := x.after[a]; !ok {
			return false
		}
		delete(x.after, a)
		if len(x.after) == 0 {
			x.after = nil // an idle connection keeps no map
		}
		return true
	}
}

// cancel cancels x (once; later calls do nothing).
func (x *connCtx) cancel() {
	x.mu.Lock()
	if x.err != nil {
		x.mu.Unlock()
		return
	}
	x.err = context.Canceled
	if x.done != nil {
		close(x.done)
	} else {
		x.done = closedDone
	}
	after := x.after
	x.after = nil
	x.mu.Unlock()
	for a := range after {
		go a.f()
	}
}
