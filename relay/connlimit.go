package relay

import (
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
}

// DefaultConnLimits returns the defaults.
func DefaultConnLimits() ConnLimits {
	return ConnLimits{PerAddr: 256, PerAddrUnauthenticated: 32, MaxUnauthenticated: 4096}
}

type addrCount struct{ all, unauth int }

// connLimiter counts slots.
type connLimiter struct {
	lim    ConnLimits
	mu     sync.Mutex
	byAddr map[string]*addrCount
	unauth int
	// refused counts refusals by cause (metrics).
	refusedAddr, refusedUnauth uint64
}

func newConnLimiter(l ConnLimits) *connLimiter {
	return &connLimiter{lim: l, byAddr: make(map[string]*addrCount)}
}

// slot is one connection's share; release it exactly once.
type slot struct {
	l        *connLimiter
	key      string
	authed   bool // moved to the authenticated count (l.mu)
	released bool // (l.mu)
}

// acquire takes an unauthenticated slot for key.
func (l *connLimiter) acquire(key string) (*slot, error) {
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
		l.refusedUnauth++
		return nil, ErrTooManyUnauthenticated
	}
	c.all++
	c.unauth++
	l.unauth++
	l.byAddr[key] = c
	return &slot{l: l, key: key}, nil
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
}

// release frees the slot; later calls do nothing.
func (s *slot) release() {
	if s == nil {
		return
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	c := l.byAddr[s.key]
	c.all--
	if !s.authed {
		c.unauth--
		l.unauth--
	}
	if c.all == 0 {
		delete(l.byAddr, s.key)
	}
}

// counts returns the open unauthenticated connections and the address
// keys holding connections, and the refusals so far.
func (l *connLimiter) counts() (unauth, addrs int, refusedAddr, refusedUnauth uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unauth, len(l.byAddr), l.refusedAddr, l.refusedUnauth
}
