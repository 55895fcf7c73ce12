package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"syscall"
	"testing"

	"sotto/relay"
	"sotto/transparency"
)

const benchLogLeaves = 100_000

// benchLog returns a store whose key log holds 100,000 bindings, written
// in one transaction (the setup is not measured).
func benchLog(b *testing.B) *Store {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		for i := 0; i < benchLogLeaves; i++ {
			user := fmt.Sprintf("user%06d", i)
			leaf, err := (&transparency.Binding{Kind: transparency.KindAdd, Username: user, IdentityKey: make([]byte, 33), TimestampMS: int64(i)}).Encode()
			if err != nil {
				return err
			}
			if _, err := relay.AppendLog(ctx, logTx{tx}, user, leaf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkKeyLogAppend: one binding appended to a log of 100,000, in a
// transaction of its own (committed with fsync, as Enroll's would be).
func BenchmarkKeyLogAppend(b *testing.B) {
	s := benchLog(b)
	ctx := context.Background()
	leaf, _ := (&transparency.Binding{Kind: transparency.KindAdd, Username: "newuser", IdentityKey: make([]byte, 33)}).Encode()
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		if _, err := s.AppendLogLeaf(ctx, "newuser", leaf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyLogInclusionProof: what a lookup adds on the relay: find the
// user's leaf, read the size, compute the root (for the head; the relay
// caches the signed head per size, this does not) and the inclusion proof.
func BenchmarkKeyLogInclusionProof(b *testing.B) {
	s := benchLog(b)
	ctx := context.Background()
	r := relayReader{ctx, s}
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		idx, err := s.LogLeafIndex(ctx, fmt.Sprintf("user%06d", (i*7919)%benchLogLeaves))
		if err != nil {
			b.Fatal(err)
		}
		n, err := s.LogSize(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := transparency.RootHash(r, n); err != nil {
			b.Fatal(err)
		}
		if _, err := transparency.InclusionProof(r, idx, n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyLogConsistencyProof: a consistency proof between a random
// earlier size and 100,000.
func BenchmarkKeyLogConsistencyProof(b *testing.B) {
	s := benchLog(b)
	r := relayReader{context.Background(), s}
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		if _, err := transparency.ConsistencyProof(r, uint64(1+(i*7919)%(benchLogLeaves-1)), benchLogLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

type relayReader struct {
	ctx context.Context
	s   *Store
}

func (r relayReader) ReadHashes(ids []transparency.NodeID) ([]transparency.Hash, error) {
	return r.s.LogHashes(r.ctx, ids)
}

// cpuTime is the process's user+system CPU time, for cpu-ns/op: on a
// machine shared with other jobs the wall clock overstates the cost.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// reportCPU reports CPU ns per op since start.
func reportCPU(b *testing.B, start int64) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
