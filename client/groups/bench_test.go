package groups

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"sotto/internal/orgtest"
	"sotto/mls"
	"sotto/signal/keys"
)

// certifiedKeyPackages makes n KeyPackages of distinct org-certified
// users, and the creator's identity and signature key.
func certifiedKeyPackages(b *testing.B, org *orgtest.Org, n int) (kps [][]byte, keys []mls.PrivateKeys, creator []byte, seed []byte) {
	b.Helper()
	mk := func(name string) ([]byte, []byte) {
		ik, err := keysGen()
		if err != nil {
			b.Fatal(err)
		}
		cert, err := org.Certificate(name, ik.PublicKey().Serialize(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		seed, _ := mls.GenerateSignatureKey(Suite)
		id, err := newIdentity(&Self{Username: name, DeviceID: 1, Identity: ik, Certificate: cert}, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
		if err != nil {
			b.Fatal(err)
		}
		return id, seed
	}
	creator, seed = mk("creator")
	for i := range n {
		id, s := mk(fmt.Sprintf("user%d", i))
		kp, k, err := mls.NewKeyPackage(Suite, id, s)
		if err != nil {
			b.Fatal(err)
		}
		kps, keys = append(kps, kp), append(keys, k)
	}
	return kps, keys, creator, seed
}

func keysGen() (*keys.IdentityKeyPair, error) { return keys.GenerateIdentityKeyPair(rand.Reader) }

// BenchmarkAddMembers is one commit adding n org-certified members to a
// new group, with every added credential checked (the org certificate
// chain and the identity key's binding: what every Sotto client does)
// and, as the baseline, with no check.
//
//	go test ./client/groups -run '^$' -bench AddMembers -benchtime 5x
func BenchmarkAddMembers(b *testing.B) {
	org := orgtest.New("Org")
	for _, n := range []int{10, 100, 1000} {
		kps, _, creator, seed := certifiedKeyPackages(b, org, n)
		for _, checked := range []bool{false, true} {
			b.Run(fmt.Sprintf("members=%d/checked=%v", n, checked), func(b *testing.B) {
				opts := &mls.GroupOptions{}
				if checked {
					opts.CredentialValidator = &validator{orgKey: org.Public()}
				}
				g, err := mls.NewGroupWithOptions(Suite, []byte("g"), creator, seed, opts)
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					p, err := g.Commit(mls.CommitOptions{Add: kps})
					if err != nil {
						b.Fatal(err)
					}
					p.Discard()
				}
			})
		}
	}
}

// BenchmarkJoinGroup is a new member joining a group of n members from
// its Welcome, checking every leaf's credential, and the unchecked
// baseline.
//
//	go test ./client/groups -run '^$' -bench JoinGroup -benchtime 5x
func BenchmarkJoinGroup(b *testing.B) {
	org := orgtest.New("Org")
	for _, n := range []int{10, 100, 1000} {
		kps, ks, creator, seed := certifiedKeyPackages(b, org, n)
		g, err := mls.NewGroup(Suite, []byte("g"), creator, seed)
		if err != nil {
			b.Fatal(err)
		}
		p, err := g.Commit(mls.CommitOptions{Add: kps})
		if err != nil {
			b.Fatal(err)
		}
		for _, checked := range []bool{false, true} {
			b.Run(fmt.Sprintf("members=%d/checked=%v", n, checked), func(b *testing.B) {
				opts := &mls.JoinOptions{}
				if checked {
					opts.CredentialValidator = &validator{orgKey: org.Public()}
				}
				for b.Loop() {
					if _, err := mls.Join(p.Welcome, kps[0], ks[0], opts); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
