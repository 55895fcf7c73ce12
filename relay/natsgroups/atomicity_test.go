package natsgroups_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/natsgroups"
)

var t0 = time.UnixMilli(1_800_000_000_000)

func dev(b byte, d uint32) relay.DeviceAddr {
	var a relay.DeviceAddr
	a.Account[0], a.Device = b, d
	return a
}

func texts(t *testing.T, s *natsgroups.Store, d relay.DeviceAddr) []string {
	t.Helper()
	ms, err := s.FetchGroups(context.Background(), d, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d:%s", m.Kind, m.Content))
	}
	return out
}

// A relay that dies right after a commit point loses nothing and forks
// nothing: the entry is in the group's head, and the restarted relay
// completes it when the group is next read or written.
func TestCrashAfterCommitPoint(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := dev(1, 1), dev(2, 1), dev(3, 1)
	g := []byte("crash")
	s, reopen := open(t)
	if _, err := s.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
		Added: []relay.DeviceAddr{bob}, GroupInfo: []byte("gi1"), Timestamp: t0}); err != nil {
		t.Fatal(err)
	}

	// A send dies after its commit point.
	s.CrashAfterCommitPoint(true)
	if _, err := s.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m1"), Content: []byte("m1"), Timestamp: t0}); !errors.Is(err, natsgroups.ErrCrash) {
		t.Fatalf("crashed send: %v", err)
	}
	s = reopen()
	if got := fmt.Sprint(texts(t, s, bob)); got != "[3:w0 1:m1]" {
		t.Fatalf("bob after the crash: %s", got)
	}
	r, err := s.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: alice, MessageID: []byte("m1"), Content: []byte("m1"), Timestamp: t0})
	if err != nil || !r.Duplicate || r.Seq != 2 {
		t.Fatalf("the retried send: %+v %v", r, err)
	}

	// A commit adding carol dies after its commit point.
	s.CrashAfterCommitPoint(true)
	add := &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: alice, Commit: []byte("add carol"), Welcome: []byte("w1"),
		Added: []relay.DeviceAddr{carol}, GroupInfo: []byte("gi2"), Timestamp: t0}
	if _, err := s.CommitGroup(ctx, add); !errors.Is(err, natsgroups.ErrCrash) {
		t.Fatalf("crashed commit: %v", err)
	}
	s = reopen()
	// bob's commit for the same epoch loses to it: no fork.
	lost, err := s.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: bob, Commit: []byte("bob's"), Timestamp: t0})
	if err != nil || lost.Accepted || string(lost.Winner) != "add carol" || lost.Epoch != 2 {
		t.Fatalf("a commit for the crashed commit's epoch: %+v %v", lost, err)
	}
	// alice's retry is accepted, once.
	again, err := s.CommitGroup(ctx, add)
	if err != nil || !again.Accepted || again.Seq != 3 {
		t.Fatalf("the retried commit: %+v %v", again, err)
	}
	if got := fmt.Sprint(texts(t, s, carol)); got != "[3:w1]" {
		t.Fatalf("carol: %s", got)
	}
	if st, err := s.Group(ctx, g); err != nil || st.Epoch != 2 || string(st.GroupInfo) != "gi2" || len(st.Members) != 3 {
		t.Fatalf("group: %+v %v", st, err)
	}
}

// A writer stalled between its commit point and its materialization
// (the entry was completed by another meanwhile) neither moves a cursor
// back nor brings back a device removed since.
func TestLateMaterialization(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := dev(1, 1), dev(2, 1), dev(3, 1)
	g := []byte("late")
	s, _ := open(t)
	if _, err := s.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: alice, Commit: []byte("c0"), Welcome: []byte("w0"),
		Added: []relay.DeviceAddr{bob, carol}, GroupInfo: []byte("gi"), Timestamp: t0}); err != nil {
		t.Fatal(err)
	}
	stalled, err := s.Pending(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: 1, Sender: alice, Commit: []byte("remove carol"),
		Removed: []relay.DeviceAddr{carol}, GroupInfo: []byte("gi"), Timestamp: t0})
	if err != nil || !r.Accepted {
		t.Fatalf("remove: %+v %v", r, err)
	}
	for _, d := range []relay.DeviceAddr{bob, carol} {
		if err := s.AckGroups(ctx, d, []relay.GroupAck{{GroupID: g, Seq: r.Seq}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ExpireGroups(ctx, t0.Add(-time.Hour)); err != nil { // forgets carol
		t.Fatal(err)
	}
	if err := s.MaterializeLate(ctx, g, stalled); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: carol, MessageID: []byte("x"), Content: []byte("x"), Timestamp: t0}); !errors.Is(err, relay.ErrForbidden) {
		t.Fatalf("carol, removed, sends after a late materialization of the commit adding her: %v", err)
	}
	if got := texts(t, s, carol); len(got) != 0 {
		t.Fatalf("carol fetches %q", got)
	}
	if got := texts(t, s, bob); len(got) != 0 {
		t.Fatalf("bob's cursor moved back: %q", got)
	}
	if st, _ := s.Group(ctx, g); len(st.Members) != 2 {
		t.Fatalf("members: %v", st.Members)
	}
}

// Relays on separate connections commit for the same epoch at once,
// round after round, while members send: one commit wins each epoch
// and every loser is told it; every send gets its own sequence number
// and reaches the other member once, in order.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	nc := natstest.Conn(t)
	opts := testOptions(t, nc)
	const nodes, rounds, sends = 4, 5, 20
	stores := make([]*natsgroups.Store, nodes)
	for i := range stores {
		s, err := natsgroups.Open(ctx, natstest.Conn(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	members := []relay.DeviceAddr{dev(1, 1), dev(2, 1), dev(3, 1), dev(4, 1)}
	g := []byte("race")
	if _, err := stores[0].CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: members[0], Commit: []byte("c0"),
		Added: members[1:], GroupInfo: []byte("gi"), Timestamp: t0}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait() // a failing round ends the test after the senders
	seqs := make(chan uint64, 2*sends)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range sends {
				r, err := stores[i+2].AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: members[i], MessageID: fmt.Appendf(nil, "%d", j),
					Content: fmt.Appendf(nil, "%d-%d", i, j), Timestamp: t0})
				if err != nil || r.Duplicate {
					t.Errorf("send: %+v %v", r, err)
					return
				}
				seqs <- r.Seq
			}
		}()
	}
	ownWins := 0 // member 3 is not delivered its own commits
	for epoch := uint64(1); epoch <= rounds; epoch++ {
		res := make([]relay.GroupCommitResult, nodes)
		errs := make([]error, nodes)
		var cw sync.WaitGroup
		for i := range nodes {
			cw.Add(1)
			go func() {
				defer cw.Done()
				res[i], errs[i] = stores[i].CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Epoch: epoch, Sender: members[i],
					Commit: fmt.Appendf(nil, "c%d-%d", epoch, i), Timestamp: t0})
			}()
		}
		cw.Wait()
		won := -1
		for i, r := range res {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if r.Accepted {
				if won >= 0 {
					t.Fatalf("epoch %d: commits %d and %d both accepted", epoch, won, i)
				}
				won = i
			}
		}
		if won < 0 {
			t.Fatalf("epoch %d: no commit accepted", epoch)
		}
		if won == 3 {
			ownWins++
		}
		for i, r := range res {
			if i != won && (string(r.Winner) != fmt.Sprintf("c%d-%d", epoch, won) || r.WinnerSeq != res[won].Seq) {
				t.Fatalf("epoch %d: loser %d told %q at %d, winner %d at %d", epoch, i, r.Winner, r.WinnerSeq, won, res[won].Seq)
			}
		}
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for q := range seqs {
		if seen[q] {
			t.Fatalf("sequence number %d given twice", q)
		}
		seen[q] = true
	}
	got := texts(t, stores[1], members[3])
	var commits, msgs int
	for _, s := range got {
		switch s[0] {
		case '2':
			commits++
		case '1':
			msgs++
		}
	}
	if commits != rounds-ownWins || msgs != 2*sends {
		t.Fatalf("member 3 got %d commits and %d messages, want %d and %d: %q", commits, msgs, rounds-ownWins, 2*sends, got)
	}
}
