package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"sotto/transparency"
)

// sqlHashes reads the relay's stored key log nodes.
type sqlHashes struct {
	ctx context.Context
	tx  *sql.Tx
}

func (r sqlHashes) ReadHashes(ids []transparency.NodeID) ([]transparency.Hash, error) {
	out := make([]transparency.Hash, len(ids))
	for i, id := range ids {
		var h []byte
		if err := r.tx.QueryRowContext(r.ctx, `SELECT hash FROM keylog_nodes WHERE level = ? AND idx = ?`, id.Level, int64(id.Index)).Scan(&h); err != nil {
			return nil, fmt.Errorf("node %d/%d: %w", id.Level, id.Index, err)
		}
		if len(h) != transparency.HashSize {
			return nil, errors.New("bad node")
		}
		out[i] = transparency.Hash(h)
	}
	return out, nil
}

// logBinding appends (user, key) to the relay's key transparency log, as
// a relay that swaps a key in the open would.
func logBinding(ctx context.Context, db *sql.DB, user string, key []byte) error {
	leaf, err := (&transparency.Binding{Kind: transparency.KindReplace, Username: user, IdentityKey: key, TimestampMS: time.Now().UnixMilli()}).Encode()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM keylog_leaves`).Scan(&n); err != nil {
		return err
	}
	nodes, err := transparency.NewNodes(sqlHashes{ctx, tx}, uint64(n), transparency.LeafHash(leaf))
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO keylog_leaves (idx, username, leaf) VALUES (?, ?, ?)`, n, user, leaf); err != nil {
		return err
	}
	for _, nd := range nodes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO keylog_nodes (level, idx, hash) VALUES (?, ?, ?)`, nd.ID.Level, int64(nd.ID.Index), nd.Hash[:]); err != nil {
			return err
		}
	}
	return tx.Commit()
}
