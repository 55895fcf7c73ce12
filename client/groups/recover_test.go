package groups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"sotto/mls"
	"sotto/wire"
)

// recoverUser is a real Manager with the events it emitted.
type recoverUser struct {
	*Manager
	mu     sync.Mutex
	events []Event
}

func (u *recoverUser) told(kind EventKind) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, e := range u.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func (u *recoverUser) users(t *testing.T, id []byte) []string {
	t.Helper()
	info, err := u.Info(context.Background(), id)
	if err != nil {
		t.Fatalf("%s: %v", u.self.Username, err)
	}
	var out []string
	for _, mb := range info.Members {
		out = append(out, mb.Username)
	}
	slices.Sort(out)
	return out
}

func (u *recoverUser) reads(t *testing.T, text string) bool {
	t.Helper()
	ms, err := u.Sync(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", u.self.Username, err)
	}
	return slices.ContainsFunc(ms, func(m Message) bool { return m.Kind == "" && m.Text == text })
}

// hostileAdd has u's client, skipping its own checks, commit adding
// kps (with their relay delivery) and send it with the next GroupInfo,
// as a hostile member's client would; the relay takes it (it cannot read
// the policy).
func hostileAdd(t *testing.T, u *recoverUser, id []byte, kps [][]byte, added []*wire.GroupDevice) {
	t.Helper()
	ctx := context.Background()
	g, err := ReadState(ctx, u.kv, id)
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Commit(mls.CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	req := &wire.GroupCommitRequest{GroupId: id, Epoch: g.Epoch(), Commit: p.Commit, Welcome: p.Welcome, Added: added}
	if req.GroupInfo, err = nextGroupInfo(g, p); err != nil {
		t.Fatal(err)
	}
	r, err := u.relay()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sendCommit(ctx, r, req)
	if err != nil || !resp.Accepted {
		t.Fatalf("the relay did not take the hostile commit: %+v %v", resp, err)
	}
}

// runRefusedAdd mounts a non-admin's add through a real relay: bob (not
// an admin) has his hostile client add dave; dave joins and writes in
// the changed group. It reports whether the defence held: alice (the
// admin) and carol refuse the add, are told, never hold a group with
// dave, and converge with alice's undo; alice's next message reaches
// carol (and bob, who rejoins) and not dave.
func runRefusedAdd(t *testing.T, defence, ghost bool) (held bool, detail string) {
	ctx := context.Background()
	r := startScaleRelay(t)
	devs := r.enroll(t, []string{"alice", "bob", "carol", "dave"})
	us := map[string]*recoverUser{}
	for _, d := range devs {
		u := &recoverUser{}
		m := r.manager(t, d)
		m.opts.NoQuarantine = !defence
		m.opts.OnEvent = func(e Event) {
			u.mu.Lock()
			u.events = append(u.events, e)
			u.mu.Unlock()
		}
		u.Manager = m
		us[d.self.Username] = u
	}
	alice, bob, carol, dave := us["alice"], us["bob"], us["carol"], us["dave"]
	id, err := alice.CreateGroup(ctx, CreateOptions{Name: "team", Users: []string{"bob", "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*recoverUser{bob, carol} {
		if _, err := u.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	team := []string{"alice", "bob", "carol"}
	if got := carol.users(t, id); !slices.Equal(got, team) {
		t.Fatalf("carol's group: %v", got)
	}
	before, err := carol.Info(ctx, id)
	if err != nil {
		t.Fatal(err)
	}

	// bob's own client says no; his hostile one adds dave anyway.
	if err := bob.Add(ctx, id, "dave"); err == nil {
		t.Fatal("bob's client let a non-admin add")
	}
	if ghost {
		// A leaf no organization certified, for a device of dave's.
		sig, err := mls.GenerateSignatureKey(Suite)
		if err != nil {
			t.Fatal(err)
		}
		kp, _, err := mls.NewKeyPackageWithOptions(Suite, fmt.Appendf(nil, "dave/%d", dave.self.DeviceID), sig, &mls.KeyPackageOptions{SupportedExtensions: supportedExtensions})
		if err != nil {
			t.Fatal(err)
		}
		hostileAdd(t, bob, id, [][]byte{kp}, []*wire.GroupDevice{{Username: "dave", DeviceId: dave.self.DeviceID}})
	} else {
		br, _ := bob.relay()
		kps, err := br.FetchKeyPackages(ctx, "dave")
		if err != nil || len(kps.KeyPackages) == 0 {
			t.Fatalf("dave's key packages: %v", err)
		}
		hostileAdd(t, bob, id, [][]byte{kps.KeyPackages[0].KeyPackage}, []*wire.GroupDevice{{Username: "dave", DeviceId: kps.KeyPackages[0].DeviceId}})
		if _, err := dave.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := dave.Send(ctx, id, "dave is here"); err != nil {
			t.Fatal(err)
		}
	}

	// carol refuses; dave's message is of the refused group.
	if carol.reads(t, "dave is here") {
		return false, "carol read a message of the group with dave in it"
	}
	if carol.told(EventNotAllowed)+carol.told(EventRefused) == 0 {
		t.Fatal("carol was not told of the refused add")
	}
	if got := carol.users(t, id); !slices.Equal(got, team) {
		return false, fmt.Sprintf("carol's group holds %v: she took in the add she refused", got)
	}
	if defence {
		if err := carol.Update(ctx, id); !errors.Is(err, ErrQuarantined) {
			t.Fatalf("a commit in quarantine: %v", err)
		}
		ms, err := carol.Messages(ctx, id, 0)
		if err != nil || !slices.ContainsFunc(ms, func(m Message) bool { return m.Kind == KindAlert }) {
			t.Fatalf("carol's history shows no refusal: %v", err)
		}
	}

	// alice, the admin, refuses too and undoes it.
	if alice.reads(t, "dave is here") {
		return false, "alice read a message of the group with dave in it"
	}
	if got := alice.users(t, id); !slices.Equal(got, team) {
		return false, fmt.Sprintf("alice's group holds %v: she took in the add she refused", got)
	}
	if _, err := carol.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := carol.users(t, id); !slices.Equal(got, team) {
		return false, fmt.Sprintf("carol's group holds %v", got)
	}
	ea, _ := alice.Info(ctx, id)
	ec, _ := carol.Info(ctx, id)
	if ea.Epoch != ec.Epoch || carol.told(EventRecovered) == 0 {
		return false, fmt.Sprintf("alice (epoch %d) and carol (epoch %d) did not converge; carol told of a recovery %d times", ea.Epoch, ec.Epoch, carol.told(EventRecovered))
	}
	if _, err := dave.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !ghost && dave.told(EventRemoved) == 0 {
		return false, "dave was not removed"
	}
	if _, err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*recoverUser{alice, carol} {
		if _, err := u.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Send(ctx, id, "without dave"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*recoverUser{carol, bob} {
		if !u.reads(t, "without dave") {
			return false, fmt.Sprintf("%s did not read alice's message after the undo", u.self.Username)
		}
	}
	if dave.reads(t, "without dave") {
		return false, "dave read alice's message after the undo"
	}
	return true, fmt.Sprintf("alice and carol refused the add and stayed at epoch %d; alice's commit removed the added leaf; all three read on at epoch %d", before.Epoch, ec.Epoch)
}

// A non-admin's add, or a ghost (a leaf no organization certified),
// committed by a hostile client and taken by the relay, is refused by
// every honest member, who then converge on the
// admin's undo instead of staying behind (before: every later message
// was unreadable to them) or rejoining the relay's group, hostile
// member and all. With the quarantine off (Options.NoQuarantine), the
// attack gets through: carol's withheld-commit rejoin takes dave in, or
// (the ghost, who sends nothing) alice and carol stay behind for good.
func TestRefusedCommitRecovery(t *testing.T) {
	for _, ghost := range []bool{false, true} {
		t.Run(fmt.Sprintf("ghost=%v", ghost), func(t *testing.T) {
			held, detail := runRefusedAdd(t, true, ghost)
			if !held {
				t.Fatalf("with the defence: %s", detail)
			}
			t.Logf("with the defence: %s", detail)
			held, detail = runRefusedAdd(t, false, ghost)
			if held {
				t.Fatalf("with the quarantine off the attack was still stopped: %s", detail)
			}
			t.Logf("with the quarantine off: %s", detail)
		})
	}
}

// An admin whose client took the refused add in (an older client, which
// rejoined the relay's group) commits on top of it: carol, in
// quarantine, sees an admin's commit after the refused one but does not
// accept the group it reaches, which still holds dave.
func TestQuarantineRefusesAnAdminsCommitKeepingTheChange(t *testing.T) {
	ctx := context.Background()
	r := startScaleRelay(t)
	devs := r.enroll(t, []string{"alice", "bob", "carol", "dave"})
	us := map[string]*recoverUser{}
	for _, d := range devs {
		u := &recoverUser{Manager: r.manager(t, d)}
		us[d.self.Username] = u
	}
	alice, bob, carol, dave := us["alice"], us["bob"], us["carol"], us["dave"]
	alice.opts.NoQuarantine = true
	id, err := alice.CreateGroup(ctx, CreateOptions{Name: "team", Users: []string{"bob", "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*recoverUser{bob, carol} {
		if _, err := u.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	br, _ := bob.relay()
	kps, err := br.FetchKeyPackages(ctx, "dave")
	if err != nil || len(kps.KeyPackages) == 0 {
		t.Fatalf("dave's key packages: %v", err)
	}
	hostileAdd(t, bob, id, [][]byte{kps.KeyPackages[0].KeyPackage}, []*wire.GroupDevice{{Username: "dave", DeviceId: kps.KeyPackages[0].DeviceId}})
	if _, err := dave.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Send(ctx, id, "dave is here"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := alice.users(t, id); !slices.Contains(got, "dave") {
		t.Fatalf("alice's older client did not take dave in: %v", got)
	}
	if err := alice.Update(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, id, "with dave"); err != nil {
		t.Fatal(err)
	}
	if carol.reads(t, "with dave") {
		t.Fatal("carol read a message of the group holding dave")
	}
	if got := carol.users(t, id); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("carol accepted the admin's commit on top of the refused add: %v", got)
	}
	rec, _, err := carol.load(ctx, id)
	if err != nil || rec.Quarantine == nil || len(rec.Quarantine.Commits) != 3 {
		t.Fatalf("carol's quarantine: %v %+v", err, rec.Quarantine)
	}
}
