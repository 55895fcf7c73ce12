package sqlitestore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/relay/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		dir := t.TempDir()
		open := func() relay.Store {
			s, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open
	})
}

// TestConcurrentDuplicates submits equal sends at once so that they share
// the writer's batches (and its multi-row dedupe statements): exactly one
// of each is stored, and every retry reports the stored one's timestamp.
func TestConcurrentDuplicates(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sender, bob relay.DeviceAddr
	sender.Account[0], sender.Device = 1, 1
	bob.Account[0], bob.Device = 2, 1
	const ids, copies = 70, 5
	t0 := time.UnixMilli(1_700_000_000_000)
	type result struct {
		id  int
		ts  time.Time
		res relay.AppendResult
	}
	out := make(chan result, ids*copies)
	var wg sync.WaitGroup
	for c := range copies {
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ts := t0.Add(time.Duration(c*ids+i) * time.Millisecond)
				mid := []byte(fmt.Sprint("m", i))
				sd := &relay.Send{Sender: sender, MessageID: mid, Timestamp: ts, Envelopes: []relay.Envelope{{
					Recipient: bob, Sender: "alice", SenderDevice: 1, Timestamp: ts, Type: 1,
					Content: []byte(fmt.Sprint("c", c, "-", i)), MessageID: mid,
				}}}
				r, err := s.Append(ctx, sd)
				if err != nil {
					t.Error(err)
				}
				out <- result{i, ts, r}
			}()
		}
	}
	wg.Wait()
	close(out)
	stored := map[int]time.Time{}
	var dups []result
	for r := range out {
		if r.res.Duplicate {
			dups = append(dups, r)
			continue
		}
		if _, ok := stored[r.id]; ok {
			t.Fatalf("id %d stored twice", r.id)
		}
		if !r.res.Timestamp.Equal(r.ts) {
			t.Fatalf("id %d: stored send reports %v, sent %v", r.id, r.res.Timestamp, r.ts)
		}
		stored[r.id] = r.ts
	}
	if len(stored) != ids || len(dups) != ids*(copies-1) {
		t.Fatalf("%d stored, %d duplicates; want %d, %d", len(stored), len(dups), ids, ids*(copies-1))
	}
	for _, d := range dups {
		if !d.res.Timestamp.Equal(stored[d.id]) {
			t.Fatalf("id %d: duplicate reports %v, stored %v", d.id, d.res.Timestamp, stored[d.id])
		}
	}
	envs, err := s.Fetch(ctx, bob, 0, time.Time{}, 10*ids)
	if err != nil || len(envs) != ids {
		t.Fatalf("fetched %d envelopes (%v), want %d", len(envs), err, ids)
	}
}
