package mls

import (
	"errors"
	"testing"
)

// Two members commit in the same epoch; the delivery service orders
// bob's first. alice discards hers and processes bob's; her stale
// commit can no longer be applied, and everyone agrees.
func TestStagedCommitRace(t *testing.T) {
	alice, bob, carol := twoMembers(t)
	p, _ := alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}})
	alice.g.Apply(p)
	bob.g.Handle(p.Commit)
	var err error
	if carol.g, err = Join(p.Welcome, carol.kp, carol.keys, nil); err != nil {
		t.Fatal(err)
	}
	epoch := alice.g.Epoch()
	mine, err := alice.g.Commit(CommitOptions{Remove: []uint32{carol.g.LeafIndex()}})
	if err != nil {
		t.Fatal(err)
	}
	winner, err := bob.g.Commit(CommitOptions{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	if alice.g.Epoch() != epoch {
		t.Fatal("creating a commit moved the group")
	}
	// The relay accepted bob's commit.
	bob.g.Apply(winner)
	stale, _ := mine.MarshalBinary()
	mine.Discard()
	if err := alice.g.Apply(mine); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("applying a discarded commit: %v", err)
	}
	for _, c := range []*client{alice, carol} {
		if _, err := c.g.Handle(winner.Commit); err != nil {
			t.Fatalf("%s: winning commit: %v", c.name, err)
		}
	}
	sameEpoch(t, alice, bob, carol)
	// A restored copy of the losing commit is for an epoch that is gone.
	old, err := UnmarshalPendingCommit(stale)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.Apply(old); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("applying a commit of a past epoch: %v", err)
	}
	// The losing commit's message is refused by the others too.
	if _, err := carol.g.Handle(mine.Commit); err == nil {
		t.Fatal("losing commit accepted after the winner")
	}
	sameEpoch(t, alice, bob, carol)
}
