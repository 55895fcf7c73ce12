package relay

import (
	"context"
	"sync"
	"time"
)

// dirCache keeps recently used (account, active devices) pairs by
// username, so that a send does not cost two directory queries. Entries
// live for ttl and are dropped at once on every change this relay makes
// or learns of (links, removals, revocations polled from the store).
// A change made by another process is therefore seen within the
// revocation poll interval or ttl, whichever comes first.
type dirCache struct {
	dir Directory
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]*dirEntry
	// gen counts invalidations: a load that raced with one is not cached.
	gen uint64
}

type dirEntry struct {
	acct       Account
	devices    []Device
	loaded     time.Time
	refreshing bool // peek started a reload (d.mu)
}

const dirCacheMax = 100_000

func newDirCache(dir Directory, ttl time.Duration, now func() time.Time) *dirCache {
	return &dirCache{dir: dir, ttl: ttl, now: now, m: make(map[string]*dirEntry)}
}

// get returns the account named username (normalized) and its active
// devices. The slice must not be modified.
func (d *dirCache) get(ctx context.Context, username string) (Account, []Device, error) {
	now := d.now()
	d.mu.Lock()
	e := d.m[username]
	gen := d.gen
	d.mu.Unlock()
	if e != nil && now.Sub(e.loaded) < d.ttl {
		return e.acct, e.devices, nil
	}
	acct, err := d.dir.AccountByName(ctx, username)
	if err != nil {
		return acct, nil, err
	}
	devs, err := d.dir.Devices(ctx, acct.ID, false)
	if err != nil {
		return acct, nil, err
	}
	d.mu.Lock()
	if d.gen == gen {
		if len(d.m) >= dirCacheMax {
			clear(d.m)
		}
		d.m[username] = &dirEntry{acct: acct, devices: devs, loaded: now}
	}
	d.mu.Unlock()
	return acct, devs, nil
}

// peek is get without loading in the caller: ok is false when username
// is not cached. An entry past its ttl (but not yet twice that) is still
// returned while one background reload replaces it, so that busy
// recipients never drop out of the cache; changes this relay makes or
// learns of still drop entries at once (invalidate), and the reload
// starts as soon as the entry is old, so a change made elsewhere is
// seen about as soon as with get.
func (d *dirCache) peek(ctx context.Context, username string) (Account, []Device, bool) {
	now := d.now()
	d.mu.Lock()
	e := d.m[username]
	if e == nil || now.Sub(e.loaded) >= 2*d.ttl {
		d.mu.Unlock()
		return Account{}, nil, false
	}
	reload := now.Sub(e.loaded) >= d.ttl && !e.refreshing
	if reload {
		e.refreshing = true
	}
	gen := d.gen
	d.mu.Unlock()
	if reload {
		go d.reload(ctx, username, gen)
	}
	return e.acct, e.devices, true
}

// reload replaces the entry of username (the goroutine peek starts; it
// ends with the load, which ctx bounds).
func (d *dirCache) reload(ctx context.Context, username string, gen uint64) {
	now := d.now()
	acct, err := d.dir.AccountByName(ctx, username)
	var devs []Device
	if err == nil {
		devs, err = d.dir.Devices(ctx, acct.ID, false)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.gen != gen:
		// An invalidation raced with the load; it dropped the entry.
	case err != nil:
		delete(d.m, username) // the next use loads it, or reports the error
	default:
		d.m[username] = &dirEntry{acct: acct, devices: devs, loaded: now}
	}
}

// invalidate drops everything cached about account id.
func (d *dirCache) invalidate(id AccountID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	for k, e := range d.m {
		if e.acct.ID == id {
			delete(d.m, k)
		}
	}
}
