package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

// Locking an open store: the subkeys derived from the data key are zeroed
// and every operation fails with ErrLocked until Unlock re-derives them
// from the passphrase (unwrapping the data key from the key file again).
// The database stays open; what it holds is sealed. An Unlock with a
// wrong passphrase counts like a failed Open, and the duress passphrase
// wipes the store as it does there.

// ErrLocked reports an operation on a locked store.
var ErrLocked = errors.New("store: locked")

func (k *keys) acquire() error {
	k.mu.RLock()
	if k.locked {
		k.mu.RUnlock()
		return ErrLocked
	}
	return nil
}

func (k *keys) release() { k.mu.RUnlock() }

// forget zeroes the subkeys and marks them unusable; it waits for the
// operations in progress.
func (k *keys) forget() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.sealKey)
	clear(k.lookup)
	k.sealKey, k.lookup, k.locked = nil, nil, true
}

// Lock zeroes the store's keys: until Unlock every operation returns
// ErrLocked. Operations in progress finish first.
func (s *Store) Lock() { s.k.forget() }

// Locked reports whether the store is locked.
func (s *Store) Locked() bool {
	s.k.mu.RLock()
	defer s.k.mu.RUnlock()
	return s.k.locked
}

// Unlock re-derives the keys of a locked store from passphrase. A wrong
// passphrase is counted against the failed-unlock limit and the duress
// passphrase wipes the store, as with Open (the errors are Open's); the
// store then stays locked. Unlocking an unlocked store checks the
// passphrase all the same.
func (s *Store) Unlock(ctx context.Context, passphrase []byte) error {
	path := filepath.Join(s.dir, keyFileName)
	kf, err := readKeyFile(path)
	if err != nil {
		return err
	}
	dataKey, duress, err := kf.check(passphrase, s.kdf)
	if errors.Is(err, ErrWrongPassphrase) {
		return failedUnlock(s.dir, kf, duress)
	}
	if err != nil {
		return err
	}
	defer clear(dataKey)
	reset := kf.FailedUnlocks > 0
	kf.FailedUnlocks = 0
	if err := noteUnlock(s.dir, kf, reset); err != nil {
		return err
	}
	sealKey, lookupKey, err := deriveKeys(dataKey)
	if err != nil {
		return err
	}
	s.k.mu.Lock()
	if !s.k.locked {
		s.k.mu.Unlock()
		clear(sealKey)
		clear(lookupKey)
		return nil
	}
	s.k.sealKey, s.k.lookup, s.k.locked = sealKey, lookupKey, false
	s.k.mu.Unlock()
	if v, err := s.Get(ctx, "meta", []byte("check")); err != nil || string(v) != "sotto" {
		s.Lock()
		return fmt.Errorf("store: %w: database does not match its key file", ErrCorrupt)
	}
	return nil
}
