package relay

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/wire"
)

// memberSource is a member access document store for memberCache: it
// counts loads and, when gate is set, holds them until gate closes.
type memberSource struct {
	mu    sync.Mutex
	doc   *wire.MemberAccess
	gate  chan struct{}
	loads atomic.Int64
}

func (m *memberSource) load(context.Context) (*wire.MemberAccess, error) {
	m.loads.Add(1)
	m.mu.Lock()
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		<-gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.doc, nil
}

func (m *memberSource) set(doc *wire.MemberAccess, gate chan struct{}) {
	m.mu.Lock()
	m.doc, m.gate = doc, gate
	m.mu.Unlock()
}

// TestMemberCacheStaleWhileReloading: the sealed fast path never loads the
// member access document itself; past the ttl it still gets the kept one
// while exactly one background reload brings the new one (so busy sealed
// traffic does not fall to the general path every ttl), and past twice the
// ttl a retired key is never served: the send waits for a load.
func TestMemberCacheStaleWhileReloading(t *testing.T) {
	ctx := context.Background()
	v1 := &wire.MemberAccess{Version: 1, AccessKey: make([]byte, wire.AccessKeySize)}
	v2 := &wire.MemberAccess{Version: 2, AccessKey: make([]byte, wire.AccessKeySize)}
	v2.AccessKey[0] = 1
	src := &memberSource{doc: v1}
	var now atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	m := &memberCache{load: src.load, ttl: time.Second, now: func() time.Time { return time.Unix(now.Load(), 0) },
		goReload: func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }}

	if _, err := m.get(ctx, false); !errors.Is(err, errCacheMiss) || src.loads.Load() != 0 {
		t.Fatalf("fast path with nothing cached: %v, %d loads", err, src.loads.Load())
	}
	if d, err := m.get(ctx, true); err != nil || d.Version != 1 || src.loads.Load() != 1 {
		t.Fatalf("general path: %v %v, %d loads", d, err, src.loads.Load())
	}
	if d, err := m.get(ctx, false); err != nil || d.Version != 1 || src.loads.Load() != 1 {
		t.Fatal("fresh document not served from the cache")
	}

	// The admin rotates the key through another relay process; the
	// reload waits at the gate so that the sends below all come while it
	// runs.
	gate := make(chan struct{})
	src.set(v2, gate)
	now.Store(1) // at the ttl: the kept document, and one reload
	for range 3 {
		if d, err := m.get(ctx, false); err != nil || d.Version != 1 {
			t.Fatalf("stale document not served during its reload: %v %v", d, err)
		}
	}
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, err := m.get(ctx, false); err == nil && d.Version == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reload never brought the new document")
		}
		time.Sleep(time.Millisecond)
	}
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2 (one background reload)", n)
	}

	// Past twice the ttl nothing is served without a load: a key retired
	// while no sealed send came is never accepted from the cache.
	src.set(v1, nil)
	now.Store(3)
	if d, err := m.get(ctx, false); !errors.Is(err, errCacheMiss) {
		t.Fatalf("document older than twice the ttl served: %v", d)
	}
	// An invalidation (this relay stored a new document) drops it at
	// once, and a reload that raced with it does not bring it back.
	if _, err := m.get(ctx, true); err != nil {
		t.Fatal(err)
	}
	gate = make(chan struct{})
	src.set(v1, gate)
	now.Store(4) // stale: a reload starts and waits at the gate
	if _, err := m.get(ctx, false); err != nil {
		t.Fatal(err)
	}
	m.invalidate()
	close(gate)
	wg.Wait()
	if _, err := m.get(ctx, false); !errors.Is(err, errCacheMiss) {
		t.Fatal("a reload that raced with an invalidation refilled the cache")
	}
}
