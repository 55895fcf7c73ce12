package groups

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"sotto/mls"
)

// ExtensionPolicy is the group context extension that carries a group's
// policy, name and description (a type of the private-use range, RFC 9420
// §17.3). It is in the group context, so every member holds the same one
// (the key schedule covers it) and checks every change against it; the
// relay sees only ciphertext of the commits that set it. Every leaf
// this package makes lists it in its capabilities.
const ExtensionPolicy uint16 = 0xF5A0

// supportedExtensions is what this package's leaves list as supported.
var supportedExtensions = []uint16{ExtensionPolicy}

// Actions a policy grants.
const (
	ActAdd    = "add"    // add users
	ActRemove = "remove" // remove other users
	ActRename = "rename" // change the name or the description
)

// Limits of a policy.
const (
	maxPolicyBytes  = 64 << 10
	MaxNameLen      = 100  // bytes
	MaxDescription  = 1000 // bytes
	maxPolicyAdmins = 1000
)

// Policy is a group's roles and rules, with its name and description.
// Admins may do everything; members may do what MembersMay lists and,
// unless Announce is set, post. Changing the admins, Announce or
// MembersMay is a commit only an admin may make. A group without a
// policy (made before policies existed) lets every member do
// everything.
type Policy struct {
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Admins      []string `json:"admins"`
	// Announce: only admins post (the organization's broadcast channel).
	Announce bool `json:"announce,omitempty"`
	// MembersMay lists the actions (ActAdd, ActRemove, ActRename) every
	// member may take; the others are the admins'.
	MembersMay []string `json:"members_may,omitempty"`
}

// Errors callers branch on.
var (
	// ErrNotAllowed: the group's policy does not let this user do that.
	ErrNotAllowed = errors.New("groups: not allowed")
	// ErrBadPolicy: a policy that cannot be parsed or breaks its limits.
	ErrBadPolicy = errors.New("groups: invalid group policy")
)

// ParsePolicy decodes and checks a policy extension's data.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > maxPolicyBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadPolicy, len(b))
	}
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPolicy, err)
	}
	return &p, p.check()
}

func (p *Policy) check() error {
	switch {
	case len(p.Name) > MaxNameLen || !utf8.ValidString(p.Name):
		return fmt.Errorf("%w: the name must be valid text of at most %d bytes", ErrBadPolicy, MaxNameLen)
	case len(p.Description) > MaxDescription || !utf8.ValidString(p.Description):
		return fmt.Errorf("%w: the description must be valid text of at most %d bytes", ErrBadPolicy, MaxDescription)
	case len(p.Admins) == 0 || len(p.Admins) > maxPolicyAdmins:
		return fmt.Errorf("%w: %d admins", ErrBadPolicy, len(p.Admins))
	}
	for _, a := range p.Admins {
		if a == "" || len(a) > 64 || !utf8.ValidString(a) {
			return fmt.Errorf("%w: admin %q", ErrBadPolicy, a)
		}
	}
	return nil
}

func (p *Policy) marshal() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// IsAdmin reports whether user is an admin (everyone is, without a
// policy).
func (p *Policy) IsAdmin(user string) bool { return p == nil || slices.Contains(p.Admins, user) }

// May reports whether user may take action.
func (p *Policy) May(user, action string) bool {
	return p.IsAdmin(user) || slices.Contains(p.MembersMay, action)
}

// MayPost reports whether user may send messages.
func (p *Policy) MayPost(user string) bool { return p == nil || !p.Announce || p.IsAdmin(user) }

// sameRules: the two policies differ at most in name and description.
func sameRules(a, b *Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Announce == b.Announce && slices.Equal(a.Admins, b.Admins) && slices.Equal(a.MembersMay, b.MembersMay)
}

// policyOf returns a group's policy: nil (and no error) for a group
// without one.
func policyOf(g *mls.Group) (*Policy, error) {
	var found *Policy
	for _, e := range g.Extensions() {
		if e.Type != ExtensionPolicy {
			continue
		}
		p, err := ParsePolicy(e.Data)
		if err != nil {
			return nil, err
		}
		found = p
	}
	return found, nil
}

// withPolicy returns g's extensions with the policy set to p.
func withPolicy(g *mls.Group, p *Policy) ([]mls.Extension, error) {
	b, err := p.marshal()
	if err != nil {
		return nil, err
	}
	out := []mls.Extension{{Type: ExtensionPolicy, Data: b}}
	for _, e := range g.Extensions() {
		if e.Type != ExtensionPolicy {
			out = append(out, e)
		}
	}
	return out, nil
}

// userOf is the username of leaf in ms ("" when there is none).
func userOf(ms []Member, leaf uint32) string {
	for _, mb := range ms {
		if mb.Leaf == leaf {
			return mb.Username
		}
	}
	return ""
}

// checkProposal vets one proposal (received alone, or applied by a
// commit) against the policy of the epoch it was made in: who proposed it
// must be allowed to. before are the members before, after those after
// and next the policy after (nil, nil for a proposal received alone,
// whose effect is not known yet: it is held to the stricter rule).
func checkProposal(pol *Policy, next *Policy, before, after []Member, pi mls.ProposalInfo) error {
	alone := after == nil
	if pi.SenderType != mls.SenderMember {
		// External commits are checked by externalJoinAllowed; they may
		// not touch the policy.
		if pi.Type == mls.ProposalGroupContextExtensions {
			return fmt.Errorf("%w: a change of the group's policy from outside the group", ErrNotAllowed)
		}
		return nil
	}
	who := userOf(before, pi.Sender)
	switch pi.Type {
	case mls.ProposalAdd:
		if pol.May(who, ActAdd) {
			return nil
		}
		if alone {
			return fmt.Errorf("%w: %s is not an admin and may not propose adding a member", ErrNotAllowed, who)
		}
		// Without the right to add, only devices of users already in the
		// group (a user's new device).
		users := map[string]bool{}
		for _, mb := range before {
			users[mb.Username] = true
		}
		for _, mb := range after {
			if !users[mb.Username] {
				return fmt.Errorf("%w: %s is not an admin and may not add %s", ErrNotAllowed, who, mb.Username)
			}
		}
	case mls.ProposalRemove:
		gone := userOf(before, pi.Removed)
		if pi.Removed == pi.Sender || gone == who || pol.May(who, ActRemove) {
			return nil // leaving, one's own devices, or allowed
		}
		// A device of a user who stays (one the committer saw gone from
		// its account) may be removed by any member; a whole user may not.
		if !alone && slices.ContainsFunc(after, func(mb Member) bool { return mb.Username == gone }) {
			return nil
		}
		return fmt.Errorf("%w: %s is not an admin and may not remove %s", ErrNotAllowed, who, gone)
	case mls.ProposalGroupContextExtensions:
		if pol.IsAdmin(who) {
			return nil
		}
		if alone || !(sameRules(pol, next) && pol.May(who, ActRename)) {
			return fmt.Errorf("%w: %s is not an admin and may not change the group's name, roles or rules", ErrNotAllowed, who)
		}
	case mls.ProposalReInit:
		if !pol.IsAdmin(who) {
			return fmt.Errorf("%w: %s is not an admin and may not reinitialize the group", ErrNotAllowed, who)
		}
	}
	return nil
}

// checkChange vets a handled commit or proposal: before and pol are the
// group's members and policy before it, g the group after it.
func checkChange(pol *Policy, before []Member, g *mls.Group, rcv *mls.Received) error {
	next, err := policyOf(g)
	if err != nil {
		return err
	}
	if pol != nil && next == nil {
		return fmt.Errorf("%w: a commit removing the group's policy", ErrNotAllowed)
	}
	var after []Member
	if rcv.Kind == mls.CommitContent {
		after = members(g)
	}
	for _, pi := range rcv.Proposals {
		if err := checkProposal(pol, next, before, after, pi); err != nil {
			return err
		}
	}
	return nil
}
