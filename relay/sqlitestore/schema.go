package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
)

const schema = `
CREATE TABLE IF NOT EXISTS codes (
	id         TEXT PRIMARY KEY,
	hash       BLOB NOT NULL UNIQUE,
	seats      INTEGER NOT NULL,
	used       INTEGER NOT NULL DEFAULT 0,
	created_ms INTEGER NOT NULL,
	expires_ms INTEGER NOT NULL,
	revoked    INTEGER NOT NULL DEFAULT 0,
	note       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS accounts (
	id           BLOB PRIMARY KEY,
	username     TEXT NOT NULL UNIQUE,
	identity_key BLOB NOT NULL,
	created_ms   INTEGER NOT NULL,
	expires_ms   INTEGER NOT NULL,
	revoked      INTEGER NOT NULL DEFAULT 0,
	next_device  INTEGER NOT NULL DEFAULT 2
);
CREATE TABLE IF NOT EXISTS devices (
	account         BLOB NOT NULL,
	device          INTEGER NOT NULL,
	device_key      BLOB NOT NULL,
	registration_id INTEGER NOT NULL,
	name            TEXT NOT NULL,
	created_ms      INTEGER NOT NULL,
	last_seen_ms    INTEGER NOT NULL,
	revoked         INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (account, device)
) WITHOUT ROWID;
-- kind 0: signed EC prekey, kind 1: last-resort Kyber prekey
CREATE TABLE IF NOT EXISTS signed_prekeys (
	account BLOB NOT NULL, device INTEGER NOT NULL, kind INTEGER NOT NULL,
	key_id INTEGER NOT NULL, pub BLOB NOT NULL, sig BLOB NOT NULL,
	PRIMARY KEY (account, device, kind)
) WITHOUT ROWID;
-- kind 0: one-time EC prekey, kind 1: one-time Kyber prekey
CREATE TABLE IF NOT EXISTS one_time_prekeys (
	account BLOB NOT NULL, device INTEGER NOT NULL, kind INTEGER NOT NULL,
	key_id INTEGER NOT NULL, pub BLOB NOT NULL, sig BLOB NOT NULL,
	PRIMARY KEY (account, device, kind, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_tokens (
	hash       BLOB PRIMARY KEY,
	account    BLOB NOT NULL,
	expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revocations (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	account BLOB NOT NULL,
	device  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS envelopes (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	account       BLOB NOT NULL,
	device        INTEGER NOT NULL,
	tag           BLOB NOT NULL,
	sender        TEXT NOT NULL,
	sender_device INTEGER NOT NULL,
	ts_ms         INTEGER NOT NULL,
	type          INTEGER NOT NULL,
	content       BLOB NOT NULL,
	message_id    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS envelopes_by_device ON envelopes (account, device, seq);
CREATE TABLE IF NOT EXISTS sends (
	account    BLOB NOT NULL,
	device     INTEGER NOT NULL,
	message_id BLOB NOT NULL,
	ts_ms      INTEGER NOT NULL,
	PRIMARY KEY (account, device, message_id)
) WITHOUT ROWID;
`

// dropped lists columns that older databases have and this relay no
// longer keeps; Open drops them (SQLite creates tables with IF NOT
// EXISTS, so a changed CREATE TABLE does not reach an existing file).
var dropped = []struct{ table, column string }{
	// The invitation an account came from: it grouped people by who
	// invited them.
	{"accounts", "code_id"},
}

// dropColumns removes the columns of dropped that db still has.
func dropColumns(ctx context.Context, db *sql.DB) error {
	for _, d := range dropped {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, d.table, d.column).Scan(&n); err != nil {
			return fmt.Errorf("sqlitestore: schema: %w", err)
		}
		if n == 0 {
			continue
		}
		// Names from the constant list above, never from input.
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+d.table+` DROP COLUMN `+d.column); err != nil {
			return fmt.Errorf("sqlitestore: drop %s.%s: %w", d.table, d.column, err)
		}
	}
	return nil
}
