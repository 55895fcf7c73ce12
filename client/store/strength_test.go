package store

import (
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
