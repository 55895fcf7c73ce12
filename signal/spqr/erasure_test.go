package spqr

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestGF16(t *testing.T) {
	for _, a := range []uint16{1, 2, 3, 0x1234, 0x8000, 0xffff} {
		if got := gfMul(a, gfInv(a)); got != 1 {
			t.Errorf("%#x * inv = %#x", a, got)
		}
		if gfMul(a, 1) != a || gfMul(a, 0) != 0 {
			t.Errorf("identity fails for %#x", a)
		}
	}
	// x^16 reduces to x^12 + x^3 + x + 1.
	if got := gfMul(0x8000, 2); got != 0x100b {
		t.Errorf("x^15 * x = %#x, want 0x100b", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		a, b, c := uint16(r.Uint32()), uint16(r.Uint32()), uint16(r.Uint32())
		if gfMul(a, b^c) != gfMul(a, b)^gfMul(a, c) || gfMul(gfMul(a, b), c) != gfMul(a, gfMul(b, c)) {
			t.Fatalf("field laws fail for %#x %#x %#x", a, b, c)
		}
	}
}

func TestInterpolate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 3, 5, 30, 36} {
		xs, ys := make([]uint16, n), make([]uint16, n)
		for i := range xs {
			xs[i], ys[i] = uint16(i*7+3), uint16(r.Uint32())
		}
		p := interpolate(xs, ys)
		for i := range xs {
			if p.eval(xs[i]) != ys[i] {
				t.Fatalf("n=%d: p(%d) wrong", n, xs[i])
			}
		}
	}
}

// TestErasureSmall: a parity chunk alone rebuilds a 10-byte message.
func TestErasureSmall(t *testing.T) {
	e, err := newEncoder([]byte("abcdefghij"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := newDecoder(10)
	// Five values, one per column: any single chunk rebuilds them.
	d.add(e.chunkAt(2))
	got, ok := d.message()
	if !ok || string(got) != "abcdefghij" {
		t.Fatalf("decoded %q %v", got, ok)
	}
}

// TestErasureAnyChunks loses, reorders and duplicates chunks of each size
// the Braid sends and rebuilds every message from the first distinct
// chunks that arrive.
func TestErasureAnyChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{mlkemHeaderSize + macSize, mlkemEKSize, mlkemCt1Size, mlkemCt2Size + macSize, 1088, 34} {
		for trial := range 20 {
			msg := make([]byte, size)
			for i := range msg {
				msg[i] = byte(r.Uint32())
			}
			e, err := newEncoder(msg)
			if err != nil {
				t.Fatal(err)
			}
			chunks := make([]chunk, 3*size/chunkSize+3)
			for i := range chunks {
				chunks[i] = e.nextChunk()
			}
			if !bytes.Equal(chunks[0].data[:], msg[:min(32, size)]) && size >= 32 {
				t.Fatal("chunk 0 is not the message's start (the code is systematic)")
			}
			r.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
			d, _ := newDecoder(size)
			need := (size + chunkSize - 1) / chunkSize
			seen := map[uint16]bool{}
			for i, ch := range chunks {
				d.add(ch)
				if trial%2 == 0 {
					d.add(ch) // duplicated
				}
				seen[ch.index] = true
				got, ok := d.message()
				if ok {
					if !bytes.Equal(got, msg) {
						t.Fatalf("size %d: wrong message", size)
					}
					if len(seen) < need {
						t.Fatalf("size %d: decoded from %d chunks, need %d", size, len(seen), need)
					}
					break
				}
				if len(seen) >= need && size%chunkSize == 0 {
					t.Fatalf("size %d: %d distinct chunks (of %d sent) did not decode", size, len(seen), i+1)
				}
			}
		}
	}
}

func TestErasureLengths(t *testing.T) {
	if _, err := newEncoder([]byte{1, 2, 3}); err == nil {
		t.Error("odd length encoded")
	}
	if _, err := newDecoder(5); err == nil {
		t.Error("odd length decoder")
	}
}
