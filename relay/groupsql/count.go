package groupsql

import (
	"context"
	"fmt"
)

// CountGroups returns how many groups the store holds (expired or not):
// a relay moving its groups to another store (sottod -mailbox jetstream)
// checks that it leaves none behind.
func (s *Store) CountGroups(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.Read(ctx, func(tx Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM mls_groups`).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count groups: %w", err)
	}
	return n, nil
}
