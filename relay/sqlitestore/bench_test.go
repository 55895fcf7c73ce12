package sqlitestore_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
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
