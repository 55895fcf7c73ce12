package store

import (
	"crypto/rand"
	"errors"
	"testing"
)

func TestWipeAfterFailedUnlocks(t *testing.T) {
	ctx := t.Context()
	s, dir := newTestStore(t)
	if err := s.SetWipeAfter(3); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Policy(); err != nil || p.WipeAfter != 3 || p.Duress {
		t.Fatalf("policy %+v %v", p, err)
	}
	s.Close()
	// A success resets the count.
	_, err := Open(ctx, dir, []byte("nope"))
	var ae *AttemptsError
	if !errors.As(err, &ae) || ae.Left != 2 || !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("first failure: %v", err)
	}
	s, err = Open(ctx, dir, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for left := 2; left > 0; left-- {
		if _, err := Open(ctx, dir, []byte("nope")); !errors.As(err, &ae) || ae.Left != left {
			t.Fatalf("failure with %d left: %v", left, err)
		}
	}
	if _, err := Open(ctx, dir, []byte("nope")); !errors.Is(err, ErrWipedAfterFailures) {
		t.Fatalf("last failure: %v", err)
	}
	if _, err := Open(ctx, dir, []byte("correct horse")); !errors.Is(err, ErrNoStore) {
		t.Fatalf("after wipe: %v", err)
	}
}

func TestDuressPassphrase(t *testing.T) {
	ctx := t.Context()
	s, dir := newTestStore(t)
	if err := s.SetDuress([]byte("correct horse"), rand.Reader); err == nil {
		t.Fatal("duress equal to the passphrase accepted")
	}
	if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Other wrong passphrases do nothing special.
	if _, err := Open(ctx, dir, []byte("typo")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatal(err)
	}
	s, err := Open(ctx, dir, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The duress passphrase wipes, and the directory looks as if no
	// store had ever been created there.
	_, err = Open(ctx, dir, []byte("under duress"))
	if err != ErrNoStore {
		t.Fatalf("duress: %v, want exactly ErrNoStore", err)
	}
	if Exists(dir) {
		t.Fatal("duress did not wipe")
	}
	if _, err := Open(ctx, dir, []byte("correct horse")); !errors.Is(err, ErrNoStore) {
		t.Fatalf("after duress: %v", err)
	}
}
