package mls

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"

	"sotto/mls/internal/treemath"
)

// Scale benchmarks (suite 1). Fixtures are built once per benchmark
// process: run with e.g.
//
//	go test ./mls -run '^$' -bench 'CreateAdd1000|CommitScale' -benchtime 10x

const benchSuite = X25519_AES128GCM_SHA256_Ed25519

type keyPackageSet struct {
	kps  [][]byte
	keys []PrivateKeys
}

var (
	benchKPMu sync.Mutex
	benchKPs  = map[int]*keyPackageSet{}
)

// benchKeyPackages returns n KeyPackages, generated once per process.
func benchKeyPackages(b *testing.B, n int) *keyPackageSet {
	benchKPMu.Lock()
	defer benchKPMu.Unlock()
	if s, ok := benchKPs[n]; ok {
		return s
	}
	s := &keyPackageSet{}
	for i := range n {
		sig, err := GenerateSignatureKey(benchSuite)
		if err != nil {
			b.Fatal(err)
		}
		kp, k, err := NewKeyPackage(benchSuite, fmt.Appendf(nil, "member-%d", i), sig)
		if err != nil {
			b.Fatal(err)
		}
		s.kps, s.keys = append(s.kps, kp), append(s.keys, k)
	}
	benchKPs[n] = s
	return s
}

// BenchmarkCreateAdd1000 creates a group and adds 1,000 members in one
// commit (KeyPackages generated beforehand), Welcome included, with and
// without the ratchet tree in the Welcome.
func BenchmarkCreateAdd1000(b *testing.B) {
	set := benchKeyPackages(b, 1000)
	sig, _ := GenerateSignatureKey(benchSuite)
	for _, omit := range []bool{false, true} {
		name := "tree-in-welcome"
		if omit {
			name = "tree-out-of-band"
		}
		b.Run(name, func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				g, err := NewGroup(benchSuite, []byte("bench"), []byte("creator"), sig)
				if err != nil {
					b.Fatal(err)
				}
				p, err := g.Commit(CommitOptions{Add: set.kps, OmitRatchetTree: omit})
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Apply(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// scaleFixture is a group of n members seen by its creator a (leaf 0)
// and its last member z, in a fresh tree (only a's path is set) and in a
// fully updated one (every parent node holds a key).
type scaleFixture struct {
	freshA, freshZ     *groupState
	updatedA, updatedZ *groupState
}

var (
	scaleMu       sync.Mutex
	scaleFixtures = map[int]*scaleFixture{}
)

func benchScale(b *testing.B, n int) *scaleFixture {
	scaleMu.Lock()
	defer scaleMu.Unlock()
	if f, ok := scaleFixtures[n]; ok {
		return f
	}
	set := benchKeyPackages(b, n-1)
	sig, _ := GenerateSignatureKey(benchSuite)
	a, err := NewGroup(benchSuite, []byte("bench"), []byte("creator"), sig)
	if err != nil {
		b.Fatal(err)
	}
	p, err := a.Commit(CommitOptions{Add: set.kps, OmitRatchetTree: true})
	if err != nil {
		b.Fatal(err)
	}
	a.Apply(p)
	tree, _ := a.RatchetTree()
	last := len(set.kps) - 1
	z, err := Join(p.Welcome, set.kps[last], set.keys[last], &JoinOptions{RatchetTree: tree})
	if err != nil {
		b.Fatal(err)
	}
	f := &scaleFixture{freshA: a.st, freshZ: z.st}
	f.updatedA, f.updatedZ = fillTree(b, a.st, z.st)
	// A member's tree keeps its hashes from epoch to epoch; the fixture
	// states are reused, so warm their caches once.
	for _, st := range []*groupState{f.freshA, f.freshZ, f.updatedA, f.updatedZ} {
		if _, err := st.tree.rootHash(); err != nil {
			b.Fatal(err)
		}
	}
	scaleFixtures[n] = f
	return f
}

// fillTree returns copies of a and z whose trees have a fresh key at
// every parent node (as if every member had committed), each member
// holding the private keys of its direct path.
func fillTree(b *testing.B, a, z *groupState) (*groupState, *groupState) {
	s := a.s
	ua, uz := a.clone(), z.clone()
	ua.priv, uz.priv = a.priv.clone(), z.priv.clone()
	t := ua.tree
	privs := map[uint32][]byte{}
	for x := uint32(1); x < uint32(len(t.nodes)); x += 2 {
		if t.nodes[x] != nil {
			continue
		}
		secret := make([]byte, s.hashLen())
		rand.Read(secret)
		privs[x] = secret
		_, pub, err := s.deriveKeyPair(secret)
		if err != nil {
			b.Fatal(err)
		}
		t.setNode(x, &node{parent: &parentNode{encryptionKey: pub, parentHash: []byte{}}})
	}
	t.invalidateAll()
	uz.tree = t.clone()
	for _, m := range []*groupState{ua, uz} {
		for _, x := range treemath.DirectPath(treemath.LeafNode(m.priv.leaf), t.size()) {
			if secret, ok := privs[x]; ok {
				priv, _, err := s.deriveKeyPair(secret)
				if err != nil {
					b.Fatal(err)
				}
				m.priv.keys[x] = priv
			}
		}
	}
	return ua, uz
}

// commitAndProcess has committer create an update commit and receiver
// process it, leaving both states as they were.
func commitAndProcess(b *testing.B, committer, receiver *groupState) {
	p, err := (&Group{st: committer}).Commit(CommitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var m mlsMessage
	if err := unmarshal(p.Commit, &m); err != nil {
		b.Fatal(err)
	}
	ac, err := receiver.unprotect(&m)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := receiver.applyCommit(ac); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCommitScale measures one update commit (UpdatePath) created
// by one member and processed by another, in groups of 100, 1,000 and
// 10,000 members with fully updated and fresh trees.
func BenchmarkCommitScale(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d/updated", n), func(b *testing.B) {
			f := benchScale(b, n)
			defer reportCPU(b)()
			for b.Loop() {
				commitAndProcess(b, f.updatedA, f.updatedZ)
			}
		})
		b.Run(fmt.Sprintf("members=%d/fresh", n), func(b *testing.B) {
			f := benchScale(b, n)
			// z's direct path is blank below the root: its UpdatePath
			// encrypts to (almost) every leaf.
			defer reportCPU(b)()
			for b.Loop() {
				commitAndProcess(b, f.freshZ, f.freshA)
			}
		})
	}
}

// BenchmarkCommitOnly10000 isolates creating a commit in the updated
// 10,000-member tree.
func BenchmarkCommitOnly10000(b *testing.B) {
	f := benchScale(b, 10000)
	g := &Group{st: f.updatedA}
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := g.Commit(CommitOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU, deferred before a b.Loop loop, reports the process CPU time
// per iteration (cpu-ms/op, all cores) next to the wall time, since the
// machine's other load inflates ns/op.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU()-start)/float64(b.N)/1e6, "cpu-ms/op")
		}
	}
}

// BenchmarkAddFloor1000 runs only the public-key operations that adding
// 1,000 members in one commit cannot avoid, one after the other: 2,000
// Ed25519 verifications (each KeyPackage's signature and its leaf
// node's) and 1,000 HPKE encapsulations to X25519 (an ephemeral key
// pair and a Diffie-Hellman). Its CPU per op is the floor under
// BenchmarkCreateAdd1000's.
func BenchmarkAddFloor1000(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	kpTBS, leafTBS := make([]byte, 300), make([]byte, 250)
	kpSig, leafSig := ed25519.Sign(priv, kpTBS), ed25519.Sign(priv, leafTBS)
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	defer reportCPU(b)()
	for b.Loop() {
		for range 1000 {
			if !ed25519.Verify(pub, kpTBS, kpSig) || !ed25519.Verify(pub, leafTBS, leafSig) {
				b.Fatal("verify")
			}
			e, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.ECDH(peer.PublicKey()); err != nil {
				b.Fatal(err)
			}
		}
	}
}
