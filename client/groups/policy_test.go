package groups

import (
	"errors"
	"strings"
	"testing"

	"sotto/mls"
)

func TestParsePolicyLimits(t *testing.T) {
	good := `{"name":"team","admins":["alice"],"announce":true}`
	p, err := ParsePolicy([]byte(good))
	if err != nil || p.Name != "team" || !p.Announce || !p.IsAdmin("alice") || p.IsAdmin("bob") || p.MayPost("bob") || !p.MayPost("alice") {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"admins":[]}`, `{"name":"x"}`,
		`{"admins":[""]}`,
		`{"admins":["a"],"name":"` + strings.Repeat("n", MaxNameLen+1) + `"}`,
		`{"admins":["a"],"description":"` + strings.Repeat("d", MaxDescription+1) + `"}`,
		`{"admins":["a"],"name":"\xff"}`,
	} {
		if _, err := ParsePolicy([]byte(bad)); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	var nilPol *Policy
	if !nilPol.IsAdmin("x") || !nilPol.May("x", ActAdd) || !nilPol.MayPost("x") {
		t.Fatal("a group without a policy lets every member do everything")
	}
}

func TestCheckProposalRules(t *testing.T) {
	pol := &Policy{Admins: []string{"alice"}}
	before := []Member{{Username: "alice", Leaf: 0}, {Username: "bob", Leaf: 1}, {Username: "bob", DeviceID: 2, Leaf: 2}, {Username: "carol", Leaf: 3}}
	member := func(leaf uint32, typ uint16, removed uint32) mls.ProposalInfo {
		return mls.ProposalInfo{Type: typ, Sender: leaf, SenderType: mls.SenderMember, Removed: removed}
	}
	withDave := append(append([]Member{}, before...), Member{Username: "dave", Leaf: 4})
	withBobPhone := append(append([]Member{}, before...), Member{Username: "bob", DeviceID: 3, Leaf: 4})
	withoutCarol := before[:3]
	withoutBob2 := []Member{before[0], before[1], before[3]}
	renamed := &Policy{Name: "new", Admins: []string{"alice"}}
	promoted := &Policy{Admins: []string{"alice", "bob"}}
	for _, c := range []struct {
		name  string
		pol   *Policy
		next  *Policy
		after []Member
		pi    mls.ProposalInfo
		ok    bool
	}{
		{"admin adds", pol, pol, withDave, member(0, mls.ProposalAdd, 0), true},
		{"member adds a user", pol, pol, withDave, member(1, mls.ProposalAdd, 0), false},
		{"member adds a device of a user in", pol, pol, withBobPhone, member(1, mls.ProposalAdd, 0), true},
		{"member proposes an add", pol, nil, nil, member(1, mls.ProposalAdd, 0), false},
		{"member removes a user", pol, pol, withoutCarol, member(1, mls.ProposalRemove, 3), false},
		{"member leaves", pol, pol, withoutCarol, member(3, mls.ProposalRemove, 3), true},
		{"member removes own device", pol, pol, withoutBob2, member(1, mls.ProposalRemove, 2), true},
		{"member removes a gone device of a user who stays", pol, pol, withoutBob2, member(3, mls.ProposalRemove, 2), true},
		{"member proposes removing another's device", pol, nil, nil, member(3, mls.ProposalRemove, 2), false},
		{"admin removes", pol, pol, withoutCarol, member(0, mls.ProposalRemove, 3), true},
		{"member renames", pol, renamed, before, member(1, mls.ProposalGroupContextExtensions, 0), false},
		{"member renames where members may", &Policy{Admins: []string{"alice"}, MembersMay: []string{ActRename}},
			&Policy{Name: "x", Admins: []string{"alice"}, MembersMay: []string{ActRename}}, before, member(1, mls.ProposalGroupContextExtensions, 0), true},
		{"member promotes where members may rename", &Policy{Admins: []string{"alice"}, MembersMay: []string{ActRename}},
			&Policy{Admins: []string{"alice", "bob"}, MembersMay: []string{ActRename}}, before, member(1, mls.ProposalGroupContextExtensions, 0), false},
		{"admin promotes", pol, promoted, before, member(0, mls.ProposalGroupContextExtensions, 0), true},
		{"outsider changes the policy", pol, promoted, before, mls.ProposalInfo{Type: mls.ProposalGroupContextExtensions, SenderType: mls.SenderNewMemberCommit}, false},
	} {
		err := checkProposal(c.pol, c.next, before, c.after, c.pi)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrNotAllowed)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"name":"team","description":"d","admins":["alice","bob"],"announce":true,"members_may":["add"]}`))
	f.Add([]byte(`{"admins":["a"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		// What parses encodes again and parses to the same rules.
		enc, err := p.marshal()
		if err != nil {
			t.Fatalf("a parsed policy does not encode: %v", err)
		}
		q, err := ParsePolicy(enc)
		if err != nil || !sameRules(p, q) || p.Name != q.Name || p.Description != q.Description {
			t.Fatalf("round trip: %+v %+v %v", p, q, err)
		}
	})
}
