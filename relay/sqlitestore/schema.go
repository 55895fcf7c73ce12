package sqlitestore

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
	code_id      TEXT NOT NULL,
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
