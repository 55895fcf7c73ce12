package transparency

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestCosignature(t *testing.T) {
	logPub, logPriv := testKey(t)
	wPub, wPriv := testKey(t)
	otherPub, _ := testKey(t)
	root := LeafHash([]byte("root"))
	c := Cosign(wPriv, logPub, 42, root, 1_700_000_000)
	enc := c.Encode()
	if len(enc) != CosignatureSize {
		t.Fatalf("encoded %d bytes, want %d", len(enc), CosignatureSize)
	}
	d, err := DecodeCosignature(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Encode(), enc) {
		t.Fatal("decode does not round-trip")
	}
	if err := d.Verify(wPub, logPub, 42, root); err != nil {
		t.Fatalf("valid cosignature: %v", err)
	}
	// Independent of the relay's head: two heads of the same tree signed at
	// different times carry the same cosignature.
	h1, h2 := SignHead(logPriv, 42, root, 1), SignHead(logPriv, 42, root, 2)
	for _, h := range []SignedHead{h1, h2} {
		if err := d.Verify(wPub, logPub, h.Size, h.Root); err != nil {
			t.Fatalf("head at %d: %v", h.TimestampMS, err)
		}
	}
	bad := []struct {
		name     string
		wit, log ed25519.PublicKey
		size     uint64
		root     Hash
		mutate   func(*Cosignature)
	}{
		{"other size", wPub, logPub, 43, root, nil},
		{"other root", wPub, logPub, 42, LeafHash([]byte("fork")), nil},
		{"other log", wPub, otherPub, 42, root, nil},
		{"other witness", otherPub, logPub, 42, root, nil},
		{"other timestamp", wPub, logPub, 42, root, func(c *Cosignature) { c.Timestamp++ }},
		{"flipped bit", wPub, logPub, 42, root, func(c *Cosignature) { c.Signature[3] ^= 1 }},
		{"short signature", wPub, logPub, 42, root, func(c *Cosignature) { c.Signature = c.Signature[:10] }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c2, _ := DecodeCosignature(enc)
			if tc.mutate != nil {
				tc.mutate(&c2)
			}
			if err := c2.Verify(tc.wit, tc.log, tc.size, tc.root); !errors.Is(err, ErrBadCosignature) {
				t.Fatalf("verified: %v", err)
			}
		})
	}
	for _, b := range [][]byte{nil, enc[:len(enc)-1], append(bytes.Clone(enc), 0), append([]byte{2}, enc[1:]...)} {
		if _, err := DecodeCosignature(b); !errors.Is(err, ErrBadCosignature) {
			t.Fatalf("decoded %x: %v", b, err)
		}
	}
}

func TestFindCosignature(t *testing.T) {
	logPub, _ := testKey(t)
	wPub, wPriv := testKey(t)
	_, oPriv := testKey(t)
	root := LeafHash([]byte("root"))
	good := Cosign(wPriv, logPub, 5, root, 9)
	other := Cosign(oPriv, logPub, 5, root, 9)
	forged := Cosign(wPriv, logPub, 6, root, 9) // for another size
	if ok, bad := FindCosignature(wPub, logPub, 5, root, [][]byte{other.Encode(), []byte("junk"), good.Encode()}); !ok || bad != 0 {
		t.Fatalf("ok %v bad %d", ok, bad)
	}
	if ok, bad := FindCosignature(wPub, logPub, 5, root, [][]byte{other.Encode(), forged.Encode()}); ok || bad != 1 {
		t.Fatalf("forged: ok %v bad %d", ok, bad)
	}
	if ok, bad := FindCosignature(wPub, logPub, 5, root, nil); ok || bad != 0 {
		t.Fatalf("none: ok %v bad %d", ok, bad)
	}
}

func FuzzDecodeCosignature(f *testing.F) {
	logPub, _ := testKey(f)
	wPub, wPriv := testKey(f)
	root := LeafHash([]byte("r"))
	seed := Cosign(wPriv, logPub, 7, root, 99)
	if err := seed.Verify(wPub, logPub, 7, root); err != nil {
		f.Fatalf("seed does not verify: %v", err)
	}
	f.Add(seed.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCosignature(b)
		if err != nil {
			if !errors.Is(err, ErrBadCosignature) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if !bytes.Equal(c.Encode(), b) {
			t.Fatal("decoded cosignature does not re-encode to the same bytes")
		}
		if c.Verify(wPub, logPub, 7, root) == nil && !bytes.Equal(b, seed.Encode()) {
			t.Fatal("another encoding verifies")
		}
	})
}

// BenchmarkCosign measures one cosignature (what the witness does per
// checkpoint, disk excluded).
func BenchmarkCosign(b *testing.B) {
	logPub, _ := testKey(b)
	_, wPriv := testKey(b)
	root := LeafHash([]byte("r"))
	for i := 0; b.Loop(); i++ {
		Cosign(wPriv, logPub, uint64(i), root, 1)
	}
}

// BenchmarkFindCosignature measures a client's check of a head's
// cosignature: decode and verify one Ed25519 signature.
func BenchmarkFindCosignature(b *testing.B) {
	logPub, _ := testKey(b)
	wPub, wPriv := testKey(b)
	root := LeafHash([]byte("r"))
	enc := [][]byte{Cosign(wPriv, logPub, 9, root, 1).Encode()}
	for b.Loop() {
		if ok, _ := FindCosignature(wPub, logPub, 9, root, enc); !ok {
			b.Fatal("does not verify")
		}
	}
}
