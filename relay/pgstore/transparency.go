package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"sotto/relay"
	"sotto/transparency"
)

// keyLogMigration holds the key transparency log: its leaves and the
// stored perfect-subtree hashes (transparency.NewNodes).
const keyLogMigration = `
CREATE TABLE keylog_leaves (
	idx      bigint PRIMARY KEY,
	username text NOT NULL,
	leaf     bytea NOT NULL
);
CREATE INDEX keylog_by_user ON keylog_leaves (username, idx);
CREATE TABLE keylog_nodes (
	level smallint NOT NULL,
	idx   bigint NOT NULL,
	hash  bytea NOT NULL,
	PRIMARY KEY (level, idx)
);
`

// lockKeyLog serializes appends to the key log between processes.
const lockKeyLog = 0x50_6f_74_74_6f_00_00_10

const (
	qLogSize = `SELECT coalesce(max(idx) + 1, 0) FROM keylog_leaves`
	// One round trip for all the nodes of a proof.
	qLogHashes = `SELECT n.level, n.idx, n.hash FROM keylog_nodes n
		JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx`
)

var _ relay.KeyLog = (*Store)(nil)

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// logTx is relay.LogTx on a transaction that holds the key log lock.
type logTx struct{ tx pgx.Tx }

func (l logTx) LogSize(ctx context.Context) (uint64, error) {
	if _, err := l.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKeyLog)); err != nil {
		return 0, fmt.Errorf("pgstore: key log lock: %w", err)
	}
	return logSize(ctx, l.tx)
}

func (l logTx) LogHashes(ctx context.Context, ids []transparency.NodeID) ([]transparency.Hash, error) {
	return logHashes(ctx, l.tx, ids)
}

func (l logTx) InsertLogLeaf(ctx context.Context, index uint64, username string, leaf []byte, nodes []transparency.Node) error {
	if _, err := l.tx.Exec(ctx, `INSERT INTO keylog_leaves (idx, username, leaf) VALUES ($1, $2, $3)`, int64(index), username, leaf); err != nil {
		return fmt.Errorf("pgstore: key log append: %w", err)
	}
	levels := make([]int16, len(nodes))
	idxs := make([]int64, len(nodes))
	hashes := make([][]byte, len(nodes))
	for i, n := range nodes {
		levels[i], idxs[i], hashes[i] = int16(n.ID.Level), int64(n.ID.Index), n.Hash[:]
	}
	if _, err := l.tx.Exec(ctx, `INSERT INTO keylog_nodes (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`,
		levels, idxs, hashes); err != nil {
		return fmt.Errorf("pgstore: key log append: %w", err)
	}
	return nil
}

func logSize(ctx context.Context, q querier) (uint64, error) {
	var n int64
	if err := q.QueryRow(ctx, qLogSize).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgstore: key log size: %w", err)
	}
	return uint64(n), nil
}

func logHashes(ctx context.Context, q querier, ids []transparency.NodeID) ([]transparency.Hash, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	levels := make([]int16, len(ids))
	idxs := make([]int64, len(ids))
	for i, id := range ids {
		levels[i], idxs[i] = int16(id.Level), int64(id.Index)
	}
	rows, err := q.Query(ctx, qLogHashes, levels, idxs)
	if err != nil {
		return nil, fmt.Errorf("pgstore: key log nodes: %w", err)
	}
	defer rows.Close()
	found := make(map[transparency.NodeID]transparency.Hash, len(ids))
	for rows.Next() {
		var (
			level int16
			idx   int64
			h     []byte
		)
		if err := rows.Scan(&level, &idx, &h); err != nil {
			return nil, fmt.Errorf("pgstore: key log nodes: %w", err)
		}
		if len(h) != transparency.HashSize {
			return nil, fmt.Errorf("pgstore: key log node %d/%d: %d bytes", level, idx, len(h))
		}
		found[transparency.NodeID{Level: uint8(level), Index: uint64(idx)}] = transparency.Hash(h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: key log nodes: %w", err)
	}
	out := make([]transparency.Hash, len(ids))
	for i, id := range ids {
		h, ok := found[id]
		if !ok {
			return nil, fmt.Errorf("pgstore: key log node %d/%d: %w", id.Level, id.Index, relay.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// appendLogLeaf appends a.LogLeaf within Enroll's transaction.
func appendLogLeaf(ctx context.Context, tx pgx.Tx, a relay.NewAccount) error {
	if a.LogLeaf == nil {
		return nil
	}
	_, err := relay.AppendLog(ctx, logTx{tx}, a.Username, a.LogLeaf)
	return err
}

// LogSize implements relay.KeyLog.
func (s *Store) LogSize(ctx context.Context) (uint64, error) { return logSize(ctx, s.pool) }

// LogHashes implements relay.KeyLog.
func (s *Store) LogHashes(ctx context.Context, ids []transparency.NodeID) ([]transparency.Hash, error) {
	return logHashes(ctx, s.pool, ids)
}

// LogLeaves implements relay.KeyLog.
func (s *Store) LogLeaves(ctx context.Context, start uint64, count int) ([][]byte, error) {
	if count <= 0 || start >= 1<<62 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT leaf FROM keylog_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx`, int64(start), int64(start)+int64(count))
	if err != nil {
		return nil, fmt.Errorf("pgstore: key log leaves: %w", err)
	}
	leaves, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("pgstore: key log leaves: %w", err)
	}
	return leaves, nil
}

// LogLeafIndex implements relay.KeyLog.
func (s *Store) LogLeafIndex(ctx context.Context, username string) (uint64, error) {
	var idx *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(idx) FROM keylog_leaves WHERE username = $1`, username).Scan(&idx); err != nil {
		return 0, fmt.Errorf("pgstore: key log lookup: %w", err)
	}
	if idx == nil {
		return 0, relay.ErrNotFound
	}
	return uint64(*idx), nil
}

// AppendLogLeaf implements relay.KeyLog.
func (s *Store) AppendLogLeaf(ctx context.Context, username string, leaf []byte) (uint64, error) {
	var idx uint64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		idx, err = relay.AppendLog(ctx, logTx{tx}, username, leaf)
		return err
	})
	return idx, err
}
