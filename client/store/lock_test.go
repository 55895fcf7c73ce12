package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
)

func TestLockZeroesKeysAndUnlockRederives(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	if err := s.Put(ctx, "t", []byte("k"), []byte("secret value")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessage(ctx, "c", []byte("m1"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWipeAfter(3); err != nil {
		t.Fatal(err)
	}
	seal, lookup := s.k.sealKey, s.k.lookup // the slices Lock must zero
	s.Lock()
	if !s.Locked() {
		t.Fatal("not locked")
	}
	if !isZero(seal) || !isZero(lookup) {
		t.Fatal("Lock left key bytes in memory")
	}
	if _, err := s.Get(ctx, "t", []byte("k")); !errors.Is(err, ErrLocked) {
		t.Fatalf("Get while locked: %v", err)
	}
	if err := s.Put(ctx, "t", []byte("k2"), []byte("v")); !errors.Is(err, ErrLocked) {
		t.Fatalf("Put while locked: %v", err)
	}
	if _, err := s.Messages(ctx, "c", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("Messages while locked: %v", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Put(ctx, "t", []byte("k3"), []byte("v")) }); !errors.Is(err, ErrLocked) {
		t.Fatalf("Update while locked: %v", err)
	}
	// A wrong passphrase is counted as for Open and the store stays locked.
	var ae *AttemptsError
	if err := s.Unlock(ctx, []byte("typo")); !errors.As(err, &ae) || ae.Left != 2 {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if !s.Locked() {
		t.Fatal("unlocked by a wrong passphrase")
	}
	if err := s.Unlock(ctx, []byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, "t", []byte("k")); err != nil || string(v) != "secret value" {
		t.Fatalf("after unlock: %q %v", v, err)
	}
	if ms, err := s.Messages(ctx, "c", 0); err != nil || len(ms) != 1 || !bytes.Equal(ms[0], []byte("hello")) {
		t.Fatalf("messages after unlock: %q %v", ms, err)
	}
	// The successful unlock reset the count: two more typos are allowed.
	s.Lock()
	if err := s.Unlock(ctx, []byte("typo")); !errors.As(err, &ae) || ae.Left != 2 {
		t.Fatalf("count not reset by the unlock: %v", err)
	}
	if err := s.Unlock(ctx, []byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	// The duress passphrase wipes from the lock screen too.
	if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
		t.Fatal(err)
	}
	s.Lock()
	if err := s.Unlock(ctx, []byte("under duress")); err != ErrNoStore {
		t.Fatalf("duress at the lock screen: %v", err)
	}
	if Exists(dir) {
		t.Fatal("duress at the lock screen did not wipe")
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}
