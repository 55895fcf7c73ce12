package spqr

import (
	"bytes"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/rand"
	mrand "math/rand/v2"
	"testing"
)

// TestIncrementalMatchesStandard checks the split encapsulation against Go's
// crypto/mlkem: the same key seed gives the same encapsulation key, the two
// ciphertext parts with the same m are the standard ciphertext, both sides
// agree on the secret, and crypto/mlkem decapsulates it too.
func TestIncrementalMatchesStandard(t *testing.T) {
	rng := mrand.NewChaCha8([32]byte{7})
	for range 20 {
		var seed [64]byte
		rng.Read(seed[:])
		k, err := mlkemGenerate(bytes.NewReader(seed[:]))
		if err != nil {
			t.Fatal(err)
		}
		dk, err := mlkem.NewDecapsulationKey768(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		ek := dk.EncapsulationKey()
		if want := ek.Bytes(); !bytes.Equal(append(append([]byte(nil), k.ek...), k.hdr[:32]...), want) {
			t.Fatal("key differs from crypto/mlkem's")
		}
		if !ekMatchesHeader(k.ek, k.hdr) {
			t.Fatal("own key does not match its header")
		}
		var m [32]byte
		rng.Read(m[:])
		ct1, st, ss, err := mlkemEncaps1(k.hdr, bytes.NewReader(m[:]))
		if err != nil {
			t.Fatal(err)
		}
		ct2, err := mlkemEncaps2(k.ek, st)
		if err != nil {
			t.Fatal(err)
		}
		wantSS, wantCT, err := mlkemtest.Encapsulate768(ek, m[:])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(append(append([]byte(nil), ct1...), ct2...), wantCT) || !bytes.Equal(ss, wantSS) {
			t.Fatal("incremental encapsulation differs from crypto/mlkem's")
		}
		got, err := mlkemDecaps(k.dk, ct1, ct2)
		if err != nil || !bytes.Equal(got, ss) {
			t.Fatalf("decapsulation: %v", err)
		}
		std, err := dk.Decapsulate(wantCT)
		if err != nil || !bytes.Equal(std, ss) {
			t.Fatal("crypto/mlkem disagrees")
		}
	}
}

// TestEKHeaderMismatch: a key that is not the one the header announced, or
// is not canonical, is refused.
func TestEKHeaderMismatch(t *testing.T) {
	k, err := mlkemGenerate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := mlkemGenerate(rand.Reader)
	if ekMatchesHeader(other.ek, k.hdr) {
		t.Error("another key matched the header")
	}
	bad := append([]byte(nil), k.ek...)
	bad[5] ^= 1
	if ekMatchesHeader(bad, k.hdr) {
		t.Error("altered key matched the header")
	}
	if ekMatchesHeader(k.ek[:100], k.hdr) {
		t.Error("short key matched")
	}
}
