package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"sotto/client/groups"
	"sotto/client/orgstate"
	"sotto/client/transport"
	"sotto/mls"
	"sotto/relay"
	"sotto/wire"
)

// groupUser is an enrolled client with its group manager and events.
type groupUser struct {
	name   string
	c      *Client
	g      *groups.Manager
	mu     sync.Mutex
	events []groups.Event
}

func (u *groupUser) eventsOf(kind groups.EventKind) []groups.Event {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []groups.Event
	for _, e := range u.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// newGroupUser enrolls name; Connect stocked its KeyPackages on the relay.
func newGroupUser(t *testing.T, r *testRelay, code, name string) *groupUser {
	t.Helper()
	ctx := context.Background()
	c, _ := r.enroll(t, code, name, false)
	u := &groupUser{name: name, c: c}
	g, err := c.Groups(ctx, func(e groups.Event) {
		u.mu.Lock()
		u.events = append(u.events, e)
		u.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	u.g = g
	if n, err := g.RefillKeyPackages(ctx); err != nil || n != 0 {
		t.Fatalf("%s: Connect left key packages to refill: %d %v", name, n, err)
	}
	return u
}

func (u *groupUser) sync(t *testing.T) []groups.Message {
	t.Helper()
	msgs, err := u.g.Sync(context.Background())
	if err != nil {
		t.Fatalf("%s: sync: %v", u.name, err)
	}
	return msgs
}

func (u *groupUser) epoch(t *testing.T, id []byte) uint64 {
	t.Helper()
	info, err := u.g.Info(context.Background(), id)
	if err != nil {
		t.Fatalf("%s: %v", u.name, err)
	}
	return info.Epoch
}

func (u *groupUser) members(t *testing.T, id []byte) []string {
	t.Helper()
	info, err := u.g.Info(context.Background(), id)
	if err != nil {
		t.Fatalf("%s: %v", u.name, err)
	}
	var out []string
	for _, m := range info.Members {
		out = append(out, m.Username)
	}
	slices.Sort(out)
	return out
}

func wantMembers(t *testing.T, id []byte, want []string, us ...*groupUser) {
	t.Helper()
	for _, u := range us {
		if got := u.members(t, id); !slices.Equal(got, want) {
			t.Fatalf("%s sees members %v, want %v", u.name, got, want)
		}
	}
}

func wantTexts(t *testing.T, who string, msgs []groups.Message, want ...string) {
	t.Helper()
	var got []string
	for _, m := range msgs {
		got = append(got, m.From+": "+m.Text)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s received %q, want %q", who, got, want)
	}
}

// forgedKeyPackage is a KeyPackage claiming to be user's device that no
// organization certified: what a hostile relay (or member) would add.
func forgedKeyPackage(t *testing.T, user string, device uint32) []byte {
	t.Helper()
	sig, err := mls.GenerateSignatureKey(groups.Suite)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Appendf(nil, "%s/%d", user, device)
	kp, _, err := mls.NewKeyPackageWithOptions(groups.Suite, id, sig, &mls.KeyPackageOptions{SupportedExtensions: []uint16{groups.ExtensionPolicy}})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// Groups end to end with a real relay (SQLite files) and real clients:
// create, add, message, concurrent commits from two members resolved with
// both changes applied, a removed member reads nothing more, and ghosts
// (KeyPackages or commits bringing a member the organization did not
// certify) refused by every member, who is told.
func TestGroupsEndToEnd(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 6, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	dave := newGroupUser(t, r, code, "dave")
	erin := newGroupUser(t, r, code, "erin")

	// alice creates a group with bob; bob joins from the Welcome.
	id, err := alice.g.Create(ctx, "team", "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	if len(bob.eventsOf(groups.EventJoined)) != 1 {
		t.Fatalf("bob's events: %+v", bob.events)
	}
	wantMembers(t, id, []string{"alice", "bob"}, alice, bob)

	// carol is added; everyone agrees; a message reaches both others.
	if err := alice.g.Add(ctx, id, "carol"); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)
	wantMembers(t, id, []string{"alice", "bob", "carol"}, alice, bob, carol)
	if _, err := alice.g.Send(ctx, id, "hello team"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, "bob", bob.sync(t), "alice: hello team")
	wantTexts(t, "carol", carol.sync(t), "alice: hello team")
	wantTexts(t, "alice", alice.sync(t)) // not delivered back to its sender
	// Both keep it in the group's messages: the sender its own.
	for _, u := range []*groupUser{alice, bob} {
		ms, err := u.g.Messages(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].Text != "hello team" || ms[0].From != "alice" || ms[0].Outgoing != (u == alice) || ms[0].Seq == 0 {
			t.Fatalf("%+v", ms)
		}
	}

	// bob adds dave, then carol, who has not seen bob's commit, removes
	// alice: both commits are for the same epoch. The relay took bob's;
	// carol's client is told so with the winner, processes it and
	// commits again on top, by itself. Both changes land.
	epoch := carol.epoch(t, id)
	if err := bob.g.Add(ctx, id, "dave"); err != nil {
		t.Fatal(err)
	}
	if carol.epoch(t, id) != epoch {
		t.Fatal("carol saw bob's commit before committing")
	}
	if err := carol.g.Remove(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := carol.epoch(t, id); got != epoch+2 {
		t.Fatalf("carol is at epoch %d, want %d (bob's commit, then hers)", got, epoch+2)
	}
	for _, u := range []*groupUser{bob, carol, dave, alice} {
		u.sync(t)
	}
	wantMembers(t, id, []string{"bob", "carol", "dave"}, bob, carol, dave)
	if len(alice.eventsOf(groups.EventRemoved)) != 1 {
		t.Fatalf("alice was not told she was removed: %+v", alice.events)
	}
	ib, _ := bob.g.Info(ctx, id)
	ic, _ := carol.g.Info(ctx, id)
	idv, _ := dave.g.Info(ctx, id)
	if ib.Epoch != ic.Epoch || ib.Epoch != idv.Epoch {
		t.Fatalf("epochs differ: bob %d, carol %d, dave %d", ib.Epoch, ic.Epoch, idv.Epoch)
	}

	// The removed member cannot read the next message.
	if _, err := dave.g.Send(ctx, id, "without alice"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, "alice", alice.sync(t))
	wantTexts(t, "bob", bob.sync(t), "dave: without alice")
	wantTexts(t, "carol", carol.sync(t), "dave: without alice")
	if _, err := alice.g.Send(ctx, id, "still here?"); !errors.Is(err, groups.ErrRemovedHere) {
		t.Fatalf("removed member sends: %v", err)
	}

	// A hostile relay serves a KeyPackage of its own for erin (it threw
	// hers away): bob refuses to add it, is told, and the group is as it
	// was.
	acct, err := r.store.AccountByName(ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}
	ghost := relay.DeviceAddr{Account: acct.ID, Device: 1}
	for {
		if _, last, err := r.store.TakeKeyPackage(ctx, ghost); err != nil || last {
			break
		}
	}
	if err := r.store.StoreKeyPackages(ctx, ghost, [][]byte{forgedKeyPackage(t, "erin", 1)}, nil); err != nil {
		t.Fatal(err)
	}
	before := ib.Epoch
	if err := bob.g.Add(ctx, id, "erin"); !errors.Is(err, groups.ErrNotCertified) {
		t.Fatalf("adding a ghost KeyPackage: %v", err)
	}
	if len(bob.eventsOf(groups.EventRefused)) != 1 {
		t.Fatalf("bob was not told of the ghost: %+v", bob.events)
	}
	if info, _ := bob.g.Info(ctx, id); info.Epoch != before {
		t.Fatalf("refused add moved the group to epoch %d", info.Epoch)
	}
	_ = erin

	// A member whose client is hostile commits a ghost, skipping its own
	// checks: every other member refuses the commit and is told.
	commitGhost(t, dave, id, forgedKeyPackage(t, "erin", 1))
	for _, u := range []*groupUser{bob, carol} {
		u.sync(t)
		if len(u.eventsOf(groups.EventRefused)) == 0 {
			t.Fatalf("%s was not told of the ghost commit: %+v", u.name, u.events)
		}
		wantMembers(t, id, []string{"bob", "carol", "dave"}, u)
		// Refused, then undone by a member's commit (recover.go).
		if leaves(t, u, id) != 3 {
			t.Fatalf("%s applied the ghost commit", u.name)
		}
	}
}

// commitGhost has u's client commit adding kp with no credential check
// and send it to the relay, as a hostile member's client would.
func commitGhost(t *testing.T, u *groupUser, id, kp []byte) {
	t.Helper()
	ctx := context.Background()
	g, err := groups.ReadState(ctx, u.c.db, id)
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Commit(mls.CommitOptions{Add: [][]byte{kp}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := u.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := conn.GroupCommit(ctx, &wire.GroupCommitRequest{GroupId: id, Epoch: g.Epoch(), Commit: p.Commit, Welcome: p.Welcome,
		Added: []*wire.GroupDevice{{Username: "erin", DeviceId: 1}}})
	if err != nil || !resp.Accepted {
		t.Fatalf("the relay did not take the ghost commit: %+v %v", resp, err)
	}
}

// losingRelay forwards to the real connection but loses the answer to
// the first commit, as a dropped connection (or a crash) right after the
// relay took it would.
type losingRelay struct {
	*transport.Conn
	lost bool
}

func (l *losingRelay) GroupCommit(ctx context.Context, req *wire.GroupCommitRequest) (*wire.GroupCommitResponse, error) {
	resp, err := l.Conn.GroupCommit(ctx, req)
	if err == nil && !l.lost {
		l.lost = true
		return nil, errors.New("connection lost")
	}
	return resp, err
}

// A commit the relay took but whose answer never came back is resent
// and applied at the next sync, by a restarted manager on the same
// store: the device does not fall out of its group, and nothing is
// stored twice.
func TestGroupCommitAnswerLost(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 3, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	id, err := alice.g.Create(ctx, "team", "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)

	conn, err := alice.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	orgKey, _ := getOpt(ctx, alice.c.db, tblOrg, orgstate.KeyOrgKey)
	cert, _ := alice.c.IdentityCertificate(ctx)
	self := groups.Self{Username: "alice", DeviceID: alice.c.acct.DeviceID, Identity: alice.c.identity, Certificate: cert, OrgKey: orgKey}
	lossy := &losingRelay{Conn: conn}
	m := groups.New(func() (groups.Relay, error) { return lossy, nil }, alice.c.db, self, groups.Options{})
	if err := m.Add(ctx, id, "carol"); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	// A restart: a new manager on the same store.
	restarted := groups.New(func() (groups.Relay, error) { return conn, nil }, alice.c.db, self, groups.Options{})
	if _, err := restarted.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)
	alice.g = restarted
	wantMembers(t, id, []string{"alice", "bob", "carol"}, alice, bob, carol)
	if _, err := restarted.Send(ctx, id, "all here"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, "bob", bob.sync(t), "alice: all here")
	wantTexts(t, "carol", carol.sync(t), "alice: all here")
}

// linkGroupDevice links a second device of u's account and returns it.
func linkGroupDevice(t *testing.T, r *testRelay, u *groupUser) *groupUser {
	t.Helper()
	ctx := context.Background()
	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.c.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	c, err := l.Finish(ctx, filepath.Join(t.TempDir(), u.name+"-phone"), []byte("pw"), "phone", &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	p := &groupUser{name: u.name + "-phone", c: c}
	if p.g, err = c.Groups(ctx, func(e groups.Event) {
		p.mu.Lock()
		p.events = append(p.events, e)
		p.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// Three users with two devices each: a group has all of a user's devices,
// including the creator's other one; a message reaches every device but
// its sender; a member offline through 50 epochs catches up in order and
// reads what followed; removing a user removes all their devices.
func TestGroupsLinkedDevicesAndCatchUp(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 3, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	alicePhone := linkGroupDevice(t, r, alice)
	bobPhone := linkGroupDevice(t, r, bob)
	carolPhone := linkGroupDevice(t, r, carol)

	id, err := alice.g.Create(ctx, "team", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*groupUser{alicePhone, bob, bobPhone, carol, carolPhone} {
		u.sync(t)
	}
	all := []*groupUser{alice, alicePhone, bob, bobPhone, carol, carolPhone}
	for _, u := range all {
		info, err := u.g.Info(ctx, id)
		if err != nil || len(info.Members) != 6 {
			t.Fatalf("%s: %+v %v", u.name, info, err)
		}
	}
	if _, err := alicePhone.g.Send(ctx, id, "from my phone"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*groupUser{alice, bob, bobPhone, carol, carolPhone} {
		wantTexts(t, u.name, u.sync(t), "alice: from my phone")
	}
	if _, err := carolPhone.g.Send(ctx, id, "and mine"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*groupUser{alice, alicePhone, bob, bobPhone, carol} {
		wantTexts(t, u.name, u.sync(t), "carol: and mine")
	}

	// carol (both devices) is offline while the group goes through 50 epochs.
	for i := range 50 {
		u := []*groupUser{alice, bob}[i%2]
		if err := u.g.Update(ctx, id); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		for _, o := range []*groupUser{alice, alicePhone, bob, bobPhone} {
			if o != u {
				o.sync(t)
			}
		}
	}
	if _, err := bob.g.Send(ctx, id, "after fifty"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*groupUser{carol, carolPhone} {
		wantTexts(t, u.name, u.sync(t), "bob: after fifty")
		if u.epoch(t, id) != alice.epoch(t, id) {
			t.Fatalf("%s at epoch %d, alice at %d", u.name, u.epoch(t, id), alice.epoch(t, id))
		}
	}

	// Removing bob removes both his devices.
	if err := carol.g.Remove(ctx, id, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*groupUser{bob, bobPhone} {
		u.sync(t)
		if len(u.eventsOf(groups.EventRemoved)) != 1 {
			t.Fatalf("%s was not told of the removal", u.name)
		}
	}
	alice.sync(t)
	alicePhone.sync(t)
	carolPhone.sync(t)
	wantMembers(t, id, []string{"alice", "alice", "carol", "carol"}, alice, alicePhone, carol, carolPhone)

	// alice removes her phone from her account: the next commit, by
	// anyone, takes it out of the group too.
	if err := alice.c.RemoveDevice(ctx, alicePhone.c.DeviceID()); err != nil {
		t.Fatal(err)
	}
	if err := carol.g.Update(ctx, id); err != nil {
		t.Fatal(err)
	}
	alice.sync(t)
	carolPhone.sync(t)
	wantMembers(t, id, []string{"alice", "carol", "carol"}, alice, carol, carolPhone)
}

// Watch delivers a group message as soon as the relay's push says it is
// there, with no sync of the test's own, and ends with its context.
func TestGroupWatch(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	id, err := alice.g.Create(ctx, "team", "bob")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan groups.Message, 10)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bob.g.Watch(wctx, func(ms []groups.Message) {
			for _, m := range ms {
				got <- m
			}
		})
	}()
	// Whether bob's first sync or the push brings it, the Welcome comes
	// before the message (the relay orders the group's messages).
	if _, err := alice.g.Send(ctx, id, "pushed"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Text != "pushed" || m.From != "alice" {
			t.Fatalf("watched %+v", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the pushed message did not arrive")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
}

// Adding a user checks their key like a 1:1 contact's: while the key
// this device holds for them differs from the one in their KeyPackage
// (a changed safety number not yet verified), they are not added and the
// user is told; once verified, they are.
func TestGroupAddChecksContactKey(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	if err := saveIdentity(ctx, alice.c.db, "bob", &identityRecord{Key: bytes.Repeat([]byte{5}, 33)}); err != nil {
		t.Fatal(err)
	}
	id, err := alice.g.Create(ctx, "team", "bob")
	if err != nil {
		t.Fatal(err)
	}
	wantMembers(t, id, []string{"alice"}, alice)
	if len(alice.eventsOf(groups.EventRefused)) != 1 {
		t.Fatalf("alice was not told: %+v", alice.events)
	}
	if err := alice.g.Add(ctx, id, "bob"); !errors.Is(err, groups.ErrNotCertified) {
		t.Fatalf("adding bob with his safety number changed: %v", err)
	}
	if err := alice.c.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.g.Add(ctx, id, "bob"); err != nil {
		t.Fatalf("adding bob once verified: %v", err)
	}
	bob.sync(t)
	wantMembers(t, id, []string{"alice", "bob"}, alice, bob)
}

// A user's device linked after the group formed joins by external commit
// from the GroupInfo the relay keeps; an outsider gets no GroupInfo, and
// an outsider's external commit that a hostile relay slips in anyway is
// refused by every member.
func TestGroupExternalJoin(t *testing.T) {
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 3, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	id, err := alice.g.Create(ctx, "team", "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)

	phone := linkGroupDevice(t, r, alice)
	if err := phone.g.JoinExternal(ctx, id); err != nil {
		t.Fatal(err)
	}
	alice.sync(t)
	bob.sync(t)
	for _, u := range []*groupUser{alice, phone, bob} {
		if info, err := u.g.Info(ctx, id); err != nil || len(info.Members) != 3 {
			t.Fatalf("%s: %+v %v", u.name, info, err)
		}
	}
	if _, err := phone.g.Send(ctx, id, "from the new phone"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, "bob", bob.sync(t), "alice: from the new phone")
	wantTexts(t, "alice", alice.sync(t), "alice: from the new phone")

	// carol is in no such group as far as the relay will tell her.
	if err := carol.g.JoinExternal(ctx, id); err == nil {
		t.Fatal("an outsider joined by external commit")
	}
	// A hostile relay hands carol the GroupInfo and stores her external
	// commit under a member's name: the members refuse it.
	st, err := r.store.Group(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	identity, seed, err := carolIdentity(ctx, carol)
	if err != nil {
		t.Fatal(err)
	}
	_, commit, err := mls.JoinExternalWithOptions(st.GroupInfo, identity, seed, &mls.ExternalJoinOptions{SupportedExtensions: []uint16{groups.ExtensionPolicy}})
	if err != nil {
		t.Fatal(err)
	}
	bobAcct, _ := r.store.AccountByName(ctx, "bob")
	if res, err := r.store.CommitGroup(ctx, &relay.GroupCommit{GroupID: id, Epoch: st.Epoch, Sender: relay.DeviceAddr{Account: bobAcct.ID, Device: 1},
		Commit: commit, Timestamp: time.Now()}); err != nil || !res.Accepted {
		t.Fatalf("planting the commit: %+v %v", res, err)
	}
	n := leaves(t, alice, id)
	alice.sync(t)
	phone.sync(t)
	alice.sync(t)
	for _, u := range []*groupUser{alice, phone} {
		if leaves(t, u, id) != n || len(u.eventsOf(groups.EventRefused)) == 0 {
			t.Fatalf("%s took carol's external commit (%d leaves, events %+v)", u.name, leaves(t, u, id), u.events)
		}
	}
}

// leaves counts the leaves of u's group (members() leaves out one that
// is not an org-certified identity; this does not).
func leaves(t *testing.T, u *groupUser, id []byte) int {
	t.Helper()
	g, err := groups.ReadState(context.Background(), u.c.db, id)
	if err != nil {
		t.Fatal(err)
	}
	return len(g.Members())
}

// carolIdentity is what carol's client would put in its leaf.
func carolIdentity(ctx context.Context, u *groupUser) ([]byte, []byte, error) {
	seed, err := u.c.db.Get(ctx, "mls-self", []byte("signature-key"))
	if err != nil {
		return nil, nil, err
	}
	id, err := u.c.db.Get(ctx, "mls-self", []byte("identity"))
	return id, seed, err
}
