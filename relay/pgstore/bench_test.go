package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/pgstore/pgtest"
	"sotto/relay/sqlitestore"
)

// BenchmarkAppendAck compares the backends under the workload of
// sqlitestore's BenchmarkAppendAck: 1000 concurrent senders, each op
// appends one 300-byte envelope and deletes it with an ack. Reported:
// pairs/s, the test process's CPU per pair and, for PostgreSQL, the CPU
// of all postgres server processes per pair (on a shared machine this
// includes other clients' work).
func BenchmarkAppendAck(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		s, err := sqlitestore.Open(context.Background(), b.TempDir(), sqlitestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		appendAck(b, s, false)
	})
	b.Run("postgres", func(b *testing.B) {
		s, _ := pgtest.Open(b)
		defer s.Close()
		appendAck(b, s, true)
	})
}

func appendAck(b *testing.B, s relay.Mailbox, server bool) {
	ctx := context.Background()
	content := make([]byte, 300)
	rand.Read(content)
	const workers = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0, srv0 := time.Now(), processCPU(), postgresCPU()
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
				rand.Read(sd.Envelopes[0].ID[8:])
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
	n := float64(b.N)
	b.ReportMetric(n/time.Since(start).Seconds(), "pairs/s")
	b.ReportMetric(float64(processCPU()-cpu0)/n/1e3, "client-cpu-µs/pair")
	if server {
		b.ReportMetric(float64(postgresCPU()-srv0)/n/1e3, "pg-server-cpu-µs/pair")
	}
	if mw, ok := s.(relay.MetricsWriter); ok {
		var buf strings.Builder
		mw.WriteMetrics(&buf)
		b.ReportMetric(opsPerCommit(buf.String()), "ops/commit")
	}
}

// opsPerCommit reads the writer's counters from its metrics text.
func opsPerCommit(metrics string) float64 {
	var commits, ops float64
	for _, l := range strings.Split(metrics, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasSuffix(f[0], "_commits_total"):
			commits = v
		case strings.HasSuffix(f[0], "_committed_ops_total"):
			ops = v
		}
	}
	if commits == 0 {
		return 0
	}
	return ops / commits
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU sums the user+system CPU time of the processes named
// postgres (Linux /proc; 0 elsewhere). Clock ticks are assumed 100/s.
func postgresCPU() time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open || s[open+1:close] != "postgres" {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
