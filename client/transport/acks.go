package transport

import (
	"context"
	"errors"
	"sync"
	"time"

	"sotto/wire"
)

// Acknowledgements that cannot stall delivery. The relay pushes at most a
// window of envelopes that were not acknowledged; a device that drops an
// Ack (refused, or cut off with its connection) holds that window until it
// reconnects. So acks are queued, sent by one goroutine of the connection
// in Acks of up to maxAckIDs ids (the ids queued while one Ack is in
// flight go in the next: a device draining a backlog acks hundreds of
// envelopes per frame), and an Ack the relay refuses for a passing reason
// is sent again.

// maxAckIDs is the most ids the relay takes in one Ack.
const maxAckIDs = 1024

// ackRetryMax bounds the wait between attempts of a failing Ack.
const ackRetryMax = 5 * time.Second

// acks is a connection's queue of ids to acknowledge.
type acks struct {
	mu      sync.Mutex
	ids     [][]byte
	queued  uint64        // ids ever queued
	settled uint64        // ids acknowledged (or dropped as refused for good)
	change  chan struct{} // closed and replaced when settled grows
	wake    chan struct{} // one token: ids are waiting
}

func newAcks() *acks {
	return &acks{change: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// AckLater queues envelope ids for acknowledgement and returns at once;
// the connection sends them (see acks). Ids still queued when the
// connection ends are not acknowledged: the relay delivers them again,
// and clients recognize redelivered envelopes.
func (c *Conn) AckLater(envelopeIDs ...[]byte) {
	if len(envelopeIDs) == 0 {
		return
	}
	a := c.acks
	a.mu.Lock()
	a.ids = append(a.ids, envelopeIDs...)
	a.queued += uint64(len(envelopeIDs))
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// FlushAcks waits until every id queued by AckLater before the call was
// acknowledged, the connection ended (ErrClosed) or ctx ended.
func (c *Conn) FlushAcks(ctx context.Context) error {
	a := c.acks
	a.mu.Lock()
	target := a.queued
	a.mu.Unlock()
	for {
		a.mu.Lock()
		settled, change := a.settled, a.change
		a.mu.Unlock()
		if settled >= target {
			return nil
		}
		select {
		case <-change:
		case <-c.done:
			return c.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ackLoop sends the queued ids until the connection ends.
func (c *Conn) ackLoop(ctx context.Context) {
	defer c.wg.Done()
	a := c.acks
	for {
		select {
		case <-a.wake:
		case <-c.done:
			return
		case <-ctx.Done():
			return
		}
		for {
			a.mu.Lock()
			n := min(len(a.ids), maxAckIDs)
			batch := a.ids[:n:n]
			a.ids = a.ids[n:]
			if len(a.ids) == 0 {
				a.ids = nil
			}
			a.mu.Unlock()
			if n == 0 {
				break
			}
			if !c.sendAck(ctx, batch) {
				return
			}
			a.mu.Lock()
			a.settled += uint64(n)
			close(a.change)
			a.change = make(chan struct{})
			a.mu.Unlock()
		}
	}
}

// sendAck sends one Ack until the relay takes it or refuses it for good;
// it reports false when the connection ended first.
func (c *Conn) sendAck(ctx context.Context, ids [][]byte) bool {
	wait := 50 * time.Millisecond
	for {
		_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_Ack{Ack: &wire.AckRequest{EnvelopeIds: ids}}})
		var e *Error
		switch {
		case err == nil:
			return true
		case !errors.As(err, &e):
			return false // the connection ended
		case e.Code == wire.ErrorCode_RATE_LIMITED:
			wait = max(e.RetryAfter, time.Millisecond)
		case e.Code == wire.ErrorCode_INTERNAL || e.Code == wire.ErrorCode_UNAVAILABLE:
			wait = min(2*wait, ackRetryMax)
		default:
			return true // refused for good (malformed): sending it again changes nothing
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return false
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}
