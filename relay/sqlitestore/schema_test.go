package sqlitestore_test

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"

	"sotto/relay/sqlitestore"
)

// TestDropsCodeID opens a database made by an older relay, whose accounts
// kept the invitation they came from: Open drops the column and keeps the
// accounts.
func TestDropsCodeID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlitestore.FileName)}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE accounts (
	id           BLOB PRIMARY KEY,
	username     TEXT NOT NULL UNIQUE,
	identity_key BLOB NOT NULL,
	code_id      TEXT NOT NULL,
	created_ms   INTEGER NOT NULL,
	expires_ms   INTEGER NOT NULL,
	revoked      INTEGER NOT NULL DEFAULT 0,
	next_device  INTEGER NOT NULL DEFAULT 2
);
INSERT INTO accounts (id, username, identity_key, code_id, created_ms, expires_ms) VALUES (x'01', 'alice', x'05', 'inv-1234', 1, 2)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	accts, err := s.Accounts(ctx)
	if err != nil || len(accts) != 1 || accts[0].Username != "alice" {
		t.Fatalf("accounts after the upgrade: %+v %v", accts, err)
	}
	if cols := columns(t, dir)["accounts"]; cols["code_id"] {
		t.Fatal("accounts.code_id survived the upgrade")
	}
}

// columns reads the schema of the store's database file: table -> column
// -> true.
func columns(t *testing.T, dir string) map[string]map[string]bool {
	t.Helper()
	return schemaOf(t, filepath.Join(dir, sqlitestore.FileName))
}

func schemaOf(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY m.name, p.cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[string]bool{}
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		if out[tbl] == nil {
			out[tbl] = map[string]bool{}
		}
		out[tbl][col] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
