package store

import (
	"context"
	"fmt"
)

// DeleteMessage removes message id from conversation conv and reports
// whether it was there. secure_delete is on, so SQLite overwrites the freed
// cells; call Checkpoint afterwards so that no copy lingers in the WAL.
func (r rw) DeleteMessage(ctx context.Context, conv string, id []byte) (bool, error) {
	if err := r.k.acquire(); err != nil {
		return false, err
	}
	defer r.k.release()
	hconv := r.k.mac([]byte("conv"), []byte(conv))
	hid := r.k.mac([]byte("mid"), id)
	res, err := r.q.ExecContext(ctx, `DELETE FROM messages WHERE conv = ? AND mid = ?`, hconv, hid)
	if err != nil {
		return false, fmt.Errorf("store: delete message: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: delete message: %w", err)
	}
	return n == 1, nil
}

// Checkpoint copies the write-ahead log into the database and truncates it
// to zero bytes (PRAGMA wal_checkpoint(TRUNCATE)), so that pages written
// before a deletion do not survive in the -wal file. It must not run inside
// Update.
func (s *Store) Checkpoint(ctx context.Context) error {
	var busy, logPages, done int
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("store: checkpoint: the database is busy")
	}
	return nil
}
