package relay

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
)

// Connection caps.
//
// Every connection holds a slot from the moment its upgrade is accepted
// until it ends. A slot is unauthenticated until its device authenticates
// (enrollment, link or login); sealed-send and provisioning connections
// never authenticate and keep an unauthenticated slot for their whole
// (bounded) lifetime. Caps apply per client address key (see
// clientaddr.go) to all connections and to unauthenticated ones, and to
// unauthenticated ones in total: somebody without an account can hold at
// most PerAddrUnauthenticated connections per address, MaxUnauthenticated
// in all, each for at most the login, sealed-idle or provisioning bound.
//
// When MaxUnauthenticated are open, a new connection closes the oldest
// unauthenticated one and takes its place (unless RefuseWhenFull): an
// attacker with many addresses then cannot lock everybody out, only churn;
// a device that logs in within moments of connecting is not the oldest.

// Errors of the connection caps.
var (
	// ErrTooManyFromAddress: the client's address holds its share.
	ErrTooManyFromAddress = errors.New("relay: too many connections from this address")
	// ErrTooManyUnauthenticated: the relay holds as many unauthenticated
	// connections as it accepts.
	ErrTooManyUnauthenticated = errors.New("relay: too many unauthenticated connections")
)

// ConnLimits caps connections; zero fields take the defaults.
type ConnLimits struct {
	PerAddr                int // connections per address key (256)
	PerAddrUnauthenticated int // unauthenticated connections per address key (32)
	MaxUnauthenticated     int // unauthenticated connections in all (4096)
	// PerAddrHTTP caps HTTP connections per address key that have not
	// become WebSockets (64); it applies where Server.ConnState is the
	// http.Server's ConnState hook.
	PerAddrHTTP int
	// RefuseWhenFull refuses new connections (HTTP 503) when
	// MaxUnauthenticated are open, instead of closing the oldest.
	RefuseWhenFull bool
}

// DefaultConnLimits returns the defaults.
func DefaultConnLimits() ConnLimits {
	return ConnLimits{PerAddr: 256, PerAddrUnauthenticated: 32, MaxUnauthenticated: 4096, PerAddrHTTP: 64}
}

type addrCount struct{ all, unauth int }

// connLimiter counts slots.
type connLimiter struct {
	lim    ConnLimits
	mu     sync.Mutex
	byAddr map[string]*addrCount
	unauth int
	oldest *list.List // unauthenticated slots, oldest first
	// refused counts refusals by cause, evicted the connections closed
	// to make room (metrics).
	refusedAddr, refusedUnauth, evicted uint64
}

func newConnLimiter(l ConnLimits) *connLimiter {
	return &connLimiter{lim: l, byAddr: make(map[string]*addrCount), oldest: list.New()}
}

// slot is one connection's share; release it exactly once.
type slot struct {
	l        *connLimiter
	key      string
	elem     *list.Element // in l.oldest while unauthenticated (l.mu)
	authed   bool          // moved to the authenticated count (l.mu)
	released bool          // (l.mu)
	evicted  bool          // released to make room: close the connection (l.mu)
	closer   func()        // closes the connection (l.mu)
}

// acquire takes an unauthenticated slot for key, closing the oldest
// unauthenticated connection if the relay holds its maximum.
func (l *connLimiter) acquire(key string) (*slot, error) {
	var victim func()
	defer func() {
		if victim != nil {
			victim()
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.byAddr[key]
	if c == nil {
		c = new(addrCount)
	}
	switch {
	case c.all >= l.lim.PerAddr || c.unauth >= l.lim.PerAddrUnauthenticated:
		l.refusedAddr++
		return nil, fmt.Errorf("%w (%d open, %d of them unauthenticated)", ErrTooManyFromAddress, c.all, c.unauth)
	case l.unauth >= l.lim.MaxUnauthenticated:
		front := l.oldest.Front()
		if l.lim.RefuseWhenFull || front == nil {
			l.refusedUnauth++
			return nil, ErrTooManyUnauthenticated
		}
		old := front.Value.(*slot)
		old.evicted = true
		old.releaseLocked()
		l.evicted++
		victim = old.closer
	}
	c.all++
	c.unauth++
	l.unauth++
	l.byAddr[key] = c
	s := &slot{l: l, key: key}
	s.elem = l.oldest.PushBack(s)
	return s, nil
}

// setCloser gives the slot the function that closes its connection; it
// runs at once if the slot was already taken back.
func (s *slot) setCloser(fn func()) {
	if s == nil {
		return
	}
	s.l.mu.Lock()
	evicted := s.evicted
	s.closer = fn
	s.l.mu.Unlock()
	if evicted {
		fn()
	}
}

// authenticated moves the slot out of the unauthenticated counts.
func (s *slot) authenticated() {
	if s == nil {
		return
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.authed || s.released {
		return
	}
	s.authed = true
	l.byAddr[s.key].unauth--
	l.unauth--
	l.oldest.Remove(s.elem)
	s.elem = nil
}

// release frees the slot; later calls do nothing.
func (s *slot) release() {
	if s == nil {
		return
	}
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.releaseLocked()
}

func (s *slot) releaseLocked() {
	l := s.l
	if s.released {
		return
	}
	s.released = true
	c := l.byAddr[s.key]
	c.all--
	if !s.authed {
		c.unauth--
		l.unauth--
		l.oldest.Remove(s.elem)
		s.elem = nil
	}
	if c.all == 0 {
		delete(l.byAddr, s.key)
	}
}

// counts returns the open unauthenticated connections, the address keys
// holding connections, the refusals and evictions so far.
func (l *connLimiter) counts() (unauth, addrs int, refusedAddr, refusedUnauth, evicted uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unauth, len(l.byAddr), l.refusedAddr, l.refusedUnauth, l.evicted
}
