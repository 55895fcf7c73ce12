package store

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// countingKDF counts the key derivations an unlock makes.
type countingKDF struct{ n int }

func (c *countingKDF) kdf(passphrase, salt []byte, p KDFParams) []byte {
	c.n++
	return argon2KDF(passphrase, salt, p)
}

// A right passphrase, a wrong one and the duress one must cost the same
// key derivations, with and without a duress passphrase set, on Open and
// on Unlock: timing must not tell a duress unlock from the others. (It
// used to: a wrong or duress passphrase ran a second Argon2id, and the
// duress one then shredded the whole store before answering.) Counted,
// never timed.
func TestUnlockCostIsTheSameWhateverThePassphrase(t *testing.T) {
	ctx := t.Context()
	for _, withDuress := range []bool{false, true} {
		costs := map[string]int{}
		for _, tc := range []struct{ name, pass string }{
			{"right", "correct horse"}, {"wrong", "typo"}, {"duress", "under duress"},
		} {
			if tc.name == "duress" && !withDuress {
				continue
			}
			s, dir := newTestStore(t)
			if withDuress {
				if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			var c countingKDF
			got, err := openWith(ctx, dir, []byte(tc.pass), c.kdf)
			if got != nil {
				got.Close()
			}
			if (err == nil) != (tc.name == "right") {
				t.Fatalf("duress=%v %s: %v", withDuress, tc.name, err)
			}
			costs["open "+tc.name] = c.n

			// The same through Lock and Unlock of an open store.
			s2, _ := newTestStore(t)
			if withDuress {
				if err := s2.SetDuress([]byte("under duress"), rand.Reader); err != nil {
					t.Fatal(err)
				}
			}
			var c2 countingKDF
			s2.kdf = c2.kdf
			s2.Lock()
			_ = s2.Unlock(ctx, []byte(tc.pass))
			costs["unlock "+tc.name] = c2.n
		}
		for k, n := range costs {
			if n != 2 {
				t.Errorf("duress set=%v: %s ran %d key derivations, want 2 for every outcome (%v)", withDuress, k, n, costs)
			}
		}
	}
}

// The duress unlock answers after destroying only the key file (the
// database is noise without it); the rest waits, marked, for FinishWipe,
// which also runs before Create so no remains outlive a new store.
func TestDuressLeavesTheBulkToFinishWipe(t *testing.T) {
	ctx := t.Context()
	s, dir := newTestStore(t)
	if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
		t.Fatal(err)
	}
	s.Close()
	att := filepath.Join(dir, "attachments")
	if err := os.MkdirAll(att, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(att, "photo.jpg"), []byte("plaintext"), 0o600); err != nil {
		t.Fatal(err)
	}
	right, err := Open(ctx, dir, []byte("correct horse")) // writes the pad file
	if err != nil {
		t.Fatal(err)
	}
	right.Close()
	if _, err := Open(ctx, dir, []byte("under duress")); err != ErrNoStore {
		t.Fatalf("duress: %v", err)
	}
	if Exists(dir) {
		t.Fatal("the key file survived the duress unlock")
	}
	if _, err := os.Stat(filepath.Join(dir, wipePendingName)); err != nil {
		t.Fatalf("no pending-wipe mark: %v", err)
	}
	if err := FinishWipe(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{att, filepath.Join(dir, dbFileName), filepath.Join(dir, wipePendingName), filepath.Join(dir, padFileName)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s survived FinishWipe: %v", p, err)
		}
	}
	// Nothing pending: nothing happens.
	if err := FinishWipe(dir); err != nil {
		t.Fatal(err)
	}

	// Create finishes a pending wipe first.
	s, dir = newTestStore(t)
	if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
		t.Fatal(err)
	}
	s.Close()
	att = filepath.Join(dir, "attachments")
	if err := os.MkdirAll(att, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, []byte("under duress")); err != ErrNoStore {
		t.Fatalf("duress: %v", err)
	}
	s, err = Create(ctx, dir, []byte("correct horse"), &Options{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(att); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Create left a pending wipe's attachments: %v", err)
	}
}
