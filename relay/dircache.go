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
	acct    Account
	devices []Device
	loaded  time.Time
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
