package redteam

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"sotto/client"
	"sotto/client/groups"
)

// Attacks of a hostile relay on group chats' integrity: it forks a group
// (members get different commits for the same epoch), withholds a commit
// from one member, or delivers an applied commit again. It does it the
// way its operator can: in its SQLite file (relay/sqlitestore/groups.go),
// behind the relay's back.

func groupAttacks() []Attack {
	return []Attack{
		{
			Name:    "group-fork",
			Threat:  "the relay gives members different commits for the same epoch (it takes alice's commit, then rolls the group back in its database and takes bob's for the same epoch, which everyone else gets): the group splits in two that cannot read each other, silently",
			Defence: "every group message carries the sender's epoch check (a hash of the RFC 9420 epoch_authenticator) in its Content and MLS authenticated data, and members keep the commit they applied per epoch: a commit for an epoch left that is not the one applied, or a message of the own epoch with another check, is a fork, told to the user (event, history line), who rejoins by external commit (client/groups/forkcheck.go)",
			Switch:  "client.Options.NoGroupForkCheck (the detection off)",
			Run:     runGroupFork,
		},
		{
			Name:    "group-withheld-commit",
			Threat:  "the relay withholds a commit from one member (moves her delivery cursor past it in its database): she stays in an old epoch, reading nothing the others write, and is not told",
			Defence: "a message of an epoch later than the member's own, with no commit of hers in flight, shows the commit was withheld (the relay delivers a group's messages in order): she is told and rejoins by external commit (client/groups/forkcheck.go)",
			Switch:  "client.Options.NoGroupForkCheck (the detection off)",
			Run:     runGroupWithheld,
		},
		{
			Name:     "group-replayed-commit",
			Threat:   "the relay delivers a commit a member applied again, as a new message of the group (inserted in its database), to move her state or trigger a false alarm",
			Defence:  "a commit of an epoch the member left is ignored when it is the commit she applied (she keeps its hash per epoch) and MLS refuses a commit of another epoch than the current one; no state change, no alarm",
			Verified: "no switch (the MLS epoch rule cannot be turned off); client.TestGroupReplayedCommitRefused replays it through a hostile connection too",
			Run:      runGroupReplay,
		},
		groupRecoverAttack(),
	}
}

// groupMember is a member with its group manager and what it was told.
type groupMember struct {
	*Member
	name string
	g    *groups.Manager
	mu   sync.Mutex
	seen []groups.Event
}

func (m *groupMember) told(kind groups.EventKind) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.seen {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// reads syncs and reports whether text arrived.
func (m *groupMember) reads(ctx context.Context, text string) (bool, error) {
	ms, err := m.g.Sync(ctx)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ms, func(x groups.Message) bool { return x.Kind == "" && x.Text == text }), nil
}

// groupWorld is a relay with alice, bob and carol in one group (every
// member may add, remove and rename), each with the fork check as
// defence says.
func groupWorld(ctx context.Context, e *Env, defence bool) (*Relay, []byte, map[string]*groupMember, error) {
	return groupWorldWith(ctx, e, func(o *client.Options) { o.NoGroupForkCheck = !defence })
}

// groupWorldWith is groupWorld with the members' options set by set.
func groupWorldWith(ctx context.Context, e *Env, set func(*client.Options)) (*Relay, []byte, map[string]*groupMember, error) {
	r, err := e.StartRelay(ctx, RelayOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	ms := map[string]*groupMember{}
	for _, u := range []string{"alice", "bob", "carol"} {
		o := MemberOptions(nil)
		set(o)
		m, err := e.EnrollWith(ctx, r, u, "", false, o, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		gm := &groupMember{Member: m, name: u}
		if gm.g, err = m.Groups(ctx, func(ev groups.Event) {
			gm.mu.Lock()
			gm.seen = append(gm.seen, ev)
			gm.mu.Unlock()
		}); err != nil {
			return nil, nil, nil, err
		}
		ms[u] = gm
	}
	id, err := ms["alice"].g.Create(ctx, "team", "bob", "carol")
	if err != nil {
		return nil, nil, nil, err
	}
	for _, u := range []string{"bob", "carol"} {
		if _, err := ms[u].g.Sync(ctx); err != nil {
			return nil, nil, nil, err
		}
	}
	return r, id, ms, nil
}

// commitOf returns the content and seq of the group's commit for epoch.
func commitOf(ctx context.Context, r *Relay, id []byte, epoch uint64) ([]byte, int64, error) {
	db, err := r.DB()
	if err != nil {
		return nil, 0, err
	}
	var content []byte
	var seq int64
	err = db.QueryRowContext(ctx, `SELECT content, seq FROM group_messages WHERE group_id = ? AND kind = 2 AND epoch = ?`, id, int64(epoch)).Scan(&content, &seq)
	return content, seq, err
}

func runGroupFork(ctx context.Context, e *Env, defence bool) (Outcome, error) {
	r, id, ms, err := groupWorld(ctx, e, defence)
	if err != nil {
		return Outcome{}, err
	}
	alice, bob, carol := ms["alice"], ms["bob"], ms["carol"]
	info, err := alice.g.Info(ctx, id)
	if err != nil {
		return Outcome{}, err
	}
	epoch := info.Epoch
	if err := alice.g.Update(ctx, id); err != nil {
		return Outcome{}, err
	}
	// The operator rolls the group back one epoch and drops alice's
	// commit: bob's commit for the same epoch is taken too.
	db, err := r.DB()
	if err != nil {
		return Outcome{}, err
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM group_messages WHERE group_id = ? AND kind = 2 AND epoch = ?`, id, int64(epoch)); err != nil {
		return Outcome{}, err
	}
	if _, err := db.ExecContext(ctx, `UPDATE mls_groups SET epoch = ? WHERE id = ?`, int64(epoch), id); err != nil {
		return Outcome{}, err
	}
	if err := bob.g.Update(ctx, id); err != nil {
		return Outcome{}, err
	}
	if _, err := carol.g.Sync(ctx); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.g.Send(ctx, id, "after the fork"); err != nil {
		return Outcome{}, err
	}
	read, err := alice.reads(ctx, "after the fork")
	if err != nil {
		return Outcome{}, err
	}
	if read {
		return through("alice read a message of the other side of the fork"), nil
	}
	if alice.told(groups.EventForked) == 0 {
		return through("alice, on her own side of a forked group, was not told and reads nothing bob and carol write"), nil
	}
	// Rejoined: she reads what follows.
	if _, err := bob.g.Sync(ctx); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.g.Send(ctx, id, "after the rejoin"); err != nil {
		return Outcome{}, err
	}
	if read, err := alice.reads(ctx, "after the rejoin"); err != nil || !read {
		return through("alice was told of the fork but did not get back into the group (%v)", err), nil
	}
	return stopped("alice detected the fork (%d alarm), rejoined by external commit (%d) and read bob's next message", alice.told(groups.EventForked), alice.told(groups.EventRejoined)), nil
}

func runGroupWithheld(ctx context.Context, e *Env, defence bool) (Outcome, error) {
	r, id, ms, err := groupWorld(ctx, e, defence)
	if err != nil {
		return Outcome{}, err
	}
	alice, bob, carol := ms["alice"], ms["bob"], ms["carol"]
	info, err := alice.g.Info(ctx, id)
	if err != nil {
		return Outcome{}, err
	}
	if err := alice.g.Update(ctx, id); err != nil {
		return Outcome{}, err
	}
	_, seq, err := commitOf(ctx, r, id, info.Epoch)
	if err != nil {
		return Outcome{}, err
	}
	acct, err := r.Store.AccountByName(ctx, "carol")
	if err != nil {
		return Outcome{}, err
	}
	db, err := r.DB()
	if err != nil {
		return Outcome{}, err
	}
	// carol's cursor moves past the commit, as if she had taken it.
	if _, err := db.ExecContext(ctx, `UPDATE group_members SET acked_seq = ? WHERE group_id = ? AND account = ?`, seq, id, acct.ID[:]); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.g.Sync(ctx); err != nil {
		return Outcome{}, err
	}
	if _, err := alice.g.Send(ctx, id, "in the new epoch"); err != nil {
		return Outcome{}, err
	}
	if read, err := carol.reads(ctx, "in the new epoch"); err != nil || read {
		return Outcome{}, fmt.Errorf("carol read a message of an epoch she never entered (%v)", err)
	}
	if carol.told(groups.EventWithheld) == 0 {
		return through("carol, kept in the old epoch, was not told and reads nothing more"), nil
	}
	for _, u := range []*groupMember{alice, bob} {
		if _, err := u.g.Sync(ctx); err != nil {
			return Outcome{}, err
		}
	}
	if _, err := alice.g.Send(ctx, id, "later"); err != nil {
		return Outcome{}, err
	}
	if read, err := carol.reads(ctx, "later"); err != nil || !read {
		return through("carol was told but did not get back into the group (%v)", err), nil
	}
	return stopped("carol detected the withheld commit, rejoined by external commit and read on"), nil
}

func runGroupReplay(ctx context.Context, e *Env, defence bool) (Outcome, error) {
	r, id, ms, err := groupWorld(ctx, e, defence)
	if err != nil {
		return Outcome{}, err
	}
	alice, bob := ms["alice"], ms["bob"]
	info, err := alice.g.Info(ctx, id)
	if err != nil {
		return Outcome{}, err
	}
	if err := alice.g.Update(ctx, id); err != nil {
		return Outcome{}, err
	}
	commit, _, err := commitOf(ctx, r, id, info.Epoch)
	if err != nil {
		return Outcome{}, err
	}
	if _, err := bob.g.Sync(ctx); err != nil {
		return Outcome{}, err
	}
	before, err := bob.g.Info(ctx, id)
	if err != nil {
		return Outcome{}, err
	}
	changed := bob.told(groups.EventChanged)
	// The operator stores the applied commit again as the group's next
	// message, stamped with bob's current epoch.
	db, err := r.DB()
	if err != nil {
		return Outcome{}, err
	}
	acct, err := r.Store.AccountByName(ctx, "alice")
	if err != nil {
		return Outcome{}, err
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO group_messages (group_id, seq, kind, epoch, ts_ms, sender_account, sender_device, content)
		SELECT id, next_seq, 2, ?, ?, ?, 1, ? FROM mls_groups WHERE id = ?`, int64(before.Epoch), time.Now().UnixMilli(), acct.ID[:], commit, id); err != nil {
		return Outcome{}, err
	}
	if _, err := db.ExecContext(ctx, `UPDATE mls_groups SET next_seq = next_seq + 1 WHERE id = ?`, id); err != nil {
		return Outcome{}, err
	}
	if _, err := alice.g.Send(ctx, id, "after the replay"); err != nil {
		return Outcome{}, err
	}
	read, err := bob.reads(ctx, "after the replay")
	if err != nil {
		return Outcome{}, err
	}
	after, err := bob.g.Info(ctx, id)
	if err != nil {
		return Outcome{}, err
	}
	switch {
	case after.Epoch != before.Epoch || bob.told(groups.EventChanged) != changed:
		return through("the replayed commit moved bob's group from epoch %d to %d", before.Epoch, after.Epoch), nil
	case bob.told(groups.EventForked) > 0:
		return through("the replay raised a false fork alarm"), nil
	case !read:
		return through("after the replay bob no longer reads the group"), nil
	}
	return stopped("the replayed commit was ignored: bob stayed at epoch %d, no alarm, and read on", after.Epoch), nil
}
