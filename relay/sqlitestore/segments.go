package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The envelope log is a ring of segment tables, env_seg_0 …
// env_seg_{segSlots-1}, listed in log_segments with the first sequence
// number each holds. Appends go to the newest (active) segment; every
// segEvery the writer starts a new one in a free slot, and a segment
// sealed for segLag whose envelopes are all but segLeftFrac acknowledged,
// or sealed for segMaxLag, is cleared whole: the rows not yet
// acknowledged are first copied to backlog (and listed in mailbox), then
// the table is
// emptied by a DELETE without WHERE, which SQLite runs as a truncation:
// its pages go to the freelist without being rewritten, and without the
// rebalancing of half-emptied pages that deleting acked rows among live
// ones caused (docs/BENCHMARKS.md). An ack deletes the envelope's mailbox
// row, and its backlog row for an envelope copied there; an envelope in a
// segment is not in mailbox, and its ack is appended to the segment's
// ack table (fresh.go): the rows of a segment are never deleted one by
// one.
//
// Sequence numbers never go back: the active segment is never cleared, so
// its first sequence number or its last row is the highest ever given,
// and a new segment starts above it. Acked ciphertext stays in the file
// until its segment is cleared (segEvery+segLag after the append, at
// most segEvery+segMaxLag, and up to a second more for the writer's
// tick), and in free pages until they are reused (no secure_delete).
//
// The timing trades rewriting against copying: a segment cleared soon
// frees pages that the next segments reuse while the WAL still holds
// them (the checkpoint then copies such a page once), but an envelope
// still unacknowledged is written again to backlog and mailbox. On a
// loaded relay delivery can take seconds, so a segment waits until
// nearly all of it is acknowledged (docs/BENCHMARKS.md).
const (
	segSlots    = 6
	segEvery    = time.Second
	segLag      = 2 * time.Second
	segMaxLag   = 10 * time.Second
	segLeftFrac = 20 // cleared before segMaxLag with at most 1/20 unacked
)

// segSchema is the shape of every segment table (N: the slot) and of
// backlog (seq is given by the writer, not AUTOINCREMENT: no
// sqlite_sequence page rewritten by every commit), and its ack table
// (fresh.go), appended to in ack order.
const segSchema = `CREATE TABLE IF NOT EXISTS env_seg_N (
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
CREATE TABLE IF NOT EXISTS ack_seg_N (seq INTEGER NOT NULL);
`

// segTable names the table of slot, ackTable its acks.
func segTable(slot int) string { return "env_seg_" + strconv.Itoa(slot) }

func ackTable(slot int) string { return "ack_seg_" + strconv.Itoa(slot) }

// segTables creates the segment tables.
func segTables() string {
	var b strings.Builder
	for i := range segSlots {
		b.WriteString(strings.NewReplacer("env_seg_N", segTable(i), "ack_seg_N", ackTable(i)).Replace(segSchema))
	}
	return b.String()
}

// unionSegs returns q once for each segment ({T}: its table, {A}: its
// ack table), joined by sep.
func unionSegs(q, sep string) string {
	var parts []string
	for i := range segSlots {
		parts = append(parts, strings.NewReplacer("{T}", segTable(i), "{A}", ackTable(i)).Replace(q))
	}
	return strings.Join(parts, sep)
}

// envelopesView is the read-only view envelopes: the envelopes not yet
// acknowledged, wherever they are, with the columns of the single log
// this layout replaced, for reading the database by hand (an operator,
// tests elsewhere). Created after the migrations (step 3 drops the old
// table of that name).
//
// The view mailbox lists them by device as the table of that name did;
// deleting from either view, or updating envelopes, changes the tables
// beneath (a test playing a hostile relay does). The relay's in-memory
// list of the segments' envelopes does not see such a change, but Fetch
// reads the rows themselves: a deleted one is not delivered.
func envelopesView() string {
	var del, upd strings.Builder
	for _, t := range append([]string{"backlog"}, segNames()...) {
		fmt.Fprintf(&del, "DELETE FROM %s WHERE seq = OLD.seq;\n", t)
		fmt.Fprintf(&upd, "UPDATE %s SET account = NEW.account, device = NEW.device, tag = NEW.tag, sender = NEW.sender, "+
			"sender_device = NEW.sender_device, ts_ms = NEW.ts_ms, type = NEW.type, content = NEW.content, message_id = NEW.message_id WHERE seq = OLD.seq;\n", t)
	}
	return `CREATE VIEW IF NOT EXISTS envelopes AS SELECT * FROM backlog UNION ALL ` +
		unionSegs(`SELECT * FROM {T} WHERE seq NOT IN (SELECT seq FROM {A})`, " UNION ALL ") + `;
CREATE VIEW IF NOT EXISTS mailbox AS SELECT account, device, seq, tag FROM envelopes;
CREATE TRIGGER IF NOT EXISTS envelopes_delete INSTEAD OF DELETE ON envelopes BEGIN
` + del.String() + `DELETE FROM backlog_box WHERE seq = OLD.seq;
END;
CREATE TRIGGER IF NOT EXISTS mailbox_delete INSTEAD OF DELETE ON mailbox BEGIN
` + del.String() + `DELETE FROM backlog_box WHERE seq = OLD.seq;
END;
CREATE TRIGGER IF NOT EXISTS envelopes_update INSTEAD OF UPDATE ON envelopes BEGIN
` + upd.String() + `END;`
}

// segNames lists the segment tables.
func segNames() []string {
	var n []string
	for i := range segSlots {
		n = append(n, segTable(i))
	}
	return n
}

// segment is one table of the ring (writer state).
type segment struct {
	slot   int
	first  int64     // its first sequence number
	sealed time.Time // when a newer segment took over; zero while active
	rows   int       // envelopes appended by this store (or found at Open)
	left   int       // of them, not yet acknowledged in the fresh index
}

// Per slot, the writer's append statements (prepared at Open).
func qInsEnv(slot int) string {
	return `INSERT INTO ` + segTable(slot) + ` (seq, account, device, tag, sender, sender_device, ts_ms, type, content, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
}

func qInsEnvMulti(slot int) string {
	return `INSERT INTO ` + segTable(slot) + ` (seq, account, device, tag, sender, sender_device, ts_ms, type, content, message_id) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", multiRows), ", ")
}

// openSegments reads the ring (starting it in slot 0 for a new database)
// and the next sequence number. Segments sealed before the store was
// opened count as sealed now.
func (s *Store) openSegments(ctx context.Context) error {
	rows, err := s.w.QueryContext(ctx, `SELECT slot, first_seq FROM log_segments ORDER BY first_seq`)
	if err != nil {
		return fmt.Errorf("sqlitestore: segments: %w", err)
	}
	var segs []segment
	for rows.Next() {
		var g segment
		if err := rows.Scan(&g.slot, &g.first); err != nil {
			rows.Close()
			return fmt.Errorf("sqlitestore: segments: %w", err)
		}
		if g.slot < 0 || g.slot >= segSlots {
			rows.Close()
			return fmt.Errorf("sqlitestore: segments: slot %d out of range", g.slot)
		}
		segs = append(segs, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: segments: %w", err)
	}
	if len(segs) == 0 {
		// A new database, or one migrated from the single log (whose
		// migration seeds log_segments): above anything in backlog.
		g := segment{slot: 0}
		if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM backlog`).Scan(&g.first); err != nil {
			return fmt.Errorf("sqlitestore: segments: %w", err)
		}
		if _, err := s.w.ExecContext(ctx, `INSERT INTO log_segments (slot, first_seq) VALUES (?, ?)`, g.slot, g.first); err != nil {
			return fmt.Errorf("sqlitestore: segments: %w", err)
		}
		segs = append(segs, g)
	}
	now := time.Now()
	for i := range segs[:len(segs)-1] {
		segs[i].sealed = now
	}
	active := segs[len(segs)-1]
	var last int64
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM `+segTable(active.slot)).Scan(&last); err != nil {
		return fmt.Errorf("sqlitestore: segments: %w", err)
	}
	s.segs, s.nextSeq, s.lastRotate = segs, max(active.first, last+1), now
	return s.loadFresh(ctx)
}

// inBacklog reports whether the envelope seq is older than every segment
// (so it is in backlog if anywhere). Writer only.
func (s *Store) inBacklog(seq int64) bool { return seq < s.segs[0].first }

// maybeRotate starts a new segment every segEvery (if the active one has
// rows and a slot is free), and clears the segments sealed segLag ago,
// oldest first, in one transaction. Writer only.
//
// Only a store that has appended turns the ring: a second process with
// the database open (sottod admin, sotto-load's setup) appends nothing,
// and its view of the ring would be stale.
func (s *Store) maybeRotate(now time.Time) {
	if !s.ringOwner || now.Sub(s.lastRotate) < s.segEvery {
		return
	}
	s.lastRotate = now
	if err := s.rotate(context.Background(), now); err != nil {
		// Tried again at the next tick; nothing is lost meanwhile (the
		// transaction rolled back, the ring is as it was).
		return
	}
}

// rotate does maybeRotate's work in one transaction and, once committed,
// updates the ring.
func (s *Store) rotate(ctx context.Context, now time.Time) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	active := s.segs[len(s.segs)-1]
	var newSeg *segment
	if s.nextSeq > active.first {
		if slot, ok := s.freeSlot(); ok {
			newSeg = &segment{slot: slot, first: s.nextSeq}
		}
	}
	clear := 0 // how many of the oldest segments to clear
	for clear < len(s.segs)-1 && s.segs[clear].due(now, s.segLag) {
		clear++
	}
	if newSeg == nil && clear == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: rotate: %w", err)
	}
	defer tx.Rollback()
	// The ring in the database must be the one this store knows.
	var n int
	var newest int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(first_seq), 0) FROM log_segments`).Scan(&n, &newest); err != nil {
		return fmt.Errorf("sqlitestore: rotate: %w", err)
	}
	if n != len(s.segs) || newest != active.first {
		return fmt.Errorf("sqlitestore: rotate: the ring changed under this store (%d segments, newest at %d)", n, newest)
	}
	if newSeg != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO log_segments (slot, first_seq) VALUES (?, ?)`, newSeg.slot, newSeg.first); err != nil {
			return fmt.Errorf("sqlitestore: rotate: %w", err)
		}
	}
	for _, g := range s.segs[:clear] {
		if err := clearSegment(ctx, tx, g.slot); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: rotate: %w", err)
	}
	if newSeg != nil {
		s.segs[len(s.segs)-1].sealed = now
		s.segs = append(s.segs, *newSeg)
	}
	s.segs = append(s.segs[:0], s.segs[clear:]...)
	if clear > 0 {
		s.fresh.dropBelow(s.segs[0].first)
	}
	s.segClears.Add(uint64(clear))
	return nil
}

// clearSegment copies the rows of slot not acknowledged to backlog and
// lists them in mailbox, then empties the segment and its acks and frees
// the slot.
func clearSegment(ctx context.Context, tx *sql.Tx, slot int) error {
	t, a := segTable(slot), ackTable(slot) // from the slot number, never from input
	q := `INSERT INTO backlog SELECT * FROM ` + t + ` WHERE seq NOT IN (SELECT seq FROM ` + a + `);
		INSERT INTO backlog_box (account, device, seq, tag)
			SELECT account, device, seq, tag FROM ` + t + ` WHERE seq NOT IN (SELECT seq FROM ` + a + `);
		DELETE FROM ` + t + `;
		DELETE FROM ` + a + `;
		DELETE FROM log_segments WHERE slot = ` + strconv.Itoa(slot)
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("sqlitestore: clear segment %d: %w", slot, err)
	}
	return nil
}

// due reports whether g is to be cleared at now.
func (g segment) due(now time.Time, lag time.Duration) bool {
	if g.sealed.IsZero() {
		return false
	}
	age := now.Sub(g.sealed)
	return age >= lag*(segMaxLag/segLag) || age >= lag && g.left*segLeftFrac <= g.rows
}

// segmentOf returns the live segment holding seq, or nil.
func (s *Store) segmentOf(seq int64) *segment {
	for i := len(s.segs) - 1; i >= 0; i-- {
		if seq >= s.segs[i].first {
			return &s.segs[i]
		}
	}
	return nil
}

// freeSlot returns a slot no segment holds.
func (s *Store) freeSlot() (int, bool) {
	var used [segSlots]bool
	for _, g := range s.segs {
		used[g.slot] = true
	}
	for i, u := range used {
		if !u {
			return i, true
		}
	}
	return 0, false
}
