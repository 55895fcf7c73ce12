package mls

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

// TestRandomMembershipChanges drives a group through random adds,
// removes and updates committed by random members, and checks after each
// commit that every member processed it and agrees on the epoch.
func TestRandomMembershipChanges(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	rng := rand.New(rand.NewSource(9420))
	sig, _ := GenerateSignatureKey(cs)
	ag, err := NewGroup(cs, []byte("scale"), []byte("m0"), sig)
	if err != nil {
		t.Fatal(err)
	}
	members := []*client{{name: "m0", g: ag}}
	next := 1
	steps := 80
	if testing.Short() {
		steps = 10
	}
	for step := 0; step < steps; step++ {
		committer := members[rng.Intn(len(members))]
		var opts CommitOptions
		var joiners []*client
		switch op := rng.Intn(3); {
		case op == 0 || len(members) < 3:
			for range 1 + rng.Intn(4) {
				c := newClient(t, cs, fmt.Sprintf("m%d", next))
				next++
				joiners = append(joiners, c)
				opts.Add = append(opts.Add, c.kp)
			}
		case op == 1:
			victim := members[rng.Intn(len(members))]
			if victim == committer {
				continue
			}
			opts.Remove = []uint32{victim.g.LeafIndex()}
			// Someone else proposes an update in the same epoch.
			if other := members[rng.Intn(len(members))]; other != committer && other != victim {
				u, err := other.g.ProposeUpdate()
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range members {
					if m != other {
						if _, err := m.g.Handle(u); err != nil {
							t.Fatalf("step %d: %s: update proposal: %v", step, m.name, err)
						}
					}
				}
			}
		}
		opts.Private = rng.Intn(2) == 0
		p, err := committer.g.Commit(opts)
		if err != nil {
			t.Fatalf("step %d: %s commit: %v", step, committer.name, err)
		}
		if err := committer.g.Apply(p); err != nil {
			t.Fatal(err)
		}
		var kept []*client
		for _, m := range members {
			if m == committer {
				kept = append(kept, m)
				continue
			}
			r, err := m.g.Handle(p.Commit)
			if err != nil {
				t.Fatalf("step %d: %s handling %s's commit: %v", step, m.name, committer.name, err)
			}
			if !r.Removed {
				kept = append(kept, m)
			}
		}
		for _, j := range joiners {
			if j.g, err = Join(p.Welcome, j.kp, j.keys, nil); err != nil {
				t.Fatalf("step %d: %s join: %v", step, j.name, err)
			}
			kept = append(kept, j)
		}
		members = kept
		sameEpoch(t, members...)
		for _, m := range members {
			// The cached tree hash matches one computed from scratch.
			fresh := &ratchetTree{s: m.g.st.s, nodes: m.g.st.tree.nodes}
			h, err := fresh.rootHash()
			if err != nil || !bytes.Equal(h, m.g.st.ctx.treeHash) {
				t.Fatalf("step %d: %s: cached tree hash differs from a fresh one", step, m.name)
			}
		}
		if len(members[0].g.Members()) != len(members) {
			t.Fatalf("step %d: %d members in the tree, %d clients", step, len(members[0].g.Members()), len(members))
		}
	}
	t.Logf("final epoch %d with %d members", members[0].g.Epoch(), len(members))
}
