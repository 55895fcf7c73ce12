package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/relay"
)

// BlobIndex is a relay.BlobIndex the suite can close.
type BlobIndex interface {
	relay.BlobIndex
	Close() error
}

// OpenBlobIndex returns a fresh, empty index; the suite closes it.
// reopen, when not nil, opens the same data again.
type OpenBlobIndex func(t *testing.T) (idx BlobIndex, reopen func() BlobIndex)

func newBlob(size int64, created time.Time, ttl time.Duration) relay.Blob {
	b := relay.Blob{Size: size, Created: created, Expires: created.Add(ttl)}
	rand.Read(b.ID[:])
	rand.Read(b.WriteKeyHash[:])
	return b
}

// chargeTo charges a blob to dev against quota over a 2-day window.
func chargeTo(dev relay.DeviceAddr, quota int64) relay.BlobCharge {
	return relay.BlobCharge{Uploader: dev, Quota: quota, Window: 48 * time.Hour}
}

func sameBlob(a, b relay.Blob) bool {
	return a.ID == b.ID && a.WriteKeyHash == b.WriteKeyHash && a.Size == b.Size && a.Committed == b.Committed &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

// RunBlobIndex checks the relay.BlobIndex semantics.
func RunBlobIndex(t *testing.T, open OpenBlobIndex) {
	ctx := context.Background()
	owner, owner2, stranger := addr(1, 1), addr(1, 2), addr(2, 1)
	const quota = 1000

	t.Run("CreateGetDurable", func(t *testing.T) {
		x, reopen := open(t)
		b := newBlob(12345, t0, time.Hour)
		b.Committed = 7
		if err := x.CreateBlob(ctx, b, chargeTo(owner, 1<<40)); err != nil {
			t.Fatal(err)
		}
		if got, err := x.Blob(ctx, b.ID); err != nil || !sameBlob(got, b) {
			t.Fatalf("Blob: %+v %v, want %+v", got, err, b)
		}
		var unknown relay.BlobID
		unknown[0] = 1
		if _, err := x.Blob(ctx, unknown); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("unknown blob: %v, want ErrNotFound", err)
		}
		// The same id again is refused and changes nothing.
		dup := newBlob(1, t0, time.Minute)
		dup.ID = b.ID
		if err := x.CreateBlob(ctx, dup, chargeTo(stranger, 1<<40)); err == nil {
			t.Fatal("a second blob with the same id was accepted")
		}
		if got, _ := x.Blob(ctx, b.ID); !sameBlob(got, b) {
			t.Fatalf("a refused duplicate changed the record: %+v", got)
		}
		x.Close()
		if reopen == nil {
			return
		}
		x2 := reopen()
		defer x2.Close()
		if got, err := x2.Blob(ctx, b.ID); err != nil || !sameBlob(got, b) {
			t.Fatalf("after reopen: %+v %v", got, err)
		}
	})

	// The quota is charged at creation, per device and day, and counts
	// over the window whatever becomes of the blobs: the index keeps no
	// list of a device's blobs to sum.
	t.Run("Quota", func(t *testing.T) {
		x, _ := open(t)
		defer x.Close()
		create := func(dev relay.DeviceAddr, size int64, at time.Time) error {
			return x.CreateBlob(ctx, newBlob(size, at, time.Hour), chargeTo(dev, quota))
		}
		first := newBlob(600, t0, time.Hour)
		if err := x.CreateBlob(ctx, first, chargeTo(owner, quota)); err != nil {
			t.Fatal(err)
		}
		over := newBlob(401, t0, time.Hour)
		if err := x.CreateBlob(ctx, over, chargeTo(owner, quota)); !errors.Is(err, relay.ErrQuota) {
			t.Fatalf("over quota: %v, want ErrQuota", err)
		}
		if _, err := x.Blob(ctx, over.ID); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("a refused blob was stored: %v", err)
		}
		if err := create(owner, 400, t0); err != nil {
			t.Fatalf("up to the quota exactly: %v", err)
		}
		// The quota is per device: another device of the same account and
		// another account have their own.
		if err := create(owner2, quota, t0); err != nil {
			t.Fatalf("other device: %v", err)
		}
		if err := create(stranger, quota, t0); err != nil {
			t.Fatalf("other account: %v", err)
		}
		if err := create(addr(3, 1), quota+1, t0); !errors.Is(err, relay.ErrQuota) {
			t.Fatalf("one blob larger than the quota: %v", err)
		}
		// A zero-size blob always fits.
		if err := create(owner, 0, t0); err != nil {
			t.Fatalf("empty blob at the quota: %v", err)
		}
		// Deleting or expiring a blob refunds nothing.
		if err := x.DeleteBlob(ctx, first.ID); err != nil {
			t.Fatal(err)
		}
		if err := create(owner, 1, t0.Add(2*time.Hour)); !errors.Is(err, relay.ErrQuota) {
			t.Fatalf("after deleting a blob: %v, want ErrQuota", err)
		}
		// The charges count for the days of the window plus one ...
		day := 24 * time.Hour
		if err := create(owner, 1, t0.Add(2*day)); !errors.Is(err, relay.ErrQuota) {
			t.Fatalf("two days later: %v, want ErrQuota", err)
		}
		// ... then roll out, even before ExpireCharges runs.
		if err := create(owner, quota, t0.Add(3*day)); err != nil {
			t.Fatalf("three days later: %v", err)
		}
	})

	t.Run("ExpireCharges", func(t *testing.T) {
		x, _ := open(t)
		defer x.Close()
		if err := x.CreateBlob(ctx, newBlob(quota, t0, time.Hour), chargeTo(owner, quota)); err != nil {
			t.Fatal(err)
		}
		day, _ := relay.ChargeDays(t0, 48*time.Hour)
		if err := x.ExpireCharges(ctx, day); err != nil {
			t.Fatal(err)
		}
		if err := x.CreateBlob(ctx, newBlob(1, t0, time.Hour), chargeTo(owner, quota)); !errors.Is(err, relay.ErrQuota) {
			t.Fatalf("ExpireCharges removed the charge of its own day: %v", err)
		}
		if err := x.ExpireCharges(ctx, day+1); err != nil {
			t.Fatal(err)
		}
		if err := x.CreateBlob(ctx, newBlob(quota, t0, time.Hour), chargeTo(owner, quota)); err != nil {
			t.Fatalf("after the charge expired: %v", err)
		}
	})

	t.Run("QuotaAtomic", func(t *testing.T) {
		x, _ := open(t)
		defer x.Close()
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch err := x.CreateBlob(ctx, newBlob(100, t0, time.Hour), chargeTo(owner, quota)); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, relay.ErrQuota):
					refused.Add(1)
				default:
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if ok.Load() != quota/100 || refused.Load() != 20-quota/100 {
			t.Fatalf("%d created, %d refused; want %d, %d", ok.Load(), refused.Load(), quota/100, 20-quota/100)
		}
	})

	t.Run("SetCommitted", func(t *testing.T) {
		x, reopen := open(t)
		b := newBlob(100, t0, time.Hour)
		if err := x.CreateBlob(ctx, b, chargeTo(owner, quota)); err != nil {
			t.Fatal(err)
		}
		// A zero expiry leaves it unchanged.
		if err := x.SetCommitted(ctx, b.ID, 40, time.Time{}); err != nil {
			t.Fatal(err)
		}
		b.Committed = 40
		if got, err := x.Blob(ctx, b.ID); err != nil || !sameBlob(got, b) || got.Complete() {
			t.Fatalf("after a part: %+v %v", got, err)
		}
		b.Committed, b.Expires = 100, t0.Add(30*24*time.Hour)
		if err := x.SetCommitted(ctx, b.ID, 100, b.Expires); err != nil {
			t.Fatal(err)
		}
		if got, err := x.Blob(ctx, b.ID); err != nil || !sameBlob(got, b) || !got.Complete() {
			t.Fatalf("complete: %+v %v", got, err)
		}
		// More than the declared size is refused and changes nothing.
		if err := x.SetCommitted(ctx, b.ID, 101, t0.Add(time.Minute)); err == nil {
			t.Fatal("committed more than the size")
		}
		var unknown relay.BlobID
		unknown[15] = 9
		if err := x.SetCommitted(ctx, unknown, 1, time.Time{}); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("unknown blob: %v, want ErrNotFound", err)
		}
		x.Close()
		if reopen == nil {
			return
		}
		x2 := reopen()
		defer x2.Close()
		if got, err := x2.Blob(ctx, b.ID); err != nil || !sameBlob(got, b) {
			t.Fatalf("after reopen: %+v %v, want %+v", got, err, b)
		}
	})

	t.Run("ExpiredAndDelete", func(t *testing.T) {
		x, _ := open(t)
		defer x.Close()
		now := t0.Add(time.Hour)
		var expired, live []relay.BlobID
		for i := range 8 {
			b := newBlob(10, t0, time.Duration(30+i*5)*time.Minute)
			if err := x.CreateBlob(ctx, b, chargeTo(owner, quota)); err != nil {
				t.Fatal(err)
			}
			if !b.Expires.After(now) { // 30..60 min: the one at exactly 60 is expired
				expired = append(expired, b.ID)
			} else {
				live = append(live, b.ID)
			}
		}
		if len(expired) != 7 || len(live) != 1 {
			t.Fatalf("test setup: %d expired, %d live", len(expired), len(live))
		}
		less := func(a, b relay.BlobID) int { return slices.Compare(a[:], b[:]) }
		slices.SortFunc(expired, less)
		page, err := x.ExpiredBlobs(ctx, now, 3)
		if err != nil || len(page) != 3 {
			t.Fatalf("limit 3: %d ids %v", len(page), err)
		}
		for _, id := range page {
			if _, found := slices.BinarySearchFunc(expired, id, less); !found {
				t.Fatalf("listed an unexpired blob %v", id)
			}
		}
		all, err := x.ExpiredBlobs(ctx, now, 100)
		slices.SortFunc(all, less)
		if err != nil || !slices.Equal(all, expired) {
			t.Fatalf("all expired: %d ids %v, want %d", len(all), err, len(expired))
		}
		// The janitor's loop: list, delete, until nothing is left.
		for {
			ids, err := x.ExpiredBlobs(ctx, now, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) == 0 {
				break
			}
			for _, id := range ids {
				if err := x.DeleteBlob(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, id := range expired {
			if _, err := x.Blob(ctx, id); !errors.Is(err, relay.ErrNotFound) {
				t.Fatalf("deleted blob still there: %v", err)
			}
			if err := x.DeleteBlob(ctx, id); err != nil {
				t.Fatalf("deleting an absent blob: %v", err)
			}
		}
		if _, err := x.Blob(ctx, live[0]); err != nil {
			t.Fatalf("live blob: %v", err)
		}
		if ids, err := x.ExpiredBlobs(ctx, time.Time{}, 10); err != nil || len(ids) != 0 {
			t.Fatalf("nothing expired at the zero time: %v %v", ids, err)
		}
	})
}
