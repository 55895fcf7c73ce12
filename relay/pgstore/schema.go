package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations[i] takes the schema from version i to i+1. Append only:
// never edit a migration that has shipped.
var migrations = []string{
	// 1: the relay's tables (times are Unix milliseconds, as in sqlitestore).
	`
CREATE TABLE codes (
	id         text PRIMARY KEY,
	hash       bytea NOT NULL UNIQUE,
	seats      integer NOT NULL,
	used       integer NOT NULL DEFAULT 0,
	created_ms bigint NOT NULL,
	expires_ms bigint NOT NULL,
	revoked    boolean NOT NULL DEFAULT false,
	note       text NOT NULL DEFAULT ''
);
CREATE TABLE accounts (
	id           bytea PRIMARY KEY,
	username     text NOT NULL UNIQUE,
	identity_key bytea NOT NULL,
	code_id      text NOT NULL,
	created_ms   bigint NOT NULL,
	expires_ms   bigint NOT NULL,
	revoked      boolean NOT NULL DEFAULT false,
	next_device  bigint NOT NULL DEFAULT 2
);
CREATE TABLE devices (
	account         bytea NOT NULL,
	device          bigint NOT NULL,
	device_key      bytea NOT NULL,
	registration_id bigint NOT NULL,
	name            text NOT NULL,
	created_ms      bigint NOT NULL,
	last_seen_ms    bigint NOT NULL,
	revoked         boolean NOT NULL DEFAULT false,
	PRIMARY KEY (account, device)
);
-- kind 0: signed EC prekey, kind 1: last-resort Kyber prekey
CREATE TABLE signed_prekeys (
	account bytea NOT NULL, device bigint NOT NULL, kind smallint NOT NULL,
	key_id bigint NOT NULL, pub bytea NOT NULL, sig bytea NOT NULL,
	PRIMARY KEY (account, device, kind)
);
-- kind 0: one-time EC prekey, kind 1: one-time Kyber prekey
CREATE TABLE one_time_prekeys (
	account bytea NOT NULL, device bigint NOT NULL, kind smallint NOT NULL,
	key_id bigint NOT NULL, pub bytea NOT NULL, sig bytea NOT NULL,
	PRIMARY KEY (account, device, kind, key_id)
);
CREATE TABLE link_tokens (
	hash       bytea PRIMARY KEY,
	account    bytea NOT NULL,
	expires_ms bigint NOT NULL
);
CREATE TABLE revocations (
	seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account bytea NOT NULL,
	device  bigint NOT NULL
);
CREATE TABLE envelopes (
	seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account       bytea NOT NULL,
	device        bigint NOT NULL,
	tag           bytea NOT NULL,
	sender        text NOT NULL,
	sender_device bigint NOT NULL,
	ts_ms         bigint NOT NULL,
	type          bigint NOT NULL,
	content       bytea NOT NULL,
	message_id    bytea NOT NULL
);
CREATE INDEX envelopes_by_device ON envelopes (account, device, seq);
CREATE INDEX envelopes_by_time ON envelopes (ts_ms);
CREATE TABLE sends (
	account    bytea NOT NULL,
	device     bigint NOT NULL,
	message_id bytea NOT NULL,
	ts_ms      bigint NOT NULL,
	PRIMARY KEY (account, device, message_id)
);
CREATE INDEX sends_by_time ON sends (ts_ms);
CREATE TABLE org_key (id integer PRIMARY KEY CHECK (id = 1), key bytea NOT NULL);
CREATE TABLE org_documents (
	kind integer NOT NULL, subject text NOT NULL, doc bytea NOT NULL,
	PRIMARY KEY (kind, subject)
);
`,
	// 2: the key transparency log.
	keyLogMigration,
	// 3: an account no longer keeps the invitation it came from: it
	// grouped people by who invited them.
	`ALTER TABLE accounts DROP COLUMN code_id`,
	// 4: the MLS Delivery Service (groups.go).
	groupMigration,
}

// Advisory lock keys (transaction-scoped).
const (
	lockMigrate    = 0x50_6f_74_74_6f_00_00_01 // "Sotto" migrations
	lockMailbox    = 0x50_6f_74_74_6f_00_00_02 // mailbox write batches
	lockRevocation = 0x50_6f_74_74_6f_00_00_03 // the revocation log
)

// migrate applies the missing migrations, each in its own transaction,
// serialized between processes by an advisory lock.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	for {
		done := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockMigrate)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
				return err
			}
			var v int
			err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
			if err == pgx.ErrNoRows {
				if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			if v > len(migrations) {
				return fmt.Errorf("database schema version %d is newer than this relay (%d)", v, len(migrations))
			}
			if v == len(migrations) {
				done = true
				return nil
			}
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			_, err = tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("pgstore: migrate: %w", err)
		}
		if done {
			return nil
		}
	}
}
