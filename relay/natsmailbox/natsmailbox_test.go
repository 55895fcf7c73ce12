package natsmailbox_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sotto/relay"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/natsmailbox"
	"sotto/relay/storetest"
)

// mailboxOnly is a relay.Store whose Directory is absent: RunMailbox
// uses only the Mailbox.
type mailboxOnly struct {
	relay.Directory
	*natsmailbox.Mailbox
}

func TestMailboxConformance(t *testing.T) {
	storetest.RunMailbox(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		nc := natstest.Conn(t)
		var b [6]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		opts := natsmailbox.Options{Stream: "SOTTO_TEST_" + id, Subjects: "sottotest." + id, Bucket: "sotto_test_" + id}
		open := func() relay.Store {
			m, err := natsmailbox.Open(context.Background(), nc, opts)
			if err != nil {
				t.Fatal(err)
			}
			return mailboxOnly{Mailbox: m}
		}
		t.Cleanup(func() {
			js, err := jetstream.New(nc)
			if err != nil {
				return
			}
			js.DeleteStream(context.Background(), opts.Stream)
			js.DeleteKeyValue(context.Background(), opts.Bucket)
		})
		return open(), open
	})
}

// open returns a mailbox on a fresh stream and bucket, deleted at the end.
func open(t testing.TB) *natsmailbox.Mailbox {
	nc := natstest.Conn(t)
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	opts := natsmailbox.Options{Stream: "SOTTO_TEST_" + id, Subjects: "sottotest." + id, Bucket: "sotto_test_" + id}
	m, err := natsmailbox.Open(context.Background(), nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		js.DeleteStream(context.Background(), opts.Stream)
		js.DeleteKeyValue(context.Background(), opts.Bucket)
	})
	return m
}

// TestConcurrentDuplicateSends appends one send from many goroutines at
// once: exactly one is stored, the others report a duplicate.
func TestConcurrentDuplicateSends(t *testing.T) {
	m := open(t)
	ctx := context.Background()
	var from, to relay.DeviceAddr
	from.Account[0], from.Device = 1, 1
	to.Account[0], to.Device = 2, 1
	const n = 20
	results := make(chan relay.AppendResult, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sd := &relay.Send{Sender: from, MessageID: []byte("same"), Timestamp: time.UnixMilli(int64(1000 + i)),
				Envelopes: []relay.Envelope{{Recipient: to, Sender: "a", SenderDevice: 1, Type: 1, Content: []byte("x"), MessageID: []byte("same")}}}
			rand.Read(sd.Envelopes[0].ID[8:])
			r, err := m.Append(ctx, sd)
			if err != nil {
				errs <- err
				return
			}
			results <- r
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fresh := 0
	var ts time.Time
	for r := range results {
		if !r.Duplicate {
			fresh++
			ts = r.Timestamp
		}
	}
	envs, err := m.Fetch(ctx, to, 0, time.Time{}, 100)
	if fresh != 1 || err != nil || len(envs) != 1 || !envs[0].Timestamp.Equal(ts) {
		t.Fatalf("%d stored as new, %d envelopes kept (%v)", fresh, len(envs), err)
	}
}

// BenchmarkAppendAck is the workload of pgstore's and sqlitestore's
// BenchmarkAppendAck: 1000 concurrent senders, each op appends one
// 300-byte envelope and deletes it with an ack.
func BenchmarkAppendAck(b *testing.B) {
	m := open(b)
	ctx := context.Background()
	content := make([]byte, 300)
	rand.Read(content)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range 1000 {
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
				rand.Read(sd.Envelopes[0].ID[8:])
				if _, err := m.Append(ctx, sd); err != nil {
					b.Error(err)
					return
				}
				if err := m.Delete(ctx, to, []relay.EnvelopeID{sd.Envelopes[0].ID}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
}
