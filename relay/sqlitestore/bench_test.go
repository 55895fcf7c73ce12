package sqlitestore_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
)

// BenchmarkAppendAck measures the mailbox under concurrent senders: each
// op appends one 300-byte envelope and, like a recipient would, deletes
// it with an ack. Reported: pairs (append + ack) per second.
func BenchmarkAppendAck(b *testing.B) {
	s, err := sqlitestore.Open(context.Background(), b.TempDir(), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	content := make([]byte, 300)
	rand.Read(content)
	const workers = 1000 // like sotto-load with 1000 devices
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var acct relay.AccountID
			binary.BigEndian.PutUint32(acct[:], uint32(w))
			from := relay.DeviceAddr{Account: acct, Device: 1}
			to := relay.DeviceAddr{Account: acct, Device: 2}
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				mid := make([]byte, 8)
				binary.BigEndian.PutUint64(mid, uint64(i))
				sd := &relay.Send{Sender: from, MessageID: mid, Timestamp: time.Now(), Envelopes: []relay.Envelope{{
					Recipient: to, Sender: "s", SenderDevice: 1, Type: 1, Content: content, MessageID: mid,
				}}}
				if _, err := s.Append(ctx, sd); err != nil {
					b.Error(err)
					return
				}
				if err := s.Delete(ctx, to, []relay.EnvelopeID{sd.Envelopes[0].ID}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
}

// BenchmarkExpireSends measures one pass of the dedupe expiry over a
// send_log of sendsRows records, half of them past the window: what
// the relay's writer connection spends every DedupeTTL/2. Reported:
// milliseconds per pass.
func BenchmarkExpireSends(b *testing.B) {
	const sendsRows = 1_000_000
	ctx := context.Background()
	interleave := os.Getenv("SOTTO_BENCH_INTERLEAVE") == "1"
	t0 := time.UnixMilli(1_800_000_000_000)
	for range b.N {
		b.StopTimer()
		s, err := sqlitestore.Open(ctx, b.TempDir(), sqlitestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		// Fill through the mailbox: sends of no envelope cost only their
		// dedupe record.
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := range 256 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var acct relay.AccountID
				binary.BigEndian.PutUint32(acct[:], uint32(w))
				for {
					i := next.Add(1)
					if i > sendsRows {
						return
					}
					mid := make([]byte, 16)
					rand.Read(mid)
					// The older half first, as a relay appends them (send_log
					// is in commit order); SOTTO_BENCH_INTERLEAVE=1 alternates
					// old and new records instead (the worst case: every page
					// keeps half its rows).
					ts := t0.Add(time.Duration(i*2/(sendsRows+1)) * time.Hour)
					if interleave {
						ts = t0.Add(time.Duration(i%2) * time.Hour)
					}
					if _, err := s.Append(ctx, &relay.Send{Sender: relay.DeviceAddr{Account: acct, Device: 1}, MessageID: mid, Timestamp: ts}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StartTimer()
		start := time.Now()
		n, err := s.ExpireSends(ctx, t0.Add(time.Minute))
		if err != nil || n != sendsRows/2 {
			b.Fatalf("expired %d, %v", n, err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/pass")
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
