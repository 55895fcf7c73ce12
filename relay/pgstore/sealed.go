package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"sotto/relay"
)

// Unidentified access keys, in their own table, created on first write so
// that the schema migrations need no new step.

var _ relay.AccessKeyStore = (*Store)(nil)

const accessKeySchema = `CREATE TABLE IF NOT EXISTS access_keys (account bytea PRIMARY KEY, key bytea NOT NULL)`

// SetAccessKey implements relay.AccessKeyStore.
func (s *Store) SetAccessKey(ctx context.Context, acct relay.AccountID, key []byte) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, accessKeySchema); err != nil {
			return fmt.Errorf("pgstore: access key table: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO access_keys (account, key) VALUES ($1, $2)
			ON CONFLICT (account) DO UPDATE SET key = excluded.key`, acct[:], nonNil(key)); err != nil {
			return fmt.Errorf("pgstore: set access key: %w", err)
		}
		return nil
	})
}

// AccessKey implements relay.AccessKeyStore.
func (s *Store) AccessKey(ctx context.Context, acct relay.AccountID) ([]byte, error) {
	var k []byte
	err := s.pool.QueryRow(ctx, `SELECT key FROM access_keys WHERE account = $1`, acct[:]).Scan(&k)
	var pe *pgconn.PgError
	if errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pe) && pe.Code == "42P01") {
		return nil, relay.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: access key: %w", err)
	}
	return k, nil
}
