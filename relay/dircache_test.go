package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingDir is the part of a Directory the cache uses.
type countingDir struct {
	Directory
	mu    sync.Mutex
	devs  []Device
	gate  chan struct{} // when set, loads wait for it to close
	loads atomic.Int64
}

func (d *countingDir) AccountByName(_ context.Context, name string) (Account, error) {
	d.loads.Add(1)
	d.mu.Lock()
	gate := d.gate
	d.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return Account{Username: name}, nil
}

func (d *countingDir) Devices(context.Context, AccountID, bool) ([]Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.devs, nil
}

// TestDirCachePeek: peek never loads in the caller; past the ttl it
// still answers while one background reload brings the new devices; past
// twice the ttl it misses.
func TestDirCachePeek(t *testing.T) {
	ctx := context.Background()
	dir := &countingDir{devs: []Device{{RegistrationID: 1}}}
	var now atomic.Int64
	c := newDirCache(dir, time.Second, func() time.Time { return time.Unix(now.Load(), 0) })
	if _, _, ok := c.peek(ctx, "bob"); ok || dir.loads.Load() != 0 {
		t.Fatal("peek of an unknown name hit or loaded")
	}
	if _, _, err := c.get(ctx, "bob"); err != nil || dir.loads.Load() != 1 {
		t.Fatalf("get: %v, %d loads", err, dir.loads.Load())
	}
	if _, devs, ok := c.peek(ctx, "bob"); !ok || devs[0].RegistrationID != 1 || dir.loads.Load() != 1 {
		t.Fatal("fresh entry not served from the cache")
	}
	// The reload waits at the gate, so that the peeks below all come
	// while it runs.
	gate := make(chan struct{})
	dir.mu.Lock()
	dir.devs = []Device{{RegistrationID: 2}}
	dir.gate = gate
	dir.mu.Unlock()
	now.Store(1) // at the ttl: the old entry, and one reload
	for range 3 {
		if _, devs, ok := c.peek(ctx, "bob"); !ok || devs[0].RegistrationID != 1 {
			t.Fatal("stale entry not served during its reload")
		}
	}
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, devs, ok := c.peek(ctx, "bob"); ok && devs[0].RegistrationID == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reload never replaced the entry")
		}
		time.Sleep(time.Millisecond)
	}
	if n := dir.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2 (one reload)", n)
	}
	now.Store(3) // twice the ttl after the reload
	if _, _, ok := c.peek(ctx, "bob"); ok {
		t.Fatal("entry older than twice the ttl served")
	}
	c.invalidate(AccountID{})
	if _, _, ok := c.peek(ctx, "bob"); ok {
		t.Fatal("invalidated entry served")
	}
}

// TestDirCacheReloadsBounded: entries that went stale together are
// reloaded by at most maxReloads goroutines at once, and every one is
// reloaded as peeks go on.
func TestDirCacheReloadsBounded(t *testing.T) {
	ctx := context.Background()
	dir := &countingDir{devs: []Device{{RegistrationID: 1}}}
	var now atomic.Int64
	c := newDirCache(dir, time.Second, func() time.Time { return time.Unix(now.Load(), 0) })
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for _, n := range names {
		if _, _, err := c.get(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	gate := make(chan struct{})
	dir.mu.Lock()
	dir.devs = []Device{{RegistrationID: 2}}
	dir.gate = gate
	dir.mu.Unlock()
	base := dir.loads.Load()
	now.Store(1) // all stale at once
	for _, n := range names {
		if _, _, ok := c.peek(ctx, n); !ok {
			t.Fatalf("stale %s not served", n)
		}
	}
	// The reloads wait at the gate: only maxReloads started.
	deadline := time.Now().Add(10 * time.Second)
	for dir.loads.Load()-base < maxReloads && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := dir.loads.Load() - base; n != maxReloads {
		t.Fatalf("%d reloads under way, want %d", n, maxReloads)
	}
	close(gate)
	for _, n := range names {
		for {
			if _, devs, ok := c.peek(ctx, n); ok && devs[0].RegistrationID == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reloaded", n)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
