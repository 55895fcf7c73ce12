package mls

import (
	"errors"
	"testing"
)

// A group context extension of a private type needs every leaf to list
// it (RFC 9420 §7.2): leaves made with SupportedExtensions do, others do
// not and are refused. A commit's Received lists its proposals with who
// made each, and a member leaves by proposing its own removal.
func TestSupportedExtensionsAndCommittedProposals(t *testing.T) {
	const private uint16 = 0xF5A0
	cs := X25519_AES128GCM_SHA256_Ed25519
	supported := []uint16{private}
	mk := func(name string, exts []uint16) *client {
		sig, err := GenerateSignatureKey(cs)
		if err != nil {
			t.Fatal(err)
		}
		kp, keys, err := NewKeyPackageWithOptions(cs, []byte(name), sig, &KeyPackageOptions{SupportedExtensions: exts})
		if err != nil {
			t.Fatal(err)
		}
		return &client{name: name, kp: kp, keys: keys}
	}
	a, b, old := mk("alice", nil), mk("bob", supported), mk("old", nil)
	sig, err := GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	if a.g, err = NewGroupWithOptions(cs, []byte("ext"), []byte("alice"), sig, &GroupOptions{SupportedExtensions: supported}); err != nil {
		t.Fatal(err)
	}
	ext := []Extension{{Type: private, Data: []byte("policy")}}
	// A leaf without the capability cannot be in a group with it.
	if _, err := a.g.Commit(CommitOptions{Add: [][]byte{old.kp}, Extensions: ext}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("adding a leaf lacking the extension: %v", err)
	}
	p, err := a.g.Commit(CommitOptions{Add: [][]byte{b.kp}, Extensions: ext})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	if b.g, err = Join(p.Welcome, b.kp, b.keys, nil); err != nil {
		t.Fatal(err)
	}
	if e := b.g.Extensions(); len(e) != 1 || e[0].Type != private {
		t.Fatalf("bob's extensions: %+v", e)
	}

	// bob leaves: his proposal, then alice's commit removing him.
	prop, err := b.g.ProposeLeave()
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.g.Handle(prop)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Proposals) != 1 || r.Proposals[0].Type != ProposalRemove || r.Proposals[0].Sender != 1 || r.Proposals[0].Removed != 1 {
		t.Fatalf("the proposal's info: %+v", r.Proposals)
	}
	p, err = a.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err = b.g.Handle(p.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Removed || len(r.Proposals) != 1 || r.Proposals[0].Sender != 1 || r.Proposals[0].SenderType != SenderMember || r.Proposals[0].Removed != 1 {
		t.Fatalf("the commit's info: removed %v, %+v", r.Removed, r.Proposals)
	}
}
