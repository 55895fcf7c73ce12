package transparency

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// naiveMTH is RFC 9162 §2.1.1's MTH written as the RFC writes it, from the
// leaves, as an independent reference for the stored-node implementation.
func naiveMTH(leaves [][]byte) Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return LeafHash(leaves[0])
	}
	k := int(largestPow2Below(uint64(len(leaves))))
	return NodeHash(naiveMTH(leaves[:k]), naiveMTH(leaves[k:]))
}

func mustHex(t testing.TB, s string) Hash {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != HashSize {
		t.Fatalf("bad hex hash %q", s)
	}
	return Hash(b)
}

func rfcLeaves() [][]byte {
	return [][]byte{{}, {0x00}, {0x10}, {0x20, 0x21}, {0x30, 0x31}, {0x40, 0x41, 0x42, 0x43},
		{0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
		{0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f}}
}

func treeOf(t testing.TB, leaves [][]byte) *MemoryTree {
	t.Helper()
	tr := &MemoryTree{}
	for _, l := range leaves {
		if err := tr.AppendLeaf(l); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// TestRFC6962ReferenceRoots checks the roots of the reference tree of the
// Certificate Transparency test data (the eight leaves of rfcLeaves), as
// published with RFC 6962's reference implementation and reproduced by
// golang.org/x/mod/sumdb/tlog (testdata/tlog_vectors.json).
func TestRFC6962ReferenceRoots(t *testing.T) {
	want := []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	leaves := rfcLeaves()
	tr := treeOf(t, leaves)
	for n := 1; n <= 8; n++ {
		got, err := tr.Root(uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		if got != mustHex(t, want[n-1]) {
			t.Errorf("root of %d leaves = %x, want %s", n, got, want[n-1])
		}
		if naive := naiveMTH(leaves[:n]); naive != got {
			t.Errorf("root of %d leaves: stored nodes give %x, naive MTH %x", n, got, naive)
		}
	}
	if r, _ := tr.Root(0); r != mustHex(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") {
		t.Errorf("empty root = %x", r)
	}
}

type vectorSet struct {
	Leaves    []string `json:"leaves"`
	Roots     []string `json:"roots"`
	Inclusion []struct {
		Index, Size uint64
		Proof       []string
	} `json:"inclusion"`
	Consistency []struct {
		First, Size uint64
		Proof       []string
	} `json:"consistency"`
}

// TestTlogVectors compares roots and proofs with those computed by
// golang.org/x/mod/sumdb/tlog v0.41.0, an independent RFC 6962
// implementation, by the program in testdata/tlogvectors (run outside this
// module; tlog is not a dependency of Sotto).
func TestTlogVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/tlog_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var sets map[string]vectorSet
	if err := json.Unmarshal(raw, &sets); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 {
		t.Fatalf("%d vector sets, want 2", len(sets))
	}
	for name, vs := range sets {
		var leaves [][]byte
		if name == "rfc6962" {
			for _, l := range vs.Leaves {
				b, _ := hex.DecodeString(l)
				leaves = append(leaves, b)
			}
		} else {
			for i := range vs.Roots {
				leaves = append(leaves, fmt.Appendf(nil, "sotto leaf %d", i))
			}
		}
		tr := treeOf(t, leaves)
		checked := 0
		for i, r := range vs.Roots {
			if r == "" {
				continue
			}
			got, err := tr.Root(uint64(i + 1))
			if err != nil || got != mustHex(t, r) {
				t.Errorf("%s: root %d = %x, %v; tlog %s", name, i+1, got, err, r)
			}
			checked++
		}
		for _, v := range vs.Inclusion {
			p, err := InclusionProof(tr, v.Index, v.Size)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(hexes(p)) != fmt.Sprint(v.Proof) {
				t.Errorf("%s: inclusion %d in %d: %x, tlog %v", name, v.Index, v.Size, p, v.Proof)
			}
			root, _ := tr.Root(v.Size)
			if err := VerifyInclusion(LeafHash(leaves[v.Index]), v.Index, v.Size, p, root); err != nil {
				t.Errorf("%s: inclusion %d in %d does not verify", name, v.Index, v.Size)
			}
			checked++
		}
		for _, v := range vs.Consistency {
			p, err := ConsistencyProof(tr, v.First, v.Size)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(hexes(p)) != fmt.Sprint(v.Proof) {
				t.Errorf("%s: consistency %d..%d: %x, tlog %v", name, v.First, v.Size, p, v.Proof)
			}
			r1, _ := tr.Root(v.First)
			r2, _ := tr.Root(v.Size)
			if err := VerifyConsistency(v.First, v.Size, r1, r2, p); err != nil {
				t.Errorf("%s: consistency %d..%d does not verify", name, v.First, v.Size)
			}
			checked++
		}
		if checked < 16 {
			t.Errorf("%s: only %d vectors checked", name, checked)
		}
	}
}

func hexes(p []Hash) []string {
	out := []string{}
	for _, h := range p {
		out = append(out, hex.EncodeToString(h[:]))
	}
	return out
}

// TestProofsAllSizes generates and verifies every inclusion and consistency
// proof of trees up to 70 leaves, and checks that each fails for a wrong
// leaf, index, size, root or a tampered proof.
func TestProofsAllSizes(t *testing.T) {
	const max = 70
	var leaves [][]byte
	for i := 0; i < max; i++ {
		leaves = append(leaves, fmt.Appendf(nil, "leaf %d", i))
	}
	tr := treeOf(t, leaves)
	roots := make([]Hash, max+1)
	for n := 0; n <= max; n++ {
		roots[n], _ = tr.Root(uint64(n))
		if roots[n] != naiveMTH(leaves[:n]) {
			t.Fatalf("root %d differs from naive MTH", n)
		}
	}
	for n := uint64(1); n <= max; n++ {
		for i := uint64(0); i < n; i++ {
			p, err := InclusionProof(tr, i, n)
			if err != nil {
				t.Fatal(err)
			}
			lh := LeafHash(leaves[i])
			if err := VerifyInclusion(lh, i, n, p, roots[n]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, n, err)
			}
			if VerifyInclusion(LeafHash([]byte("other")), i, n, p, roots[n]) == nil ||
				VerifyInclusion(lh, i, n, p, roots[n-1]) == nil ||
				(n > 1 && VerifyInclusion(lh, (i+1)%n, n, p, roots[n]) == nil) ||
				VerifyInclusion(lh, n, n, p, roots[n]) == nil ||
				VerifyInclusion(lh, i, n, append(p, Hash{}), roots[n]) == nil {
				t.Fatalf("inclusion %d in %d: a wrong input verified", i, n)
			}
			if len(p) > 0 {
				p[len(p)/2][3] ^= 1
				if VerifyInclusion(lh, i, n, p, roots[n]) == nil {
					t.Fatalf("inclusion %d in %d: tampered proof verified", i, n)
				}
				if VerifyInclusion(lh, i, n, p[:len(p)-1], roots[n]) == nil {
					t.Fatalf("inclusion %d in %d: truncated proof verified", i, n)
				}
			}
		}
		for m := uint64(0); m <= n; m++ {
			p, err := ConsistencyProof(tr, m, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(m, n, roots[m], roots[n], p); err != nil {
				t.Fatalf("consistency %d..%d: %v", m, n, err)
			}
			if m == 0 {
				continue
			}
			if VerifyConsistency(m, n, roots[m], LeafHash([]byte("x")), p) == nil ||
				VerifyConsistency(m, n, LeafHash([]byte("x")), roots[n], p) == nil ||
				(m < n && VerifyConsistency(m, n, roots[m-1], roots[n], p) == nil) ||
				(m < n && VerifyConsistency(m-1, n, roots[m], roots[n], p) == nil) ||
				VerifyConsistency(m, n, roots[m], roots[n], append(p, Hash{})) == nil {
				t.Fatalf("consistency %d..%d: a wrong input verified", m, n)
			}
			if len(p) > 0 {
				p[0][0] ^= 1
				if VerifyConsistency(m, n, roots[m], roots[n], p) == nil {
					t.Fatalf("consistency %d..%d: tampered proof verified", m, n)
				}
			}
		}
	}
	if _, err := InclusionProof(tr, max, max); err == nil {
		t.Error("inclusion proof of a leaf past the end")
	}
	if _, err := ConsistencyProof(tr, 3, max+1); err == nil {
		t.Error("consistency proof past the end")
	}
}

// TestNewNodesPerAppend checks how many nodes each append stores: one per
// trailing one bit of n, plus the leaf, so about two per leaf on average.
func TestNewNodesPerAppend(t *testing.T) {
	tr := &MemoryTree{}
	total := 0
	for n := uint64(0); n < 1024; n++ {
		nodes, err := NewNodes(tr, n, LeafHash([]byte{byte(n)}))
		if err != nil {
			t.Fatal(err)
		}
		total += len(nodes)
		if err := tr.AppendHash(LeafHash([]byte{byte(n)})); err != nil {
			t.Fatal(err)
		}
	}
	if total != 2047 {
		t.Errorf("1024 appends stored %d nodes, want 2047", total)
	}
	if _, err := NewNodes(&MemoryTree{}, 1, Hash{}); err == nil {
		t.Error("NewNodes with a missing left sibling succeeded")
	}
}

func TestDecodeProof(t *testing.T) {
	p := []Hash{LeafHash([]byte("a")), LeafHash([]byte("b"))}
	got, err := DecodeProof(EncodeProof(p))
	if err != nil || len(got) != 2 || got[1] != p[1] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if _, err := DecodeProof([][]byte{make([]byte, 31)}); err == nil {
		t.Error("short hash accepted")
	}
	if _, err := DecodeProof(make([][]byte, MaxProofLen+1)); err == nil {
		t.Error("overlong proof accepted")
	}
	if len(EncodeProof(nil)) != 0 {
		t.Error("empty proof encodes to something")
	}
}
