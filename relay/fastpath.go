package relay

import (
	"errors"

	"sotto/wire"
)

// AsyncMailbox is implemented by mailboxes that can take a write without
// a goroutine waiting for its commit. The relay then handles SendMessage,
// SealedSend and Ack on the connection's read goroutine and answers from the
// completion callback, so a message costs no goroutine switch or stack
// of its own while its batch commits.
//
// The callbacks are called exactly once each, in commit order, from one
// goroutine of the mailbox (or, when the mailbox is closed, possibly
// from the caller's); they must not block. The durability and
// idempotence rules of Mailbox hold: appended is called with a nil error
// only once the envelopes are durable.
type AsyncMailbox interface {
	AppendAsync(s *Send, appended func(AppendResult, error))
	DeleteAsync(dev DeviceAddr, ids []EnvelopeID, deleted func(error))
}

// maxPendingWrites bounds the sends and Acks of one
// connection waiting for their commit: the connection reads no more
// frames until one completes. Any other request waits for all of them
// (see waitPending).
const maxPendingWrites = 64

// errCacheMiss sends a send whose recipient (or, sealed, the member
// access document) is not cached down the general path, which loads it.
var errCacheMiss = errors.New("relay: not cached")

// handleFast handles req on the read goroutine if it is a send (named on
// an authenticated connection, sealed on another) or an Ack and the
// mailbox is asynchronous; it reports whether it did. Anything it cannot
// finish without blocking is left to the general path.
func (c *conn) handleFast(req *wire.Request) bool {
	am, ok := c.s.mb.(AsyncMailbox)
	if !ok {
		return false
	}
	var (
		sr    *sendRequest
		send  *Send
		ids   []EnvelopeID
		quiet bool
		err   error
	)
	switch b := req.Body.(type) {
	case *wire.Request_SendMessage:
		if !c.authed {
			return false
		}
		sr = namedSend(b.SendMessage)
	case *wire.Request_SealedSend:
		if c.authed {
			return false
		}
		sr = sealedSend(b.SealedSend)
	case *wire.Request_Ack:
		if !c.authed {
			return false
		}
		ids, err = ackIDs(b.Ack)
		quiet = b.Ack.Quiet
	default:
		return false
	}
	if sr != nil {
		// The limits are charged once the send is known to stay here.
		if send, err = c.prepareSend(sr, false); errors.Is(err, errCacheMiss) {
			return false
		}
	}
	free, cerr := c.charge(req)
	if cerr != nil {
		err = cerr
	}
	id := req.Id
	if err != nil {
		if free {
			c.releaseFreeAck(req.GetAck().EnvelopeIds)
		}
		c.reply(c.errorFor(id, err))
		return true
	}
	if c.slots == nil {
		c.slots = make(chan struct{}, maxPendingWrites)
	}
	c.slots <- struct{}{}
	if send != nil {
		am.AppendAsync(send, func(res AppendResult, err error) {
			defer c.release()
			if err != nil {
				c.failed(id, err)
				return
			}
			c.stored(sr, send, res)
			bp := encBufs.Get().(*[]byte)
			c.queueEncoded(bp, sr.appendResponse((*bp)[:0], id, res), nil)
		})
		return true
	}
	am.DeleteAsync(c.dev, ids, func(err error) {
		defer c.release()
		if free {
			defer c.releaseFreeAck(req.GetAck().EnvelopeIds) // after acked: no gap for a second free Ack
		}
		if err != nil {
			c.failed(id, err)
			return
		}
		c.s.metrics.acked.Add(uint64(len(ids)))
		c.acked(ids)
		if quiet {
			return
		}
		bp := encBufs.Get().(*[]byte)
		c.queueEncoded(bp, wire.AppendAckResponse((*bp)[:0], id), nil)
	})
	return true
}

// release returns the slot of a completed request, after its
// notifications and response.
func (c *conn) release() { <-c.slots }

// waitPending waits until every request handed to the mailbox has
// completed (read goroutine). The general path runs only then, so that a
// send it stores cannot be delivered before an earlier one.
func (c *conn) waitPending() {
	if len(c.slots) == 0 {
		return
	}
	for range cap(c.slots) {
		c.slots <- struct{}{}
	}
	for range cap(c.slots) {
		<-c.slots
	}
}

// failed answers a request whose write failed.
func (c *conn) failed(id uint64, err error) {
	r := c.errorFor(id, err)
	if r.Code == wire.ErrorCode_INTERNAL {
		c.s.log.Error("request failed", "device", c.dev.String(), "err", err)
	}
	c.reply(r)
}
