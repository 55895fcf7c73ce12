package client

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"sotto/client/content"
)

// Receipts that do not link sender and recipient.
//
// A delivery receipt sent the moment a message is acknowledged leaves from
// the recipient's connection milliseconds after the relay pushed the
// message to it: even sealed, its timing names the recipient as the one the
// sender wrote to. So receipts (delivery and read) are queued per contact
// and sent after a random delay, drawn uniformly from
// [Options.ReceiptDelayMin, Options.ReceiptDelayMax] when the contact's
// first pending receipt is queued; everything queued for that contact by
// then goes in one message per kind (one delivery receipt listing every
// id, one read receipt listing every id), through sendContent, which seals
// it when the contact's profile key is known.
//
// Pending receipts live in memory only. A receipt still waiting when the
// client closes (or when the connection is down as its delay ends) is
// lost: the sender sees its message as sent but not delivered or read.
// Nothing else depends on receipts; front ends that exit on purpose
// (sotto listen --drain) call WaitReceipts first.

// Default bounds of the random delay before receipts are sent.
const (
	DefaultReceiptDelayMin = time.Second
	DefaultReceiptDelayMax = 10 * time.Second
)

// receiptBatch is what waits to be sent to one contact.
type receiptBatch struct {
	delivered, read [][]byte
	seen            map[string]bool // "d" or "r" + id: what the lists hold
}

// maxReceiptIDs is the most message ids one receipt carries: a device
// coming back to a backlog queues thousands, sent as several receipts
// that each fit in a frame.
const maxReceiptIDs = 1000

// receiptQueue holds pending receipts and the goroutines whose delays
// release them. It is owned by the Client: stopped and waited for in Close.
type receiptQueue struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[string]*receiptBatch // by contact
	active  int                      // batches waiting or being sent
	idle    chan struct{}            // closed while active is 0
}

func newReceiptQueue() *receiptQueue {
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &receiptQueue{ctx: ctx, cancel: cancel, pending: map[string]*receiptBatch{}, idle: idle}
}

// stop drops what is pending and waits for the delay goroutines. The
// cancel happens under mu, so that queueReceipt either sees it and starts
// nothing or has called wg.Add before this Wait (go test -race caught a
// receive loop queueing a receipt while Close waited).
func (q *receiptQueue) stop() {
	q.mu.Lock()
	q.cancel()
	q.mu.Unlock()
	q.wg.Wait()
}

// receiptDelay draws the delay before a batch is sent.
func (c *Client) receiptDelay() time.Duration {
	lo, hi := c.opts.ReceiptDelayMin, c.opts.ReceiptDelayMax
	if lo <= 0 && hi <= 0 {
		lo, hi = DefaultReceiptDelayMin, DefaultReceiptDelayMax
	}
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
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
// receipts, else delivery receipts) and, when none were pending, starts
// the delay after which they are sent.
func (c *Client) queueReceipt(to string, read bool, ids ...[]byte) {
	q := c.receipts
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ctx.Err() != nil {
		return
	}
	b, waiting := q.pending[to]
	if !waiting {
		b = &receiptBatch{}
		q.pending[to] = b
		if q.active == 0 {
			q.idle = make(chan struct{})
		}
		q.active++
	}
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	for _, id := range ids {
		list, key := &b.delivered, "d"+string(id)
		if read {
			list, key = &b.read, "r"+string(id)
		}
		if !b.seen[key] {
			b.seen[key] = true
			*list = append(*list, bytes.Clone(id))
		}
	}
	if waiting {
		return
	}
	d := c.receiptDelay()
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		err := c.waitReceiptDelay(q.ctx, d)
		q.mu.Lock()
		b := q.pending[to]
		delete(q.pending, to)
		q.mu.Unlock()
		if err == nil {
			c.sendReceipts(q.ctx, to, b)
		}
		q.mu.Lock()
		if q.active--; q.active == 0 {
			close(q.idle)
		}
		q.mu.Unlock()
	}()
}

// sendReceipts sends one batch: at most one delivery and one read receipt.
func (c *Client) sendReceipts(ctx context.Context, to string, b *receiptBatch) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, k := range []struct {
		ids  [][]byte
		read bool
		make func([][]byte, time.Time) (*content.Content, error)
	}{{b.delivered, false, content.NewDeliveryReceipt}, {b.read, true, content.NewReadReceipt}} {
		for ids := range slices.Chunk(k.ids, maxReceiptIDs) {
			ct, err := k.make(ids, c.opts.Now())
			if err == nil {
				_, err = c.sendContent(ctx, to, ct, ct.Id)
			}
			if err != nil && ctx.Err() == nil {
				c.log.Info("receipts not sent", "read", k.read, "count", len(ids), "err", err)
			}
		}
	}
}

// WaitReceipts waits until no receipt is pending (their random delays have
// passed and they were sent), or ctx ends. A front end about to exit calls
// it so that the receipts of what it just received are not lost.
func (c *Client) WaitReceipts(ctx context.Context) error {
	q := c.receipts
	q.mu.Lock()
	idle := q.idle
	q.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
