// Package blobstore is the SQLite index of the relay's attachment blobs
// (relay.BlobIndex): one small database file beside the blob files. A
// blob's record names no uploader; the per-device quota is kept as daily
// sums of bytes created (table blob_charges), never per blob.
package blobstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"sotto/relay"
)

// FileName is the index database inside the blob directory.
const FileName = "blobs.db"

const schema = `
CREATE TABLE IF NOT EXISTS blobs (
	id BLOB PRIMARY KEY,
	write_key_hash BLOB NOT NULL,
	size INTEGER NOT NULL,
	committed INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_expires ON blobs (expires);
CREATE TABLE IF NOT EXISTS blob_charges (
	account BLOB NOT NULL,
	device INTEGER NOT NULL,
	day INTEGER NOT NULL,
	bytes INTEGER NOT NULL,
	PRIMARY KEY (account, device, day)
) WITHOUT ROWID;
`

// unlinkOwners upgrades an index made when blobs named their uploader:
// the columns go (with their index), the blobs stay (with no write key,
// so only their TTL deletes them).
const unlinkOwners = `
DROP INDEX IF EXISTS blobs_owner;
ALTER TABLE blobs ADD COLUMN write_key_hash BLOB NOT NULL DEFAULT x'';
ALTER TABLE blobs DROP COLUMN account;
ALTER TABLE blobs DROP COLUMN device;
`

// Index is a relay.BlobIndex in SQLite.
type Index struct{ db *sql.DB }

var _ relay.BlobIndex = (*Index)(nil)

// Open opens (creating) the index database dir/blobs.db.
func Open(ctx context.Context, dir string) (*Index, error) {
	path := filepath.Join(dir, FileName)
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	// One connection: writes are few (one per upload segment) and the
	// quota check must be serialized with the insert anyway.
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("blobstore: schema: %w", err)
	}
	var old int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('blobs') WHERE name = 'account'`).Scan(&old); err != nil {
		db.Close()
		return nil, fmt.Errorf("blobstore: schema: %w", err)
	}
	if old > 0 {
		if _, err := db.ExecContext(ctx, unlinkOwners); err != nil {
			db.Close()
			return nil, fmt.Errorf("blobstore: drop blob owners: %w", err)
		}
	}
	return &Index{db: db}, nil
}

// Close closes the database.
func (x *Index) Close() error { return x.db.Close() }

// CreateBlob implements relay.BlobIndex.
func (x *Index) CreateBlob(ctx context.Context, b relay.Blob, c relay.BlobCharge) error {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	defer tx.Rollback()
	up := c.Uploader
	day, first := relay.ChargeDays(b.Created, c.Window)
	var used int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0) FROM blob_charges WHERE account = ? AND device = ? AND day >= ? AND day <= ?`,
		up.Account[:], up.Device, first, day).Scan(&used); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	if used+b.Size > c.Quota {
		return relay.ErrQuota
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (id, write_key_hash, size, committed, created, expires) VALUES (?, ?, ?, ?, ?, ?)`,
		b.ID[:], b.WriteKeyHash[:], b.Size, b.Committed, b.Created.UnixMilli(), b.Expires.UnixMilli()); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	if b.Size > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO blob_charges (account, device, day, bytes) VALUES (?, ?, ?, ?)
			ON CONFLICT (account, device, day) DO UPDATE SET bytes = bytes + excluded.bytes`,
			up.Account[:], up.Device, day, b.Size); err != nil {
			return fmt.Errorf("blobstore: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// Blob implements relay.BlobIndex.
func (x *Index) Blob(ctx context.Context, id relay.BlobID) (relay.Blob, error) {
	b := relay.Blob{ID: id}
	var wkh []byte
	var created, expires int64
	err := x.db.QueryRowContext(ctx, `SELECT write_key_hash, size, committed, created, expires FROM blobs WHERE id = ?`, id[:]).
		Scan(&wkh, &b.Size, &b.Committed, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return b, relay.ErrNotFound
	}
	if err != nil {
		return b, fmt.Errorf("blobstore: %w", err)
	}
	copy(b.WriteKeyHash[:], wkh)
	b.Created, b.Expires = time.UnixMilli(created), time.UnixMilli(expires)
	return b, nil
}

// SetCommitted implements relay.BlobIndex.
func (x *Index) SetCommitted(ctx context.Context, id relay.BlobID, committed int64, expires time.Time) error {
	var exp *int64
	if !expires.IsZero() {
		ms := expires.UnixMilli()
		exp = &ms
	}
	res, err := x.db.ExecContext(ctx, `UPDATE blobs SET committed = ?, expires = COALESCE(?, expires) WHERE id = ? AND ? <= size`,
		committed, exp, id[:], committed)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return relay.ErrNotFound
	}
	return nil
}

// ExpiredBlobs implements relay.BlobIndex.
func (x *Index) ExpiredBlobs(ctx context.Context, now time.Time, limit int) ([]relay.BlobID, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT id FROM blobs WHERE expires <= ? ORDER BY expires LIMIT ?`, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	defer rows.Close()
	var ids []relay.BlobID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("blobstore: %w", err)
		}
		var id relay.BlobID
		copy(id[:], b)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return ids, nil
}

// DeleteBlob implements relay.BlobIndex.
func (x *Index) DeleteBlob(ctx context.Context, id relay.BlobID) error {
	if _, err := x.db.ExecContext(ctx, `DELETE FROM blobs WHERE id = ?`, id[:]); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// ExpireCharges implements relay.BlobIndex.
func (x *Index) ExpireCharges(ctx context.Context, day int64) error {
	if _, err := x.db.ExecContext(ctx, `DELETE FROM blob_charges WHERE day < ?`, day); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}
