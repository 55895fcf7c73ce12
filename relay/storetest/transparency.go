package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sotto/relay"
	"sotto/transparency"
)

func binding(t *testing.T, user string, key []byte) []byte {
	t.Helper()
	b := transparency.Binding{Kind: transparency.KindAdd, Username: user, IdentityKey: key, TimestampMS: t0.UnixMilli()}
	leaf, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

type storeHashes struct {
	ctx context.Context
	kl  relay.KeyLog
}

func (r storeHashes) ReadHashes(ids []transparency.NodeID) ([]transparency.Hash, error) {
	return r.kl.LogHashes(r.ctx, ids)
}

// checkLog compares the stored log with a tree built in memory from its
// leaves: same size, same root at every tenth size, and inclusion proofs
// built from the store verify.
func checkLog(t *testing.T, kl relay.KeyLog, want [][]byte) {
	t.Helper()
	ctx := context.Background()
	n, err := kl.LogSize(ctx)
	if err != nil || n != uint64(len(want)) {
		t.Fatalf("log size %d, %v; want %d", n, err, len(want))
	}
	got, err := kl.LogLeaves(ctx, 0, len(want)+10)
	if err != nil || len(got) != len(want) {
		t.Fatalf("leaves: %d, %v; want %d", len(got), err, len(want))
	}
	mem := &transparency.MemoryTree{}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("leaf %d differs", i)
		}
		if err := mem.AppendLeaf(want[i]); err != nil {
			t.Fatal(err)
		}
	}
	r := storeHashes{ctx, kl}
	for size := uint64(0); size <= n; size++ {
		if size%10 != 0 && size != n {
			continue
		}
		root, err := transparency.RootHash(r, size)
		if err != nil {
			t.Fatalf("root %d: %v", size, err)
		}
		if m, _ := mem.Root(size); root != m {
			t.Fatalf("root of %d leaves differs from the in-memory tree", size)
		}
	}
	root, _ := mem.Root(n)
	for i := uint64(0); i < n; i += 7 {
		p, err := transparency.InclusionProof(r, i, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := transparency.VerifyInclusion(transparency.LeafHash(want[i]), i, n, p, root); err != nil {
			t.Fatalf("inclusion of %d in %d: %v", i, n, err)
		}
	}
}

// RunKeyLog checks the relay.KeyLog semantics of a store.
func RunKeyLog(t *testing.T, open Open) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	s, reopen := open(t)
	kl, ok := s.(relay.KeyLog)
	if !ok {
		s.Close()
		t.Fatalf("%T keeps no key log", s)
	}
	if n, err := kl.LogSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty log: size %d, %v", n, err)
	}
	if _, err := kl.LogLeafIndex(ctx, "alice"); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("leaf of an unknown user: %v", err)
	}
	if l, err := kl.LogLeaves(ctx, 0, 5); err != nil || len(l) != 0 {
		t.Fatalf("leaves of the empty log: %d, %v", len(l), err)
	}

	// Enroll appends the binding in its own transaction...
	code(t, s, "log-code", 10, t0.Add(24*time.Hour))
	var want [][]byte
	for i, user := range []string{"alice", "bob", "carol"} {
		a := newAccount("log-code", user, byte(i+1), 1)
		a.LogLeaf = binding(t, user, a.IdentityKey)
		if _, _, err := s.Enroll(ctx, a, now); err != nil {
			t.Fatal(err)
		}
		want = append(want, a.LogLeaf)
	}
	// ...and a failed enrollment appends nothing.
	dup := newAccount("log-code", "bob", 9, 1)
	dup.LogLeaf = binding(t, "bob", []byte("another key"))
	if _, _, err := s.Enroll(ctx, dup, now); !errors.Is(err, relay.ErrConflict) {
		t.Fatalf("enroll of a taken name: %v", err)
	}
	bad := newAccount("no-such-code", "dave", 10, 1)
	bad.LogLeaf = binding(t, "dave", []byte("k"))
	if _, _, err := s.Enroll(ctx, bad, now); !errors.Is(err, relay.ErrBadCode) {
		t.Fatalf("enroll with a bad code: %v", err)
	}
	checkLog(t, kl, want)
	if i, err := kl.LogLeafIndex(ctx, "bob"); err != nil || i != 1 {
		t.Fatalf("bob's leaf: %d, %v", i, err)
	}

	// Standalone appends, sequential then concurrent.
	for i := 0; i < 30; i++ {
		leaf := binding(t, fmt.Sprint("user", i), []byte{byte(i)})
		idx, err := kl.AppendLogLeaf(ctx, fmt.Sprint("user", i), leaf)
		if err != nil || idx != uint64(len(want)) {
			t.Fatalf("append %d: index %d, %v", i, idx, err)
		}
		want = append(want, leaf)
	}
	replaced := binding(t, "bob", []byte("bob's new key"))
	if idx, err := kl.AppendLogLeaf(ctx, "bob", replaced); err != nil || idx != uint64(len(want)) {
		t.Fatalf("append: %d %v", idx, err)
	}
	want = append(want, replaced)
	if i, err := kl.LogLeafIndex(ctx, "bob"); err != nil || i != uint64(len(want)-1) {
		t.Fatalf("bob's newest leaf: %d, %v", i, err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		byIx = map[uint64][]byte{}
	)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				user := fmt.Sprint("c", g, "-", i)
				leaf := binding(t, user, []byte(user))
				idx, err := kl.AppendLogLeaf(ctx, user, leaf)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if byIx[idx] != nil {
					t.Errorf("index %d handed out twice", idx)
				}
				byIx[idx] = leaf
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		s.Close()
		return
	}
	for i := uint64(len(want)); i < uint64(len(want))+30; i++ {
		if byIx[i] == nil {
			t.Fatalf("no leaf at %d after concurrent appends", i)
		}
	}
	for i := uint64(len(want)); byIx[i] != nil; i++ {
		want = append(want, byIx[i])
	}
	checkLog(t, kl, want)
	if l, err := kl.LogLeaves(ctx, uint64(len(want))-2, 10); err != nil || len(l) != 2 {
		t.Fatalf("leaves past the end: %d, %v", len(l), err)
	}
	s.Close()
	if reopen != nil {
		s2 := reopen()
		defer s2.Close()
		checkLog(t, s2.(relay.KeyLog), want)
	}
}
