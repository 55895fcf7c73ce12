package store

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Device policy kept in the key file, since it must work before the store
// is unlocked: a limit on failed unlocks, after which the store wipes
// itself, and a duress passphrase that wipes it silently (the store then
// looks as if it had never been created). Someone who can
// edit the key file can reset both; they protect against someone trying
// passphrases through the client, not against a copy of the disk (which
// Argon2id is for).

// ErrWipedAfterFailures reports that the store wiped itself after too many
// wrong passphrases.
var ErrWipedAfterFailures = errors.New("store: too many wrong passphrases: the store wiped itself")

// AttemptsError is a wrong passphrase when a failed-unlock limit is set.
type AttemptsError struct{ Left int }

func (e *AttemptsError) Error() string {
	return fmt.Sprintf("store: wrong passphrase (%d attempts left before the store wipes itself)", e.Left)
}

// Unwrap makes errors.Is(err, ErrWrongPassphrase) hold.
func (e *AttemptsError) Unwrap() error { return ErrWrongPassphrase }

// Policy is the unlock policy of a store.
type Policy struct {
	WipeAfter int  // wipe after this many consecutive wrong passphrases; 0: never
	Duress    bool // a duress passphrase is set
}

// Policy returns the store's unlock policy.
func (s *Store) Policy() (Policy, error) {
	kf, err := readKeyFile(filepath.Join(s.dir, keyFileName))
	if err != nil {
		return Policy{}, err
	}
	return Policy{WipeAfter: kf.WipeAfter, Duress: len(kf.DuressHash) > 0}, nil
}

// SetWipeAfter sets the failed-unlock limit (0 disables it).
func (s *Store) SetWipeAfter(n int) error {
	if n < 0 || n > 1000 {
		return fmt.Errorf("store: wipe-after %d out of range 0..1000", n)
	}
	return s.updateKeyFile(func(kf *keyFile) error {
		kf.WipeAfter, kf.FailedUnlocks = n, 0
		return nil
	})
}

// SetDuress sets (or, with an empty passphrase, removes) the duress
// passphrase: unlocking with it wipes the store silently and reports
// ErrNoStore, as if no store had ever been created here, so that the
// client looks freshly installed. It must differ from the real passphrase.
func (s *Store) SetDuress(duress []byte, rnd io.Reader) error {
	return s.updateKeyFile(func(kf *keyFile) error {
		if len(duress) == 0 {
			kf.DuressSalt, kf.DuressHash = nil, nil
			return nil
		}
		if dk, err := kf.unwrap(duress); err == nil {
			clear(dk)
			return errors.New("store: the duress passphrase must differ from the passphrase")
		}
		salt := make([]byte, saltSize)
		if _, err := io.ReadFull(rnd, salt); err != nil {
			return fmt.Errorf("store: salt: %w", err)
		}
		kf.DuressSalt, kf.DuressHash = salt, deriveWrapKey(duress, salt, kf.Params)
		return nil
	})
}

func (s *Store) updateKeyFile(fn func(*keyFile) error) error {
	path := filepath.Join(s.dir, keyFileName)
	kf, err := readKeyFile(path)
	if err != nil {
		return err
	}
	if err := fn(kf); err != nil {
		return err
	}
	return writeKeyFile(path, kf)
}

func writeKeyFile(path string, kf *keyFile) error {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := writeFileSync(path, b); err != nil {
		return fmt.Errorf("store: write key file: %w", err)
	}
	return nil
}

// isDuress reports whether passphrase is the duress passphrase.
func (k *keyFile) isDuress(passphrase []byte) bool {
	if len(k.DuressHash) == 0 {
		return false
	}
	h := deriveWrapKey(passphrase, k.DuressSalt, k.Params)
	defer clear(h)
	return hmac.Equal(h, k.DuressHash)
}

// failedUnlock applies the policy after a wrong passphrase and returns the
// error to report.
func failedUnlock(dir string, kf *keyFile, passphrase []byte) error {
	if kf.isDuress(passphrase) {
		// Silently: the caller sees exactly what it sees where no store
		// was ever created (ErrNoStore), so a client shows its first-run
		// state. A failure of the wipe is not reported either, since
		// that would reveal it; the key file goes first, and without it
		// whatever remains is noise.
		if Wipe(dir) != nil {
			_ = os.Remove(filepath.Join(dir, keyFileName))
		}
		return ErrNoStore
	}
	if kf.WipeAfter <= 0 {
		return ErrWrongPassphrase
	}
	kf.FailedUnlocks++
	if kf.FailedUnlocks >= kf.WipeAfter {
		if err := Wipe(dir); err != nil {
			return fmt.Errorf("%w (%v)", ErrWipedAfterFailures, err)
		}
		return ErrWipedAfterFailures
	}
	if err := writeKeyFile(filepath.Join(dir, keyFileName), kf); err != nil {
		return err
	}
	return &AttemptsError{Left: kf.WipeAfter - kf.FailedUnlocks}
}
