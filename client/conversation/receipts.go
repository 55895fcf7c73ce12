package conversation

// Receipts that do not link sender and recipient: the batching.
//
// A delivery receipt sent the moment a message is acknowledged leaves from
// the recipient's connection milliseconds after the relay pushed the
// message to it: even sealed, its timing names the recipient as the one the
// sender wrote to. So receipts (delivery and read) are queued per contact
// and sent after a random delay (DrawReceiptDelay), drawn when the
// contact's first pending receipt is queued; everything queued for that
// contact by then goes in one batch, which the facade (the client's
// receipts.go) sends as one message per kind, sealed when it can.
//
// Pending receipts live in memory only: a receipt still waiting when the
// queue stops is lost, and the sender sees its message as sent but not
// delivered or read.

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Default bounds of the random delay before receipts are sent.
const (
	DefaultReceiptDelayMin = time.Second
	DefaultReceiptDelayMax = 10 * time.Second
)

// MaxReceiptIDs is the most message ids one receipt carries: a device
// coming back to a backlog queues thousands, sent as several receipts
// that each fit in a frame.
const MaxReceiptIDs = 1000

// ReceiptBatch is what waits to be sent to one contact: each id once per
// kind, in the order queued.
type ReceiptBatch struct {
	Delivered, Read [][]byte
	seen            map[string]bool // "d" or "r" + id: what the lists hold
}

// DrawReceiptDelay draws the delay before a batch is sent, uniformly from
// [lo, hi] (the defaults when both are unset).
func DrawReceiptDelay(lo, hi time.Duration) time.Duration {
	if lo <= 0 && hi <= 0 {
		lo, hi = DefaultReceiptDelayMin, DefaultReceiptDelayMax
	}
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// ReceiptQueue holds pending receipts and the goroutines whose delays
// release them. Its owner stops it (Stop) before it goes away.
type ReceiptQueue struct {
	delay func() time.Duration
	wait  func(context.Context, time.Duration) error
	send  func(ctx context.Context, to string, b *ReceiptBatch)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[string]*ReceiptBatch // by contact
	active  int                      // batches waiting or being sent
	idle    chan struct{}            // closed while active is 0
}

// NewReceiptQueue makes a queue that draws each batch's delay with delay,
// waits it with wait (which returns early with ctx's error when the queue
// stops) and hands the batch to send.
func NewReceiptQueue(delay func() time.Duration, wait func(context.Context, time.Duration) error, send func(ctx context.Context, to string, b *ReceiptBatch)) *ReceiptQueue {
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &ReceiptQueue{delay: delay, wait: wait, send: send, ctx: ctx, cancel: cancel, pending: map[string]*ReceiptBatch{}, idle: idle}
}

// Stop drops what is pending and waits for the delay goroutines. The
// cancel happens under mu, so that Queue either sees it and starts
// nothing or has called wg.Add before this Wait (go test -race caught a
// receive loop queueing a receipt while Close waited).
func (q *ReceiptQueue) Stop() {
	q.mu.Lock()
	q.cancel()
	q.mu.Unlock()
	q.wg.Wait()
}

// Queue adds ids to the receipts pending for to (read: read receipts,
// else delivery receipts) and, when none were pending, starts the delay
// after which they are sent.
func (q *ReceiptQueue) Queue(to string, read bool, ids ...[]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ctx.Err() != nil {
		return
	}
	b, waiting := q.pending[to]
	if !waiting {
		b = &ReceiptBatch{}
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
		list, key := &b.Delivered, "d"+string(id)
		if read {
			list, key = &b.Read, "r"+string(id)
		}
		if !b.seen[key] {
			b.seen[key] = true
			*list = append(*list, bytes.Clone(id))
		}
	}
	if waiting {
		return
	}
	d := q.delay()
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		err := q.wait(q.ctx, d)
		q.mu.Lock()
		b := q.pending[to]
		delete(q.pending, to)
		q.mu.Unlock()
		if err == nil {
			q.send(q.ctx, to, b)
		}
		q.mu.Lock()
		if q.active--; q.active == 0 {
			close(q.idle)
		}
		q.mu.Unlock()
	}()
}

// Wait waits until no receipt is pending (their delays have passed and
// they were sent), or ctx ends.
func (q *ReceiptQueue) Wait(ctx context.Context) error {
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
