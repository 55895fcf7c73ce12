package mls

import (
	"errors"
	"testing"
	"time"
)

// A client outside the group proposes its own Add; an external sender
// listed in external_senders proposes a Remove. Members commit both.
func TestExternalProposals(t *testing.T) {
	alice, bob, carol := twoMembers(t)
	cs := alice.g.CipherSuite()
	dsSig, _ := GenerateSignatureKey(cs)
	s, _ := cs.suite()
	dsPub, _ := s.signaturePublicKey(dsSig)
	ext, err := ExternalSendersExtension([]ExternalSender{{SignatureKey: dsPub, Identity: []byte("relay")}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := alice.g.Commit(CommitOptions{Extensions: []Extension{ext}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	if _, err := bob.g.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}

	// carol asks to join.
	carolSig := carol.keys.Signature
	prop, err := NewMemberAddProposal(alice.g.GroupID(), alice.g.Epoch(), carol.kp, carolSig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMemberAddProposal(alice.g.GroupID(), alice.g.Epoch(), carol.kp, dsSig); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("new member proposal signed with another key: %v", err)
	}
	for _, c := range []*client{alice, bob} {
		r, err := c.g.Handle(prop)
		if err != nil || r.Kind != ProposalContent {
			t.Fatalf("%s: new member proposal: %v", c.name, err)
		}
	}
	p, err = bob.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bob.g.Apply(p)
	if _, err := alice.g.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if carol.g, err = Join(p.Welcome, carol.kp, carol.keys, nil); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, alice, bob, carol)

	// The relay removes bob.
	rm, err := ExternalRemoveProposal(cs, alice.g.GroupID(), alice.g.Epoch(), 0, bob.g.LeafIndex(), dsSig)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := ExternalRemoveProposal(cs, alice.g.GroupID(), alice.g.Epoch(), 0, bob.g.LeafIndex(), carolSig)
	if _, err := alice.g.Handle(forged); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("external remove signed by a non-sender: %v", err)
	}
	unknown, _ := ExternalRemoveProposal(cs, alice.g.GroupID(), alice.g.Epoch(), 1, bob.g.LeafIndex(), dsSig)
	if _, err := alice.g.Handle(unknown); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("external remove from an unlisted sender: %v", err)
	}
	for _, c := range []*client{alice, bob, carol} {
		if _, err := c.g.Handle(rm); err != nil {
			t.Fatalf("%s: external remove: %v", c.name, err)
		}
	}
	p, err = carol.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	carol.g.Apply(p)
	if _, err := alice.g.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if r, err := bob.g.Handle(p.Commit); err != nil || !r.Removed {
		t.Fatalf("bob after the external remove: %+v %v", r, err)
	}
	sameEpoch(t, alice, carol)
	if n := len(alice.g.Members()); n != 2 {
		t.Fatalf("%d members, want 2", n)
	}
}

// An external sender may not propose an Update, and a group without
// external_senders accepts no external proposal.
func TestExternalProposalRestrictions(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	cs := alice.g.CipherSuite()
	dsSig, _ := GenerateSignatureKey(cs)
	rm, _ := ExternalRemoveProposal(cs, alice.g.GroupID(), alice.g.Epoch(), 0, bob.g.LeafIndex(), dsSig)
	if _, err := alice.g.Handle(rm); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("external proposal without external_senders: %v", err)
	}
	s, _ := cs.suite()
	leaf := *alice.g.st.tree.leaf(0)
	leaf.source = sourceUpdate
	msg, err := signExternal(s, alice.g.GroupID(), alice.g.Epoch(), sender{typ: senderExternal}, proposal{typ: proposalUpdate, leafNode: leaf}, dsSig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Handle(msg); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("external update: %v", err)
	}
}

// Received KeyPackages are checked against their lifetime with the
// documented tolerance, using the injected clock; a refused commit
// changes nothing.
func TestReceivedLeafLifetime(t *testing.T) {
	alice, bob, carol := twoMembers(t)
	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	// carol's KeyPackage expires keyPackageLifetime after its creation.
	expired := time.Now().Add(keyPackageLifetime + LifetimeTolerance + time.Hour)
	bob.g.SetClock(func() time.Time { return expired })
	before := stateBytes(t, bob.g)
	if _, err := bob.g.Handle(p.Commit); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit adding an expired key package: %v", err)
	}
	if string(before) != string(stateBytes(t, bob.g)) {
		t.Fatal("refused commit changed the state")
	}
	early := time.Now().Add(-time.Hour - LifetimeTolerance - time.Hour)
	bob.g.SetClock(func() time.Time { return early })
	if _, err := bob.g.Handle(p.Commit); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit adding a not yet valid key package: %v", err)
	}
	// Within the tolerance after not_after, it is accepted.
	skewed := time.Now().Add(keyPackageLifetime + LifetimeTolerance/2)
	bob.g.SetClock(func() time.Time { return skewed })
	if _, err := bob.g.Handle(p.Commit); err != nil {
		t.Fatalf("commit within the lifetime tolerance: %v", err)
	}
	// The same check applies to a proposal carrying an expired KeyPackage.
	dave := newClient(t, alice.g.CipherSuite(), "dave")
	alice.g.Apply(p)
	prop, err := alice.g.ProposeAdd(dave.kp)
	if err != nil {
		t.Fatal(err)
	}
	bob.g.SetClock(func() time.Time { return expired })
	if _, err := bob.g.Handle(prop); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("proposal adding an expired key package: %v", err)
	}
}

// An external commit can inject external PSKs, which members must know.
func TestExternalJoinWithPSK(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	gi, _ := alice.g.GroupInfo()
	sig, _ := GenerateSignatureKey(alice.g.CipherSuite())
	psk := map[string][]byte{"ext": []byte("shared out of band")}
	eg, commit, err := JoinExternalWithOptions(gi, []byte("eve"), sig, &ExternalJoinOptions{PSKs: psk})
	if err != nil {
		t.Fatal(err)
	}
	before := stateBytes(t, alice.g)
	if _, err := alice.g.Handle(commit); err == nil {
		t.Fatal("external commit with an unknown psk accepted")
	}
	if string(before) != string(stateBytes(t, alice.g)) {
		t.Fatal("refused external commit changed the state")
	}
	for _, c := range []*client{alice, bob} {
		c.g.AddExternalPSK([]byte("ext"), psk["ext"])
		if _, err := c.g.Handle(commit); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	sameEpoch(t, alice, bob, &client{name: "eve", g: eg})
}
