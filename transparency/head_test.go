package transparency

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestSignedHead(t *testing.T) {
	pub, priv := testKey(t)
	root := LeafHash([]byte("root"))
	h := SignHead(priv, 42, root, 1_700_000_000_000)
	enc := h.Encode()
	if len(enc) != SignedHeadSize {
		t.Fatalf("encoded head is %d bytes", len(enc))
	}
	got, err := VerifyHead(pub, enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 42 || got.Root != root || got.TimestampMS != 1_700_000_000_000 || !bytes.Equal(got.Encode(), enc) {
		t.Fatalf("round trip: %+v", got)
	}
	// Every single-bit change of the encoding is rejected.
	for i := 0; i < len(enc)*8; i++ {
		bad := bytes.Clone(enc)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := VerifyHead(pub, bad); !errors.Is(err, ErrBadHead) {
			t.Fatalf("bit %d flipped: %v", i, err)
		}
	}
	other, _ := testKey(t)
	if _, err := VerifyHead(other, enc); !errors.Is(err, ErrBadHead) {
		t.Error("head verified under another key")
	}
	if _, err := VerifyHead(pub, enc[:len(enc)-1]); !errors.Is(err, ErrBadHead) {
		t.Error("truncated head accepted")
	}
	// The signature covers the domain separation string: a plain Ed25519
	// signature over the body alone is not a head signature.
	forged := h
	forged.Signature = ed25519.Sign(priv, h.body())
	if forged.Verify(pub) == nil {
		t.Error("signature without the context string accepted")
	}
}

func TestBinding(t *testing.T) {
	b := Binding{Kind: KindAdd, Username: "alice", IdentityKey: bytes.Repeat([]byte{5}, 33), TimestampMS: 1234}
	leaf, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0x04, 0xd2, 5}, "alice"...)
	want = append(append(want, 0, 33), b.IdentityKey...)
	if !bytes.Equal(leaf, want) {
		t.Fatalf("encoding\n got %x\nwant %x", leaf, want)
	}
	got, err := DecodeBinding(leaf)
	if err != nil || got.Username != "alice" || got.Kind != KindAdd || got.TimestampMS != 1234 || !bytes.Equal(got.IdentityKey, b.IdentityKey) {
		t.Fatalf("decode: %+v %v", got, err)
	}
	for i := range leaf {
		if _, err := DecodeBinding(leaf[:i]); err == nil {
			t.Fatalf("truncated to %d accepted", i)
		}
	}
	if _, err := DecodeBinding(append(bytes.Clone(leaf), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	bad := []Binding{
		{Kind: 3, Username: "a", IdentityKey: []byte{1}},
		{Kind: KindAdd, Username: "", IdentityKey: []byte{1}},
		{Kind: KindAdd, Username: string(make([]byte, 256)), IdentityKey: []byte{1}},
		{Kind: KindAdd, Username: "\xff", IdentityKey: []byte{1}},
		{Kind: KindReplace, Username: "a"},
		{Kind: KindReplace, Username: "a", IdentityKey: make([]byte, MaxIdentityKey+1)},
		{Kind: KindAdd, Username: "a", IdentityKey: []byte{1}, TimestampMS: -1},
	}
	for i, b := range bad {
		if _, err := b.Encode(); !errors.Is(err, ErrBadLeaf) {
			t.Errorf("bad binding %d encoded: %v", i, err)
		}
	}
}

func seedLeaves(f *testing.F) [][]byte {
	var out [][]byte
	for i, b := range []Binding{
		{Kind: KindAdd, Username: "alice", IdentityKey: bytes.Repeat([]byte{5}, 33), TimestampMS: 1},
		{Kind: KindReplace, Username: "bob", IdentityKey: []byte{1, 2, 3}, TimestampMS: 1 << 40},
		{Kind: KindAdd, Username: "carol", IdentityKey: bytes.Repeat([]byte{6}, 33), TimestampMS: 2, Certificate: []byte("an identity certificate")},
	} {
		leaf, err := b.Encode()
		if err != nil {
			f.Fatalf("seed %d: %v", i, err)
		}
		out = append(out, leaf)
	}
	return out
}

func FuzzDecodeBinding(f *testing.F) {
	for _, leaf := range seedLeaves(f) {
		if _, err := DecodeBinding(leaf); err != nil {
			f.Fatalf("seed does not decode: %v", err)
		}
		f.Add(leaf)
	}
	f.Fuzz(func(t *testing.T, leaf []byte) {
		b, err := DecodeBinding(leaf)
		if err != nil {
			return
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, leaf) {
			t.Fatalf("decoded binding does not re-encode to the same bytes: %v", err)
		}
	})
}

func FuzzDecodeHead(f *testing.F) {
	pub, priv := testKey(f)
	seed := SignHead(priv, 7, LeafHash([]byte("x")), 99)
	if _, err := VerifyHead(pub, seed.Encode()); err != nil {
		f.Fatalf("seed does not verify: %v", err)
	}
	f.Add(seed.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHead(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Encode(), b) {
			t.Fatal("decoded head does not re-encode to the same bytes")
		}
		_ = h.Verify(pub)
	})
}

// FuzzVerifyProofs feeds arbitrary proofs, indexes and sizes to both
// verifiers: they must never panic, and must never accept a
// consistency proof from a larger tree to a smaller one.
func FuzzVerifyProofs(f *testing.F) {
	tr := &MemoryTree{}
	for i := 0; i < 13; i++ {
		if err := tr.AppendLeaf(fmt.Appendf(nil, "%d", i)); err != nil {
			f.Fatal(err)
		}
	}
	incl, err := InclusionProof(tr, 5, 13)
	if err != nil || len(incl) == 0 {
		f.Fatalf("seed inclusion proof: %v", err)
	}
	cons, err := ConsistencyProof(tr, 6, 13)
	if err != nil || len(cons) == 0 {
		f.Fatalf("seed consistency proof: %v", err)
	}
	join := func(p []Hash) []byte { return bytes.Join(EncodeProof(p), nil) }
	f.Add(uint64(5), uint64(13), join(incl), false)
	f.Add(uint64(6), uint64(13), join(cons), true)
	root13, _ := tr.Root(13)
	f.Fuzz(func(t *testing.T, a, n uint64, raw []byte, consistency bool) {
		// The wire form: one element per hash, of whatever length.
		var elems [][]byte
		for rest := raw; len(rest) > 0 && len(elems) <= MaxProofLen+1; {
			k := min(len(rest), HashSize+int(a%3)-1)
			if k <= 0 {
				k = len(rest)
			}
			elems = append(elems, rest[:k])
			rest = rest[k:]
		}
		if d, err := DecodeProof(elems); err == nil {
			if len(d) != len(elems) || len(d) > MaxProofLen {
				t.Fatalf("DecodeProof accepted %d elements as %d hashes", len(elems), len(d))
			}
			for i := range d {
				if !bytes.Equal(d[i][:], elems[i]) {
					t.Fatal("DecodeProof changed a hash")
				}
			}
		}
		var p []Hash
		for len(raw) >= HashSize && len(p) <= MaxProofLen+1 {
			p = append(p, Hash(raw[:HashSize]))
			raw = raw[HashSize:]
		}
		if consistency {
			var r1 Hash
			if a <= 13 {
				r1, _ = tr.Root(a)
			}
			if err := VerifyConsistency(a, n, r1, root13, p); err == nil && a > n {
				t.Fatalf("consistency %d..%d verified", a, n)
			}
			return
		}
		_ = VerifyInclusion(LeafHash([]byte("5")), a, n, p, root13)
	})
}
