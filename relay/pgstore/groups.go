package pgstore

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"sotto/relay"
	"sotto/relay/groupsql"
)

// groupMigration adds the MLS Delivery Service's tables (relay/groupsql;
// the same as sqlitestore's).
const groupMigration = `
CREATE TABLE key_packages (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account     bytea NOT NULL,
	device      bigint NOT NULL,
	last_resort bigint NOT NULL,
	data        bytea NOT NULL
);
CREATE INDEX key_packages_by_device ON key_packages (account, device, last_resort, id);
CREATE TABLE mls_groups (
	id         bytea PRIMARY KEY,
	epoch      bigint NOT NULL,
	next_seq   bigint NOT NULL,
	group_info bytea NOT NULL,
	created_ms bigint NOT NULL
);
CREATE TABLE group_members (
	group_id   bytea NOT NULL,
	account    bytea NOT NULL,
	device     bigint NOT NULL,
	joined_seq bigint NOT NULL,
	left_seq   bigint NOT NULL,
	acked_seq  bigint NOT NULL,
	PRIMARY KEY (group_id, account, device)
);
CREATE INDEX group_members_by_device ON group_members (account, device);
CREATE TABLE group_messages (
	group_id       bytea NOT NULL,
	seq            bigint NOT NULL,
	kind           bigint NOT NULL,
	epoch          bigint NOT NULL,
	ts_ms          bigint NOT NULL,
	sender_account bytea NOT NULL,
	sender_device  bigint NOT NULL,
	message_id     bytea,
	content        bytea NOT NULL,
	welcome        bytea,
	PRIMARY KEY (group_id, seq)
);
CREATE UNIQUE INDEX group_messages_sends ON group_messages (group_id, sender_account, sender_device, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX group_messages_commits ON group_messages (group_id, epoch) WHERE kind = 2;
CREATE INDEX group_messages_by_age ON group_messages (ts_ms);
`

var _ relay.GroupStore = (*Store)(nil)

// The relay.GroupStore methods are groupsql.Store's, promoted from the
// Store's embedded *groupsql.Store (set by Open over groupDB).

// groupDB runs groupsql's transactions on the pool.
type groupDB struct{ s *Store }

func (g groupDB) Write(ctx context.Context, fn func(groupsql.Tx) error) error {
	return g.s.inTx(ctx, func(tx pgx.Tx) error { return fn(pgTx{tx}) })
}

func (g groupDB) Read(ctx context.Context, fn func(groupsql.Tx) error) error {
	return fn(pgTx{g.s.pool})
}

// pgConn is what pgx.Tx and the pool have in common.
type pgConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgTx struct{ c pgConn }

// numbered turns groupsql's ? placeholders into $1, $2, ...
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (t pgTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.c.Exec(ctx, numbered(q), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t pgTx) QueryRow(ctx context.Context, q string, args ...any) groupsql.Row {
	return t.c.QueryRow(ctx, numbered(q), args...)
}

func (t pgTx) Query(ctx context.Context, q string, args ...any) (groupsql.Rows, error) {
	return t.c.Query(ctx, numbered(q), args...)
}

func (pgTx) NoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
