package store

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// Errors callers branch on.
var (
	ErrWrongPassphrase = errors.New("store: wrong passphrase")
	ErrNoStore         = errors.New("store: no store here (never created, or wiped)")
	ErrExists          = errors.New("store: a store already exists here")
	ErrNotFound        = errors.New("store: not found")
	ErrCorrupt         = errors.New("store: corrupt or tampered data")
)

// Options tune Create. The zero value uses DefaultKDFParams, crypto/rand
// and DefaultMinPassphraseBits.
type Options struct {
	KDF  KDFParams // zero: DefaultKDFParams
	Rand io.Reader // zero: crypto/rand
	// MinPassphraseBits is the passphrase policy's minimum estimate
	// (strength.go); zero: DefaultMinPassphraseBits. An organization's
	// policy may raise it. NoPassphrasePolicy accepts any non-empty
	// passphrase (tests and throwaway fixtures).
	MinPassphraseBits float64
}

// NoPassphrasePolicy, as Options.MinPassphraseBits, switches the
// passphrase policy off.
const NoPassphrasePolicy = -1

// minBits returns the effective minimum of a MinPassphraseBits option.
func minBits(v float64) float64 {
	if v == 0 {
		return DefaultMinPassphraseBits
	}
	return v
}

// Store is an open, unlocked store. Its methods are safe for concurrent use.
type Store struct {
	rw
	db  *sql.DB
	dir string
	kdf kdfFunc // what Unlock derives keys with (argon2KDF; tests count)
}

// keys are the subkeys derived from the data key. They are zeroed when
// the store is locked (lock.go) or closed; mu guards them, every operation
// holding it for reading from start to end (acquire, release).
type keys struct {
	mu      sync.RWMutex
	locked  bool
	sealKey []byte // XChaCha20-Poly1305 key; the AEAD is built per use so no copy outlives a lock
	lookup  []byte
	rand    io.Reader
}

const schema = `
CREATE TABLE IF NOT EXISTS kv (
	tbl BLOB NOT NULL,
	k   BLOB NOT NULL,
	v   BLOB NOT NULL,
	PRIMARY KEY (tbl, k)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
	seq  INTEGER PRIMARY KEY AUTOINCREMENT,
	conv BLOB NOT NULL,
	mid  BLOB NOT NULL UNIQUE,
	v    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conv ON messages (conv, seq);
`

// Exists reports whether a store (its key file) exists in dir.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, keyFileName))
	return err == nil
}

// Create makes a new store in dir (created if needed) protected by passphrase.
func Create(ctx context.Context, dir string, passphrase []byte, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.KDF == (KDFParams{}) {
		o.KDF = DefaultKDFParams
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if err := CheckPassphrase(passphrase, minBits(o.MinPassphraseBits)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if Exists(dir) {
		return nil, ErrExists
	}
	// A database without a key file is the remains of a wiped or failed
	// store: noise without its key. Start over.
	if err := FinishWipe(dir); err != nil {
		return nil, err
	}
	removeDBFiles(dir)
	dataKey := make([]byte, dataKeySize)
	defer clear(dataKey)
	if _, err := io.ReadFull(o.Rand, dataKey); err != nil {
		return nil, fmt.Errorf("store: data key: %w", err)
	}
	kf, err := newKeyFile(o.Rand, passphrase, dataKey, o.KDF)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, dir, dataKey, o.Rand)
	if err != nil {
		return nil, err
	}
	if err := s.Put(ctx, "meta", []byte("check"), []byte("sotto")); err != nil {
		s.Close()
		return nil, err
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := writeFileSync(filepath.Join(dir, keyFileName), b); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: write key file: %w", err)
	}
	return s, nil
}

// Open unlocks the store in dir. It returns ErrNoStore when there is none
// and ErrWrongPassphrase when the passphrase does not unwrap the data key.
//
// A right, a wrong and the duress passphrase cost the same two Argon2id
// derivations (keyFile.check); the duress wipe's bulk is left to
// FinishWipe.
func Open(ctx context.Context, dir string, passphrase []byte) (*Store, error) {
	return openWith(ctx, dir, passphrase, argon2KDF)
}

func openWith(ctx context.Context, dir string, passphrase []byte, kdf kdfFunc) (*Store, error) {
	kf, err := readKeyFile(filepath.Join(dir, keyFileName))
	if err != nil {
		return nil, err
	}
	dataKey, duress, err := kf.check(passphrase, kdf)
	if errors.Is(err, ErrWrongPassphrase) {
		return nil, failedUnlock(dir, kf, duress)
	}
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	reset := kf.FailedUnlocks > 0
	kf.FailedUnlocks = 0
	if err := noteUnlock(dir, kf, reset); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, dbFileName)); err != nil {
		return nil, fmt.Errorf("store: %w: database missing", ErrCorrupt)
	}
	s, err := open(ctx, dir, dataKey, rand.Reader)
	if err != nil {
		return nil, err
	}
	s.kdf = kdf
	if v, err := s.Get(ctx, "meta", []byte("check")); err != nil || string(v) != "sotto" {
		s.Close()
		return nil, fmt.Errorf("store: %w: database does not match its key file", ErrCorrupt)
	}
	return s, nil
}

// deriveKeys derives the subkeys from the data key.
func deriveKeys(dataKey []byte) (sealKey, lookupKey []byte, err error) {
	sealKey, err = hkdf.Key(sha256.New, dataKey, nil, "sotto/store seal v1", chacha20poly1305.KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	lookupKey, err = hkdf.Key(sha256.New, dataKey, nil, "sotto/store lookup v1", 32)
	if err != nil {
		clear(sealKey)
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	return sealKey, lookupKey, nil
}

func open(ctx context.Context, dir string, dataKey []byte, rnd io.Reader) (*Store, error) {
	sealKey, lookupKey, err := deriveKeys(dataKey)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dbFileName)
	dsn := (&url.URL{Scheme: "file", Opaque: path, RawQuery: "_pragma=secure_delete(ON)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		clear(sealKey)
		clear(lookupKey)
		return nil, fmt.Errorf("store: open database: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		clear(sealKey)
		clear(lookupKey)
		return nil, fmt.Errorf("store: schema: %w", err)
	}
	_ = os.Chmod(path, 0o600)
	return &Store{rw: rw{q: db, k: &keys{sealKey: sealKey, lookup: lookupKey, rand: rnd}}, db: db, dir: dir, kdf: argon2KDF}, nil
}

// Close closes the database and forgets the keys.
func (s *Store) Close() error {
	s.k.forget()
	return s.db.Close()
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Update runs fn in one transaction, committed when fn returns nil. fn must
// use only tx, never s, while it runs.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	// Not ended by ctx: database/sql would then roll the transaction back
	// and close its connection in a goroutine of its own, after Update
	// returned and perhaps after Close, so that SQLite removed its files
	// in the middle of a wipe. ctx still ends the statements of fn.
	t, err := s.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(&Tx{rw{q: t, k: s.k}}); err != nil {
		_ = t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Tx is a transaction opened by Update.
type Tx struct{ rw }

// Wipe crypto-shreds the store in dir: the key file is overwritten and
// removed first (without it the database is noise), then the database
// files, then every other file under dir (downloaded attachments...). A
// step that fails does not stop the later ones: the downloaded
// attachments are plaintext, and the duress wipe reports no error.
func Wipe(dir string) error {
	var errs []error
	if err := shred(filepath.Join(dir, keyFileName)); err != nil {
		errs = append(errs, fmt.Errorf("store: wipe key file: %w", err))
	}
	_ = shred(filepath.Join(dir, keyFileName+".tmp"))
	_ = shred(filepath.Join(dir, padFileName))
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := shred(filepath.Join(dir, dbFileName+suffix)); err != nil {
			errs = append(errs, fmt.Errorf("store: wipe database: %w", err))
		}
	}
	if err := wipeRest(dir); err != nil {
		errs = append(errs, fmt.Errorf("store: wipe other files: %w", err))
	}
	return errors.Join(errs...)
}

func removeDBFiles(dir string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(filepath.Join(dir, dbFileName+suffix))
	}
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rw holds the operations shared by Store and Tx.
type rw struct {
	q querier
	k *keys
}

// Entry is one row of a table.
type Entry struct {
	Key, Value []byte
}

func (k *keys) mac(parts ...[]byte) []byte {
	m := hmac.New(sha256.New, k.lookup)
	for _, p := range parts {
		var n [binary.MaxVarintLen64]byte
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		m.Write(p)
	}
	return m.Sum(nil)
}

func (k *keys) seal(ad, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return nil, fmt.Errorf("store: nonce: %w", err)
	}
	aead, err := chacha20poly1305.NewX(k.sealKey)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, ad), nil
}

func (k *keys) open(ad, sealed []byte) ([]byte, error) {
	if len(sealed) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, ErrCorrupt
	}
	aead, err := chacha20poly1305.NewX(k.sealKey)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	pt, err := aead.Open(nil, sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:], ad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return pt, nil
}

// tableID hides table names too: the file shows only opaque digests.
func (k *keys) tableID(table string) []byte { return k.mac([]byte("tbl"), []byte(table)) }

func kvAD(table string, hk []byte) []byte {
	return bytes.Join([][]byte{[]byte("sotto/store kv v1"), []byte(table), hk}, []byte{0})
}

// Get returns the value stored under key in table, or ErrNotFound.
func (r rw) Get(ctx context.Context, table string, key []byte) ([]byte, error) {
	if err := r.k.acquire(); err != nil {
		return nil, err
	}
	defer r.k.release()
	hk := r.k.mac([]byte("kv"), []byte(table), key)
	var sealed []byte
	err := r.q.QueryRowContext(ctx, `SELECT v FROM kv WHERE tbl = ? AND k = ?`, r.k.tableID(table), hk).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	_, v, err := r.openEntry(table, hk, sealed)
	return v, err
}

func (r rw) openEntry(table string, hk, sealed []byte) (key, value []byte, err error) {
	pt, err := r.k.open(kvAD(table, hk), sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("store: table %s: %w", table, err)
	}
	n, w := binary.Uvarint(pt)
	if w <= 0 || uint64(len(pt)-w) < n {
		return nil, nil, fmt.Errorf("store: table %s: %w", table, ErrCorrupt)
	}
	return pt[w : w+int(n)], pt[w+int(n):], nil
}

// Put stores value under key in table, replacing any previous value.
func (r rw) Put(ctx context.Context, table string, key, value []byte) error {
	if err := r.k.acquire(); err != nil {
		return err
	}
	defer r.k.release()
	hk := r.k.mac([]byte("kv"), []byte(table), key)
	pt := binary.AppendUvarint(nil, uint64(len(key)))
	pt = append(append(pt, key...), value...)
	sealed, err := r.k.seal(kvAD(table, hk), pt)
	clear(pt)
	if err != nil {
		return err
	}
	if _, err := r.q.ExecContext(ctx, `INSERT INTO kv (tbl, k, v) VALUES (?, ?, ?) ON CONFLICT (tbl, k) DO UPDATE SET v = excluded.v`, r.k.tableID(table), hk, sealed); err != nil {
		return fmt.Errorf("store: put: %w", err)
	}
	return nil
}

// Delete removes key from table; a missing key is not an error.
func (r rw) Delete(ctx context.Context, table string, key []byte) error {
	if err := r.k.acquire(); err != nil {
		return err
	}
	defer r.k.release()
	hk := r.k.mac([]byte("kv"), []byte(table), key)
	if _, err := r.q.ExecContext(ctx, `DELETE FROM kv WHERE tbl = ? AND k = ?`, r.k.tableID(table), hk); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	return nil
}

// List returns every entry of table, in no particular order.
func (r rw) List(ctx context.Context, table string) ([]Entry, error) {
	if err := r.k.acquire(); err != nil {
		return nil, err
	}
	defer r.k.release()
	rows, err := r.q.QueryContext(ctx, `SELECT k, v FROM kv WHERE tbl = ?`, r.k.tableID(table))
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var hk, sealed []byte
		if err := rows.Scan(&hk, &sealed); err != nil {
			return nil, fmt.Errorf("store: list: %w", err)
		}
		k, v, err := r.openEntry(table, hk, sealed)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: k, Value: v})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	return out, nil
}

func msgAD(hconv, hid []byte) []byte {
	return bytes.Join([][]byte{[]byte("sotto/store msg v1"), hconv, hid}, []byte{0})
}

// AppendMessage adds a message to conversation conv unless a message with
// the same id was stored before (in any conversation). It reports whether
// the message was added: false means a duplicate.
func (r rw) AppendMessage(ctx context.Context, conv string, id, value []byte) (added bool, err error) {
	if err := r.k.acquire(); err != nil {
		return false, err
	}
	defer r.k.release()
	hconv := r.k.mac([]byte("conv"), []byte(conv))
	hid := r.k.mac([]byte("mid"), id)
	sealed, err := r.k.seal(msgAD(hconv, hid), value)
	if err != nil {
		return false, err
	}
	res, err := r.q.ExecContext(ctx, `INSERT INTO messages (conv, mid, v) VALUES (?, ?, ?) ON CONFLICT (mid) DO NOTHING`, hconv, hid, sealed)
	if err != nil {
		return false, fmt.Errorf("store: append message: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: append message: %w", err)
	}
	return n == 1, nil
}

// UpdateMessage replaces the stored value of message id in conv; it returns
// ErrNotFound when there is no such message.
func (r rw) UpdateMessage(ctx context.Context, conv string, id, value []byte) error {
	if err := r.k.acquire(); err != nil {
		return err
	}
	defer r.k.release()
	hconv := r.k.mac([]byte("conv"), []byte(conv))
	hid := r.k.mac([]byte("mid"), id)
	sealed, err := r.k.seal(msgAD(hconv, hid), value)
	if err != nil {
		return err
	}
	res, err := r.q.ExecContext(ctx, `UPDATE messages SET v = ? WHERE conv = ? AND mid = ?`, sealed, hconv, hid)
	if err != nil {
		return fmt.Errorf("store: update message: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrNotFound
	}
	return nil
}

// Message returns the stored value of message id in conv, or ErrNotFound.
func (r rw) Message(ctx context.Context, conv string, id []byte) ([]byte, error) {
	if err := r.k.acquire(); err != nil {
		return nil, err
	}
	defer r.k.release()
	hconv := r.k.mac([]byte("conv"), []byte(conv))
	hid := r.k.mac([]byte("mid"), id)
	var sealed []byte
	err := r.q.QueryRowContext(ctx, `SELECT v FROM messages WHERE conv = ? AND mid = ?`, hconv, hid).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: message: %w", err)
	}
	v, err := r.k.open(msgAD(hconv, hid), sealed)
	if err != nil {
		return nil, fmt.Errorf("store: message: %w", err)
	}
	return v, nil
}

// Messages returns the last limit messages of conv (all when limit <= 0),
// oldest first.
func (r rw) Messages(ctx context.Context, conv string, limit int) ([][]byte, error) {
	if err := r.k.acquire(); err != nil {
		return nil, err
	}
	defer r.k.release()
	hconv := r.k.mac([]byte("conv"), []byte(conv))
	if limit <= 0 {
		limit = -1
	}
	rows, err := r.q.QueryContext(ctx, `SELECT mid, v FROM (SELECT seq, mid, v FROM messages WHERE conv = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq ASC`, hconv, limit)
	if err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var hid, sealed []byte
		if err := rows.Scan(&hid, &sealed); err != nil {
			return nil, fmt.Errorf("store: messages: %w", err)
		}
		v, err := r.k.open(msgAD(hconv, hid), sealed)
		if err != nil {
			return nil, fmt.Errorf("store: messages: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	return out, nil
}
