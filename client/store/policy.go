package store

import (
	"crypto/hmac"
	"crypto/rand"
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

// check tests passphrase against the key file with exactly two
// derivations, whatever the outcome: one for the data key's wrapping key
// and one for the duress hash (against the key file's own salt when no
// duress passphrase is set, the result then thrown away). A normal unlock,
// a wrong passphrase and the duress passphrase so cost the same Argon2id
// work; before, a wrong or duress passphrase cost a second derivation a
// correct one did not, and the duress wipe ran on top (see duressWipe).
// dataKey is set only for the right passphrase.
func (k *keyFile) check(passphrase []byte, kdf kdfFunc) (dataKey []byte, duress bool, err error) {
	wk := kdf(passphrase, k.Salt, k.Params)
	defer clear(wk)
	dsalt := k.DuressSalt
	if len(k.DuressHash) == 0 {
		dsalt = k.Salt
	}
	dh := kdf(passphrase, dsalt, k.Params)
	defer clear(dh)
	duress = len(k.DuressHash) > 0 && hmac.Equal(dh, k.DuressHash)
	dataKey, err = k.unwrapWith(wk)
	if err != nil {
		return nil, duress, err
	}
	return dataKey, false, nil
}

// wipePendingName marks a store whose duress wipe has destroyed the key
// file but not yet shredded the rest (FinishWipe does that).
const wipePendingName = ".wipe-pending"

// duressWipe is the part of a duress wipe done before the unlock answers.
// It renames the key file to the pending-wipe mark (so the store is gone
// at once: without the key file the database is noise) and overwrites the
// mark's bytes with random ones, synced: one small synced write, as a
// right or a wrong passphrase makes one (noteUnlock).
// The rest (database files, downloaded attachments), whose cost grows with
// what the device holds and would show in the unlock's timing, is left to
// FinishWipe, which front ends call once they have answered the user (and
// Create calls first). Nothing here is reported: a failure would reveal
// the wipe.
func duressWipe(dir string) {
	mark := filepath.Join(dir, wipePendingName)
	if os.Rename(filepath.Join(dir, keyFileName), mark) != nil {
		_ = Wipe(dir) // do it all now rather than leave it undone
		return
	}
	_ = overwrite(mark)
}

// noteUnlock makes the one small synced write every unlock outcome makes,
// so that a right or a wrong passphrase costs what the duress one's does
// (duressWipe). When the key file changed (changed: a failed-unlock count
// to record or reset) that write is the key file's; otherwise it is the
// pad file's, never the key file's: rewriting an unchanged key file on
// every unlock would race with a concurrent policy change in another
// process and could undo it. The pad's bytes mean nothing, and a failure
// to write them does not fail the unlock.
func noteUnlock(dir string, kf *keyFile, changed bool) error {
	if changed {
		return writeKeyFile(filepath.Join(dir, keyFileName), kf)
	}
	padWrite(dir)
	return nil
}

// padFileName is the file noteUnlock writes when the key file need not
// change; a wipe removes it with the store.
const padFileName = ".unlock-pad"

// padWrite overwrites the pad file with fresh random bytes, about a key
// file's size, and syncs it.
func padWrite(dir string) {
	f, err := os.OpenFile(filepath.Join(dir, padFileName), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	b := make([]byte, 512)
	_, _ = rand.Read(b)
	if _, err := f.WriteAt(b, 0); err == nil {
		_ = f.Sync()
	}
}

// FinishWipe completes a wipe that a duress unlock left pending in dir:
// it shreds the database files and the client's folders (Wipe), then
// removes the mark. Without a pending wipe it does nothing. Front ends
// call it after answering an unlock, so that its cost does not show in
// the unlock's timing.
func FinishWipe(dir string) error {
	mark := filepath.Join(dir, wipePendingName)
	if _, err := os.Stat(mark); err != nil {
		return nil
	}
	if err := Wipe(dir); err != nil {
		return err
	}
	if err := shred(mark); err != nil {
		return fmt.Errorf("store: finish wipe: %w", err)
	}
	return nil
}

// failedUnlock applies the policy after a wrong passphrase (duress: it was
// the duress passphrase) and returns the error to report.
func failedUnlock(dir string, kf *keyFile, duress bool) error {
	if duress {
		// Silently: the caller sees exactly what it sees where no store
		// was ever created (ErrNoStore), so a client shows its first-run
		// state.
		duressWipe(dir)
		return ErrNoStore
	}
	if kf.WipeAfter <= 0 {
		_ = noteUnlock(dir, kf, false)
		return ErrWrongPassphrase
	}
	kf.FailedUnlocks++
	if kf.FailedUnlocks >= kf.WipeAfter {
		if err := Wipe(dir); err != nil {
			return fmt.Errorf("%w (%v)", ErrWipedAfterFailures, err)
		}
		return ErrWipedAfterFailures
	}
	if err := noteUnlock(dir, kf, true); err != nil {
		return err
	}
	return &AttemptsError{Left: kf.WipeAfter - kf.FailedUnlocks}
}
