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
-- Envelopes that outlived their segment of the log (segments.go): the
-- ones not acknowledged when it was cleared. An ack deletes the row.
CREATE TABLE IF NOT EXISTS backlog (
	seq           INTEGER PRIMARY KEY,
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
-- The envelopes in backlog, by device: what Fetch reads and an ack
-- deletes. (The segments' are listed in memory: fresh.go; the view
-- mailbox lists both, for reading by hand.)
CREATE TABLE IF NOT EXISTS backlog_box (
	account BLOB NOT NULL,
	device  INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	tag     BLOB NOT NULL,
	PRIMARY KEY (account, device, seq)
) WITHOUT ROWID;
-- The segments of the log in use: slot N is table env_seg_N, holding the
-- envelopes from first_seq up to the next segment's first_seq.
CREATE TABLE IF NOT EXISTS log_segments (
	slot      INTEGER PRIMARY KEY,
	first_seq INTEGER NOT NULL
);
-- Dedupe records, appended in commit order; looked up through an
-- in-memory index built at Open (dedupe.go).
CREATE TABLE IF NOT EXISTS send_log (
	seq        INTEGER PRIMARY KEY,
	account    BLOB NOT NULL,
	device     INTEGER NOT NULL,
	message_id BLOB NOT NULL,
	ts_ms      INTEGER NOT NULL
);
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

// migrations upgrade a database made by an older relay, in order: the
// database's user_version counts the steps applied. A new step goes at
// the end. New tables need no step (the schema creates them); a step is
// for data that moves or a table that changes shape.
var migrations = []func(ctx context.Context, tx *sql.Tx) error{
	// 1: dedupe records move from sends, a B-tree keyed by (sender,
	// message id), to the append-only send_log.
	func(ctx context.Context, tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'sends'`).Scan(&n); err != nil || n == 0 {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO send_log (account, device, message_id, ts_ms)
			SELECT account, device, message_id, ts_ms FROM sends ORDER BY ts_ms;
			DROP TABLE sends`)
		return err
	},
	// 2: the envelopes waiting for each device are listed in mailbox
	// instead of an index on envelopes.
	func(ctx context.Context, tx *sql.Tx) error {
		if ok, err := hasTable(ctx, tx, "envelopes"); err != nil || !ok {
			return err
		}
		// The mailbox table of that layout (step 3 turns it into
		// backlog_box).
		if ok, err := hasTable(ctx, tx, "mailbox"); err != nil {
			return err
		} else if !ok {
			if _, err := tx.ExecContext(ctx, `CREATE TABLE mailbox (
				account BLOB NOT NULL, device INTEGER NOT NULL, seq INTEGER NOT NULL, tag BLOB NOT NULL,
				PRIMARY KEY (account, device, seq)) WITHOUT ROWID`); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO mailbox (account, device, seq, tag)
			SELECT account, device, seq, tag FROM envelopes;
			DROP INDEX IF EXISTS envelopes_by_device`)
		return err
	},
	// 3: the single envelope log (envelopes, purged of acked rows
	// together, with purge_mark) becomes a ring of segments cleared whole
	// (segments.go): the envelopes still listed move to backlog (acked
	// rows the purge had not reached are dropped), and the first segment
	// starts above the highest sequence number the log ever gave; the
	// mailbox table, listing backlog only now, becomes backlog_box.
	func(ctx context.Context, tx *sql.Tx) error {
		if ok, err := hasTable(ctx, tx, "envelopes"); err != nil || !ok {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO backlog
				SELECT seq, account, device, tag, sender, sender_device, ts_ms, type, content, message_id FROM envelopes e
				WHERE EXISTS (SELECT 1 FROM mailbox m WHERE m.account = e.account AND m.device = e.device AND m.seq = e.seq);
			INSERT INTO backlog_box SELECT account, device, seq, tag FROM mailbox;
			DROP TABLE mailbox;
			DELETE FROM log_segments;
			INSERT INTO log_segments (slot, first_seq) SELECT 0, max(
				coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'envelopes'), 0),
				coalesce((SELECT max(seq) FROM envelopes), 0)) + 1;
			DROP TABLE envelopes;
			DROP TABLE IF EXISTS purge_mark`)
		return err
	},
}

// hasTable reports whether the database has the table name.
func hasTable(ctx context.Context, tx *sql.Tx, name string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0, err
}

// migrate brings db's schema up to date: the dropped columns, then each
// migration not yet applied, each in its own transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	if err := dropColumns(ctx, db); err != nil {
		return err
	}
	for {
		var v int
		if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return fmt.Errorf("sqlitestore: schema version: %w", err)
		}
		if v >= len(migrations) {
			return nil
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlitestore: migrate: %w", err)
		}
		err = migrations[v](ctx, tx)
		if err == nil {
			// PRAGMA takes no parameters; v+1 is an int.
			_, err = tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1))
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlitestore: migrate to version %d: %w", v+1, err)
		}
	}
}
