package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sotto/relay"
)

func groupStore(t *testing.T, s relay.Store) relay.GroupStore {
	t.Helper()
	gs, ok := s.(relay.GroupStore)
	if !ok {
		s.Close()
		t.Fatalf("%T does not implement relay.GroupStore", s)
	}
	return gs
}

// fetchGroup returns everything waiting for d, as "kind:content" strings
// per group, and the last seq per group.
func fetchGroup(t *testing.T, gs relay.GroupStore, d relay.DeviceAddr) ([]relay.GroupMessage, map[string]uint64) {
	t.Helper()
	msgs, err := gs.FetchGroups(context.Background(), d, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for _, m := range msgs {
		if m.Seq <= last[string(m.GroupID)] {
			t.Fatalf("fetch for %v: seq %d after %d: not in order", d, m.Seq, last[string(m.GroupID)])
		}
		last[string(m.GroupID)] = m.Seq
	}
	return msgs, last
}

func contents(msgs []relay.GroupMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%d:%s", m.Kind, m.Content))
	}
	return out
}

func sizes(msgs []relay.GroupMessage) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Size)
	}
	return out
}

func wantContents(t *testing.T, who string, msgs []relay.GroupMessage, want ...string) {
	t.Helper()
	got := contents(msgs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s got %q, want %q", who, got, want)
	}
}

func ack(t *testing.T, gs relay.GroupStore, d relay.DeviceAddr, group []byte, seq uint64) {
	t.Helper()
	if err := gs.AckGroups(context.Background(), d, []relay.GroupAck{{GroupID: group, Seq: seq}}); err != nil {
		t.Fatal(err)
	}
}

// RunGroups checks the MLS Delivery Service's storage (relay.GroupStore):
// KeyPackages, commit ordering, one stored copy per message with
// per-device cursors, Welcomes to added devices only, removal, idempotent
// resends, durability across reopen, and cleanup.
func RunGroups(t *testing.T, open Open) {
	ctx := context.Background()
	alice, bob1, bob2, carol, mallory := addr(1, 1), addr(2, 1), addr(2, 2), addr(3, 1), addr(9, 1)
	const (
		msg     = relay.GroupKindMessage
		commit  = relay.GroupKindCommit
		welcome = relay.GroupKindWelcome
	)
	k := func(kind uint8, s string) string { return fmt.Sprintf("%d:%s", kind, s) }

	t.Run("KeyPackages", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		gs := groupStore(t, s)
		if _, _, err := gs.TakeKeyPackage(ctx, bob1); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("no key packages: %v", err)
		}
		if err := gs.StoreKeyPackages(ctx, bob1, [][]byte{[]byte("kp1"), []byte("kp2")}, []byte("last")); err != nil {
			t.Fatal(err)
		}
		if err := gs.StoreKeyPackages(ctx, bob1, nil, []byte("last2")); err != nil {
			t.Fatal(err)
		}
		if n, err := gs.CountKeyPackages(ctx, bob1); err != nil || n.OneTime != 2 || !n.HasLastResort {
			t.Fatalf("count %+v %v", n, err)
		}
		for _, want := range []string{"kp1", "kp2", "last2", "last2"} {
			kp, last, err := gs.TakeKeyPackage(ctx, bob1)
			if err != nil || string(kp) != want || last != (want == "last2") {
				t.Fatalf("take: %q %v %v, want %q", kp, last, err, want)
			}
		}
		if n, _ := gs.CountKeyPackages(ctx, bob1); n.OneTime != 0 || !n.HasLastResort {
			t.Fatalf("after taking: %+v", n)
		}
		if n, _ := gs.CountKeyPackages(ctx, bob2); n != (relay.KeyPackageCount{}) {
			t.Fatalf("another device's count: %+v", n)
		}
	})

	t.Run("FanOut", func(t *testing.T) {
		s, reopen := open(t)
		gs := groupStore(t, s)
		g := []byte("group-1")
		// alice creates the group with bob's two devices.
		res, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 0, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
			Added: []relay.DeviceAddr{bob1, bob2}, GroupInfo: []byte("gi1"), Timestamp: t0})
		if err != nil || !res.Accepted || res.Epoch != 1 {
			t.Fatalf("create: %+v %v", res, err)
		}
		if len(res.Members) != 3 {
			t.Fatalf("create delivers to %v", res.Members)
		}
		sr, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m1"), Content: []byte("hello"), Timestamp: t0})
		if err != nil || sr.Duplicate || sr.Seq <= res.Seq {
			t.Fatalf("send: %+v %v", sr, err)
		}
		// A resend is recognized; nothing stored twice.
		again, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m1"), Content: []byte("hello"), Timestamp: t0})
		if err != nil || !again.Duplicate || again.Seq != sr.Seq {
			t.Fatalf("resend: %+v %v", again, err)
		}
		// The same message id from another sender is another message.
		if r, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: bob1, MessageID: []byte("m1"), Content: []byte("hi"), Timestamp: t0}); err != nil || r.Duplicate {
			t.Fatalf("bob's m1: %+v %v", r, err)
		}
		// A device that is not a member cannot post or commit.
		if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: mallory, MessageID: []byte("x"), Content: []byte("x"), Timestamp: t0}); !errors.Is(err, relay.ErrForbidden) {
			t.Fatalf("non-member send: %v", err)
		}
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: mallory, Commit: []byte("x"), Timestamp: t0}); !errors.Is(err, relay.ErrForbidden) {
			t.Fatalf("non-member commit: %v", err)
		}
		if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: []byte("nope"), Sender: alice, MessageID: []byte("x"), Content: []byte("x"), Timestamp: t0}); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("unknown group: %v", err)
		}
		// Nothing acknowledged is lost across a reopen.
		if reopen != nil {
			s.Close()
			s = reopen()
			gs = groupStore(t, s)
		}
		defer s.Close()
		m, last := fetchGroup(t, gs, bob1)
		// bob gets the Welcome in place of the commit, then the messages,
		// never his own.
		wantContents(t, "bob1", m, k(welcome, "w0"), k(msg, "hello"))
		m, _ = fetchGroup(t, gs, bob2)
		wantContents(t, "bob2", m, k(welcome, "w0"), k(msg, "hello"), k(msg, "hi"))
		m, _ = fetchGroup(t, gs, alice)
		wantContents(t, "alice", m, k(msg, "hi"))
		if m[0].Seq != sr.Seq+1 {
			t.Fatalf("seq %d after %d", m[0].Seq, sr.Seq)
		}
		// Acks move a device's cursor only forward.
		ack(t, gs, bob1, g, last[string(g)])
		ack(t, gs, bob1, g, 1)
		if m, _ := fetchGroup(t, gs, bob1); len(m) != 0 {
			t.Fatalf("after ack: %q", contents(m))
		}
		st, err := gs.Group(ctx, g)
		if err != nil || st.Epoch != 1 || string(st.GroupInfo) != "gi1" || len(st.Members) != 3 {
			t.Fatalf("group: %+v %v", st, err)
		}
	})

	// A store that says its seqs are dense (relay.GroupSeqsDense: the
	// relay then pushes small messages with prev_seq = seq-1) numbers
	// every message and commit of a group one after the other, whatever
	// a resend or a losing commit did in between.
	t.Run("DenseSeqs", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		gs := groupStore(t, s)
		if d, ok := gs.(relay.GroupSeqsDense); !ok || !d.GroupSeqsDense() {
			t.Logf("%T does not number group messages densely: the relay only wakes its devices, nothing to check", gs)
			return
		}
		g := []byte("group-dense")
		res, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 0, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
			Added: []relay.DeviceAddr{bob1}, GroupInfo: []byte("gi"), Timestamp: t0})
		if err != nil || !res.Accepted {
			t.Fatalf("create: %+v %v", res, err)
		}
		want := res.Seq + 1
		next := func(what string, seq uint64) {
			t.Helper()
			if seq != want {
				t.Fatalf("%s at seq %d, want %d", what, seq, want)
			}
			want++
		}
		send := func(from relay.DeviceAddr, id string) relay.GroupSendResult {
			t.Helper()
			r, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: from, MessageID: []byte(id), Content: []byte(id), Timestamp: t0})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		next("m1", send(alice, "m1").Seq)
		if r := send(alice, "m1"); !r.Duplicate {
			t.Fatalf("resend: %+v", r)
		}
		next("m2", send(bob1, "m2").Seq)
		c1, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: bob1, Commit: []byte("c1"), GroupInfo: []byte("gi"), Timestamp: t0})
		if err != nil || !c1.Accepted {
			t.Fatalf("commit: %+v %v", c1, err)
		}
		next("c1", c1.Seq)
		if lost, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: alice, Commit: []byte("c1-alice"), GroupInfo: []byte("gi"), Timestamp: t0}); err != nil || lost.Accepted {
			t.Fatalf("losing commit: %+v %v", lost, err)
		}
		next("m3", send(alice, "m3").Seq)
	})

	t.Run("CommitOrdering", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		gs := groupStore(t, s)
		g := []byte("group-2")
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: alice, Commit: []byte("c"), Timestamp: t0}); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("commit to an unknown group at epoch 1: %v", err)
		}
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
			Added: []relay.DeviceAddr{bob1, carol}, GroupInfo: []byte("gi1"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		// bob and carol commit for epoch 1 at once: exactly one wins, the
		// other gets the winner.
		var wg sync.WaitGroup
		results := make([]relay.GroupCommitResult, 2)
		errs := make([]error, 2)
		for i, who := range []relay.DeviceAddr{bob1, carol} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: who,
					Commit: fmt.Appendf(nil, "c1-%d", i), GroupInfo: fmt.Appendf(nil, "gi2-%d", i), Timestamp: t0})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if results[0].Accepted == results[1].Accepted {
			t.Fatalf("both or neither accepted: %+v", results)
		}
		win, lose := 0, 1
		if results[1].Accepted {
			win, lose = 1, 0
		}
		l := results[lose]
		if l.Epoch != 2 || string(l.Winner) != fmt.Sprintf("c1-%d", win) || l.WinnerSeq != results[win].Seq {
			t.Fatalf("loser told %+v; winner %+v", l, results[win])
		}
		// The winner resending its commit (a lost answer) is accepted
		// again, not stored twice.
		re, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: []relay.DeviceAddr{bob1, carol}[win],
			Commit: fmt.Appendf(nil, "c1-%d", win), Timestamp: t0})
		if err != nil || !re.Accepted || re.Seq != results[win].Seq {
			t.Fatalf("resent winner: %+v %v", re, err)
		}
		st, _ := gs.Group(ctx, g)
		if st.Epoch != 2 || string(st.GroupInfo) != fmt.Sprintf("gi2-%d", win) {
			t.Fatalf("group after the race: %+v", st)
		}
		m, _ := fetchGroup(t, gs, alice)
		wantContents(t, "alice", m, k(commit, fmt.Sprintf("c1-%d", win)))
		if m[0].Epoch != 1 {
			t.Fatalf("commit epoch %d", m[0].Epoch)
		}
		// The loser retries on top of the winner.
		if r, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 2, Sender: []relay.DeviceAddr{bob1, carol}[lose],
			Commit: []byte("c2"), Timestamp: t0}); err != nil || !r.Accepted || r.Epoch != 3 {
			t.Fatalf("retry on top: %+v %v", r, err)
		}
	})

	t.Run("RemoveAndReadd", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		gs := groupStore(t, s)
		g := []byte("group-3")
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
			Added: []relay.DeviceAddr{bob1, carol}, GroupInfo: []byte("gi"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		send := func(id string) {
			t.Helper()
			if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte(id), Content: []byte(id), Timestamp: t0}); err != nil {
				t.Fatal(err)
			}
		}
		send("before")
		r, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: alice, Commit: []byte("remove carol"),
			Removed: []relay.DeviceAddr{carol}, GroupInfo: []byte("gi"), Timestamp: t0})
		if err != nil || !r.Accepted {
			t.Fatalf("remove: %+v %v", r, err)
		}
		send("after")
		// carol gets the commit that removed her, and nothing after it.
		m, _ := fetchGroup(t, gs, carol)
		wantContents(t, "carol", m, k(welcome, "w0"), k(msg, "before"), k(commit, "remove carol"))
		if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: carol, MessageID: []byte("x"), Content: []byte("x"), Timestamp: t0}); !errors.Is(err, relay.ErrForbidden) {
			t.Fatalf("removed member sends: %v", err)
		}
		if st, _ := gs.Group(ctx, g); len(st.Members) != 2 {
			t.Fatalf("members after removal: %v", st.Members)
		}
		// Added again later, she starts at the new Welcome.
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 2, Sender: alice, Commit: []byte("c2"), Welcome: []byte("w2"),
			Added: []relay.DeviceAddr{carol}, GroupInfo: []byte("gi"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		m, _ = fetchGroup(t, gs, carol)
		wantContents(t, "carol re-added", m, k(welcome, "w2"))
		m, _ = fetchGroup(t, gs, bob1)
		wantContents(t, "bob", m, k(welcome, "w0"), k(msg, "before"), k(commit, "remove carol"), k(msg, "after"), k(commit, "c2"))
	})

	t.Run("ExternalJoin", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		gs := groupStore(t, s)
		g := []byte("group-5")
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
			Added: []relay.DeviceAddr{bob1}, GroupInfo: []byte("gi"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		// Only a device of an account with a member device may join by
		// external commit.
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: carol, Commit: []byte("ext-carol"), External: true, Timestamp: t0}); !errors.Is(err, relay.ErrForbidden) {
			t.Fatalf("outsider's external commit: %v", err)
		}
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: []byte("nope"), Sender: bob2, Commit: []byte("x"), External: true, Timestamp: t0}); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("external commit creating a group: %v", err)
		}
		r, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: bob2, Commit: []byte("ext-bob2"), External: true, GroupInfo: []byte("gi2"), Timestamp: t0})
		if err != nil || !r.Accepted {
			t.Fatalf("bob's new device joins: %+v %v", r, err)
		}
		// Sent again (a lost answer): accepted, not stored twice.
		if r2, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: bob2, Commit: []byte("ext-bob2"), External: true, Timestamp: t0}); err != nil || !r2.Accepted || r2.Seq != r.Seq {
			t.Fatalf("resent external commit: %+v %v", r2, err)
		}
		if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m"), Content: []byte("m"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		m, _ := fetchGroup(t, gs, bob2)
		wantContents(t, "bob2", m, k(msg, "m"))
		m, _ = fetchGroup(t, gs, bob1)
		wantContents(t, "bob1", m, k(welcome, "w0"), k(commit, "ext-bob2"), k(msg, "m"))
	})

	t.Run("LargeMessages", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		gs := groupStore(t, s)
		g := []byte("group-6")
		big := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
		commitBytes, welcomeBytes, infoBytes := big('c', relay.GroupInlineMax+1), big('w', 3*relay.GroupInlineMax), big('i', 2*relay.GroupInlineMax)
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: alice, Commit: []byte("c0"), Welcome: welcomeBytes,
			Added: []relay.DeviceAddr{bob1}, GroupInfo: infoBytes, Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		r, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: alice, Commit: commitBytes, Welcome: []byte("w1"),
			Added: []relay.DeviceAddr{carol}, GroupInfo: infoBytes, Timestamp: t0})
		if err != nil || !r.Accepted {
			t.Fatalf("large commit: %+v %v", r, err)
		}
		if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m"), Content: []byte("small"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		// Large contents are left out of the fetch with their size; small
		// ones are in it.
		m, _ := fetchGroup(t, gs, bob1)
		if len(m) != 3 || m[0].Content != nil || m[0].Size != uint64(len(welcomeBytes)) || m[0].Kind != relay.GroupKindWelcome ||
			m[1].Content != nil || m[1].Size != uint64(len(commitBytes)) || string(m[2].Content) != "small" || m[2].Size != 5 {
			t.Fatalf("bob's fetch: %d messages, sizes %v", len(m), sizes(m))
		}
		read := func(d relay.DeviceAddr, seq uint64, want []byte, wantEpoch uint64) {
			t.Helper()
			var got []byte
			for off := 0; off < len(want); {
				part, total, epoch, err := gs.ReadGroup(ctx, d, g, seq, uint64(off), 50_000)
				if err != nil || total != uint64(len(want)) || epoch != wantEpoch || len(part) == 0 {
					t.Fatalf("read %d at %d: %d bytes of %d, epoch %d, %v", seq, off, len(part), total, epoch, err)
				}
				got = append(got, part...)
				off += len(part)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d: the parts do not make the message", seq)
			}
		}
		read(bob1, m[0].Seq, welcomeBytes, 0)
		read(bob1, m[1].Seq, commitBytes, 1)
		read(bob2, 0, infoBytes, 2) // a device of a member account: the GroupInfo
		m, _ = fetchGroup(t, gs, carol)
		if len(m) != 2 || string(m[0].Content) != "w1" || m[0].Kind != relay.GroupKindWelcome {
			t.Fatalf("carol's fetch: %q", contents(m))
		}
		// Nothing a device is not delivered can be read: carol's reads of
		// what came before she was added, mallory's of anything, the
		// commit's sender's of its own commit.
		for _, c := range []struct {
			who relay.DeviceAddr
			seq uint64
		}{{carol, 1}, {mallory, 1}, {mallory, 2}, {mallory, 0}, {alice, 2}, {bob1, 99}} {
			if _, _, _, err := gs.ReadGroup(ctx, c.who, g, c.seq, 0, 10); !errors.Is(err, relay.ErrNotFound) {
				t.Fatalf("%v reads seq %d: %v", c.who, c.seq, err)
			}
		}
		if _, _, _, err := gs.ReadGroup(ctx, bob1, g, 2, uint64(len(commitBytes))+1, 10); !errors.Is(err, relay.ErrBadRequest) {
			t.Fatalf("read past the end: %v", err)
		}
	})

	t.Run("StoredOnceAndCleanedUp", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		gs := groupStore(t, s)
		g := []byte("group-4")
		devs := []relay.DeviceAddr{bob1, bob2, carol}
		if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
			Added: devs, GroupInfo: []byte("gi"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m"), Content: []byte("m"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		// Nobody has acknowledged: nothing goes.
		if n, err := gs.ExpireGroups(ctx, t0.Add(-1)); err != nil || n != 0 {
			t.Fatalf("expire with nothing acknowledged: %d %v", n, err)
		}
		var last uint64
		for _, d := range devs[:2] {
			m, l := fetchGroup(t, gs, d)
			if len(m) != 2 {
				t.Fatalf("%v: %q", d, contents(m))
			}
			last = l[string(g)]
			ack(t, gs, d, g, last)
		}
		if n, _ := gs.ExpireGroups(ctx, t0.Add(-1)); n != 0 {
			t.Fatalf("expired %d messages carol has not acknowledged", n)
		}
		ack(t, gs, carol, g, last)
		if n, err := gs.ExpireGroups(ctx, t0.Add(-1)); err != nil || n != 2 {
			t.Fatalf("expire after every member acknowledged: %d %v (want the commit and the message)", n, err)
		}
		// Age alone removes what is left.
		if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m2"), Content: []byte("m2"), Timestamp: t0}); err != nil {
			t.Fatal(err)
		}
		if n, _ := gs.ExpireGroups(ctx, t0.Add(time.Millisecond)); n != 1 {
			t.Fatalf("expired %d old messages, want 1", n)
		}
		if m, _ := fetchGroup(t, gs, carol); len(m) != 0 {
			t.Fatalf("expired message still delivered: %q", contents(m))
		}
		// The group itself stays, at its epoch.
		if st, err := gs.Group(ctx, g); err != nil || st.Epoch != 1 || !bytes.Equal(st.GroupInfo, []byte("gi")) {
			t.Fatalf("group after expiry: %+v %v", st, err)
		}
	})
}
