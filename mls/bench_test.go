package mls

import (
	"fmt"
	"testing"
)

// benchGroup builds a group of n members and returns the creator and the
// last joiner.
func benchGroup(b *testing.B, cs CipherSuite, n int) (*Group, *Group) {
	b.Helper()
	sig, _ := GenerateSignatureKey(cs)
	g, err := NewGroup(cs, []byte("bench"), []byte("m0"), sig)
	if err != nil {
		b.Fatal(err)
	}
	var kps [][]byte
	var keys []PrivateKeys
	for i := 1; i < n; i++ {
		s, _ := GenerateSignatureKey(cs)
		kp, k, err := NewKeyPackage(cs, []byte(fmt.Sprint("m", i)), s)
		if err != nil {
			b.Fatal(err)
		}
		kps, keys = append(kps, kp), append(keys, k)
	}
	p, err := g.Commit(CommitOptions{Add: kps})
	if err != nil {
		b.Fatal(err)
	}
	g.Apply(p)
	last, err := Join(p.Welcome, kps[len(kps)-1], keys[len(keys)-1], nil)
	if err != nil {
		b.Fatal(err)
	}
	return g, last
}

func BenchmarkSealHandle(b *testing.B) {
	a, z := benchGroup(b, X25519_AES128GCM_SHA256_Ed25519, 2)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	defer reportCPU(b)()
	for b.Loop() {
		m, err := a.Seal(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := z.Handle(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitHandle64 measures an empty (update) commit in a
// 64-member group, created by one member and processed by another.
func BenchmarkCommitHandle64(b *testing.B) {
	a, z := benchGroup(b, X25519_AES128GCM_SHA256_Ed25519, 64)
	for b.Loop() {
		p, err := a.Commit(CommitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		a.Apply(p)
		if _, err := z.Handle(p.Commit); err != nil {
			b.Fatal(err)
		}
	}
}
