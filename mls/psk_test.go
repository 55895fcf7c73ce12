package mls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// commitAll has c commit opts and every other client handle it.
func commitAll(t *testing.T, c *client, opts CommitOptions, others ...*client) {
	t.Helper()
	p, err := c.g.Commit(opts)
	if err != nil {
		t.Fatalf("%s: commit: %v", c.name, err)
	}
	if err := c.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		if _, err := o.g.Handle(p.Commit); err != nil {
			t.Fatalf("%s: handle commit: %v", o.name, err)
		}
	}
}

// mustState returns the encoded state, to compare before and after a
// rejected message.
func mustState(t *testing.T, g *Group) []byte {
	t.Helper()
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Resumption PSKs of past epochs, proposed by both members and committed
// by value, as the interop runner's commit/resumption_psk script does.
func TestResumptionPSKProposals(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	commitAll(t, alice, CommitOptions{}, bob)
	commitAll(t, alice, CommitOptions{}, bob) // epoch 3
	if got := bob.g.ResumptionEpochs(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("bob keeps %v", got)
	}
	pa, err := alice.g.ProposeResumptionPSK(1)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := bob.g.ProposeResumptionPSK(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Handle(pa); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Handle(pb); err != nil {
		t.Fatal(err)
	}
	commitAll(t, alice, CommitOptions{ResumptionPSKs: []uint64{3}}, bob)
	sameEpoch(t, alice, bob)

	// The PSKs change the key schedule: the same commit without them
	// would not verify, so a member without one of them fails.
	if _, err := bob.g.ProposeResumptionPSK(0); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("resumption psk of an epoch bob never held: %v", err)
	}
	if _, err := alice.g.Commit(CommitOptions{ResumptionPSKs: []uint64{99}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit with a resumption psk of a future epoch: %v", err)
	}
}

// A member that no longer keeps an epoch's resumption PSK rejects
// proposals and commits naming it, and the rejected commit leaves its
// state exactly as it was.
func TestResumptionPSKNotKept(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	commitAll(t, alice, CommitOptions{}, bob)
	commitAll(t, alice, CommitOptions{}, bob) // epoch 3
	bob.g.SetResumptionEpochs(-1)
	if got := bob.g.ResumptionEpochs(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("bob keeps %v, want only the current epoch", got)
	}
	prop, err := alice.g.ProposeResumptionPSK(2)
	if err != nil {
		t.Fatal(err)
	}
	before := mustState(t, bob.g)
	if _, err := bob.g.Handle(prop); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("proposal of a dropped epoch: %v", err)
	}
	// Alice forgets her copy; her commit names the PSK by value.
	alice.g.st.proposals, alice.g.st.proposalRefs = map[string]cachedProposal{}, nil
	p, err := alice.g.Commit(CommitOptions{ResumptionPSKs: []uint64{2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Handle(p.Commit); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit with a dropped epoch's psk: %v", err)
	}
	if !bytes.Equal(before, mustState(t, bob.g)) {
		t.Fatal("rejected commit changed the state")
	}
	p.Discard()
	// The current epoch's is still usable.
	commitAll(t, alice, CommitOptions{ResumptionPSKs: []uint64{3}}, bob)
	sameEpoch(t, alice, bob)
}

// The window keeps the given number of epochs, the current one
// included, and survives persistence.
func TestResumptionWindow(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	bob.g.SetResumptionEpochs(2)
	for range 4 {
		commitAll(t, alice, CommitOptions{}, bob)
	}
	if got := bob.g.ResumptionEpochs(); !slices.Equal(got, []uint64{4, 5}) {
		t.Fatalf("bob keeps %v, want [4 5]", got)
	}
	bob.g = restore(t, bob.g)
	commitAll(t, alice, CommitOptions{}, bob)
	if got := bob.g.ResumptionEpochs(); !slices.Equal(got, []uint64{5, 6}) {
		t.Fatalf("restored bob keeps %v, want [5 6]", got)
	}
	// A restored member resolves a past epoch's PSK.
	commitAll(t, alice, CommitOptions{ResumptionPSKs: []uint64{5}}, bob)
	sameEpoch(t, alice, bob)
	if got := alice.g.ResumptionEpochs(); len(got) != DefaultResumptionEpochs {
		t.Fatalf("alice keeps %v, want %d epochs", got, DefaultResumptionEpochs)
	}
}

// A format-2 state (no resumption window field) still loads, with the
// default window and its resumption PSKs.
func TestPersistFormat2Resumption(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	commitAll(t, alice, CommitOptions{}, bob)
	b := mustState(t, bob.g)
	if binary.BigEndian.Uint16(b) != 3 {
		t.Fatalf("state format %d, want 3", binary.BigEndian.Uint16(b))
	}
	old := bytes.Clone(b[:len(b)-4])
	binary.BigEndian.PutUint16(old, 2)
	g, err := UnmarshalGroup(old)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.ResumptionEpochs(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("format 2 state keeps %v", got)
	}
	bob.g = g
	commitAll(t, alice, CommitOptions{ResumptionPSKs: []uint64{1}}, bob)
	sameEpoch(t, alice, bob)
	// A corrupted store naming a resumption psk of a future epoch is
	// refused.
	bad := bytes.Clone(mustState(t, bob.g))
	binary.BigEndian.PutUint32(bad[len(bad)-4:], maxResumptionEpochs+1)
	if _, err := UnmarshalGroup(bad); !errors.Is(err, ErrDecode) {
		t.Fatalf("state with an oversized resumption window: %v", err)
	}
}

// PreSharedKey proposals are refused on receipt and in commits when the
// RFC forbids them (§12.1.4, §12.2): a nonce not KDF.Nh long, a
// resumption PSK of usage reinit or branch, a PSK nobody holds, and a
// PSK named twice.
func TestPSKProposalValidation(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	commitAll(t, alice, CommitOptions{}, bob)
	st := alice.g.st
	good, err := st.resumptionPSKID(1)
	if err != nil {
		t.Fatal(err)
	}
	short := good
	short.pskNonce = good.pskNonce[:16]
	branch := good
	branch.usage = resumptionBranch
	reinit := good
	reinit.usage = resumptionReInit
	unknown := preSharedKeyID{pskType: pskExternal, pskID: []byte("nobody"), pskNonce: good.pskNonce}
	foreign := good
	foreign.pskGroupID = []byte("another group")
	for name, id := range map[string]preSharedKeyID{"short nonce": short, "branch usage": branch,
		"reinit usage": reinit, "unknown external": unknown, "other group": foreign} {
		prop, err := alice.g.propose(proposal{typ: proposalPSK, psk: id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.g.Handle(prop); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s proposal: %v", name, err)
		}
	}
	// Drop alice's own copies of those proposals before committing.
	st.proposals, st.proposalRefs = map[string]cachedProposal{}, nil

	// A commit carrying a branch or reinit usage PSK by value (the
	// committer resolves it as a successor's creator would).
	for name, id := range map[string]preSharedKeyID{"branch": branch, "reinit": reinit} {
		st.priorPSKs = map[string][]byte{resumptionKey(&id): st.resumption[1]}
		p, err := alice.g.Commit(CommitOptions{resumption: []preSharedKeyID{id}})
		if err != nil {
			t.Fatal(err)
		}
		before := mustState(t, bob.g)
		if _, err := bob.g.Handle(p.Commit); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("commit with a %s psk: %v", name, err)
		}
		if !bytes.Equal(before, mustState(t, bob.g)) {
			t.Fatalf("rejected %s commit changed the state", name)
		}
		p.Discard()
	}
	st.priorPSKs = nil
	// The same PSK id twice in one commit.
	if _, err := alice.g.Commit(CommitOptions{resumption: []preSharedKeyID{good, good}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit naming a psk twice: %v", err)
	}
	commitAll(t, alice, CommitOptions{resumption: []preSharedKeyID{good}}, bob)
	sameEpoch(t, alice, bob)
}
