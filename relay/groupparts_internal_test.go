package relay

import (
	"errors"
	"testing"
	"time"

	"sotto/wire"
)

// The uploads in progress of all devices together are bounded: past
// maxGroupUploadBytes a new upload is refused (RATE_LIMITED) until one
// finishes, is replaced, or idles out; none of this holds memory past
// the parts received.
func TestGroupUploadsBounded(t *testing.T) {
	var gu groupUploads
	now := time.Now()
	start := func(dev uint32, id string) error {
		_, err := gu.put(DeviceAddr{Device: dev}, &wire.GroupUploadRequest{UploadId: []byte(id), Total: MaxGroupHandshake, Data: []byte("x")}, now)
		return err
	}
	n := maxGroupUploadBytes / MaxGroupHandshake
	for i := range n {
		if err := start(uint32(i+1), "a"); err != nil {
			t.Fatalf("upload %d of %d: %v", i+1, n, err)
		}
	}
	if err := start(uint32(n+1), "a"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("upload past the budget: %v", err)
	}
	// A device's new upload replaces its last: the budget is not spent
	// twice.
	if err := start(1, "b"); err != nil {
		t.Fatalf("replacing an upload: %v", err)
	}
	if gu.reserved != int64(n)*MaxGroupHandshake || len(gu.m) != n {
		t.Fatalf("reserved %d bytes for %d uploads", gu.reserved, len(gu.m))
	}
	// Idle uploads go.
	gu.expire(now.Add(groupUploadIdle + time.Second))
	if gu.reserved != 0 || len(gu.m) != 0 {
		t.Fatalf("after expiry: %d bytes, %d uploads", gu.reserved, len(gu.m))
	}
	if err := start(uint32(n+1), "a"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}
