package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// The envelopes table is an append-only log: an ack deletes the
// envelope's mailbox row at once (so Fetch no longer returns it) and
// leaves the log row to a purge that deletes, every purgeEvery, the acked
// rows appended more than purgeLag before. By then most rows of a log
// page are acked, so the page is freed whole instead of being rewritten
// once per ack that touches it (docs/BENCHMARKS.md). An ack of an envelope
// the purge has already passed (a backlog) deletes its log row at once.
// Acked ciphertext thus stays in the file for up to purgeLag+purgeEvery
// after the ack; without secure_delete SQLite leaves deleted rows' bytes
// in free pages until they are reused anyway.
const (
	purgeEvery = time.Second
	purgeLag   = 3 * time.Second
)

// qPurge deletes the log rows in (?, ?] that no mailbox lists.
const qPurge = `DELETE FROM envelopes WHERE seq > ? AND seq <= ? AND NOT EXISTS
	(SELECT 1 FROM mailbox m WHERE m.account = envelopes.account AND m.device = envelopes.device AND m.seq = envelopes.seq)`

// seqMark is the last envelope sequence number committed at a time.
type seqMark struct {
	at  time.Time
	seq int64
}

// appended notes that envelopes up to seq are committed (writer only).
func (s *Store) appended(seq int64) {
	if n := len(s.marks); n > 0 && time.Since(s.marks[n-1].at) < purgeEvery/4 {
		s.marks[n-1].seq = seq
		return
	}
	s.marks = append(s.marks, seqMark{time.Now(), seq})
}

// maybePurge purges the log up to the last mark older than purgeLag, at
// most once per purgeEvery (writer only).
func (s *Store) maybePurge(now time.Time) {
	if now.Sub(s.lastPurge) < purgeEvery {
		return
	}
	s.lastPurge = now
	upTo := s.purged
	i := 0
	for ; i < len(s.marks) && now.Sub(s.marks[i].at) >= purgeLag; i++ {
		upTo = max(upTo, s.marks[i].seq)
	}
	if upTo <= s.purged {
		return
	}
	if err := s.purge(context.Background(), upTo); err != nil {
		// Tried again at the next pass; nothing is lost meanwhile.
		return
	}
	s.marks = append(s.marks[:0], s.marks[i:]...)
}

// purge deletes the acked log rows in (s.purged, upTo] and records upTo
// as the new mark, in one transaction. Only the writer goroutine (or
// Open, before it starts) moves s.purged.
func (s *Store) purge(ctx context.Context, upTo int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: purge: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, qPurge, s.purged, upTo); err != nil {
		return fmt.Errorf("sqlitestore: purge: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE purge_mark SET seq = ?`, upTo); err != nil {
		return fmt.Errorf("sqlitestore: purge: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: purge: %w", err)
	}
	s.purged = upTo
	return nil
}

// openPurge reads the purge mark and purges the whole log after it (acks
// committed before a crash or shutdown whose purge had not come yet).
func (s *Store) openPurge(ctx context.Context) error {
	var marks int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM purge_mark`).Scan(&marks); err != nil {
		return fmt.Errorf("sqlitestore: purge mark: %w", err)
	}
	if marks == 0 {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO purge_mark (seq) VALUES (0)`); err != nil {
			return fmt.Errorf("sqlitestore: purge mark: %w", err)
		}
	}
	var last int64
	if err := s.w.QueryRowContext(ctx, `SELECT seq FROM purge_mark`).Scan(&s.purged); err != nil {
		return fmt.Errorf("sqlitestore: purge mark: %w", err)
	}
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM envelopes`).Scan(&last); err != nil {
		return fmt.Errorf("sqlitestore: purge: %w", err)
	}
	if last <= s.purged {
		return nil
	}
	return s.purge(ctx, last)
}
