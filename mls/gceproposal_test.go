package mls

import (
	"bytes"
	"errors"
	"testing"
)

// threeMembers builds a group of alice, bob and carol, all in epoch 2.
func threeMembers(t *testing.T) (a, b, c *client) {
	t.Helper()
	cs := X25519_AES128GCM_SHA256_Ed25519
	a, b, c = newClient(t, cs, "alice"), newClient(t, cs, "bob"), newClient(t, cs, "carol")
	sig, err := GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	if a.g, err = NewGroup(cs, []byte("gce"), []byte("alice"), sig); err != nil {
		t.Fatal(err)
	}
	p, err := a.g.Commit(CommitOptions{Add: [][]byte{b.kp, c.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	if b.g, err = Join(p.Welcome, b.kp, b.keys, nil); err != nil {
		t.Fatal(err)
	}
	if c.g, err = Join(p.Welcome, c.kp, c.keys, nil); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, a, b, c)
	return a, b, c
}

func TestProposeGroupContextExtensionsByReference(t *testing.T) {
	a, b, c := threeMembers(t)
	appID := Extension{Type: 1, Data: []byte{4, 't', 'e', 'a', 'm'}}
	prop, err := a.g.ProposeGroupContextExtensions([]Extension{appID})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*client{b, c} {
		r, err := m.g.Handle(prop)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if r.Kind != ProposalContent {
			t.Fatalf("%s: kind %v", m.name, r.Kind)
		}
	}
	// The extensions change only when the proposal is committed.
	if len(b.g.Extensions()) != 0 {
		t.Fatalf("extensions changed before the commit: %+v", b.g.Extensions())
	}
	epoch := b.g.Epoch()
	p, err := b.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*client{a, c} {
		if _, err := m.g.Handle(p.Commit); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	sameEpoch(t, a, b, c)
	if b.g.Epoch() != epoch+1 {
		t.Fatalf("epoch %d, want %d", b.g.Epoch(), epoch+1)
	}
	for _, m := range []*client{a, b, c} {
		got := m.g.Extensions()
		if len(got) != 1 || got[0].Type != appID.Type || !bytes.Equal(got[0].Data, appID.Data) {
			t.Fatalf("%s: extensions %+v", m.name, got)
		}
	}
	// The group keeps working in the new epoch.
	ct, err := a.g.Seal([]byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.g.Handle(ct); err != nil || string(r.Data) != "hi" {
		t.Fatalf("application message: %v", err)
	}
}

func TestProposeGroupContextExtensionsUnsupported(t *testing.T) {
	a, b, _ := threeMembers(t)
	before := stateBytes(t, a.g)
	for name, exts := range map[string][]Extension{
		"unsupported extension":           {{Type: 0xff01}},
		"unsupported required capability": {{Type: extRequiredCaps, Data: []byte{0, 0, 2, 0, 2}}},
	} {
		if _, err := a.g.ProposeGroupContextExtensions(exts); !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if !bytes.Equal(stateBytes(t, a.g), before) {
		t.Fatal("a refused proposal changed the state")
	}
	// Nothing was cached: a commit now changes no extensions.
	p, err := a.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	if _, err := b.g.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if len(a.g.Extensions()) != 0 || len(b.g.Extensions()) != 0 {
		t.Fatalf("extensions: %+v %+v", a.g.Extensions(), b.g.Extensions())
	}
	sameEpoch(t, a, b)
}

func TestTwoGroupContextExtensionsProposals(t *testing.T) {
	a, b, c := threeMembers(t)
	one := Extension{Type: 1, Data: []byte{3, 'o', 'n', 'e'}}
	two := Extension{Type: 1, Data: []byte{3, 't', 'w', 'o'}}
	pa, err := a.g.ProposeGroupContextExtensions([]Extension{one})
	if err != nil {
		t.Fatal(err)
	}
	// A second proposal from the same member is refused at once.
	if _, err := a.g.ProposeGroupContextExtensions([]Extension{two}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("second own proposal: %v", err)
	}
	pb, err := b.g.ProposeGroupContextExtensions([]Extension{two})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{pa, pb} {
		if _, err := c.g.Handle(m); err != nil {
			t.Fatal(err)
		}
	}
	epoch, auth := c.g.Epoch(), c.g.EpochAuthenticator()
	// Both are pending at carol; a commit covering both is refused (§12.2).
	if _, err := c.g.Commit(CommitOptions{}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit of two proposals: %v", err)
	}
	// So is one by reference plus one by value.
	if _, err := a.g.Commit(CommitOptions{Extensions: []Extension{two}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("by reference and by value: %v", err)
	}
	if c.g.Epoch() != epoch || !bytes.Equal(c.g.EpochAuthenticator(), auth) || len(c.g.Extensions()) != 0 {
		t.Fatal("a refused commit changed the state")
	}
}

// A received proposal for extensions a member does not support is
// refused and not cached.
func TestReceivedUnsupportedGroupContextExtensions(t *testing.T) {
	a, b, _ := threeMembers(t)
	// Bypass the proposer's own check to play a faulty member.
	prop, err := a.g.propose(proposal{typ: proposalGroupContextExtensions, extensions: []extension{{typ: 0xff01}}})
	if err != nil {
		t.Fatal(err)
	}
	before := stateBytes(t, b.g)
	if _, err := b.g.Handle(prop); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("handle: %v", err)
	}
	if !bytes.Equal(stateBytes(t, b.g), before) {
		t.Fatal("a refused proposal changed the state")
	}
	if _, err := b.g.Commit(CommitOptions{}); err != nil {
		t.Fatalf("commit after a refused proposal: %v", err)
	}
}
