// Package storetest is the conformance suite every relay storage backend
// must pass: call Run from the backend's tests with a constructor, and
// RunBlobIndex from the tests of every relay.BlobIndex.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sotto/relay"
)

// Open returns a fresh, empty store; the suite closes it. reopen, when
// not nil, closes nothing and opens the same data again (to check
// durability across Close); backends without persistence pass nil.
type Open func(t *testing.T) (s relay.Store, reopen func() relay.Store)

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	t.Run("Mailbox", func(t *testing.T) { RunMailbox(t, open) })
	t.Run("Directory", func(t *testing.T) { RunDirectory(t, open) })
	t.Run("ListingOrder", func(t *testing.T) { RunListingOrder(t, open) })
	t.Run("WideValues", func(t *testing.T) { RunWideValues(t, open) })
	t.Run("Org", func(t *testing.T) { RunOrg(t, open) })
	t.Run("AccountExpiry", func(t *testing.T) { RunAccountExpiry(t, open) })
	t.Run("Groups", func(t *testing.T) { RunGroups(t, open) })
}

var t0 = time.UnixMilli(1_800_000_000_000)

func addr(b byte, dev uint32) relay.DeviceAddr {
	var a relay.AccountID
	a[0] = b
	return relay.DeviceAddr{Account: a, Device: dev}
}

func newSend(from relay.DeviceAddr, msgID string, ts time.Time, to ...relay.DeviceAddr) *relay.Send {
	s := &relay.Send{Sender: from, MessageID: []byte(msgID), Timestamp: ts}
	for _, d := range to {
		var e relay.Envelope
		rand.Read(e.ID[8:])
		e.Recipient, e.Sender, e.SenderDevice = d, fmt.Sprint("sender", from.Account[0]), from.Device
		e.Timestamp, e.Type, e.Content, e.MessageID = ts, 1, []byte(msgID+"->"+d.String()), []byte(msgID)
		s.Envelopes = append(s.Envelopes, e)
	}
	return s
}

func fetchAll(t *testing.T, mb relay.Mailbox, d relay.DeviceAddr) []relay.Envelope {
	t.Helper()
	envs, err := mb.Fetch(context.Background(), d, 0, time.Time{}, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

// RunMailbox checks the Mailbox semantics.
func RunMailbox(t *testing.T, open Open) {
	ctx := context.Background()
	alice, bob1, bob2 := addr(1, 1), addr(2, 1), addr(2, 2)

	t.Run("AppendFetchOrder", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		for i := range 50 {
			if _, err := s.Append(ctx, newSend(alice, fmt.Sprint("m", i), t0, bob1, bob2)); err != nil {
				t.Fatal(err)
			}
		}
		// Append filled in the sequence half of the IDs: they match what
		// Fetch returns.
		sd := newSend(alice, "probe", t0, bob1)
		if _, err := s.Append(ctx, sd); err != nil {
			t.Fatal(err)
		}
		if all := fetchAll(t, s, bob1); all[len(all)-1].ID != sd.Envelopes[0].ID || sd.Envelopes[0].ID.Seq() == 0 {
			t.Fatal("Append did not fill the envelope id")
		}
		if err := s.Delete(ctx, bob1, []relay.EnvelopeID{sd.Envelopes[0].ID}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []relay.DeviceAddr{bob1, bob2} {
			envs := fetchAll(t, s, d)
			if len(envs) != 50 {
				t.Fatalf("%v: got %d envelopes, want 50", d, len(envs))
			}
			for i, e := range envs {
				if string(e.MessageID) != fmt.Sprint("m", i) || e.Recipient != d ||
					!bytes.Equal(e.Content, []byte(fmt.Sprint("m", i, "->", d))) || !e.Timestamp.Equal(t0) {
					t.Fatalf("envelope %d out of order or wrong: %+v", i, e)
				}
				if i > 0 && e.ID.Seq() <= envs[i-1].ID.Seq() {
					t.Fatal("sequence not increasing")
				}
			}
		}
		// Paging with after and limit.
		first := fetchAll(t, s, bob1)
		page, err := s.Fetch(ctx, bob1, first[9].ID.Seq(), time.Time{}, 5)
		if err != nil || len(page) != 5 || page[0].ID != first[10].ID {
			t.Fatalf("paging: %v %d", err, len(page))
		}
	})

	t.Run("Idempotent", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		r1, err := s.Append(ctx, newSend(alice, "same", t0, bob1))
		if err != nil || r1.Duplicate {
			t.Fatal(r1, err)
		}
		r2, err := s.Append(ctx, newSend(alice, "same", t0.Add(time.Hour), bob1))
		if err != nil || !r2.Duplicate || !r2.Timestamp.Equal(t0) {
			t.Fatalf("retry: %+v %v", r2, err)
		}
		// Another sender device may reuse the id.
		if r3, err := s.Append(ctx, newSend(addr(1, 2), "same", t0, bob1)); err != nil || r3.Duplicate {
			t.Fatal(r3, err)
		}
		if n := len(fetchAll(t, s, bob1)); n != 2 {
			t.Fatalf("got %d envelopes, want 2", n)
		}
	})

	t.Run("ConcurrentAppendsAllDurable", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					_, err := s.Append(ctx, newSend(addr(10+byte(w), 1), fmt.Sprint(i), t0, bob1))
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		envs := fetchAll(t, s, bob1)
		if len(envs) != 400 {
			t.Fatalf("got %d, want 400", len(envs))
		}
		// Per-sender order: each sender's message numbers appear ascending.
		next := map[string]int{}
		for _, e := range envs {
			var n int
			fmt.Sscan(string(e.MessageID), &n)
			if n != next[e.Sender] {
				t.Fatalf("sender %s: got message %d, want %d", e.Sender, n, next[e.Sender])
			}
			next[e.Sender]++
		}
	})

	t.Run("ConcurrentIDsMatchAndBulkDelete", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			given = map[relay.EnvelopeID]string{}
		)
		for w := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sd := newSend(addr(byte(w), 1), fmt.Sprint(w), t0, bob1, bob2)
				if _, err := s.Append(ctx, sd); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, e := range sd.Envelopes {
					given[e.ID] = string(e.Content)
				}
			}()
		}
		wg.Wait()
		var ids []relay.EnvelopeID
		for _, d := range []relay.DeviceAddr{bob1, bob2} {
			for _, e := range fetchAll(t, s, d) {
				if given[e.ID] != string(e.Content) {
					t.Fatalf("Append reported id %x for different content", e.ID)
				}
				if d == bob1 {
					ids = append(ids, e.ID)
				}
			}
		}
		if len(ids) != 100 {
			t.Fatalf("%d envelopes", len(ids))
		}
		// One call deleting many, one of them with a forged tag and one
		// belonging to another device.
		del := append([]relay.EnvelopeID(nil), ids[:70]...)
		del[5][15] ^= 1
		del = append(del, fetchAll(t, s, bob2)[0].ID)
		if err := s.Delete(ctx, bob1, del); err != nil {
			t.Fatal(err)
		}
		left := fetchAll(t, s, bob1)
		if len(left) != 31 || left[0].ID != ids[5] {
			t.Fatalf("after bulk delete: %d left", len(left))
		}
		if len(fetchAll(t, s, bob2)) != 100 {
			t.Fatal("bulk delete touched another device")
		}
	})

	t.Run("DeleteOnlyOwn", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		if _, err := s.Append(ctx, newSend(alice, "x", t0, bob1, bob2)); err != nil {
			t.Fatal(err)
		}
		e1, e2 := fetchAll(t, s, bob1), fetchAll(t, s, bob2)
		// bob2 cannot delete bob1's envelope.
		if err := s.Delete(ctx, bob2, []relay.EnvelopeID{e1[0].ID}); err != nil {
			t.Fatal(err)
		}
		if len(fetchAll(t, s, bob1)) != 1 {
			t.Fatal("deleted another device's envelope")
		}
		// A forged tag does not delete.
		forged := e1[0].ID
		forged[15] ^= 1
		if err := s.Delete(ctx, bob1, []relay.EnvelopeID{forged}); err != nil {
			t.Fatal(err)
		}
		if len(fetchAll(t, s, bob1)) != 1 {
			t.Fatal("deleted with a wrong tag")
		}
		if err := s.Delete(ctx, bob1, []relay.EnvelopeID{e1[0].ID}); err != nil {
			t.Fatal(err)
		}
		if len(fetchAll(t, s, bob1)) != 0 || len(fetchAll(t, s, bob2)) != 1 {
			t.Fatal("delete removed the wrong envelopes")
		}
		// Deleting again is harmless.
		if err := s.Delete(ctx, bob2, []relay.EnvelopeID{e2[0].ID, e2[0].ID}); err != nil {
			t.Fatal(err)
		}
		if len(fetchAll(t, s, bob2)) != 0 {
			t.Fatal("not deleted")
		}
	})

	t.Run("Expire", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		old, young := t0, t0.Add(48*time.Hour)
		if _, err := s.Append(ctx, newSend(alice, "old", old, bob1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, newSend(alice, "young", young, bob1)); err != nil {
			t.Fatal(err)
		}
		cut := t0.Add(24 * time.Hour)
		// Fetch hides expired envelopes even before Expire runs.
		envs, err := s.Fetch(ctx, bob1, 0, cut, 10)
		if err != nil || len(envs) != 1 || string(envs[0].MessageID) != "young" {
			t.Fatalf("fetch with cutoff: %v %v", envs, err)
		}
		n, err := s.Expire(ctx, cut)
		if err != nil || n != 1 {
			t.Fatalf("expire: %d %v", n, err)
		}
		if envs := fetchAll(t, s, bob1); len(envs) != 1 || string(envs[0].MessageID) != "young" {
			t.Fatal("expire removed the wrong envelopes")
		}
		// Dedupe records are ExpireSends' business: the expired send's
		// is still there.
		if r, err := s.Append(ctx, newSend(alice, "old", young, bob1)); err != nil || !r.Duplicate || !r.Timestamp.Equal(old) {
			t.Fatalf("re-append after Expire: %+v %v", r, err)
		}
	})

	// The relay keeps a send's dedupe record (who sent which message id)
	// only for the retry window: within it a retry is a duplicate, also
	// after a restart; ExpireSends then forgets the send and leaves its
	// envelopes alone.
	t.Run("DedupeWindow", func(t *testing.T) {
		s, reopen := open(t)
		sent := t0
		var sealed relay.DeviceAddr // a sealed send names no sender
		for _, from := range []relay.DeviceAddr{alice, sealed} {
			if r, err := s.Append(ctx, newSend(from, "m", sent, bob1)); err != nil || r.Duplicate {
				t.Fatalf("first send: %+v %v", r, err)
			}
		}
		// Still in the window: nothing older than the sends is removed.
		if n, err := s.ExpireSends(ctx, sent); err != nil || n != 0 {
			t.Fatalf("ExpireSends inside the window: %d %v", n, err)
		}
		if reopen != nil {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = reopen()
		}
		defer func() { s.Close() }()
		for _, from := range []relay.DeviceAddr{alice, sealed} {
			r, err := s.Append(ctx, newSend(from, "m", sent.Add(time.Minute), bob1))
			if err != nil || !r.Duplicate || !r.Timestamp.Equal(sent) {
				t.Fatalf("retry within the window: %+v %v", r, err)
			}
		}
		if n := len(fetchAll(t, s, bob1)); n != 2 {
			t.Fatalf("%d envelopes after retries, want 2", n)
		}
		// The window is over: both records go, the envelopes stay.
		if n, err := s.ExpireSends(ctx, sent.Add(time.Millisecond)); err != nil || n != 2 {
			t.Fatalf("ExpireSends after the window: %d %v, want 2", n, err)
		}
		if n := len(fetchAll(t, s, bob1)); n != 2 {
			t.Fatalf("ExpireSends removed envelopes: %d left, want 2", n)
		}
		// A retry after the window is stored again (the recipient drops the
		// repeated message id).
		if r, err := s.Append(ctx, newSend(alice, "m", sent.Add(time.Hour), bob1)); err != nil || r.Duplicate {
			t.Fatalf("retry after the window: %+v %v", r, err)
		}
	})

	t.Run("DurableAcrossReopen", func(t *testing.T) {
		s, reopen := open(t)
		if reopen == nil {
			s.Close()
			t.Skip("backend has no persistence")
		}
		for i := range 20 {
			if _, err := s.Append(ctx, newSend(alice, fmt.Sprint(i), t0, bob1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := reopen()
		defer s2.Close()
		if n := len(fetchAll(t, s2, bob1)); n != 20 {
			t.Fatalf("after reopen: %d envelopes, want 20", n)
		}
		// Sequence numbers keep increasing after reopen, even after deletes.
		envs := fetchAll(t, s2, bob1)
		ids := make([]relay.EnvelopeID, len(envs))
		for i, e := range envs {
			ids[i] = e.ID
		}
		if err := s2.Delete(ctx, bob1, ids); err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Append(ctx, newSend(alice, "after", t0, bob1)); err != nil {
			t.Fatal(err)
		}
		if e := fetchAll(t, s2, bob1); len(e) != 1 || e[0].ID.Seq() <= envs[len(envs)-1].ID.Seq() {
			t.Fatal("sequence number reused")
		}
	})

	t.Run("ClosedRejects", func(t *testing.T) {
		s, _ := open(t)
		s.Close()
		_, err := s.Append(ctx, newSend(alice, "late", t0, bob1))
		if !errors.Is(err, relay.ErrClosed) {
			t.Fatalf("append after close: %v", err)
		}
	})
}
