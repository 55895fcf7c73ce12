package conversation

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// TestReceiptQueueBatchesPerContact: receipts queued for a contact while
// its delay runs go out as one batch, each id once per kind; another
// contact has its own batch; nothing is sent before the delay ends, and
// Stop drops what is still waiting.
func TestReceiptQueueBatchesPerContact(t *testing.T) {
	t.Parallel()
	release := make(chan struct{}) // one send ends one delay
	var mu sync.Mutex
	sent := map[string]*ReceiptBatch{}
	done := make(chan string, 2)
	q := NewReceiptQueue(func() time.Duration { return 5 * time.Second },
		func(ctx context.Context, d time.Duration) error {
			if d != 5*time.Second {
				t.Errorf("delay %v", d)
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		func(_ context.Context, to string, b *ReceiptBatch) {
			mu.Lock()
			sent[to] = b
			mu.Unlock()
			done <- to
		})
	a, b := msgID(1), msgID(2)
	q.Queue("bob", false, a)
	q.Queue("bob", false, b, a)
	q.Queue("bob", true, a)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if err := q.Wait(ctx); err == nil {
		t.Fatal("Wait returned while receipts were pending")
	}
	cancel()
	mu.Lock()
	if len(sent) != 0 {
		t.Fatalf("sent before the delay: %v", sent)
	}
	mu.Unlock()
	release <- struct{}{}
	if to := <-done; to != "bob" {
		t.Fatalf("sent to %s", to)
	}
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := sent["bob"]
	mu.Unlock()
	if len(got.Delivered) != 2 || !bytes.Equal(got.Delivered[0], a) || !bytes.Equal(got.Delivered[1], b) || len(got.Read) != 1 || !bytes.Equal(got.Read[0], a) {
		t.Fatalf("bob's batch %+v", got)
	}
	q.Queue("carol", false, a)
	q.Stop() // carol's batch still waits: dropped
	mu.Lock()
	defer mu.Unlock()
	if _, ok := sent["carol"]; ok {
		t.Fatal("a batch waiting at Stop was sent")
	}
	q.Queue("dave", false, a) // after Stop: nothing starts
	if err := q.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDrawReceiptDelay(t *testing.T) {
	t.Parallel()
	for range 100 {
		if d := DrawReceiptDelay(0, 0); d < DefaultReceiptDelayMin || d > DefaultReceiptDelayMax {
			t.Fatalf("default delay %v", d)
		}
		if d := DrawReceiptDelay(2*time.Second, 3*time.Second); d < 2*time.Second || d > 3*time.Second {
			t.Fatalf("delay %v", d)
		}
	}
	if d := DrawReceiptDelay(time.Second, time.Second); d != time.Second {
		t.Fatalf("fixed delay %v", d)
	}
}
