package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sync"
)

// The dedupe records live in send_log, appended in commit order, so that
// recording a send costs a share of the log's last page instead of one
// page of a B-tree keyed by (sender, message id): with the dedupe window
// far larger than one commit, that B-tree gave nearly every send its own
// page, written to the WAL and then again by the checkpoint (most of the
// mailbox's disk writes; docs/BENCHMARKS.md). Lookups go through
// sendIndex, an in-memory hash index over the log built at Open.

// sendIndex maps the hash of a send's dedupe key to the log row holding
// it. A hash says only where to look: every hit is confirmed against the
// row itself, and a key whose hash is taken by another live key is kept
// in full in extra, so a hash collision can neither lose a send nor
// merge two.
type sendIndex struct {
	seed maphash.Seed

	mu    sync.Mutex
	rows  map[uint64]int64 // hash of key -> send_log.seq
	extra map[string]int64 // key -> seq, for keys whose hash is taken
}

func newSendIndex() *sendIndex {
	return &sendIndex{seed: maphash.MakeSeed(), rows: map[uint64]int64{}, extra: map[string]int64{}}
}

// dedupeKey is the key of a send: sender account, device, message id.
func dedupeKey(b, acct []byte, dev uint32, mid []byte) []byte {
	b = append(b, acct...)
	b = binary.BigEndian.AppendUint32(b, dev)
	return append(b, mid...)
}

func (x *sendIndex) hash(key []byte) uint64 { return maphash.Bytes(x.seed, key) }

// candidates returns the log rows that may hold key (at most two).
func (x *sendIndex) candidates(key []byte) (seqs [2]int64, n int) {
	h := x.hash(key)
	x.mu.Lock()
	defer x.mu.Unlock()
	if seq, ok := x.rows[h]; ok {
		seqs[n], n = seq, n+1
	}
	if len(x.extra) > 0 {
		if seq, ok := x.extra[string(key)]; ok {
			seqs[n], n = seq, n+1
		}
	}
	return seqs, n
}

// add records that key is in row seq (after the row is committed).
func (x *sendIndex) add(key []byte, seq int64) {
	h := x.hash(key)
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, taken := x.rows[h]; taken {
		x.extra[string(key)] = seq
		return
	}
	x.rows[h] = seq
}

// remove forgets row seq holding key (after the row is deleted); a newer
// row of the same key stays.
func (x *sendIndex) remove(key []byte, seq int64) {
	h := x.hash(key)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rows[h] == seq {
		delete(x.rows, h)
		return
	}
	if x.extra[string(key)] == seq {
		delete(x.extra, string(key))
	}
}

// len returns how many dedupe records the index holds.
func (x *sendIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.rows) + len(x.extra)
}

// load fills the index from send_log.
func (x *sendIndex) load(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT seq, account, device, message_id FROM send_log ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("sqlitestore: load dedupe records: %w", err)
	}
	defer rows.Close()
	var key []byte
	for rows.Next() {
		var (
			seq       int64
			acct, mid []byte
			dev       uint32
		)
		if err := rows.Scan(&seq, &acct, &dev, &mid); err != nil {
			return fmt.Errorf("sqlitestore: load dedupe records: %w", err)
		}
		key = dedupeKey(key[:0], acct, dev, mid)
		x.add(key, seq)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: load dedupe records: %w", err)
	}
	return nil
}
