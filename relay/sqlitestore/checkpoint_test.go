package sqlitestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sotto/relay"
)

// TestWALFrames checks the wal-index reading the background checkpointer
// decides by: commits raise mxFrame, a PASSIVE checkpoint raises
// nBackfill to it.
func TestWALFrames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shm, err := os.Open(filepath.Join(dir, FileName+"-shm"))
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Close()
	mx0, _, ok := walFrames(shm)
	if !ok {
		t.Fatal("wal-index unreadable")
	}
	var sender, bob relay.DeviceAddr
	sender.Account[0], sender.Device = 1, 1
	bob.Account[0], bob.Device = 2, 1
	for i := range 20 {
		ts := time.UnixMilli(1_700_000_000_000 + int64(i))
		sd := &relay.Send{Sender: sender, MessageID: []byte(fmt.Sprint("m", i)), Timestamp: ts, Envelopes: []relay.Envelope{{
			Recipient: bob, Sender: "alice", SenderDevice: 1, Timestamp: ts, Type: 1, Content: make([]byte, 300),
		}}}
		if _, err := s.Append(ctx, sd); err != nil {
			t.Fatal(err)
		}
	}
	mx1, done1, _ := walFrames(shm)
	if mx1 < mx0+20 {
		t.Fatalf("mxFrame %d after 20 commits, %d before", mx1, mx0)
	}
	if done1 >= mx1 {
		t.Fatalf("nBackfill %d already at mxFrame %d before any checkpoint", done1, mx1)
	}
	if _, err := s.ck.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		t.Fatal(err)
	}
	mx2, done2, _ := walFrames(shm)
	if mx2 != mx1 || done2 != mx2 {
		t.Fatalf("after a checkpoint: mxFrame %d (was %d), nBackfill %d", mx2, mx1, done2)
	}
}

// procWriteBytes is what this process caused to be written to storage.
func procWriteBytes(b *testing.B) uint64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no write_bytes in /proc/self/io")
	return 0
}

// BenchmarkCommitTail offers 5,000 sends a second (1,000 recipients, 300
// bytes, each acked 250 ms after it committed) for b.N sends, with the
// WAL checkpointed at 16 MiB so that a short run sees several
// checkpoints, by the writer alone and with the background checkpointer,
// alternated; it reports the send→commit latency's p50, p99 and maximum,
// and the bytes written to storage per send.
//
//	go test ./relay/sqlitestore -run '^$' -bench CommitTail -benchtime 50000x -count 3
//
// SOTTO_BENCH_EVERY (a duration) sets the interval between sends.
func BenchmarkCommitTail(b *testing.B) {
	for _, bg := range []bool{false, true} {
		name := "writer-only"
		if bg {
			name = "background"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir(), Options{walBytes: 16 << 20, noBackground: !bg})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			var sender relay.DeviceAddr
			sender.Account[0], sender.Device = 1, 1
			content := make([]byte, 300)
			every := 200 * time.Microsecond // 5,000/s
			if d, err := time.ParseDuration(os.Getenv("SOTTO_BENCH_EVERY")); err == nil {
				every = d
			}
			w0 := procWriteBytes(b)
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
					time.Sleep(d)
				}
				var bob relay.DeviceAddr
				binary.BigEndian.PutUint32(bob.Account[:], uint32(2+i%1000))
				bob.Device = 1
				ts := time.Now()
				sd := &relay.Send{Sender: sender, MessageID: binary.BigEndian.AppendUint64(nil, uint64(i)), Timestamp: ts,
					Envelopes: []relay.Envelope{{Recipient: bob, Sender: "alice", SenderDevice: 1, Timestamp: ts, Type: 1, Content: content, MessageID: []byte("m")}}}
				wg.Add(1)
				s.AppendAsync(sd, func(res relay.AppendResult, err error) {
					lat[i] = time.Since(ts)
					if err != nil {
						b.Error(err)
						wg.Done()
						return
					}
					ids := []relay.EnvelopeID{sd.Envelopes[0].ID}
					time.AfterFunc(250*time.Millisecond, func() {
						s.DeleteAsync(bob, ids, func(error) { wg.Done() })
					})
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(procWriteBytes(b)-w0)/float64(b.N), "disk-B/msg")
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			b.ReportMetric(float64(s.bgCheckpoints.Load()), "bg-checkpoints")
		})
	}
}
