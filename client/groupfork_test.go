package client

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"sotto/client/groups"
	"sotto/client/transport"
	"sotto/wire"
)

// hostileRelay is a relay connection whose answers a hostile relay
// rewrites: the real relay underneath, the lies in the hooks.
type hostileRelay struct {
	*transport.Conn
	mu sync.Mutex
	// fakeAccept: answer the next commit "accepted" without passing it
	// on (this device alone moves to an epoch nobody else has).
	fakeAccept bool
	// hideCommits: drop other members' commits from fetches.
	hideCommits bool
	// replay: messages put in front of the next fetch.
	replay []*wire.GroupMessage
	// seen: every message fetched, as delivered.
	seen []*wire.GroupMessage
}

func (h *hostileRelay) GroupCommit(ctx context.Context, req *wire.GroupCommitRequest) (*wire.GroupCommitResponse, error) {
	h.mu.Lock()
	fake := h.fakeAccept
	h.fakeAccept = false
	h.mu.Unlock()
	if fake {
		return &wire.GroupCommitResponse{Accepted: true, Epoch: req.Epoch + 1}, nil
	}
	return h.Conn.GroupCommit(ctx, req)
}

func (h *hostileRelay) GroupFetch(ctx context.Context, limit uint32) (*wire.GroupFetchResponse, error) {
	resp, err := h.Conn.GroupFetch(ctx, limit)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, resp.Messages...)
	var out []*wire.GroupMessage
	out = append(out, h.replay...)
	h.replay = nil
	for _, m := range resp.Messages {
		if h.hideCommits && m.Kind == wire.GroupMessageKind_GROUP_COMMIT {
			continue
		}
		out = append(out, m)
	}
	resp.Messages = out
	return resp, nil
}

// hostileManager is u's group manager on a hostile relay (the same store).
func hostileManager(t *testing.T, u *groupUser, opts groups.Options) (*groups.Manager, *hostileRelay) {
	t.Helper()
	ctx := context.Background()
	conn, err := u.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	self, err := u.c.groupSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileRelay{Conn: conn}
	opts.OnEvent = func(e groups.Event) {
		u.mu.Lock()
		u.events = append(u.events, e)
		u.mu.Unlock()
	}
	return groups.New(func() (groups.Relay, error) { return h, nil }, u.c.db, self, opts), h
}

func texts(ms []groups.Message) []string {
	var out []string
	for _, m := range ms {
		if m.Kind == "" {
			out = append(out, m.From+": "+m.Text)
		}
	}
	return out
}

func hasText(ms []groups.Message, s string) bool {
	for _, t := range texts(ms) {
		if strings.HasSuffix(t, ": "+s) {
			return true
		}
	}
	return false
}

// threeInAGroup is alice, bob and carol in one group, synced.
func threeInAGroup(t *testing.T) (*testRelay, []byte, *groupUser, *groupUser, *groupUser) {
	t.Helper()
	r := startRelay(t)
	code := r.code(t, 3, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	id, err := alice.g.Create(context.Background(), "team", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)
	return r, id, alice, bob, carol
}

// A hostile relay forks the group: it tells alice her commit won, and
// takes bob's for the same epoch for everyone else. alice detects it —
// from bob's commit that is not the one she applied, or, when the relay
// hides that commit too, from bob's message whose epoch check differs
// from hers — is told, rejoins by external commit, and reads what
// follows. With the check off she notices nothing and reads nothing.
func TestGroupForkDetected(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hideCommits bool
		check       bool
	}{
		{"commit", false, true},
		{"message", true, true},
		{"check off", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, id, alice, bob, carol := threeInAGroup(t)
			m, h := hostileManager(t, alice, groups.Options{NoForkCheck: !tc.check})
			h.fakeAccept = true
			if err := m.Update(ctx, id); err != nil {
				t.Fatal(err)
			}
			h.hideCommits = tc.hideCommits
			if err := bob.g.Update(ctx, id); err != nil {
				t.Fatal(err)
			}
			carol.sync(t)
			if _, err := bob.g.Send(ctx, id, "after the fork"); err != nil {
				t.Fatal(err)
			}
			got, err := m.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			forked := alice.eventsOf(groups.EventForked)
			if !tc.check {
				if len(forked) != 0 || hasText(got, "after the fork") {
					t.Fatalf("with the check off: events %+v, messages %q", forked, texts(got))
				}
				// And alice stays cut off.
				if _, err := bob.g.Send(ctx, id, "still forked"); err != nil {
					t.Fatal(err)
				}
				if got, _ := m.Sync(ctx); hasText(got, "still forked") {
					t.Fatal("alice read the other side of the fork")
				}
				return
			}
			if len(forked) != 1 || len(alice.eventsOf(groups.EventRejoined)) != 1 {
				t.Fatalf("alice: %+v", alice.events)
			}
			hist, err := m.Messages(ctx, id, 0)
			if err != nil || !strings.Contains(hist[len(hist)-1].Text, "different commits") || hist[len(hist)-1].Kind != groups.KindAlert {
				t.Fatalf("history: %+v %v", hist, err)
			}
			bob.sync(t)
			carol.sync(t)
			if _, err := bob.g.Send(ctx, id, "after the rejoin"); err != nil {
				t.Fatal(err)
			}
			if got, err := m.Sync(ctx); err != nil || !hasText(got, "after the rejoin") {
				t.Fatalf("alice after rejoining: %q %v", texts(got), err)
			}
			if _, err := m.Send(ctx, id, "alice is back"); err != nil {
				t.Fatal(err)
			}
			for _, u := range []*groupUser{bob, carol} {
				if got := u.sync(t); !hasText(got, "alice is back") {
					t.Fatalf("%s: %q", u.name, texts(got))
				}
			}
		})
	}
}

// A hostile relay withholds alice's commit from carol: carol detects it
// at the first message of the later epoch, is told, rejoins and reads on.
// With the check off she stays behind, reading nothing new.
func TestGroupWithheldCommitDetected(t *testing.T) {
	for _, check := range []bool{true, false} {
		name := "check on"
		if !check {
			name = "check off"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			_, id, alice, bob, carol := threeInAGroup(t)
			m, h := hostileManager(t, carol, groups.Options{NoForkCheck: !check})
			h.hideCommits = true
			if err := alice.g.Update(ctx, id); err != nil {
				t.Fatal(err)
			}
			bob.sync(t)
			if _, err := alice.g.Send(ctx, id, "in the new epoch"); err != nil {
				t.Fatal(err)
			}
			got, err := m.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h.hideCommits = false
			withheld := carol.eventsOf(groups.EventWithheld)
			if hasText(got, "in the new epoch") {
				t.Fatal("carol read a message of an epoch she never entered")
			}
			if !check {
				if len(withheld) != 0 {
					t.Fatalf("with the check off: %+v", withheld)
				}
				if _, err := alice.g.Send(ctx, id, "later"); err != nil {
					t.Fatal(err)
				}
				if got, _ := m.Sync(ctx); hasText(got, "later") {
					t.Fatal("carol caught up without the check")
				}
				return
			}
			if len(withheld) != 1 || len(carol.eventsOf(groups.EventRejoined)) != 1 {
				t.Fatalf("carol: %+v", carol.events)
			}
			alice.sync(t)
			bob.sync(t)
			if _, err := alice.g.Send(ctx, id, "later"); err != nil {
				t.Fatal(err)
			}
			if got, err := m.Sync(ctx); err != nil || !hasText(got, "later") {
				t.Fatalf("carol after rejoining: %q %v", texts(got), err)
			}
			wantMembers(t, id, []string{"alice", "bob", "carol"}, alice, bob)
		})
	}
}

// A hostile relay delivers a commit bob already applied again (with its
// relay epoch rewritten to bob's current one): it is refused, bob's state
// does not change, no fork is reported, and the group goes on.
func TestGroupReplayedCommitRefused(t *testing.T) {
	ctx := context.Background()
	_, id, alice, bob, _ := threeInAGroup(t)
	m, h := hostileManager(t, bob, groups.Options{})
	if err := alice.g.Update(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var commit *wire.GroupMessage
	for _, gm := range h.seen {
		if gm.Kind == wire.GroupMessageKind_GROUP_COMMIT {
			commit = gm
		}
	}
	if commit == nil {
		t.Fatal("no commit seen")
	}
	epoch := bob.epoch(t, id)
	changed := len(bob.eventsOf(groups.EventChanged))
	commit.Epoch = epoch
	h.replay = []*wire.GroupMessage{commit}
	if _, err := alice.g.Send(ctx, id, "after the replay"); err != nil {
		t.Fatal(err)
	}
	got, err := m.Sync(ctx)
	if err != nil || !hasText(got, "after the replay") {
		t.Fatalf("%q %v", texts(got), err)
	}
	if bob.epoch(t, id) != epoch || len(bob.eventsOf(groups.EventForked)) != 0 || len(bob.eventsOf(groups.EventChanged)) != changed {
		t.Fatalf("the replay changed something: epoch %d (was %d), events %+v", bob.epoch(t, id), epoch, bob.events)
	}
}

// A message that decrypts but whose epoch check differs from the one this
// device kept for that epoch (its own view of the epoch, overwritten
// here) is a fork too: detected, told, rejoined.
func TestGroupEpochCheckMismatch(t *testing.T) {
	ctx := context.Background()
	_, id, alice, bob, _ := threeInAGroup(t)
	key := binary.BigEndian.AppendUint64(append([]byte(nil), id...), alice.epoch(t, id))
	if err := alice.c.db.Put(ctx, "mls-epoch-checks", key, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Send(ctx, id, "seen differently"); err != nil {
		t.Fatal(err)
	}
	got := alice.sync(t)
	if hasText(got, "seen differently") || len(alice.eventsOf(groups.EventForked)) != 1 || len(alice.eventsOf(groups.EventRejoined)) != 1 {
		t.Fatalf("alice: %q %+v", texts(got), alice.events)
	}
}
