package client

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"sotto/internal/hostileproxy"
	"sotto/wire"
)

// TestKeyLogHeadOnlyMovesForward: a relay holds its reply to the
// consistency proof a key check (RefreshIdentity, then the first-contact
// check) asked for, until the audit saved a larger head. The held check
// must not overwrite that head with the smaller one it verified: the
// stored head only moves forward. The interleaving is driven by the test:
// the proxy holds the reply on a channel until the audit returned.
func TestKeyLogHeadOnlyMovesForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	var mu sync.Mutex
	armed := false
	held := make(chan *wire.Frame, 1)
	proxy := hostileproxy.New(r.url, func(_ int, dir hostileproxy.Direction, f *wire.Frame) []*wire.Frame {
		if dir != hostileproxy.ToClient || f.GetResponse().GetTransparencyConsistency() == nil {
			return []*wire.Frame{f}
		}
		mu.Lock()
		hold := armed
		armed = false
		mu.Unlock()
		if !hold {
			return []*wire.Frame{f}
		}
		held <- f
		return nil
	})
	hs := httptest.NewServer(proxy)
	t.Cleanup(func() { proxy.Close(); hs.Close() })
	code := r.code(t, 10, time.Hour)
	alice, _ := (&testRelay{url: hs.URL, store: r.store, org: r.ensureOrg(), logPub: r.logPub}).enroll(t, code, "alice", false)
	bob, _ := r.enroll(t, code, "bob", false)
	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	for i, check := range []func() error{
		func() error { return alice.RefreshIdentity(ctx, "bob") },
		func() error { return alice.checkLogged(ctx, conn, "bob", bob.IdentityKey(), false) },
	} {
		if _, err := alice.AuditKeyLog(ctx); err != nil {
			t.Fatal(err)
		}
		// The log grows: the key check is served a head larger than
		// alice's, and asks the relay for a consistency proof...
		r.enroll(t, code, "carol"+string(rune('a'+2*i)), false)
		mu.Lock()
		armed = true
		mu.Unlock()
		done := make(chan error, 1)
		go func() { done <- check() }()
		reply := <-held
		served, err := r.store.LogLeaves(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		// ...which the relay holds while the log grows again and the
		// audit saves the larger head.
		r.enroll(t, code, "carol"+string(rune('a'+2*i+1)), false)
		if _, err := alice.AuditKeyLog(ctx); err != nil {
			t.Fatal(err)
		}
		audited, err := alice.TransparencyHead(ctx)
		if err != nil || audited == nil || audited.Size != uint64(len(served)+1) {
			t.Fatalf("check %d: head after the audit %+v %v, want size %d", i, audited, err, len(served)+1)
		}
		if _, err := proxy.Inject(ctx, "alice", hostileproxy.ToClient, reply); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		h, err := alice.TransparencyHead(ctx)
		if err != nil || h == nil || h.Size != audited.Size || h.Root != audited.Root {
			t.Fatalf("check %d: the stored head moved back from size %d to %+v (%v)", i, audited.Size, h, err)
		}
		if a := alarmsOf(t, alice); len(a) != 0 {
			t.Fatalf("check %d: alarms %+v", i, a)
		}
	}
}
