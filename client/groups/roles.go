package groups

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"sotto/client/content"
	"sotto/mls"
	"sotto/wire"
)

// EventNotAllowed: a member's change to the group (an add, a remove, a
// rename, a change of roles) or a message was refused because the
// group's policy does not allow it to that member; the group stays as it
// was.
const EventNotAllowed EventKind = 20

// CreateOptions describes a new group.
type CreateOptions struct {
	Name        string
	Description string
	Users       []string
	// Announce: only admins post.
	Announce bool
	// MembersMay lists what every member may do (ActAdd, ActRemove,
	// ActRename); by default only admins add, remove and rename.
	MembersMay []string
}

func (o CreateOptions) policy(self string) (*Policy, error) {
	p := &Policy{Name: o.Name, Description: o.Description, Admins: []string{self}, Announce: o.Announce}
	for _, a := range o.MembersMay {
		switch a {
		case ActAdd, ActRemove, ActRename:
			p.MembersMay = append(p.MembersMay, a)
		default:
			return nil, fmt.Errorf("%w: unknown action %q", ErrBadPolicy, a)
		}
	}
	return p, p.check()
}

// notAllowed tells the user about a refused change or message.
func (m *Manager) notAllowed(group []byte, err error) {
	m.log.Warn("group policy: refused", "err", err)
	m.emit(Event{Kind: EventNotAllowed, Group: group, Detail: strings.TrimPrefix(err.Error(), "groups: ")})
}

// Policy returns a group's policy (nil for a group made before policies,
// where every member may do everything).
func (m *Manager) Policy(ctx context.Context, group []byte) (*Policy, error) {
	_, g, err := m.load(ctx, group)
	if err != nil {
		return nil, err
	}
	return policyOf(g)
}

// allowed checks that this user may take action in a group.
func (m *Manager) allowed(ctx context.Context, group []byte, action string) error {
	pol, err := m.Policy(ctx, group)
	if err != nil {
		return err
	}
	if !pol.May(m.self.Username, action) {
		return fmt.Errorf("%w: only admins may %s in this group", ErrNotAllowed, action)
	}
	return nil
}

// mayPost checks that this user may send to g.
func (m *Manager) mayPost(g *mls.Group) error {
	pol, err := policyOf(g)
	if err != nil {
		return err
	}
	if !pol.MayPost(m.self.Username) {
		return fmt.Errorf("%w: only admins post in this announcement group", ErrNotAllowed)
	}
	return nil
}

// commitPolicy fits a commit's options to the policy: the new policy
// ch carries, and no removal of a whole user by a member who may not
// remove (a revoked account's devices then wait for an admin's commit).
func (m *Manager) commitPolicy(g *mls.Group, ch change, gone map[uint32]bool, opts *mls.CommitOptions) error {
	pol, err := policyOf(g)
	if err != nil {
		return err
	}
	if ch.policy != nil {
		if opts.Extensions, err = withPolicy(g, ch.policy); err != nil {
			return err
		}
	}
	if pol.May(m.self.Username, ActRemove) {
		return nil
	}
	stays := map[string]bool{}
	for _, mb := range members(g) {
		if !gone[mb.Leaf] && !slices.Contains(ch.remove, mb.Username) {
			stays[mb.Username] = true
		}
	}
	for _, mb := range members(g) {
		if gone[mb.Leaf] && !stays[mb.Username] && mb.Username != m.self.Username {
			delete(gone, mb.Leaf)
		}
	}
	return nil
}

// changePolicy commits fn's change to a group's policy. A group without
// one gets one with every current user an admin (what they were).
func (m *Manager) changePolicy(ctx context.Context, group []byte, needAdmin bool, fn func(*Policy) error) error {
	_, g, err := m.load(ctx, group)
	if err != nil {
		return err
	}
	pol, err := policyOf(g)
	if err != nil {
		return err
	}
	next := &Policy{}
	if pol == nil {
		for _, mb := range members(g) {
			if !slices.Contains(next.Admins, mb.Username) {
				next.Admins = append(next.Admins, mb.Username)
			}
		}
	} else {
		*next = *pol
		next.Admins = slices.Clone(pol.Admins)
		next.MembersMay = slices.Clone(pol.MembersMay)
	}
	if needAdmin && !pol.IsAdmin(m.self.Username) {
		return fmt.Errorf("%w: only admins may change the group's roles or rules", ErrNotAllowed)
	}
	if !needAdmin && !pol.May(m.self.Username, ActRename) {
		return fmt.Errorf("%w: only admins may rename this group", ErrNotAllowed)
	}
	if err := fn(next); err != nil {
		return err
	}
	if err := next.check(); err != nil {
		return err
	}
	return m.commit(ctx, group, change{policy: next})
}

// Rename sets a group's name (in the group context: every member sees
// it, the relay does not).
func (m *Manager) Rename(ctx context.Context, group []byte, name string) error {
	return m.changePolicy(ctx, group, false, func(p *Policy) error {
		p.Name = name
		return nil
	})
}

// Describe sets a group's description.
func (m *Manager) Describe(ctx context.Context, group []byte, description string) error {
	return m.changePolicy(ctx, group, false, func(p *Policy) error {
		p.Description = description
		return nil
	})
}

// SetAdmin makes users admins (admin true) or plain members.
func (m *Manager) SetAdmin(ctx context.Context, group []byte, admin bool, users ...string) error {
	in := map[string]bool{}
	if info, err := m.Info(ctx, group); err == nil {
		for _, mb := range info.Members {
			in[mb.Username] = true
		}
	}
	return m.changePolicy(ctx, group, true, func(p *Policy) error {
		for _, u := range users {
			if !in[u] {
				return fmt.Errorf("%w: %s", ErrNotMember, u)
			}
			if admin && !slices.Contains(p.Admins, u) {
				p.Admins = append(p.Admins, u)
			}
			if !admin {
				p.Admins = slices.DeleteFunc(p.Admins, func(a string) bool { return a == u })
			}
		}
		if len(p.Admins) == 0 {
			return fmt.Errorf("%w: a group keeps at least one admin", ErrBadPolicy)
		}
		return nil
	})
}

// SetAnnounce makes a group an announcement group (only admins post) or
// lets every member post again.
func (m *Manager) SetAnnounce(ctx context.Context, group []byte, announce bool) error {
	return m.changePolicy(ctx, group, true, func(p *Policy) error {
		p.Announce = announce
		return nil
	})
}

// Leave takes this user out of a group: this device removes the user's
// other devices with a commit, then asks to be removed itself (an MLS
// Remove proposal for its own leaf: the next member to commit, whoever it
// is, carries it out) and forgets the group's keys at once.
func (m *Manager) Leave(ctx context.Context, group []byte) error {
	info, err := m.Info(ctx, group)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(info.Members, func(mb Member) bool { return mb.Username == m.self.Username && mb.DeviceID != m.self.DeviceID }) {
		if err := m.commit(ctx, group, change{remove: []string{m.self.Username}}); err != nil {
			return fmt.Errorf("groups: removing your other devices: %w", err)
		}
	}
	r, err := m.relay()
	if err != nil {
		return err
	}
	m.mu.Lock()
	_, g, err := m.load(ctx, group)
	var prop []byte
	if err == nil {
		prop, err = g.ProposeLeave()
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := r.GroupSend(ctx, &wire.GroupSendRequest{GroupId: group, MessageId: randomID(), Content: prop}); err != nil {
		return fmt.Errorf("groups: asking to leave: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, _, err := m.load(ctx, group)
	if err != nil {
		return err
	}
	rec.Removed, rec.State, rec.Pending, rec.PendingRequest = true, nil, nil, nil
	if err := m.save(ctx, group, rec, nil); err != nil {
		return err
	}
	m.emit(Event{Kind: EventRemoved, Group: group, Detail: "you left the group"})
	return nil
}

// receiptOnly reports whether ct is only a delivery or read receipt:
// what a member who may not post in an announcement group still sends.
// Legacy text (ct nil) is a post.
func receiptOnly(ct *content.Content) bool {
	switch ct.GetBody().(type) {
	case *content.Content_DeliveryReceipt, *content.Content_ReadReceipt:
		return true
	}
	return false
}
