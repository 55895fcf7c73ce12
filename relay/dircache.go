package relay

import (
	"context"
	"errors"
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
	// reloads holds a token per background reload under way: at most
	// maxReloads at once. Entries loaded together (a relay's first
	// minute of traffic) go stale together; one goroutine per entry
	// at that moment (a thousand, all waiting for the store's
	// connections) held up the sends that needed the store.
	reloads chan struct{}
}

// maxReloads bounds the directory cache's background reloads.
const maxReloads = 4

type dirEntry struct {
	acct       Account
	devices    []Device
	accessKey  []byte // the account's unidentified access key (nil: none, or not kept)
	loaded     time.Time
	refreshing bool // peek started a reload (d.mu)
}

const dirCacheMax = 100_000

func newDirCache(dir Directory, ttl time.Duration, now func() time.Time) *dirCache {
	return &dirCache{dir: dir, ttl: ttl, now: now, m: make(map[string]*dirEntry), reloads: make(chan struct{}, maxReloads)}
}

// get returns the account named username (normalized) and its active
// devices. The slice must not be modified.
func (d *dirCache) get(ctx context.Context, username string) (Account, []Device, error) {
	e, err := d.getEntry(ctx, username)
	return e.acct, e.devices, err
}

// getEntry is get with everything cached about the account.
func (d *dirCache) getEntry(ctx context.Context, username string) (dirEntry, error) {
	now := d.now()
	d.mu.Lock()
	e := d.m[username]
	gen := d.gen
	d.mu.Unlock()
	if e != nil && now.Sub(e.loaded) < d.ttl {
		return *e, nil
	}
	ne, err := d.load(ctx, username, now)
	if err != nil {
		return ne, err
	}
	d.mu.Lock()
	if d.gen == gen {
		if len(d.m) >= dirCacheMax {
			clear(d.m)
		}
		d.m[username] = &ne
	}
	d.mu.Unlock()
	return ne, nil
}

// load reads what is cached about username from the directory.
func (d *dirCache) load(ctx context.Context, username string, now time.Time) (dirEntry, error) {
	acct, err := d.dir.AccountByName(ctx, username)
	if err != nil {
		return dirEntry{acct: acct}, err
	}
	devs, err := d.dir.Devices(ctx, acct.ID, false)
	if err != nil {
		return dirEntry{acct: acct}, err
	}
	e := dirEntry{acct: acct, devices: devs, loaded: now}
	if ks, ok := d.dir.(AccessKeyStore); ok {
		k, err := ks.AccessKey(ctx, acct.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return dirEntry{acct: acct}, err
		}
		e.accessKey = k
	}
	return e, nil
}

// peek is get without loading in the caller: ok is false when username
// is not cached. An entry past its ttl (but not yet twice that) is still
// returned while one background reload replaces it, so that busy
// recipients never drop out of the cache; changes this relay makes or
// learns of still drop entries at once (invalidate), and the reload
// starts as soon as the entry is old, so a change made elsewhere is
// seen about as soon as with get.
func (d *dirCache) peek(ctx context.Context, username string) (Account, []Device, bool) {
	e, err := d.peekEntry(ctx, username)
	return e.acct, e.devices, err == nil
}

// peekEntry is peek with everything cached about the account; the error
// is errCacheMiss when username is not cached.
func (d *dirCache) peekEntry(ctx context.Context, username string) (dirEntry, error) {
	now := d.now()
	d.mu.Lock()
	e := d.m[username]
	if e == nil || now.Sub(e.loaded) >= 2*d.ttl {
		d.mu.Unlock()
		return dirEntry{}, errCacheMiss
	}
	reload := now.Sub(e.loaded) >= d.ttl && !e.refreshing
	if reload {
		select {
		case d.reloads <- struct{}{}:
			e.refreshing = true
		default:
			// maxReloads run already: a later peek starts this one (past
			// twice the ttl the entry is a miss, loaded by the caller).
			reload = false
		}
	}
	gen := d.gen
	out := *e
	d.mu.Unlock()
	if reload {
		go d.reload(ctx, username, gen)
	}
	return out, nil
}

// reload replaces the entry of username (the goroutine peek starts; it
// ends with the load, which ctx bounds).
func (d *dirCache) reload(ctx context.Context, username string, gen uint64) {
	defer func() { <-d.reloads }()
	e, err := d.load(ctx, username, d.now())
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.gen != gen:
		// An invalidation raced with the load; it dropped the entry.
	case err != nil:
		delete(d.m, username) // the next use loads it, or reports the error
	default:
		d.m[username] = &e
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
