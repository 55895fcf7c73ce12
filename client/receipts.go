package client

import (
	"context"
	"errors"
	"slices"
	"time"

	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/transport"
	"sotto/wire"
)

// Receipts that do not link sender and recipient.
//
// Receipts (delivery and read) are queued per contact and sent after a
// random delay, drawn uniformly from [Options.ReceiptDelayMin,
// Options.ReceiptDelayMax]; the queue and its batching are
// conversation.ReceiptQueue (client/conversation/receipts.go, which says
// why). Here each batch goes out as one message per kind (one delivery
// receipt listing every id, one read receipt listing every id), through
// sendContent, which seals it when the contact's profile key is known.
//
// Pending receipts live in memory only. A receipt refused as rate limited
// is sent again after the relay's wait (sendReceipt). A receipt still
// waiting when the client closes (or when the connection is down as its
// delay ends) is lost: the sender sees its message as sent but not delivered or read.
// Nothing else depends on receipts; front ends that exit on purpose
// (sotto listen --drain) call WaitReceipts first.

// Default bounds of the random delay before receipts are sent.
const (
	DefaultReceiptDelayMin = conversation.DefaultReceiptDelayMin
	DefaultReceiptDelayMax = conversation.DefaultReceiptDelayMax
)

// newReceiptQueue makes c's receipt queue; Close stops it.
func (c *Client) newReceiptQueue() *conversation.ReceiptQueue {
	return conversation.NewReceiptQueue(
		func() time.Duration {
			return conversation.DrawReceiptDelay(c.opts.ReceiptDelayMin, c.opts.ReceiptDelayMax)
		},
		c.waitReceiptDelay, c.sendReceipts)
}

// waitReceiptDelay waits d or until ctx ends (Options.ReceiptWait in tests).
func (c *Client) waitReceiptDelay(ctx context.Context, d time.Duration) error {
	if c.opts.ReceiptWait != nil {
		return c.opts.ReceiptWait(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// queueReceipt adds ids to the receipts pending for to (read: read
// receipts, else delivery receipts).
func (c *Client) queueReceipt(to string, read bool, ids ...[]byte) {
	c.receipts.Queue(to, read, ids...)
}

// sendReceipts sends one batch: at most one delivery and one read receipt
// per conversation.MaxReceiptIDs ids.
func (c *Client) sendReceipts(ctx context.Context, to string, b *conversation.ReceiptBatch) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, k := range []struct {
		ids  [][]byte
		read bool
		make func([][]byte, time.Time) (*content.Content, error)
	}{{b.Delivered, false, content.NewDeliveryReceipt}, {b.Read, true, content.NewReadReceipt}} {
		for ids := range slices.Chunk(k.ids, conversation.MaxReceiptIDs) {
			ct, err := k.make(ids, c.opts.Now())
			if err == nil {
				err = c.sendReceipt(ctx, to, ct)
			}
			if err != nil && ctx.Err() == nil {
				c.log.Info("receipts not sent", "read", k.read, "count", len(ids), "err", err)
			}
		}
	}
}

// sendReceipt sends one receipt, again after the wait the relay names
// while it refuses it as rate limited (a device taking in a backlog sends
// a receipt per batch faster than its request limit; dropped, those were
// lost), until ctx ends.
func (c *Client) sendReceipt(ctx context.Context, to string, ct *content.Content) error {
	for {
		_, err := c.sendContent(ctx, to, ct, ct.Id)
		var te *transport.Error
		if !errors.As(err, &te) || te.Code != wire.ErrorCode_RATE_LIMITED {
			return err
		}
		t := time.NewTimer(max(te.RetryAfter, 10*time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// WaitReceipts waits until no receipt is pending (their random delays have
// passed and they were sent), or ctx ends. A front end about to exit calls
// it so that the receipts of what it just received are not lost.
func (c *Client) WaitReceipts(ctx context.Context) error { return c.receipts.Wait(ctx) }
