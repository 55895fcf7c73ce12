package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"sotto/relay"
)

// Unidentified access keys, in their own table, created on first use so
// that older databases need no migration.

var _ relay.AccessKeyStore = (*Store)(nil)

const accessKeySchema = `CREATE TABLE IF NOT EXISTS access_keys (account BLOB PRIMARY KEY, key BLOB NOT NULL) WITHOUT ROWID`

// SetAccessKey implements relay.AccessKeyStore.
func (s *Store) SetAccessKey(ctx context.Context, acct relay.AccountID, key []byte) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, accessKeySchema); err != nil {
			return fmt.Errorf("sqlitestore: access key table: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_keys (account, key) VALUES (?, ?)
			ON CONFLICT (account) DO UPDATE SET key = excluded.key`, acct[:], nonNil(key)); err != nil {
			return fmt.Errorf("sqlitestore: set access key: %w", err)
		}
		return nil
	})
}

// AccessKey implements relay.AccessKeyStore.
func (s *Store) AccessKey(ctx context.Context, acct relay.AccountID) ([]byte, error) {
	var k []byte
	err := s.r.QueryRowContext(ctx, `SELECT key FROM access_keys WHERE account = ?`, acct[:]).Scan(&k)
	if errors.Is(err, sql.ErrNoRows) || isNoTable(err) {
		return nil, relay.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: access key: %w", err)
	}
	return k, nil
}
