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
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// The relay of TestBacklogDrainsThroughClient has a small delivery window
// and request budget, so that a backlog several times both is small enough
// to drain through the whole client (decrypt, store, ack, receipt) in
// reasonable time on a loaded machine under the race detector: the
// default window (256) and burst (1,000) took 2,000 messages, of which such
// a machine drained about 2.5 a second.
const (
	backlogWindow = 32
	backlogBurst  = 100
	// backlogSize is how many messages wait for the device: 9 delivery
	// windows, 3 request bursts.
	backlogSize = 300
)

// TestBacklogDrainsThroughClient is issue 18's delivery stall through the
// whole client: a device coming back to a backlog acks every message and
// sends delivery receipts; its acks used to be refused past the relay's
// request limit, never sent again, and once the delivery window was full
// of unacked envelopes the relay pushed nothing more until the device
// reconnected. Here a backlog of real messages, several times the
// delivery window and the request burst, is shown once each, and every
// one gets its delivery receipt back. client/transport's TestBacklogDrains
// drains 20,000 with the relay's defaults.
func TestBacklogDrainsThroughClient(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &testRelay{store: st}
	cfg := r.config()
	cfg.DeliveryWindow = backlogWindow
	cfg.DeviceRate = relay.Rate{PerSecond: backlogBurst / 2, Burst: backlogBurst}
	r.serve(t, cfg)
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
	// No bound on the whole drain, which a loaded machine under the race
	// detector can stretch to many minutes: what fails is a stall, no new
	// message (then no new receipt) for stallLimit, which is what the
	// relay's full delivery window caused.
	seen := make(map[string]bool, backlogSize)
	stall := time.NewTimer(stallLimit)
	defer stall.Stop()
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
			stall.Reset(stallLimit)
			if len(seen)%100 == 0 {
				t.Logf("%d messages after %v", len(seen), time.Since(start))
			}
		case <-stall.C:
			t.Fatalf("delivery stalled: %d of %d messages, none for %v", len(seen), backlogSize, stallLimit)
		}
	}
	t.Logf("drained %d messages in %v", backlogSize, time.Since(start))
	for last := nReceipts.Load(); ; {
		select {
		case <-receipts:
			return
		case <-time.After(stallLimit):
			n := nReceipts.Load()
			if n == last {
				t.Fatalf("delivery receipts stalled: %d of %d, none for %v", n, backlogSize, stallLimit)
			}
			last = n
		}
	}
}

// stallLimit is how long TestBacklogDrainsThroughClient waits for any
// progress before it calls the drain stalled.
const stallLimit = 2 * time.Minute
