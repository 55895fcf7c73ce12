package store

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KDFParams are the Argon2id parameters deriving the key-wrapping key from
// the passphrase.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDFParams follow RFC 9106's second recommended option (Argon2id,
// t=3, 64 MiB, 4 lanes): about a quarter of a second on a laptop core, a
// cost paid once per unlock, and expensive to brute-force on GPUs.
var DefaultKDFParams = KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// keyFileVersion is the current key file format.
const keyFileVersion = 1

const (
	keyFileName = "key.json"
	dbFileName  = "store.db"
	dataKeySize = 32
	saltSize    = 16
)

// keyFile is the on-disk form of the wrapped data key.
type keyFile struct {
	Version int       `json:"version"`
	KDF     string    `json:"kdf"`
	Params  KDFParams `json:"params"`
	Salt    []byte    `json:"salt"`
	Nonce   []byte    `json:"nonce"`
	Wrapped []byte    `json:"wrapped"`
	// Unlock policy (see policy.go).
	WipeAfter     int    `json:"wipe_after,omitempty"`
	FailedUnlocks int    `json:"failed_unlocks,omitempty"`
	DuressSalt    []byte `json:"duress_salt,omitempty"`
	DuressHash    []byte `json:"duress_hash,omitempty"`
}

func (p KDFParams) validate() error {
	if p.Time < 1 || p.Time > 64 || p.MemoryKiB < 8*uint32(max(p.Threads, 1)) || p.MemoryKiB > 4<<20 || p.Threads < 1 {
		return fmt.Errorf("store: invalid argon2id parameters t=%d m=%dKiB p=%d", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// wrapAD binds the wrapped key to the file version and KDF parameters, so
// parameters cannot be downgraded without the unwrap failing.
func (k *keyFile) wrapAD() []byte {
	return fmt.Appendf(nil, "sotto/store key v%d %s t=%d m=%d p=%d", k.Version, k.KDF, k.Params.Time, k.Params.MemoryKiB, k.Params.Threads)
}

// kdfFunc derives a 32-byte key from a passphrase. The store runs
// argon2KDF; tests inject a counting one to check how many derivations an
// unlock makes.
type kdfFunc func(passphrase, salt []byte, p KDFParams) []byte

func argon2KDF(passphrase, salt []byte, p KDFParams) []byte {
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
}

func deriveWrapKey(passphrase []byte, salt []byte, p KDFParams) []byte {
	return argon2KDF(passphrase, salt, p)
}

func newKeyFile(rnd io.Reader, passphrase, dataKey []byte, p KDFParams) (*keyFile, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	k := &keyFile{Version: keyFileVersion, KDF: "argon2id", Params: p,
		Salt: make([]byte, saltSize), Nonce: make([]byte, chacha20poly1305.NonceSizeX)}
	if _, err := io.ReadFull(rnd, k.Salt); err != nil {
		return nil, fmt.Errorf("store: salt: %w", err)
	}
	if _, err := io.ReadFull(rnd, k.Nonce); err != nil {
		return nil, fmt.Errorf("store: nonce: %w", err)
	}
	wk := deriveWrapKey(passphrase, k.Salt, p)
	defer clear(wk)
	aead, err := chacha20poly1305.NewX(wk)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	k.Wrapped = aead.Seal(nil, k.Nonce, dataKey, k.wrapAD())
	return k, nil
}

func (k *keyFile) unwrap(passphrase []byte) ([]byte, error) {
	wk := deriveWrapKey(passphrase, k.Salt, k.Params)
	defer clear(wk)
	return k.unwrapWith(wk)
}

// unwrapWith opens the wrapped data key with the key-wrapping key wk.
func (k *keyFile) unwrapWith(wk []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(wk)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	dk, err := aead.Open(nil, k.Nonce, k.Wrapped, k.wrapAD())
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	if len(dk) != dataKeySize {
		clear(dk)
		return nil, fmt.Errorf("store: %w: data key size", ErrCorrupt)
	}
	return dk, nil
}

func readKeyFile(path string) (*keyFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("store: read key file: %w", err)
	}
	var k keyFile
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("store: %w: key file: %v", ErrCorrupt, err)
	}
	if k.Version > keyFileVersion {
		return nil, fmt.Errorf("store: key file version %d is newer than this client supports (%d)", k.Version, keyFileVersion)
	}
	if k.Version != keyFileVersion || k.KDF != "argon2id" || len(k.Salt) != saltSize ||
		len(k.Nonce) != chacha20poly1305.NonceSizeX || len(k.Wrapped) != dataKeySize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("store: %w: key file fields", ErrCorrupt)
	}
	if err := k.Params.validate(); err != nil {
		return nil, fmt.Errorf("%w (%w)", err, ErrCorrupt)
	}
	if k.WipeAfter < 0 || k.FailedUnlocks < 0 ||
		(len(k.DuressHash) > 0 || len(k.DuressSalt) > 0) && (len(k.DuressSalt) != saltSize || len(k.DuressHash) != chacha20poly1305.KeySize) {
		return nil, fmt.Errorf("store: %w: key file policy fields", ErrCorrupt)
	}
	return &k, nil
}

// writeFileSync writes b to path atomically (temp file, fsync, rename).
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// shred overwrites a file with random bytes, syncs it and removes it. A
// missing file is not an error.
func shred(path string) error {
	err := overwrite(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// Gone already is the goal: SQLite deletes its -wal file when its
	// last connection closes, which can happen while a wipe runs.
	if rerr := os.Remove(path); err == nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	return err
}

// overwrite overwrites a file with random bytes and syncs it.
func overwrite(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil {
		_, err = io.CopyN(f, rand.Reader, st.Size())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
