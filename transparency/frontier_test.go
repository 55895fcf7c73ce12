package transparency

import (
	"bytes"
	"fmt"
	"testing"
)

func TestFrontier(t *testing.T) {
	var f Frontier
	tr := &MemoryTree{}
	for n := 0; n <= 300; n++ {
		want, _ := tr.Root(uint64(n))
		if f.Root() != want {
			t.Fatalf("frontier root at %d differs", n)
		}
		dec, err := DecodeFrontier(f.Encode())
		if err != nil || dec.Root() != want || dec.Size != uint64(n) {
			t.Fatalf("frontier %d round trip: %v", n, err)
		}
		leaf := fmt.Appendf(nil, "l%d", n)
		if err := tr.AppendLeaf(leaf); err != nil {
			t.Fatal(err)
		}
		if err := f.Append(LeafHash(leaf)); err != nil {
			t.Fatal(err)
		}
	}
	enc := f.Encode()
	if _, err := DecodeFrontier(enc[:len(enc)-1]); err == nil {
		t.Error("short frontier accepted")
	}
	if _, err := DecodeFrontier(append(bytes.Clone(enc), make([]byte, 32)...)); err == nil {
		t.Error("long frontier accepted")
	}
}

func FuzzDecodeFrontier(f *testing.F) {
	var fr Frontier
	for i := 0; i < 11; i++ {
		if err := fr.Append(LeafHash([]byte{byte(i)})); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := DecodeFrontier(fr.Encode()); err != nil {
		f.Fatalf("seed does not decode: %v", err)
	}
	f.Add(fr.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeFrontier(b)
		if err != nil {
			return
		}
		if !bytes.Equal(d.Encode(), b) {
			t.Fatal("decoded frontier does not re-encode to the same bytes")
		}
		_ = d.Root()
		if d.Size < 1<<62 {
			if err := d.Append(Hash{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
