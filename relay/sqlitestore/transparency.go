package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"sotto/relay"
	"sotto/transparency"
)

// keyLogSchema holds the key transparency log: its leaves and the stored
// perfect-subtree hashes (transparency.NewNodes) proofs are built from.
const keyLogSchema = `
CREATE TABLE IF NOT EXISTS keylog_leaves (
	idx      INTEGER PRIMARY KEY,
	username TEXT NOT NULL,
	leaf     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS keylog_by_user ON keylog_leaves (username, idx);
CREATE TABLE IF NOT EXISTS keylog_nodes (
	level INTEGER NOT NULL,
	idx   INTEGER NOT NULL,
	hash  BLOB NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;
`

const (
	qLogSize  = `SELECT coalesce(max(idx) + 1, 0) FROM keylog_leaves`
	qLogHash  = `SELECT hash FROM keylog_nodes WHERE level = ? AND idx = ?`
	qLogLeaf  = `INSERT INTO keylog_leaves (idx, username, leaf) VALUES (?, ?, ?)`
	qLogNode  = `INSERT INTO keylog_nodes (level, idx, hash) VALUES (?, ?, ?)`
	qLogByIdx = `SELECT leaf FROM keylog_leaves WHERE idx >= ? AND idx < ? ORDER BY idx`
	qLogUser  = `SELECT max(idx) FROM keylog_leaves WHERE username = ?`
)

var _ relay.KeyLog = (*Store)(nil)

// logTx is relay.LogTx on a write transaction (SQLite has one writer, so
// the transaction itself serializes appends).
type logTx struct{ tx *sql.Tx }

func (l logTx) LogSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := l.tx.QueryRowContext(ctx, qLogSize).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: key log size: %w", err)
	}
	return uint64(n), nil
}

func (l logTx) LogHashes(ctx context.Context, ids []transparency.NodeID) ([]transparency.Hash, error) {
	return readHashes(ids, func(level uint8, idx uint64) *sql.Row {
		return l.tx.QueryRowContext(ctx, qLogHash, level, int64(idx))
	})
}

func (l logTx) InsertLogLeaf(ctx context.Context, index uint64, username string, leaf []byte, nodes []transparency.Node) error {
	if _, err := l.tx.ExecContext(ctx, qLogLeaf, int64(index), username, leaf); err != nil {
		return fmt.Errorf("sqlitestore: key log append: %w", err)
	}
	for _, n := range nodes {
		if _, err := l.tx.ExecContext(ctx, qLogNode, n.ID.Level, int64(n.ID.Index), n.Hash[:]); err != nil {
			return fmt.Errorf("sqlitestore: key log append: %w", err)
		}
	}
	return nil
}

func readHashes(ids []transparency.NodeID, row func(level uint8, idx uint64) *sql.Row) ([]transparency.Hash, error) {
	out := make([]transparency.Hash, len(ids))
	for i, id := range ids {
		var h []byte
		err := row(id.Level, id.Index).Scan(&h)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlitestore: key log node %d/%d: %w", id.Level, id.Index, relay.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: key log node: %w", err)
		}
		if len(h) != transparency.HashSize {
			return nil, fmt.Errorf("sqlitestore: key log node %d/%d: %d bytes", id.Level, id.Index, len(h))
		}
		out[i] = transparency.Hash(h)
	}
	return out, nil
}

// appendLogLeaf appends a.LogLeaf within Enroll's transaction.
func appendLogLeaf(ctx context.Context, tx *sql.Tx, a relay.NewAccount) error {
	if a.LogLeaf == nil {
		return nil
	}
	_, err := relay.AppendLog(ctx, logTx{tx}, a.Username, a.LogLeaf)
	return err
}

// LogSize implements relay.KeyLog.
func (s *Store) LogSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.queryRow(ctx, qLogSize).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: key log size: %w", err)
	}
	return uint64(n), nil
}

// LogHashes implements relay.KeyLog.
func (s *Store) LogHashes(ctx context.Context, ids []transparency.NodeID) ([]transparency.Hash, error) {
	st, err := stmt(ctx, &s.rstmts, s.r, qLogHash)
	if err != nil {
		return nil, err
	}
	return readHashes(ids, func(level uint8, idx uint64) *sql.Row {
		return st.QueryRowContext(ctx, level, int64(idx))
	})
}

// LogLeaves implements relay.KeyLog.
func (s *Store) LogLeaves(ctx context.Context, start uint64, count int) ([][]byte, error) {
	if count <= 0 || start >= 1<<62 {
		return nil, nil
	}
	rows, err := s.query(ctx, qLogByIdx, int64(start), int64(start)+int64(count))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: key log leaves: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var leaf []byte
		if err := rows.Scan(&leaf); err != nil {
			return nil, fmt.Errorf("sqlitestore: key log leaves: %w", err)
		}
		out = append(out, leaf)
	}
	return out, rowsErr(rows)
}

// LogLeafIndex implements relay.KeyLog.
func (s *Store) LogLeafIndex(ctx context.Context, username string) (uint64, error) {
	var idx sql.NullInt64
	if err := s.queryRow(ctx, qLogUser, username).Scan(&idx); err != nil {
		return 0, fmt.Errorf("sqlitestore: key log lookup: %w", err)
	}
	if !idx.Valid {
		return 0, relay.ErrNotFound
	}
	return uint64(idx.Int64), nil
}

// AppendLogLeaf implements relay.KeyLog.
func (s *Store) AppendLogLeaf(ctx context.Context, username string, leaf []byte) (uint64, error) {
	var idx uint64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		idx, err = relay.AppendLog(ctx, logTx{tx}, username, leaf)
		return err
	})
	return idx, err
}
