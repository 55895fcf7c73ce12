package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"sotto/relay"
	"sotto/wire"
)

// The organization's public key, in its own one-row table, created on
// first use so that older databases need no migration.

var (
	_ relay.OrgKeyStore      = (*Store)(nil)
	_ relay.OrgDocumentStore = (*Store)(nil)
)

const orgSchema = `CREATE TABLE IF NOT EXISTS org_key (id INTEGER PRIMARY KEY CHECK (id = 1), key BLOB NOT NULL)`

// OrgKey implements relay.OrgKeyStore.
func (s *Store) OrgKey(ctx context.Context) ([]byte, error) {
	var k []byte
	err := s.r.QueryRowContext(ctx, `SELECT key FROM org_key WHERE id = 1`).Scan(&k)
	if errors.Is(err, sql.ErrNoRows) || (err != nil && isNoTable(err)) {
		return nil, relay.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: org key: %w", err)
	}
	return k, nil
}

// SetOrgKey implements relay.OrgKeyStore.
func (s *Store) SetOrgKey(ctx context.Context, key []byte) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, orgSchema); err != nil {
			return fmt.Errorf("sqlitestore: org key table: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO org_key (id, key) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET key = excluded.key`, nonNil(key)); err != nil {
			return fmt.Errorf("sqlitestore: set org key: %w", err)
		}
		return nil
	})
}

func isNoTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}

// SetAccountExpiry sets the end of an account's subscription (extend,
// suspend). Connected devices see it when they next authenticate.
func (s *Store) SetAccountExpiry(ctx context.Context, id relay.AccountID, expires time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE accounts SET expires_ms = ? WHERE id = ?`, ms(expires), id[:])
	if err != nil {
		return fmt.Errorf("sqlitestore: set expiry: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return relay.ErrNotFound
	}
	return nil
}

const orgDocSchema = `CREATE TABLE IF NOT EXISTS org_documents (kind INTEGER NOT NULL, subject TEXT NOT NULL, doc BLOB NOT NULL, PRIMARY KEY (kind, subject))`

// PutOrgDocument implements relay.OrgDocumentStore.
func (s *Store) PutOrgDocument(ctx context.Context, kind wire.OrgDocumentKind, subject string, doc []byte) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, orgDocSchema); err != nil {
			return fmt.Errorf("sqlitestore: org documents table: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO org_documents (kind, subject, doc) VALUES (?, ?, ?)
			ON CONFLICT (kind, subject) DO UPDATE SET doc = excluded.doc`, int32(kind), subject, nonNil(doc)); err != nil {
			return fmt.Errorf("sqlitestore: put org document: %w", err)
		}
		return nil
	})
}

// OrgDocument implements relay.OrgDocumentStore.
func (s *Store) OrgDocument(ctx context.Context, kind wire.OrgDocumentKind, subject string) ([]byte, error) {
	var b []byte
	err := s.r.QueryRowContext(ctx, `SELECT doc FROM org_documents WHERE kind = ? AND subject = ?`, int32(kind), subject).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) || isNoTable(err) {
		return nil, relay.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: org document: %w", err)
	}
	return b, nil
}

// bindOrg stores, inside an enrollment's transaction, the account's
// identity certificate and, for the bootstrap enrollment, the org key.
func bindOrg(ctx context.Context, tx *sql.Tx, a relay.NewAccount) error {
	if a.OrgKey != nil {
		if _, err := tx.ExecContext(ctx, orgSchema); err != nil {
			return fmt.Errorf("sqlitestore: org key table: %w", err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO org_key (id, key) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`, a.OrgKey)
		if err != nil {
			return fmt.Errorf("sqlitestore: set org key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: an organization key is registered already", relay.ErrConflict)
		}
	}
	if a.Certificate == nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, orgDocSchema); err != nil {
		return fmt.Errorf("sqlitestore: org documents table: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO org_documents (kind, subject, doc) VALUES (?, ?, ?)
		ON CONFLICT (kind, subject) DO UPDATE SET doc = excluded.doc`, int32(wire.OrgDocumentKind_RELAY_IDENTITY_CERTIFICATE), a.Username, a.Certificate); err != nil {
		return fmt.Errorf("sqlitestore: identity certificate: %w", err)
	}
	return nil
}

// OrgDocumentsWithPrefix implements relay.OrgDocumentLister.
func (s *Store) OrgDocumentsWithPrefix(ctx context.Context, kind wire.OrgDocumentKind, prefix string) ([][]byte, error) {
	// A range on the primary key (kind, subject): subjects are ASCII.
	rows, err := s.r.QueryContext(ctx, `SELECT doc FROM org_documents WHERE kind = ? AND subject >= ? AND subject < ? ORDER BY subject`,
		int32(kind), prefix, prefix+"\x7f")
	if isNoTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: org documents: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("sqlitestore: org documents: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
