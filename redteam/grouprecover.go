package redteam

import (
	"context"
	"fmt"
	"slices"
	"time"

	"sotto/client"
	"sotto/client/groups"
	"sotto/mls"
)

// groupRecoverAttack: the relay puts a ghost into a group by external
// commit, so that the members who refuse it are stuck behind the
// relay's group for good.
func groupRecoverAttack() Attack {
	return Attack{
		Name:    "group-ghost-stalls-group",
		Threat:  "the relay's operator joins a ghost (a leaf no organization certified) to a group by external commit from the GroupInfo it holds, and makes it the group's next epoch in its database: every member refuses the commit, and before, stayed at the old epoch while the relay's group moved on, so that no member could commit again (every commit lost to the ghost's) and a later rejoin would take the ghost in",
		Defence: "a member that refuses a commit keeps the group in quarantine and shows it; a member allowed to remove takes the refused commit in apart and commits, on top, the removal of every leaf the group did not hold; the others accept that only if the result holds no member, and no policy, the group did not, and rejoin by external commit only onto such a group (client/groups/recover.go)",
		Switch:  "client.Options.NoGroupQuarantine (the quarantine off)",
		Run:     runGroupGhostStall,
	}
}

func runGroupGhostStall(ctx context.Context, e *Env, defence bool) (Outcome, error) {
	r, id, ms, err := groupWorldWith(ctx, e, func(o *client.Options) { o.NoGroupQuarantine = !defence })
	if err != nil {
		return Outcome{}, err
	}
	alice, bob, carol := ms["alice"], ms["bob"], ms["carol"]
	info, err := alice.g.Info(ctx, id)
	if err != nil {
		return Outcome{}, err
	}
	// The operator: the group's GroupInfo, an external commit bringing
	// a ghost, stored as the group's next commit.
	db, err := r.DB()
	if err != nil {
		return Outcome{}, err
	}
	defer db.Close()
	var gi []byte
	if err := db.QueryRowContext(ctx, `SELECT group_info FROM mls_groups WHERE id = ?`, id).Scan(&gi); err != nil {
		return Outcome{}, err
	}
	seed, err := mls.GenerateSignatureKey(groups.Suite)
	if err != nil {
		return Outcome{}, err
	}
	g, commit, err := mls.JoinExternalWithOptions(gi, []byte("ghost/1"), seed, &mls.ExternalJoinOptions{SupportedExtensions: []uint16{groups.ExtensionPolicy}})
	if err != nil {
		return Outcome{}, fmt.Errorf("the ghost's external commit: %w", err)
	}
	next, err := g.GroupInfo()
	if err != nil {
		return Outcome{}, err
	}
	acct, err := r.Store.AccountByName(ctx, "alice")
	if err != nil {
		return Outcome{}, err
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO group_messages (group_id, seq, kind, epoch, ts_ms, sender_account, sender_device, content)
		SELECT id, next_seq, 2, ?, ?, ?, 99, ? FROM mls_groups WHERE id = ?`, int64(info.Epoch), time.Now().UnixMilli(), acct.ID[:], commit, id); err != nil {
		return Outcome{}, err
	}
	if _, err := db.ExecContext(ctx, `UPDATE mls_groups SET next_seq = next_seq + 1, epoch = ?, group_info = ? WHERE id = ?`, int64(info.Epoch+1), next, id); err != nil {
		return Outcome{}, err
	}

	if _, err := alice.g.Sync(ctx); err != nil {
		return Outcome{}, err
	}
	if alice.told(groups.EventRefused) == 0 {
		return Outcome{}, fmt.Errorf("alice was not told of the ghost (the credential check, not this defence): %+v", alice.seen)
	}
	for _, u := range []*groupMember{bob, carol, alice} {
		if _, err := u.g.Sync(ctx); err != nil {
			return Outcome{}, err
		}
	}
	// Stuck or not: alice changes the group.
	if err := alice.g.Update(ctx, id); err != nil {
		return through("after refusing the ghost, alice can no longer change the group: %v", err), nil
	}
	for _, u := range []*groupMember{bob, carol} {
		if _, err := u.g.Sync(ctx); err != nil {
			return Outcome{}, err
		}
	}
	if _, err := alice.g.Send(ctx, id, "after the ghost"); err != nil {
		return Outcome{}, err
	}
	epochs := map[uint64]bool{}
	for _, u := range []*groupMember{bob, carol, alice} {
		if u != alice {
			read, err := u.reads(ctx, "after the ghost")
			if err != nil {
				return Outcome{}, err
			}
			if !read {
				return through("%s no longer reads alice", u.name), nil
			}
		}
		in, err := u.g.Info(ctx, id)
		if err != nil {
			return Outcome{}, err
		}
		var users []string
		for _, mb := range in.Members {
			users = append(users, mb.Username)
		}
		slices.Sort(users)
		if !slices.Equal(slices.Compact(users), []string{"alice", "bob", "carol"}) || len(in.Members) != 3 {
			return through("%s's group holds %v", u.name, users), nil
		}
		epochs[in.Epoch] = true
	}
	if len(epochs) != 1 {
		return through("the members did not converge: epochs %v", epochs), nil
	}
	return stopped("every member refused the ghost and was told; the ghost's leaf was removed by a member's commit on top of it; alice could commit again and all three read her next message in the same epoch, with three members"), nil
}
