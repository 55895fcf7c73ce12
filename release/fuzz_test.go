package release

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"sotto/transparency"
)

func manifestSeeds(f *testing.F) {
	n := 0
	for _, v := range []string{"v1.0.0", "v2.3.4-rc.1"} {
		enc, err := testManifest(v).Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		n++
	}
	f.Add([]byte("sotto release manifest v1\n"))
	if n == 0 {
		f.Fatal("no seeds")
	}
}

// FuzzParseManifest: a manifest from a mirror either parses to something
// that encodes back to the same bytes, or fails with ErrMalformed.
func FuzzParseManifest(f *testing.F) {
	manifestSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		enc, err := m.Encode()
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("accepted a manifest that does not round-trip: %v", err)
		}
	})
}

// FuzzParseCheckpoint: a checkpoint from a mirror parses to one that encodes
// back to the same bytes, or fails with ErrMalformed.
func FuzzParseCheckpoint(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	_, wkey, _ := ed25519.GenerateKey(nil)
	head := transparency.SignHead(key, 3, transparency.Hash{1}, 5)
	cosig := transparency.Cosign(wkey, key.Public().(ed25519.PublicKey), 3, transparency.Hash{1}, 6)
	f.Add((&Checkpoint{Head: head, Cosignatures: [][]byte{cosig.Encode()}}).Encode())
	f.Add((&Checkpoint{Head: head}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := ParseCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(cp.Encode(), b) {
			t.Fatal("accepted a checkpoint that does not round-trip")
		}
	})
}

// FuzzParseLeaves: a leaves file parses to hashes that encode back, or fails
// with ErrMalformed.
func FuzzParseLeaves(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := ParseLeaves(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(EncodeLeaves(hs), b) {
			t.Fatal("leaves do not round-trip")
		}
	})
}
