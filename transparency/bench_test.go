package transparency

import (
	"fmt"
	"syscall"
	"testing"
)

const benchLeaves = 100_000

func benchTree(b *testing.B) *MemoryTree {
	b.Helper()
	tr := &MemoryTree{}
	for i := 0; i < benchLeaves; i++ {
		if err := tr.AppendLeaf(fmt.Appendf(nil, "binding %d", i)); err != nil {
			b.Fatal(err)
		}
	}
	return tr
}

// BenchmarkAppend measures hashing and node bookkeeping of one append to a
// tree of 100,000 leaves (storage excluded).
func BenchmarkAppend(b *testing.B) {
	tr := benchTree(b)
	leaf := []byte("one more binding")
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		if err := tr.AppendLeaf(leaf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInclusionProof(b *testing.B) {
	tr := benchTree(b)
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		if _, err := InclusionProof(tr, uint64(i%benchLeaves), benchLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsistencyProof(b *testing.B) {
	tr := benchTree(b)
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		if _, err := ConsistencyProof(tr, uint64(1+i%(benchLeaves-1)), benchLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyInclusion(b *testing.B) {
	tr := benchTree(b)
	p, _ := InclusionProof(tr, 31337, benchLeaves)
	root, _ := tr.Root(benchLeaves)
	lh := LeafHash([]byte("binding 31337"))
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		if err := VerifyInclusion(lh, 31337, benchLeaves, p, root); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyConsistency(b *testing.B) {
	tr := benchTree(b)
	p, _ := ConsistencyProof(tr, 77_777, benchLeaves)
	r1, _ := tr.Root(77_777)
	r2, _ := tr.Root(benchLeaves)
	b.ResetTimer()
	start := cpuTime()
	defer reportCPU(b, start)
	for i := 0; i < b.N; i++ {
		if err := VerifyConsistency(77_777, benchLeaves, r1, r2, p); err != nil {
			b.Fatal(err)
		}
	}
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
