package store

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func TestPassphraseBits(t *testing.T) {
	for _, tc := range []struct {
		pass string
		ok   bool // reaches DefaultMinPassphraseBits
	}{
		{"pw", false},
		{"password", false},
		{"P@ssw0rd!", false},
		{"password123456", false},
		{"qwertyuiop", false},
		{"1qaz2wsx3edc", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"abcdefghijklmnopqrstuvwxyz", false},
		{"abcabcabcabcabcabc", false},
		{"passwordpasswordpassword", false},
		{"iloveyouiloveyou", false},
		{"12345678901234567890", false},
		{"correct horse battery staple", true},
		{"they are watching", true},
		{"Tr0ub4dor&3x", true},
		{"xk9#Lm2$vQ7!", true},
		{"vjqhrtkzbwpx", true},
		{"ünïcödé wörds here", true},
	} {
		bits := PassphraseBits([]byte(tc.pass))
		if (bits >= DefaultMinPassphraseBits) != tc.ok {
			t.Errorf("%q: %.1f bits, want ok=%v", tc.pass, bits, tc.ok)
		}
	}
	if b := PassphraseBits([]byte(strings.Repeat("x7$Q", 10000))); b < DefaultMinPassphraseBits {
		t.Errorf("a long passphrase scored %.1f", b)
	}
}

// Create refuses a weak passphrase with an error that says what is
// needed, and takes a weak one only when told to (tests, fixtures).
func TestCreateEnforcesThePassphrasePolicy(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	_, err := Create(ctx, dir, []byte("password1"), &Options{KDF: testKDF})
	var we *WeakPassphraseError
	if !errors.As(err, &we) || !errors.Is(err, ErrWeakPassphrase) || we.Min != DefaultMinPassphraseBits {
		t.Fatalf("weak passphrase: %v", err)
	}
	if !strings.Contains(err.Error(), "at least 50 required") || !strings.Contains(err.Error(), "random words") {
		t.Fatalf("the error does not say what is required: %v", err)
	}
	if Exists(dir) {
		t.Fatal("a store was created with a weak passphrase")
	}
	// An org may raise the minimum.
	if _, err := Create(ctx, dir, []byte("they are watching"), &Options{KDF: testKDF, MinPassphraseBits: 120}); !errors.As(err, &we) || we.Min != 120 {
		t.Fatalf("raised minimum: %v", err)
	}
	s, err := Create(ctx, dir, []byte("pw"), &Options{KDF: testKDF, MinPassphraseBits: NoPassphrasePolicy})
	if err != nil {
		t.Fatalf("explicitly allowed weak passphrase: %v", err)
	}
	s.Close()
}

// A changed passphrase passes the policy too, and the old one stops
// working.
func TestChangePassphrase(t *testing.T) {
	ctx := t.Context()
	s, dir := newTestStore(t)
	if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := s.ChangePassphrase([]byte("correct horse"), []byte("password1"), 0, rand.Reader); !errors.Is(err, ErrWeakPassphrase) {
		t.Fatalf("weak new passphrase: %v", err)
	}
	if err := s.ChangePassphrase([]byte("wrong horse"), []byte("a much better passphrase"), 0, rand.Reader); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong old passphrase: %v", err)
	}
	if err := s.ChangePassphrase([]byte("correct horse"), []byte("under duress"), NoPassphrasePolicy, rand.Reader); err == nil {
		t.Fatal("the duress passphrase became the passphrase")
	}
	if err := s.ChangePassphrase([]byte("correct horse"), []byte("a much better passphrase"), 0, rand.Reader); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, dir, []byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase after the change: %v", err)
	}
	s2, err := Open(ctx, dir, []byte("a much better passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if p, err := s2.Policy(); err != nil || !p.Duress {
		t.Fatalf("the unlock policy did not survive the change: %+v %v", p, err)
	}
}
