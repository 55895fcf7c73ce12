package groups

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"sotto/client/content"
	"sotto/mls"
	"sotto/wire"
)

// Recovery from a refused commit. The relay cannot read a commit, so it
// takes one that every honest member refuses (a ghost's leaf, a
// non-admin's add or rename, an identity change): its group moves to the
// next epoch while the refusing members stay where they were, and before
// this every later message was unreadable to them. A refusing device now
// keeps the group in quarantine: it stays at the epoch it trusts (the
// base), shows the refusal (an event and a history line), and keeps the
// refused commit and the commits that follow it. It never accepts the
// hostile change; it leaves quarantine only for a state that holds no
// member the base did not hold, no member dropped except by an admin's
// commit,
// and the base's policy:
//   - an admin's device (a user the base's policy lets remove members:
//     an admin, or anyone where members may remove) takes the refused
//     commit in, apart, and commits on top of it the removal of every
//     leaf the base did not hold and the base's policy back, then moves
//     on to that state (the hostile one is never used to send);
//   - every other refusing device takes the admin's commit in on top of
//     the refused one and checks the result against its base;
//   - a device that missed a commit meanwhile rejoins by external commit
//     only onto a GroupInfo that passes the same check.
// Until then it reads and sends in the base epoch (whoever refused reads
// it; the hostile member cannot), drops what is sent in the refused one,
// and makes no commit (ErrQuarantined).

// quarantine is a group's refused commit and what followed it.
type quarantine struct {
	// Epoch is the base's epoch; Commits the refused commit (for Epoch)
	// and the relay's commits after it, in order.
	Epoch   uint64   `json:"epoch"`
	Commits [][]byte `json:"commits"`
	Reason  string   `json:"reason"`
	// Dropped counts messages of the refused version not read.
	Dropped int `json:"dropped,omitempty"`
}

// maxQuarantined bounds the commits kept after a refused one.
const maxQuarantined = 32

// ErrQuarantined: the group holds a refused commit; an admin's recovery
// (or leaving) comes first.
var ErrQuarantined = errors.New("groups: this group holds a change this device refused; waiting for an admin to undo it")

// EventRecovered: a group in quarantine reached a state without the
// refused change.
const EventRecovered EventKind = 21

// quarantined refuses a commit for good: the group stays at its epoch in
// quarantine (the caller told the user why). Called under m.mu.
func (m *Manager) quarantined(ctx context.Context, gm *wire.GroupMessage, rec *record, reason string) (processed, error) {
	if m.opts.NoQuarantine {
		return processed{ok: true}, nil
	}
	rec.Quarantine = &quarantine{Epoch: gm.Epoch, Commits: [][]byte{gm.Content}, Reason: reason}
	if info, err := mls.Peek(gm.Content); err == nil {
		rec.Quarantine.Epoch = info.Epoch
	}
	if err := m.save(ctx, gm.GroupId, rec, nil); err != nil {
		return processed{}, err
	}
	msg, err := m.alert(ctx, gm.GroupId, fmt.Sprintf("a change to the group was refused (%s): this device stays in the group as it was, reads nothing sent in the changed one, and waits for an admin to undo the change", reason))
	if err != nil {
		return processed{}, err
	}
	// An admin's device recovers at once (rejoin, after the fetch).
	return processed{ok: true, msgs: []Message{*msg}, rejoin: m.isAdminIn(rec)}, nil
}

// isAdminIn: this user may remove members under the base's policy (an
// admin, or anyone where members may remove): such a device undoes a
// refused change.
func (m *Manager) isAdminIn(rec *record) bool {
	g, err := mls.UnmarshalGroup(rec.state)
	if err != nil {
		return false
	}
	pol, err := policyOf(g)
	return err == nil && pol.May(m.self.Username, ActRemove)
}

// alert keeps a local history line.
func (m *Manager) alert(ctx context.Context, group []byte, text string) (*Message, error) {
	id, err := content.NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	msg := &Message{Group: group, Seq: uint64(time.Now().UnixNano()) | 1<<63, ID: id, Kind: KindAlert, Received: time.Now(), Text: text}
	if _, err := m.keep(ctx, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// processQuarantined handles a group message of a group in quarantine;
// handled false: the message is of the base epoch, processed as usual.
// Called under m.mu.
func (m *Manager) processQuarantined(ctx context.Context, gm *wire.GroupMessage, rec *record) (processed, bool, error) {
	done := processed{ok: true}
	q := rec.Quarantine
	info, err := mls.Peek(gm.Content)
	if err != nil {
		return done, true, nil
	}
	top := q.Epoch + uint64(len(q.Commits))
	isCommit := info.Content == mls.CommitContent
	switch {
	case info.Epoch < q.Epoch || info.Epoch == q.Epoch && !isCommit:
		return done, false, nil // the base epoch or before: as usual
	case info.Epoch > top:
		// A commit of the chain was withheld: rejoin, checked.
		return processed{ok: true, rejoin: true}, true, nil
	case !isCommit:
		if info.Epoch > q.Epoch {
			q.Dropped++
			m.log.Info("dropping a message of a refused version of the group", "epoch", info.Epoch)
			return done, true, m.save(ctx, gm.GroupId, rec, nil)
		}
		return done, true, nil
	case info.Epoch < top:
		return done, true, nil // a commit of the chain again
	}
	chain := append(slices.Clone(q.Commits), gm.Content)
	g, err := m.recovered(ctx, gm.GroupId, chain)
	var re *replayError
	if errors.As(err, &re) && re.at == len(chain)-1 {
		// Not a commit that follows the chain (damaged, or not for it).
		m.log.Warn("dropping a group commit", "seq", gm.Seq, "err", err)
		return done, true, nil
	}
	if err != nil {
		if len(chain) > maxQuarantined {
			m.log.Warn("a quarantined group's chain is full; dropping a commit", "err", err)
			return done, true, nil
		}
		q.Commits = chain
		m.log.Info("a commit after a refused one does not undo it", "err", err)
		return done, true, m.save(ctx, gm.GroupId, rec, nil)
	}
	msg, err := m.leaveQuarantine(ctx, gm.GroupId, rec, g, gm.Content, "an admin undid the refused change")
	if err != nil {
		return processed{}, true, err
	}
	return processed{ok: true, msgs: []Message{*msg}}, true, nil
}

// leaveQuarantine saves g, the state an admin's commit reached, as the
// group's. Called under m.mu.
func (m *Manager) leaveQuarantine(ctx context.Context, group []byte, rec *record, g *mls.Group, commit []byte, how string) (*Message, error) {
	rec.Quarantine = nil
	if err := m.save(ctx, group, rec, g); err != nil {
		return nil, err
	}
	if err := m.rememberEpoch(ctx, group, g.Epoch(), authenticatorCheck(g), commit); err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("%s: the group is back to %d devices without it, epoch %d", how, len(g.Members()), g.Epoch())
	m.emit(Event{Kind: EventRecovered, Group: group, Detail: detail})
	return m.alert(ctx, group, detail)
}

// lenient lets any credential through, recording the refused ones: a
// refused commit is taken in, apart, only to be undone.
type lenient struct{ v *validator }

func (l lenient) ValidateCredential(old *mls.Credential, cred mls.Credential, sigKey []byte) error {
	_ = l.v.ValidateCredential(old, cred, sigKey)
	return nil
}

// replay loads the base of a group in quarantine and takes in chain on
// top of it, apart (nothing is saved), with the base, its members and
// policy, and what each commit did. Called under m.mu.
func (m *Manager) replay(ctx context.Context, group []byte, chain [][]byte) (g *mls.Group, base []Member, pol *Policy, rcvs []*mls.Received, err error) {
	_, g, err = m.load(ctx, group)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	base = members(g)
	if pol, err = policyOf(g); err != nil {
		return nil, nil, nil, nil, err
	}
	g.SetCredentialValidator(lenient{m.validator()})
	for i, c := range chain {
		rcv, err := g.Handle(c)
		if err == nil && (rcv.Kind != mls.CommitContent || rcv.Removed) {
			err = errors.New("not a commit this device stays in")
		}
		if err != nil {
			return nil, nil, nil, nil, &replayError{at: i, err: err}
		}
		rcvs = append(rcvs, rcv)
	}
	g.SetCredentialValidator(m.validator())
	return g, base, pol, rcvs, nil
}

// replayError: commit at of a chain could not be taken in.
type replayError struct {
	at  int
	err error
}

func (e *replayError) Error() string { return fmt.Sprintf("commit %d after the base: %v", e.at, e.err) }
func (e *replayError) Unwrap() error { return e.err }

// recovered takes chain in on top of the base and returns the state it
// reaches if that undoes the refused change (cleanState) with a later
// commit of an admin. Called under m.mu.
func (m *Manager) recovered(ctx context.Context, group []byte, chain [][]byte) (*mls.Group, error) {
	g, base, pol, rcvs, err := m.replay(ctx, group, chain)
	if err != nil {
		return nil, err
	}
	byAdmin, removed := false, map[uint32]bool{}
	for _, rcv := range rcvs[1:] {
		if rcv.SenderType != mls.SenderMember || !pol.May(userOf(base, rcv.Sender), ActRemove) || !slices.ContainsFunc(base, func(mb Member) bool { return mb.Leaf == rcv.Sender }) {
			continue
		}
		byAdmin = true
		for _, pi := range rcv.Proposals {
			if pi.Type == mls.ProposalRemove {
				removed[pi.Removed] = true
			}
		}
	}
	if !byAdmin {
		return nil, errors.New("no member allowed to remove committed after the refused change")
	}
	if err := m.cleanState(g, base, pol, removed, nil); err != nil {
		return nil, err
	}
	return g, nil
}

// cleanState checks that g holds no refused change against the base
// (its members and policy): every leaf is an org-certified member the
// base held at the same place, every base member is still there unless
// an admin removed it (removed) or it is this device's old leaf (self,
// after a rejoin), and the policy is the base's.
func (m *Manager) cleanState(g *mls.Group, base []Member, pol *Policy, removed map[uint32]bool, self *Member) error {
	v := m.validator()
	now := members(g)
	if len(now) != len(g.Members()) {
		return errors.New("a leaf is not an org-certified identity")
	}
	for _, mb := range g.Members() {
		if _, err := verifyIdentity(v.orgKey, mls.Credential{Type: mls.CredentialBasic, Identity: mb.Identity}, mb.SignatureKey); err != nil {
			return fmt.Errorf("a leaf is not an org-certified identity: %w", err)
		}
	}
	same := func(a, b Member) bool {
		return a.Username == b.Username && a.DeviceID == b.DeviceID && (self != nil || a.Leaf == b.Leaf)
	}
	for _, mb := range now {
		if !slices.ContainsFunc(base, func(b Member) bool { return same(b, mb) }) {
			return fmt.Errorf("%s (device %d) was not in the group", mb.Username, mb.DeviceID)
		}
	}
	for _, b := range base {
		if removed[b.Leaf] || self != nil && b.Username == self.Username && b.DeviceID == self.DeviceID {
			continue
		}
		if !slices.ContainsFunc(now, func(mb Member) bool { return same(b, mb) }) {
			return fmt.Errorf("%s (device %d) is gone, not removed by an admin", b.Username, b.DeviceID)
		}
	}
	next, err := policyOf(g)
	if err != nil {
		return err
	}
	if !samePolicy(pol, next) {
		return errors.New("the group's policy is not the one it had")
	}
	return nil
}

// cleanWelcome checks the group a Welcome brings this device into
// against the base of its quarantine.
func (m *Manager) cleanWelcome(base, g *mls.Group) error {
	pol, err := policyOf(base)
	if err != nil {
		return err
	}
	return m.cleanState(g, members(base), pol, nil, &Member{Username: m.self.Username, DeviceID: m.self.DeviceID})
}

// samePolicy: equal policies (name and description too).
func samePolicy(a, b *Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return sameRules(a, b) && a.Name == b.Name && a.Description == b.Description
}

// recoverGroup brings a group in quarantine back to a clean state: this
// device, an admin's, undoes the refused change with a commit of its
// own; when another commit won that epoch (another admin's), or this
// device is not an admin's and missed a commit, it rejoins by external
// commit onto the relay's GroupInfo if that is clean.
func (m *Manager) recoverGroup(ctx context.Context, group []byte) error {
	r, err := m.relay()
	if err != nil {
		return err
	}
	m.mu.Lock()
	rec, _, err := m.load(ctx, group)
	if err != nil || rec.Quarantine == nil {
		m.mu.Unlock()
		return err
	}
	admin := m.isAdminIn(rec)
	var g *mls.Group
	var base []Member
	var pol *Policy
	if admin {
		g, base, pol, _, err = m.replay(ctx, group, rec.Quarantine.Commits)
	}
	m.mu.Unlock()
	if err != nil {
		m.log.Warn("taking in a refused commit to undo it", "err", err)
	}
	if !admin || err != nil {
		return m.checkedRejoin(ctx, group)
	}
	opts := mls.CommitOptions{}
	req := &wire.GroupCommitRequest{GroupId: group, Epoch: g.Epoch()}
	for _, mb := range g.Members() {
		keep := false
		if id, err := ParseIdentity(mb.Identity); err == nil {
			keep = slices.Contains(base, Member{Username: id.Username, DeviceID: id.DeviceID, Leaf: mb.Index})
			if !keep {
				req.Removed = append(req.Removed, &wire.GroupDevice{Username: id.Username, DeviceId: id.DeviceID})
			}
		}
		if !keep {
			opts.Remove = append(opts.Remove, mb.Index)
		}
	}
	if next, err := policyOf(g); err != nil || !samePolicy(pol, next) {
		if opts.Extensions, err = withPolicy(g, pol); err != nil {
			return err
		}
	}
	p, err := g.Commit(opts)
	if err != nil {
		return fmt.Errorf("groups: undoing a refused change: %w", err)
	}
	req.Commit = p.Commit
	if req.GroupInfo, err = nextGroupInfo(g, p); err != nil {
		return err
	}
	if err := fitHandshake(req); err != nil {
		return err
	}
	resp, err := sendCommit(ctx, r, req)
	if err != nil {
		// The answer lost: the next sync finds the commit taken (then
		// rejoins onto it) or not (and commits again).
		return fmt.Errorf("groups: sending the commit undoing a refused change: %w", err)
	}
	if !resp.Accepted {
		return m.checkedRejoin(ctx, group)
	}
	if err := g.Apply(p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, _, err = m.load(ctx, group)
	if err != nil {
		return err
	}
	if rec.Quarantine == nil {
		return nil // recovered meanwhile
	}
	if err := m.cleanState(g, base, pol, removedLeaves(opts.Remove, base), nil); err != nil {
		return fmt.Errorf("groups: the commit undoing a refused change: %w", err)
	}
	_, err = m.leaveQuarantine(ctx, group, rec, g, p.Commit, "this device undid the refused change")
	return err
}

// removedLeaves are the base members among leaves.
func removedLeaves(leaves []uint32, base []Member) map[uint32]bool {
	out := map[uint32]bool{}
	for _, l := range leaves {
		if slices.ContainsFunc(base, func(mb Member) bool { return mb.Leaf == l }) {
			out[l] = true
		}
	}
	return out
}

// checkedRejoin rejoins a group in quarantine by external commit, only
// onto a GroupInfo whose group is clean against the base.
func (m *Manager) checkedRejoin(ctx context.Context, group []byte) error {
	m.mu.Lock()
	_, g, err := m.load(ctx, group)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	base := members(g)
	pol, err := policyOf(g)
	if err != nil {
		return err
	}
	self := &Member{Username: m.self.Username, DeviceID: m.self.DeviceID}
	err = m.joinExternalChecked(ctx, group, true, func(next *mls.Group) error {
		return m.cleanState(next, base, pol, nil, self)
	})
	if err != nil {
		m.emit(Event{Kind: EventRefused, Group: group, Detail: fmt.Sprintf("not rejoining the group: %v", err)})
		return err
	}
	m.emit(Event{Kind: EventRecovered, Group: group, Detail: "rejoined the group without the refused change"})
	return nil
}
