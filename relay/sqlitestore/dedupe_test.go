package sqlitestore_test

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
)

func dedupeSend(sender relay.DeviceAddr, mid string, ts time.Time) *relay.Send {
	var bob relay.DeviceAddr
	bob.Account[0], bob.Device = 0xb0, 1
	return &relay.Send{Sender: sender, MessageID: []byte(mid), Timestamp: ts, Envelopes: []relay.Envelope{{
		Recipient: bob, Sender: "alice", SenderDevice: sender.Device, Type: 1, Content: []byte("c-" + mid), MessageID: []byte(mid),
	}}}
}

// TestDedupeSurvivesReopen: the dedupe index lives in memory, so a relay
// restarted after storing a send must rebuild it from send_log and still
// answer the retry as a duplicate with the first timestamp, while a send
// whose record expired is stored again.
func TestDedupeSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var alice relay.DeviceAddr
	alice.Account[0], alice.Device = 0xa1, 2
	t0 := time.UnixMilli(1_800_000_000_000)
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, mid := range []string{"old", "kept"} {
		if r, err := s.Append(ctx, dedupeSend(alice, mid, t0.Add(time.Duration(i)*time.Hour))); err != nil || r.Duplicate {
			t.Fatalf("first %s: %+v %v", mid, r, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Append(ctx, dedupeSend(alice, "kept", t0.Add(2*time.Hour)))
	if err != nil || !r.Duplicate || !r.Timestamp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("retry after reopen: %+v %v, want a duplicate of %v", r, err, t0.Add(time.Hour))
	}
	if n, err := s.ExpireSends(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("expired %d, %v; want 1", n, err)
	}
	if r, err := s.Append(ctx, dedupeSend(alice, "old", t0.Add(3*time.Hour))); err != nil || r.Duplicate {
		t.Fatalf("send whose record expired: %+v %v, want it stored", r, err)
	}
	if r, err := s.Append(ctx, dedupeSend(alice, "old", t0.Add(4*time.Hour))); err != nil || !r.Duplicate || !r.Timestamp.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("retry of the re-stored send: %+v %v", r, err)
	}
	// Same message id from another device of the same account: a
	// different send.
	other := alice
	other.Device = 3
	if r, err := s.Append(ctx, dedupeSend(other, "kept", t0)); err != nil || r.Duplicate {
		t.Fatalf("another device's send: %+v %v, want it stored", r, err)
	}
}

// TestMigratesSendsTable opens a database made by an older relay, whose
// dedupe records were in the sends table: Open moves them to send_log
// (a retry is still a duplicate) and drops sends; its queued envelopes
// are listed in mailbox, and the index they had is dropped.
func TestMigratesSendsTable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlitestore.FileName)}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	var alice relay.DeviceAddr
	alice.Account[0], alice.Device = 0xa1, 2
	t0 := time.UnixMilli(1_800_000_000_000)
	if _, err := db.ExecContext(ctx, `CREATE TABLE sends (
	account    BLOB NOT NULL,
	device     INTEGER NOT NULL,
	message_id BLOB NOT NULL,
	ts_ms      INTEGER NOT NULL,
	PRIMARY KEY (account, device, message_id)
) WITHOUT ROWID;
INSERT INTO sends VALUES (?, 2, CAST('m1' AS BLOB), ?);
CREATE TABLE envelopes (
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
CREATE INDEX envelopes_by_device ON envelopes (account, device, seq);
INSERT INTO envelopes VALUES (7, x'b0000000000000000000000000000000', 1, x'0102030405060708', 'alice', 2, 1800000000000, 1, CAST('queued' AS BLOB), CAST('m1' AS BLOB))`,
		alice.Account[:], t0.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Append(ctx, dedupeSend(alice, "m1", t0.Add(time.Minute)))
	if err != nil || !r.Duplicate || !r.Timestamp.Equal(t0) {
		t.Fatalf("retry of a send stored before the upgrade: %+v %v", r, err)
	}
	bob := dedupeSend(alice, "m1", t0).Envelopes[0].Recipient
	got, err := s.Fetch(ctx, bob, 0, time.Time{}, 10)
	if err != nil || len(got) != 1 || string(got[0].Content) != "queued" || got[0].ID.Seq() != 7 {
		t.Fatalf("envelope queued before the upgrade: %+v %v", got, err)
	}
	if err := s.Delete(ctx, bob, []relay.EnvelopeID{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rawCount(t, dir, "backlog"); n != 0 {
		t.Fatalf("%d backlog rows after the ack, want 0", n)
	}
	if cols := columns(t, dir); cols["envelopes"] != nil {
		t.Fatal("the single envelope log survived the upgrade")
	}
	if idx := rawCount(t, dir, "sqlite_schema WHERE name = 'envelopes_by_device'"); idx != 0 {
		t.Fatal("envelopes_by_device survived the upgrade")
	}
	if cols := columns(t, dir); cols["sends"] != nil || !cols["send_log"]["message_id"] {
		t.Fatalf("tables after the upgrade: %v", cols)
	}
	// Opening again applies nothing twice.
	s, err = sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.Append(ctx, dedupeSend(alice, "m1", t0.Add(time.Minute))); err != nil || !r.Duplicate {
		t.Fatalf("retry after a second open: %+v %v", r, err)
	}
}
