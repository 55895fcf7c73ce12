package blobstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/blobstore"
	"sotto/relay/storetest"
)

func TestIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	x, err := blobstore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	owner := relay.DeviceAddr{Device: 1}
	rand.Read(owner.Account[:])
	other := relay.DeviceAddr{Account: owner.Account, Device: 2}
	newBlob := func(dev relay.DeviceAddr, size int64, created time.Time) relay.Blob {
		b := relay.Blob{Owner: dev, Size: size, Created: created, Expires: created.Add(time.Hour)}
		rand.Read(b.ID[:])
		return b
	}
	a := newBlob(owner, 600, now)
	if err := x.CreateBlob(ctx, a, 1000); err != nil {
		t.Fatal(err)
	}
	if err := x.CreateBlob(ctx, newBlob(owner, 401, now), 1000); !errors.Is(err, relay.ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if err := x.CreateBlob(ctx, newBlob(owner, 400, now), 1000); err != nil {
		t.Fatalf("up to the quota: %v", err)
	}
	if err := x.CreateBlob(ctx, newBlob(other, 1000, now), 1000); err != nil {
		t.Fatalf("another device's quota: %v", err)
	}
	// Expired blobs no longer count.
	if err := x.CreateBlob(ctx, newBlob(owner, 1000, now.Add(2*time.Hour)), 1000); err != nil {
		t.Fatalf("after expiry: %v", err)
	}

	if err := x.SetCommitted(ctx, a.ID, 250, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := x.SetCommitted(ctx, a.ID, 601, time.Time{}); err == nil {
		t.Fatal("committed past the size")
	}
	got, err := x.Blob(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	a.Committed = 250
	if got != a || got.Complete() {
		t.Fatalf("got %+v, want %+v", got, a)
	}
	var missing relay.BlobID
	if _, err := x.Blob(ctx, missing); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}

	ids, err := x.ExpiredBlobs(ctx, now.Add(time.Hour), 100)
	if err != nil || len(ids) != 3 {
		t.Fatalf("expired: %v %v", ids, err)
	}
	for _, id := range ids {
		if err := x.DeleteBlob(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.Blob(ctx, a.ID); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("deleted blob: %v", err)
	}
	if ids, _ := x.ExpiredBlobs(ctx, now.Add(3*time.Hour), 100); len(ids) != 1 {
		t.Fatalf("left: %v", ids)
	}
	// The index survives a reopen.
	x.Close()
	if x, err = blobstore.Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if ids, _ := x.ExpiredBlobs(ctx, now.Add(3*time.Hour), 100); len(ids) != 1 {
		t.Fatalf("after reopen: %v", ids)
	}
}

func TestConformance(t *testing.T) {
	storetest.RunBlobIndex(t, func(t *testing.T) (storetest.BlobIndex, func() storetest.BlobIndex) {
		dir := t.TempDir()
		open := func() storetest.BlobIndex {
			x, err := blobstore.Open(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		return open(), open
	})
}
