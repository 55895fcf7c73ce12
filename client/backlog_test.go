package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/transport"
	"sotto/wire"
)

// backlogSize is how many messages wait for the device in
// TestBacklogDrainsThroughClient.
const backlogSize = 2000

// TestBacklogDrainsThroughClient is issue 18's delivery stall through the
// whole client: a device coming back to a backlog acks every message and
// sends delivery receipts; its acks used to be refused past the relay's
// request limit, never sent again, and once the delivery window was full
// of unacked envelopes the relay pushed nothing more until the device
// reconnected. Here 2,000 real messages (more than the delivery window and
// the request burst) are each shown once, and every one gets its delivery
// receipt back. client/transport's TestBacklogDrains drains 20,000.
func TestBacklogDrainsThroughClient(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enroll(t, code, "alice", true)
	receipts := make(chan int, 1)
	var nReceipts atomic.Int64
	go func() {
		ids := map[string]bool{}
		for e := range aliceEvents {
			if e.Kind == EventReceipt && !e.Receipt.Read {
				for _, id := range e.Receipt.IDs {
					ids[string(id)] = true
				}
				nReceipts.Store(int64(len(ids)))
				// The first message's receipt may have been lost with
				// bob's disconnection: the backlog's are what counts.
				if len(ids) >= backlogSize {
					select {
					case receipts <- len(ids):
					default:
					}
				}
			}
		}
	}()
	bob, bobEvents := r.enroll(t, code, "bob", true)
	if _, err := alice.Send(ctx, "bob", "first"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bobEvents, EventMessage)
	bob.Disconnect()

	start := time.Now()
	const senders = 8
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < backlogSize; i += senders {
				for {
					_, err := alice.Send(ctx, "bob", fmt.Sprintf("m%d", i))
					var te *transport.Error
					if errors.As(err, &te) && te.Code == wire.ErrorCode_RATE_LIMITED {
						time.Sleep(te.RetryAfter) // past the sender's request limit
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("send %d: %w", i, err)
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("queued %d messages in %v", backlogSize, time.Since(start))
	start = time.Now()
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, backlogSize)
	timeout := time.After(5 * time.Minute)
	for len(seen) < backlogSize {
		select {
		case e := <-bobEvents:
			if e.Kind != EventMessage {
				continue
			}
			if seen[e.Message.Text] {
				t.Fatalf("%q shown twice", e.Message.Text)
			}
			seen[e.Message.Text] = true
		case <-timeout:
			t.Fatalf("%d of %d messages after 5 minutes", len(seen), backlogSize)
		}
	}
	t.Logf("drained %d messages in %v", backlogSize, time.Since(start))
	select {
	case <-receipts:
	case <-time.After(time.Minute):
		t.Fatalf("delivery receipts for %d of %d messages", nReceipts.Load(), backlogSize)
	}
}
