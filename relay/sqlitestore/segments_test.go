package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
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

// segRows counts the rows in every segment of the log.
func segRows(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for i := range 6 {
		n += rawCount(t, dir, fmt.Sprintf("env_seg_%d", i))
	}
	return n
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fastRing opens a store whose log segments are sealed every 10 ms and
// cleared 20 ms later.
func fastRing(t *testing.T, dir string) *sqlitestore.Store {
	t.Helper()
	var o sqlitestore.Options
	sqlitestore.WithSegmentTiming(&o, 10*time.Millisecond, 20*time.Millisecond)
	s, err := sqlitestore.Open(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUnackedEnvelopesMoveToBacklog: an ack takes the envelope out of its
// device's mailbox at once; when its segment of the log is cleared, the
// envelopes still unacked are copied to backlog (same id, still fetched)
// and the acked ones are gone; an ack of a backlog envelope deletes its
// row; sequence numbers keep growing across a reopen.
func TestUnackedEnvelopesMoveToBacklog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := fastRing(t, dir)
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
	// The view envelopes shows what is not yet acknowledged, wherever it is.
	if n := rawCount(t, dir, "envelopes"); n != 1 {
		t.Fatalf("%d rows in the view envelopes, want the unacked one", n)
	}
	waitFor(t, "the segment to be cleared", func() bool {
		return segRows(t, dir) == 0 && rawCount(t, dir, "backlog") == 1
	})
	got, err := s.Fetch(ctx, bob, 0, time.Time{}, 10)
	if err != nil || len(got) != 1 || got[0].ID != ids[2] || string(got[0].Content) != "c-c" {
		t.Fatalf("fetched %+v %v, want only the unacked envelope", got, err)
	}
	if err := s.Delete(ctx, bob, ids[2:]); err != nil {
		t.Fatal(err)
	}
	if n := rawCount(t, dir, "backlog"); n != 0 {
		t.Fatalf("%d backlog rows after acking the last envelope, want 0", n)
	}
	if n := rawCount(t, dir, "mailbox"); n != 0 {
		t.Fatalf("%d mailbox rows, want 0", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The active segment is empty now: a reopened store still gives
	// higher sequence numbers.
	s, err = sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sd := dedupeSend(alice, "d", time.Now())
	if _, err := s.Append(ctx, sd); err != nil {
		t.Fatal(err)
	}
	if seq := sd.Envelopes[0].ID.Seq(); seq <= ids[2].Seq() {
		t.Fatalf("sequence number %d after reopening, want > %d", seq, ids[2].Seq())
	}
	got, err = s.Fetch(ctx, bob, ids[2].Seq(), time.Time{}, 10)
	if err != nil || len(got) != 1 || got[0].ID != sd.Envelopes[0].ID {
		t.Fatalf("fetched %+v %v after reopening", got, err)
	}
}

// TestFetchAcrossSegments: a device's envelopes spread over several
// segments and backlog come back in sequence order, limit and cursor
// applied across them.
func TestFetchAcrossSegments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := fastRing(t, dir)
	defer s.Close()
	var alice relay.DeviceAddr
	alice.Account[0], alice.Device = 0xa1, 1
	var ids []relay.EnvelopeID
	for i := range 12 {
		sd := dedupeSend(alice, fmt.Sprint("m", i), time.Now())
		if _, err := s.Append(ctx, sd); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sd.Envelopes[0].ID)
		time.Sleep(7 * time.Millisecond) // a new segment every 10 ms
	}
	if n := rawCount(t, dir, "log_segments"); n < 2 && rawCount(t, dir, "backlog") == 0 {
		t.Fatalf("all 12 envelopes in one segment, nothing in backlog: the test does not cross tables")
	}
	bob := dedupeSend(alice, "x", time.Now()).Envelopes[0].Recipient
	var got []relay.EnvelopeID
	for after := uint64(0); ; {
		envs, err := s.Fetch(ctx, bob, after, time.Time{}, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			got = append(got, e.ID)
			after = e.ID.Seq()
		}
		if len(envs) < 5 {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("fetched %v, want %v", got, ids)
	}
}

// TestAckOfAnotherDeviceKeepsTheRow: only the mailbox row of the device
// that acks is deleted, so an ack naming another device's envelope
// deletes nothing, and the envelope moves to backlog with its segment.
func TestAckOfAnotherDeviceKeepsTheRow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := fastRing(t, dir)
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
	waitFor(t, "the segment to be cleared", func() bool { return segRows(t, dir) == 0 })
	// An ack from mallory of an envelope in backlog: still nothing.
	if err := s.Delete(ctx, mallory, []relay.EnvelopeID{sd.Envelopes[0].ID}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Fetch(ctx, sd.Envelopes[0].Recipient, 0, time.Time{}, 10)
	if err != nil || len(got) != 1 || string(got[0].Content) != "c-a" {
		t.Fatalf("after another device's acks: %+v %v", got, err)
	}
}

// TestMigratesSingleLog opens a database of the previous layout (one
// envelope log purged of acked rows, user_version 2): the envelopes still
// listed move to backlog with their ids, acked rows the purge had not
// reached are dropped, and new envelopes get sequence numbers above any
// the old log gave (AUTOINCREMENT's, even of a deleted row).
func TestMigratesSingleLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlitestore.FileName)}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE envelopes (
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
CREATE TABLE mailbox (
	account BLOB NOT NULL,
	device  INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	tag     BLOB NOT NULL,
	PRIMARY KEY (account, device, seq)
) WITHOUT ROWID;
CREATE TABLE purge_mark (seq INTEGER NOT NULL);
INSERT INTO purge_mark VALUES (6);
INSERT INTO envelopes VALUES (7, x'b0000000000000000000000000000000', 1, x'0102030405060708', 'alice', 2, 1800000000000, 1, CAST('queued' AS BLOB), CAST('m1' AS BLOB));
INSERT INTO envelopes VALUES (8, x'b0000000000000000000000000000000', 1, x'0102030405060709', 'alice', 2, 1800000000000, 1, CAST('acked' AS BLOB), CAST('m2' AS BLOB));
INSERT INTO envelopes VALUES (9, x'b0000000000000000000000000000000', 1, x'010203040506070a', 'alice', 2, 1800000000000, 1, CAST('gone' AS BLOB), CAST('m3' AS BLOB));
DELETE FROM envelopes WHERE seq = 9;
INSERT INTO mailbox VALUES (x'b0000000000000000000000000000000', 1, 7, x'0102030405060708');
PRAGMA user_version = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var alice relay.DeviceAddr
	alice.Account[0], alice.Device = 0xa1, 2
	bob := dedupeSend(alice, "x", time.Now()).Envelopes[0].Recipient
	got, err := s.Fetch(ctx, bob, 0, time.Time{}, 10)
	if err != nil || len(got) != 1 || string(got[0].Content) != "queued" || got[0].ID.Seq() != 7 {
		t.Fatalf("envelope queued before the upgrade: %+v %v", got, err)
	}
	if cols := columns(t, dir); cols["envelopes"] != nil || cols["purge_mark"] != nil || rawCount(t, dir, "backlog") != 1 {
		t.Fatalf("tables after the upgrade: %v, %d backlog rows", cols, rawCount(t, dir, "backlog"))
	}
	sd := dedupeSend(alice, "new", time.Now())
	if _, err := s.Append(ctx, sd); err != nil {
		t.Fatal(err)
	}
	if seq := sd.Envelopes[0].ID.Seq(); seq <= 9 {
		t.Fatalf("new envelope got sequence number %d, want > 9", seq)
	}
	if err := s.Delete(ctx, bob, []relay.EnvelopeID{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	if n := rawCount(t, dir, "backlog"); n != 0 {
		t.Fatalf("%d backlog rows after the ack, want 0", n)
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

// TestAcksInSegmentsSurviveReopen: acks of envelopes still in a segment
// are appended to its ack table and leave the in-memory list; a reopened
// store rebuilds the list from the segments less their acks. An ack with
// the wrong tag, or from another device, acks nothing.
func TestAcksInSegmentsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var alice, mallory relay.DeviceAddr
	alice.Account[0], alice.Device = 0xa1, 1
	mallory.Account[0], mallory.Device = 0x66, 1
	var ids []relay.EnvelopeID
	for i := range 300 {
		sd := dedupeSend(alice, fmt.Sprint("m", i), time.Now())
		if _, err := s.Append(ctx, sd); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sd.Envelopes[0].ID)
	}
	bob := dedupeSend(alice, "x", time.Now()).Envelopes[0].Recipient
	for i := 0; i < 200; i += 7 {
		if err := s.Delete(ctx, bob, ids[i:min(i+7, 200)]); err != nil {
			t.Fatal(err)
		}
	}
	forged := ids[250]
	forged[15] ^= 1
	if err := s.Delete(ctx, bob, []relay.EnvelopeID{forged}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, mallory, ids[260:270]); err != nil {
		t.Fatal(err)
	}
	check := func(s *sqlitestore.Store, when string) {
		t.Helper()
		var got []relay.EnvelopeID
		for after := uint64(0); ; {
			envs, err := s.Fetch(ctx, bob, after, time.Time{}, 64)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range envs {
				got = append(got, e.ID)
				after = e.ID.Seq()
			}
			if len(envs) < 64 {
				break
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(ids[200:]) {
			t.Fatalf("%s: fetched %d envelopes, want the 100 unacked", when, len(got))
		}
		u, err := s.Usage(ctx)
		if err != nil || u.QueuedEnvelopes != 100 {
			t.Fatalf("%s: usage %+v %v, want 100 queued", when, u, err)
		}
	}
	check(s, "before reopening")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, "after reopening")
}
