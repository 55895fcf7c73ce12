package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"sotto/relay"
)

// Envelopes in the log's segments are not listed in mailbox: a mailbox
// row per envelope, keyed by device, put nearly every send of a commit
// on its own page of that B-tree (and its ack on another), a fifth of
// what the mailbox wrote (docs/BENCHMARKS.md). Instead:
//   - an ack of an envelope in a segment appends its sequence number to
//     the segment's ack table (ack_seg_N, cleared with the segment);
//   - freshIndex, in memory, lists each device's envelopes in the
//     segments not yet acknowledged: what Fetch reads for them and what
//     an ack is checked against (device and tag). Open rebuilds it from
//     the segments less their acks;
//   - clearing a segment lists its unacked envelopes in mailbox as it
//     copies them to backlog (segments.go).
//
// The writer changes the index only after the commit that makes the
// change durable, holding s.wmu; so do the other mailbox transactions
// (revocation, expiry, a deleted device), which hold s.wmu from before
// they read it until after they change it.

// freshEnv is one envelope in the index.
type freshEnv struct {
	seq   int64
	tag   [8]byte
	ts    int64 // ts_ms
	acked bool  // unlisted; compacted away later
}

// freshList is one device's envelopes, in sequence order; acked ones
// stay as tombstones until they are half the list, so that acking a long
// queue in order does not move the rest each time.
type freshList struct {
	l    []freshEnv
	dead int
}

// freshIndex lists the unacknowledged envelopes of the log's segments by
// device, in sequence order.
type freshIndex struct {
	mu    sync.Mutex
	byDev map[relay.DeviceAddr]*freshList
	n     int // listed, not acked
}

func newFreshIndex() *freshIndex {
	return &freshIndex{byDev: map[relay.DeviceAddr]*freshList{}}
}

// search returns the position of the first entry of l at or above seq.
func search(l []freshEnv, seq int64) (int, bool) {
	return slices.BinarySearchFunc(l, seq, func(e freshEnv, seq int64) int { return cmpInt(e.seq, seq) })
}

// add lists e for dev; e.seq is above every seq listed (appends).
func (x *freshIndex) add(dev relay.DeviceAddr, e freshEnv) {
	x.mu.Lock()
	f := x.byDev[dev]
	if f == nil {
		f = &freshList{}
		x.byDev[dev] = f
	}
	f.l = append(f.l, e)
	x.n++
	x.mu.Unlock()
}

// find reports whether dev's envelope seq with tag is listed.
func (x *freshIndex) find(dev relay.DeviceAddr, seq int64, tag []byte) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	f := x.byDev[dev]
	if f == nil {
		return false
	}
	i, ok := search(f.l, seq)
	return ok && !f.l[i].acked && string(f.l[i].tag[:]) == string(tag)
}

// remove unlists dev's envelope seq, if listed, and reports whether it
// was.
func (x *freshIndex) remove(dev relay.DeviceAddr, seq int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	f := x.byDev[dev]
	if f == nil {
		return false
	}
	i, ok := search(f.l, seq)
	if !ok || f.l[i].acked {
		return false
	}
	f.l[i].acked = true
	f.dead++
	x.n--
	switch {
	case f.dead == len(f.l):
		delete(x.byDev, dev)
	case f.dead > len(f.l)/2:
		f.l = slices.DeleteFunc(f.l, func(e freshEnv) bool { return e.acked })
		f.dead = 0
	}
	return true
}

// list returns the seqs of dev's envelopes after after, at most limit, as
// a JSON array (for json_each in qFetch).
func (x *freshIndex) list(dev relay.DeviceAddr, after int64, limit int) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := []byte{'['}
	if f := x.byDev[dev]; f != nil {
		i, _ := search(f.l, after+1)
		n := 0
		for _, e := range f.l[i:] {
			if n == limit {
				break
			}
			if e.acked {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, e.seq, 10)
			n++
		}
	}
	return string(append(b, ']'))
}

// dropBelow unlists every envelope below seq (its segment was cleared).
func (x *freshIndex) dropBelow(seq int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for dev, f := range x.byDev {
		i, _ := search(f.l, seq)
		if i == 0 {
			continue
		}
		for _, e := range f.l[:i] {
			if e.acked {
				f.dead--
			} else {
				x.n--
			}
		}
		if i == len(f.l) {
			delete(x.byDev, dev)
		} else {
			f.l = slices.Delete(f.l, 0, i)
		}
	}
}

// match returns the listed envelopes for which keep says true, by device.
func (x *freshIndex) match(keep func(relay.DeviceAddr, freshEnv) bool) map[relay.DeviceAddr][]int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[relay.DeviceAddr][]int64{}
	for dev, f := range x.byDev {
		for _, e := range f.l {
			if !e.acked && keep(dev, e) {
				out[dev] = append(out[dev], e.seq)
			}
		}
	}
	return out
}

func (x *freshIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.n
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// loadFresh fills the index from the live segments less their acks (at
// Open, before the writer starts).
func (s *Store) loadFresh(ctx context.Context) error {
	for i := range s.segs {
		g := &s.segs[i]
		t, a := segTable(g.slot), ackTable(g.slot)
		rows, err := s.w.QueryContext(ctx, `SELECT seq, account, device, tag, ts_ms FROM `+t+
			` WHERE seq NOT IN (SELECT seq FROM `+a+`) ORDER BY seq`)
		if err != nil {
			return fmt.Errorf("sqlitestore: load segment %d: %w", g.slot, err)
		}
		for rows.Next() {
			var (
				e         freshEnv
				acct, tag []byte
				dev       relay.DeviceAddr
			)
			if err := rows.Scan(&e.seq, &acct, &dev.Device, &tag, &e.ts); err != nil {
				rows.Close()
				return fmt.Errorf("sqlitestore: load segment %d: %w", g.slot, err)
			}
			copy(dev.Account[:], acct)
			copy(e.tag[:], tag)
			s.fresh.add(dev, e)
			g.rows++
			g.left++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlitestore: load segment %d: %w", g.slot, err)
		}
	}
	return nil
}

// unlist takes dev's acked envelope seq out of the fresh index and its
// segment's count (s.wmu held).
func (s *Store) unlist(dev relay.DeviceAddr, seq int64) {
	if s.fresh.remove(dev, seq) {
		if g := s.segmentOf(seq); g != nil {
			g.left--
		}
	}
}

// slotOf returns the slot of the live segment holding seq, if one does
// (s.wmu held).
func (s *Store) slotOf(seq int64) (int, bool) {
	for i := len(s.segs) - 1; i >= 0; i-- {
		if seq >= s.segs[i].first {
			return s.segs[i].slot, seq < s.nextSeq
		}
	}
	return 0, false
}

// ackFresh records in tx the acks of seqs (envelopes of the segments),
// in each one's segment ack table (s.wmu held).
func (s *Store) ackFresh(ctx context.Context, get func(string) (*sql.Stmt, error), seqs []int64) error {
	bySlot := map[int][]int64{}
	for _, seq := range seqs {
		if slot, ok := s.slotOf(seq); ok {
			bySlot[slot] = append(bySlot[slot], seq)
		}
	}
	for slot, l := range bySlot {
		for len(l) > 0 {
			n := 1
			if len(l) >= multiRows {
				n = multiRows
			}
			st, err := get(qInsAck(slot, n))
			if err != nil {
				return err
			}
			args := make([]any, n)
			for i, seq := range l[:n] {
				args[i] = seq
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("sqlitestore: ack: %w", err)
			}
			l = l[n:]
		}
	}
	return nil
}

// qInsAck appends n acks to the ack table of slot.
func qInsAck(slot, n int) string {
	return `INSERT INTO ` + ackTable(slot) + ` (seq) VALUES ` + strings.TrimSuffix(strings.Repeat("(?), ", n), ", ")
}

// mailboxTx runs fn in one write transaction with the writer held off,
// so that fn sees the ring and the fresh index as committed; the after
// func fn returns runs once the transaction is committed (the index's
// changes), before the writer goes on.
func (s *Store) mailboxTx(ctx context.Context, fn func(tx *sql.Tx) (after func(), err error)) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	after, err := fn(tx)
	if err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	if after != nil {
		after()
	}
	return nil
}

// dropFresh acks, in tx, the envelopes of the segments that the SQL
// condition where (on a segment's columns, with args) selects and keep
// (the same condition on the index's entries) says are to go: a
// revocation, a deleted device, expiry. It reads the segment tables, not
// the index, so that a second process (sottod admin, whose index is not
// the relay's) acks what the relay appended too. It returns how many it
// acked and the func that unlists them from this store's index after the
// commit (s.wmu held).
func (s *Store) dropFresh(ctx context.Context, tx *sql.Tx, where string, args []any, keep func(relay.DeviceAddr, freshEnv) bool) (int64, func(), error) {
	var n int64
	for i := range segSlots {
		// Table names from the slot number, where from this package.
		res, err := tx.ExecContext(ctx, `INSERT INTO `+ackTable(i)+` (seq) SELECT seq FROM `+segTable(i)+
			` WHERE (`+where+`) AND seq NOT IN (SELECT seq FROM `+ackTable(i)+`)`, args...)
		if err != nil {
			return 0, nil, err
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, func() {
		for dev, l := range s.fresh.match(keep) {
			for _, seq := range l {
				s.unlist(dev, seq)
			}
		}
	}, nil
}
