package witness

import (
	"testing"

	"sotto/transparency"
)

// benchAdd co-signs a growing log of 100,000+ leaves one leaf at a time:
// parse, log signature, consistency proof, cosignature, and (with fsync)
// the durable state write.
func benchAdd(b *testing.B, fsync bool) {
	l := newLog(b)
	l.grow(100_000)
	w := newWitness(b, b.TempDir(), l.pub, witnessKey(b))
	if !fsync {
		w.save = func([]byte) error { return nil }
	}
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		b.Fatal(err)
	}
	reqs := make([][]byte, 0, 1024)
	for i := 0; i < cap(reqs); i++ {
		old := l.tree.Size()
		l.grow(1)
		r := l.request(old)
		reqs = append(reqs, r.Encode())
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(reqs) {
			b.StopTimer()
			w = newWitness(b, b.TempDir(), l.pub, witnessKey(b))
			if !fsync {
				w.save = func([]byte) error { return nil }
			}
			first := reqs[0]
			r, _ := ParseRequest(first)
			h, _ := transparency.DecodeHead(r.Head)
			prev, err := transparency.ConsistencyProof(l.tree, 0, h.Size)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.AddCheckpoint(Request{Proof: prev, Head: r.Head}); err != nil {
				b.Fatal(err)
			}
			i = 1
			b.StartTimer()
		}
		r, err := ParseRequest(reqs[i])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.AddCheckpoint(r); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAddCheckpoint is what the witness spends per checkpoint,
// its state fsynced (temporary file, rename, directory).
func BenchmarkAddCheckpoint(b *testing.B) { benchAdd(b, true) }

// BenchmarkAddCheckpointNoDisk is the same without the state write: the
// checks and the cosignature alone.
func BenchmarkAddCheckpointNoDisk(b *testing.B) { benchAdd(b, false) }
