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

// TestAsync submits sends and acks through relay.AsyncMailbox: callbacks
// come once each, in submission order, duplicates (in the same batch and
// across batches) are reported as such, and an ack deletes only what it
// names.
func TestAsync(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sender, bob relay.DeviceAddr
	sender.Account[0], sender.Device = 1, 1
	bob.Account[0], bob.Device = 2, 1
	t0 := time.UnixMilli(1_700_000_000_000)
	const n = 300
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	dups := 0
	results := make([]relay.AppendResult, n)
	sends := make([]*relay.Send, n)
	for i := range n {
		mid := []byte(fmt.Sprint("m", i%200)) // ids 0..99 sent twice
		sd := &relay.Send{Sender: sender, MessageID: mid, Timestamp: t0, Envelopes: []relay.Envelope{{
			Recipient: bob, Sender: "alice", SenderDevice: 1, Timestamp: t0, Type: 1,
			Content: []byte(fmt.Sprint("c", i)), MessageID: mid,
		}}}
		sends[i] = sd
		wg.Add(1)
		s.AppendAsync(sd, func(res relay.AppendResult, err error) {
			defer wg.Done()
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, i)
			results[i] = res
			if res.Duplicate {
				dups++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("callback %d was for send %d", i, v)
		}
	}
	if dups != 100 {
		t.Fatalf("%d duplicates, want 100", dups)
	}
	for i := 200; i < n; i++ {
		if !results[i].Duplicate || results[i-200].Duplicate {
			t.Fatalf("send %d: the later copy must be the duplicate", i)
		}
	}
	envs, err := s.Fetch(ctx, bob, 0, time.Time{}, 1000)
	if err != nil || len(envs) != 200 {
		t.Fatalf("fetch: %d envelopes, %v", len(envs), err)
	}
	// Ack the first 150; a stranger's ack of the rest deletes nothing.
	ids := make([]relay.EnvelopeID, 0, 150)
	for _, e := range envs[:150] {
		ids = append(ids, e.ID)
	}
	done := make(chan error, 2)
	s.DeleteAsync(bob, ids, func(err error) { done <- err })
	var other relay.DeviceAddr
	other.Account[0], other.Device = 3, 1
	s.DeleteAsync(other, []relay.EnvelopeID{envs[160].ID}, func(err error) { done <- err })
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	left, err := s.Fetch(ctx, bob, 0, time.Time{}, 1000)
	if err != nil || len(left) != 50 || left[0].ID != envs[150].ID {
		t.Fatalf("after ack: %d envelopes, %v", len(left), err)
	}
	s.Close()
	// After Close, callbacks still come, with relay.ErrClosed.
	s.AppendAsync(sends[0], func(_ relay.AppendResult, err error) { done <- err })
	if err := <-done; !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// TestExpireSendsInChunks: the dedupe expiry walks the table in chunks;
// across many chunks it removes exactly the old records.
func TestExpireSendsInChunks(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.UnixMilli(1_800_000_000_000)
	const n = 20_000 // more than two chunks of the expiry
	// Nearly all records are old, so that the chunks' boundary records
	// are too.
	fresh := func(i int) int {
		if i%100 == 0 {
			return 1
		}
		return 0
	}
	send := func(i int, ts time.Time) *relay.Send {
		var from relay.DeviceAddr
		from.Account[0], from.Device = byte(i%7), uint32(i%3)
		return &relay.Send{Sender: from, MessageID: []byte(fmt.Sprint("m", i)), Timestamp: ts}
	}
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				if _, err := s.Append(ctx, send(i, t0.Add(time.Duration(fresh(i))*time.Hour))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.ExpireSends(ctx, t0.Add(time.Minute))
	if err != nil || got != n-n/100 {
		t.Fatalf("expired %d %v, want %d", got, err, n-n/100)
	}
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				r, err := s.Append(ctx, send(i, t0.Add(2*time.Hour)))
				if err != nil {
					t.Error(err)
					return
				}
				if r.Duplicate != (fresh(i) == 1) {
					t.Errorf("send %d: duplicate %v after the expiry", i, r.Duplicate)
					return
				}
			}
		}()
	}
	wg.Wait()
}
