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

// rawCount counts the rows of table in the store's database file, read
// beside the open store.
func rawCount(t *testing.T, dir, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlitestore.FileName)}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	// table is a constant of these tests.
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAckedEnvelopesLeaveTheLog: an ack takes the envelope out of its
// device's mailbox at once; the log row goes with the purge, which a
// reopen runs for acks left unpurged (a crash or a shutdown), and an ack
// of an envelope the purge has passed deletes the row itself.
func TestAckedEnvelopesLeaveTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var alice relay.DeviceAddr
	alice.Account[0], alice.Device = 0xa1, 1
	var ids []relay.EnvelopeID
	for _, mid := range []string{"a", "b", "c"} {
		sd := dedupeSend(alice, mid, time.Now())
		if _, err := s.Append(ctx, sd); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sd.Envelopes[0].ID)
	}
	bob := dedupeSend(alice, "x", time.Now()).Envelopes[0].Recipient
	if err := s.Delete(ctx, bob, ids[:2]); err != nil {
		t.Fatal(err)
	}
	got, err := s.Fetch(ctx, bob, 0, time.Time{}, 10)
	if err != nil || len(got) != 1 || got[0].ID != ids[2] {
		t.Fatalf("fetched %+v %v, want only the unacked envelope", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := rawCount(t, dir, "envelopes"); n != 1 {
		t.Fatalf("%d envelope rows after reopening, want the unacked one", n)
	}
	if err := s.Delete(ctx, bob, ids[2:]); err != nil {
		t.Fatal(err)
	}
	if n := rawCount(t, dir, "envelopes"); n != 0 {
		t.Fatalf("%d envelope rows after acking one the purge had passed, want 0", n)
	}
	if n := rawCount(t, dir, "mailbox"); n != 0 {
		t.Fatalf("%d mailbox rows, want 0", n)
	}
}

// TestAckOfAnotherDeviceKeepsTheRow: the purge deletes only log rows no
// mailbox lists, so an ack naming another device's envelope deletes
// nothing, now or at the purge.
func TestAckOfAnotherDeviceKeepsTheRow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var alice, mallory relay.DeviceAddr
	alice.Account[0], alice.Device = 0xa1, 1
	mallory.Account[0], mallory.Device = 0x66, 1
	sd := dedupeSend(alice, "a", time.Now())
	if _, err := s.Append(ctx, sd); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, mallory, []relay.EnvelopeID{sd.Envelopes[0].ID}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Fetch(ctx, sd.Envelopes[0].Recipient, 0, time.Time{}, 10)
	if err != nil || len(got) != 1 || string(got[0].Content) != "c-a" {
		t.Fatalf("after another device's ack and a purge: %+v %v", got, err)
	}
}

// TestPageSize: a new database gets DefaultPageSize; one made by an older
// relay keeps its own and still opens.
func TestPageSize(t *testing.T) {
	ctx := context.Background()
	pageSize := func(dir string) int {
		db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlitestore.FileName)}).EscapedPath()+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`PRAGMA page_size`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	fresh := t.TempDir()
	s, err := sqlitestore.Open(ctx, fresh, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := pageSize(fresh); n != sqlitestore.DefaultPageSize {
		t.Fatalf("new database: page size %d, want %d", n, sqlitestore.DefaultPageSize)
	}
	old := t.TempDir()
	s, err = sqlitestore.Open(ctx, old, sqlitestore.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlitestore.Open(ctx, old, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := pageSize(old); n != 4096 {
		t.Fatalf("existing database: page size %d, want 4096 kept", n)
	}
}
