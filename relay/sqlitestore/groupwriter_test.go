package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
)

// The group store's writes share transactions when they come at once
// (groupWriter): each still gets its own outcome. Concurrent sends to a
// group, some from a device outside it (refused), all store exactly the
// members' messages, in one gapless sequence, and nothing of the
// refused ones; every member's concurrent acks land.
func TestGroupWritesBatched(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dev := func(a byte) relay.DeviceAddr { d := relay.DeviceAddr{Device: 1}; d.Account[0] = a; return d }
	owner, outsider := dev(1), dev(99)
	var members []relay.DeviceAddr
	for i := range 20 {
		members = append(members, dev(byte(10+i)))
	}
	g := []byte("batched")
	now := time.Now()
	if _, err := s.CommitGroup(ctx, &relay.GroupCommit{GroupID: g, Sender: owner, Commit: []byte("c0"), Welcome: []byte("w"),
		Added: members, Timestamp: now}); err != nil {
		t.Fatal(err)
	}
	const sends = 60
	var wg sync.WaitGroup
	errs := make([]error, sends)
	for i := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := owner
			if i%3 == 0 {
				from = outsider
			}
			_, errs[i] = s.AppendGroup(ctx, &relay.GroupSend{GroupID: g, Sender: from, MessageID: fmt.Appendf(nil, "m%d", i),
				Content: fmt.Appendf(nil, "m%d", i), Timestamp: now})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%3 == 0 && !errors.Is(err, relay.ErrForbidden) || i%3 != 0 && err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	msgs, err := s.FetchGroups(ctx, members[0], 1000)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + sends - sends/3; len(msgs) != want {
		t.Fatalf("%d messages stored, want %d", len(msgs), want)
	}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d: not one gapless sequence", i, m.Seq)
		}
	}
	last := msgs[len(msgs)-1].Seq
	for _, d := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.AckGroups(ctx, d, []relay.GroupAck{{GroupID: g, Seq: last}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, d := range members {
		if m, err := s.FetchGroups(ctx, d, 10); err != nil || len(m) != 0 {
			t.Fatalf("after the acks: %d messages, %v", len(m), err)
		}
	}
}
