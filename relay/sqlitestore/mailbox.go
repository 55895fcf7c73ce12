package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"sotto/relay"
)

// The writer's statements, prepared once at Open.
const (
	qSelSend = `SELECT account, device, message_id, ts_ms FROM send_log WHERE seq = ?`
	qDelEnv  = `DELETE FROM backlog WHERE seq = ? AND account = ? AND device = ? AND tag = ?`
)

// multiRows is how many envelopes one multi-row statement inserts or
// deletes: per-statement overhead dominates the writer's time otherwise.
const multiRows = 32

var (
	// The CASE keeps the tag check of qDelEnv for every row.
	qDelEnvMulti = `DELETE FROM backlog WHERE account = ? AND device = ? AND seq IN (` +
		strings.TrimSuffix(strings.Repeat("?, ", multiRows), ", ") + `) AND tag = CASE seq ` +
		strings.Repeat("WHEN ? THEN ? ", multiRows) + `END`
	qDelBox      = `DELETE FROM backlog_box WHERE seq = ? AND account = ? AND device = ? AND tag = ?`
	qDelBoxMulti = `DELETE FROM backlog_box WHERE account = ? AND device = ? AND seq IN (` +
		strings.TrimSuffix(strings.Repeat("?, ", multiRows), ", ") + `) AND tag = CASE seq ` +
		strings.Repeat("WHEN ? THEN ? ", multiRows) + `END`
)

// writerQueries are the statements prepared at Open.
func writerQueries() []string {
	q := []string{qSelSend, qDelEnv, qDelEnvMulti,
		qDelBox, qDelBoxMulti,
		qInsSendN(1), qInsSendN(4), qInsSendN(16), qInsSendN(multiRows)}
	for i := range segSlots {
		q = append(q, qInsEnv(i), qInsEnvMulti(i), qInsAck(i, 1), qInsAck(i, multiRows))
	}
	return q
}

// qInsSendN appends n dedupe records to send_log.
func qInsSendN(n int) string {
	return `INSERT INTO send_log (account, device, message_id, ts_ms) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", n), ", ")
}

// sendChunk is how many of left sends the next dedupe statement takes:
// only a few statement sizes are prepared.
func sendChunk(left int) int {
	for _, n := range []int{multiRows, 16, 4} {
		if left >= n {
			return n
		}
	}
	return 1
}

type opKind int

const (
	opAppend opKind = iota
	opDelete
)

// op is one request to the writer goroutine.
type op struct {
	kind opKind
	send *relay.Send
	dev  relay.DeviceAddr
	ids  []relay.EnvelopeID

	res       relay.AppendResult
	err       error
	done      chan struct{} // closed at commit (synchronous ops)
	submitted time.Time

	// Asynchronous ops: one of these is called after the commit, by the
	// completion goroutine.
	appended func(relay.AppendResult, error)
	deleted  func(error)
}

// complete reports the outcome of an asynchronous op.
func (o *op) complete() {
	if o.appended != nil {
		o.appended(o.res, o.err)
	} else {
		o.deleted(o.err)
	}
}

// submitAsync hands o to the writer without waiting; a closed store
// completes it at once with relay.ErrClosed.
func (s *Store) submitAsync(o *op) {
	o.submitted = time.Now()
	s.amu.RLock()
	if s.aclosed {
		s.amu.RUnlock()
		o.err = relay.ErrClosed
		o.complete()
		return
	}
	// The writer drains s.ops until Close has taken amu, so this cannot
	// block forever, and nothing sent here is left behind.
	s.ops <- o
	s.amu.RUnlock()
}

// completer calls the callbacks of asynchronous ops, batch after batch
// in commit order, so that the writer goes on to the next commit.
func (s *Store) completer() {
	defer close(s.completerDone)
	for b := range s.completed {
		for _, o := range b {
			o.complete()
		}
	}
}

// finish reports a committed batch: synchronous ops at once, asynchronous
// ones through the completer.
func (s *Store) finish(batch []*op) {
	var async []*op
	for _, o := range batch {
		if o.done != nil {
			close(o.done)
		} else {
			async = append(async, o)
		}
	}
	if len(async) > 0 {
		s.completed <- async
	}
}

// submit hands o to the writer and waits for its commit.
func (s *Store) submit(ctx context.Context, o *op) error {
	o.done = make(chan struct{})
	o.submitted = time.Now()
	select {
	case <-s.stop:
		return relay.ErrClosed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.stop:
		return relay.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-o.done:
		return o.err
	case <-s.stopped:
		select {
		case <-o.done:
			return o.err
		default:
			return relay.ErrClosed
		}
	}
	// Not waiting on ctx after submission: once the writer has the op
	// its outcome is decided soon, and reporting it avoids an ambiguous
	// "maybe stored" answer.
}

// writer is the single goroutine that commits mailbox writes in batches.
func (s *Store) writer() {
	defer close(s.stopped)
	defer close(s.completed)
	batch := make([]*op, 0, s.maxBatch)
	tick := time.NewTicker(s.segEvery)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			s.maybeRotate(now)
			continue
		case o := <-s.ops:
			batch = append(batch[:0], o)
		case <-s.stop:
			// Commit what is already queued, then stop.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < s.maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		s.commit(batch)
		for i := range batch {
			batch[i] = nil
		}
		s.maybeRotate(time.Now())
	}
}

// commit applies batch in one transaction; if that fails it retries each
// op alone so that one bad op cannot fail the others.
func (s *Store) commit(batch []*op) {
	start := time.Now()
	defer func() {
		now := time.Now()
		s.commits.Add(1)
		s.committedOps.Add(uint64(len(batch)))
		s.commitNanos.Add(uint64(now.Sub(start)))
		for _, o := range batch {
			s.waitNanos.Add(uint64(now.Sub(o.submitted)))
		}
	}()
	err := s.commitTx(batch)
	if err != nil && len(batch) > 1 {
		for _, o := range batch {
			o.err = s.commitTx([]*op{o})
		}
		s.finish(batch)
		return
	}
	for _, o := range batch {
		o.err = err
	}
	s.finish(batch)
}

// commitTx commits batch in one transaction.
func (s *Store) commitTx(batch []*op) (err error) {
	ctx := context.Background()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Sequence numbers given to envelopes of a transaction that fails are
	// given again.
	nextSeq := s.nextSeq
	defer func() {
		if err != nil {
			s.nextSeq = nextSeq
		}
	}()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	defer tx.Rollback()
	stmts := map[string]*sql.Stmt{}
	get := func(q string) (*sql.Stmt, error) {
		if st := stmts[q]; st != nil {
			return st, nil
		}
		st, err := s.txStmt(ctx, tx, q)
		if err != nil {
			return nil, err
		}
		stmts[q] = st
		return st, nil
	}
	// Appends: deduplicate against the log (through the in-memory index)
	// and the batch itself, then append the new sends' dedupe records and
	// envelopes with multi-row inserts.
	var (
		envs   []*relay.Envelope
		sends  []*relay.Send // of each envelope
		fresh  []*relay.Send // new sends, in log order
		keys   [][]byte      // their dedupe keys
		inTx   map[string]*relay.Send
		keyBuf []byte
	)
	for _, o := range batch {
		if o.kind != opAppend {
			continue
		}
		sd := o.send
		keyBuf = dedupeKey(keyBuf[:0], sd.Sender.Account[:], sd.Sender.Device, sd.MessageID)
		if first := inTx[string(keyBuf)]; first != nil {
			o.res = relay.AppendResult{Duplicate: true, Timestamp: first.Timestamp}
			continue
		}
		ts, dup, err := s.storedSend(ctx, get, keyBuf)
		if err != nil {
			return err
		}
		if dup {
			o.res = relay.AppendResult{Duplicate: true, Timestamp: ts}
			continue
		}
		if inTx == nil {
			inTx = map[string]*relay.Send{}
		}
		k := string(keyBuf)
		inTx[k] = sd
		keys = append(keys, []byte(k))
		fresh = append(fresh, sd)
		o.res = relay.AppendResult{Timestamp: sd.Timestamp}
		for i := range sd.Envelopes {
			envs = append(envs, &sd.Envelopes[i])
			sends = append(sends, sd)
		}
	}
	seqs := make([]int64, 0, len(fresh))
	for left := fresh; len(left) > 0; {
		n := sendChunk(len(left))
		st, err := get(qInsSendN(n))
		if err != nil {
			return err
		}
		args := make([]any, 0, 4*n)
		for _, sd := range left[:n] {
			args = append(args, sd.Sender.Account[:], sd.Sender.Device, sd.MessageID, ms(sd.Timestamp))
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		// One statement inserts its rows in order with consecutive rowids
		// (this is the only writer).
		for i := range n {
			seqs = append(seqs, last-int64(n-1-i))
		}
		left = left[n:]
	}
	all, allSends := envs, sends
	slot := s.segs[len(s.segs)-1].slot
	for len(envs) > 0 {
		n, q := 1, qInsEnv(slot)
		if len(envs) >= multiRows {
			n, q = multiRows, qInsEnvMulti(slot)
		}
		st, err := get(q)
		if err != nil {
			return err
		}
		args := make([]any, 0, 10*n)
		for i := range n {
			e, sd := envs[i], sends[i]
			content := e.Content
			if content == nil {
				content = []byte{} // an empty ciphertext is stored, not NULL
			}
			binary.BigEndian.PutUint64(e.ID[:8], uint64(s.nextSeq))
			s.nextSeq++
			args = append(args, int64(e.ID.Seq()), e.Recipient.Account[:], e.Recipient.Device, e.ID[8:],
				e.Sender, e.SenderDevice, ms(sd.Timestamp), e.Type, content, sd.MessageID)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		envs, sends = envs[n:], sends[n:]
	}
	// Acknowledged deletes: an envelope in a segment (the device's, tag
	// checked in the fresh index) gets an ack row and leaves with its
	// segment; one in backlog leaves mailbox and backlog now.
	type ack struct {
		dev relay.DeviceAddr
		seq int64
	}
	var acks []ack
	var ackSeqs []int64
	for _, o := range batch {
		if o.kind != opDelete {
			continue
		}
		var old []relay.EnvelopeID
		for _, id := range o.ids {
			seq := int64(id.Seq())
			switch {
			case s.inBacklog(seq):
				old = append(old, id)
			case s.fresh.find(o.dev, seq, id[8:]):
				acks = append(acks, ack{o.dev, seq})
				ackSeqs = append(ackSeqs, seq)
			}
		}
		if err := deleteIDs(ctx, get, qDelBox, qDelBoxMulti, o.dev, old); err != nil {
			return err
		}
		if err := deleteIDs(ctx, get, qDelEnv, qDelEnvMulti, o.dev, old); err != nil {
			return err
		}
	}
	if err := s.ackFresh(ctx, get, ackSeqs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	for i, k := range keys {
		s.sends.add(k, seqs[i])
	}
	if len(all) > 0 {
		s.ringOwner = true
	}
	active := &s.segs[len(s.segs)-1]
	for i, e := range all {
		var tag [8]byte
		copy(tag[:], e.ID[8:])
		s.fresh.add(e.Recipient, freshEnv{seq: int64(e.ID.Seq()), tag: tag, ts: ms(allSends[i].Timestamp)})
		active.rows++
		active.left++
	}
	for _, a := range acks {
		s.unlist(a.dev, a.seq)
	}
	return nil
}

// deleteIDs runs the delete query q1 (one id) or qN (multiRows ids) of
// table rows of dev for ids, several ids per statement.
func deleteIDs(ctx context.Context, get func(string) (*sql.Stmt, error), q1, qN string, dev relay.DeviceAddr, ids []relay.EnvelopeID) error {
	for len(ids) > 0 {
		n, q := 1, q1
		if len(ids) >= multiRows {
			n, q = multiRows, qN
		}
		st, err := get(q)
		if err != nil {
			return err
		}
		args := make([]any, 0, 2+3*n)
		if n == 1 {
			args = append(args, int64(ids[0].Seq()), dev.Account[:], dev.Device, ids[0][8:])
		} else {
			args = append(args, dev.Account[:], dev.Device)
			for _, id := range ids[:n] {
				args = append(args, int64(id.Seq()))
			}
			for _, id := range ids[:n] {
				args = append(args, int64(id.Seq()), id[8:])
			}
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("sqlitestore: delete: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

// storedSend reports whether the log holds the send of key, and its
// timestamp: the index names the rows that may, the rows say.
func (s *Store) storedSend(ctx context.Context, get func(string) (*sql.Stmt, error), key []byte) (time.Time, bool, error) {
	seqs, n := s.sends.candidates(key)
	for _, seq := range seqs[:n] {
		st, err := get(qSelSend)
		if err != nil {
			return time.Time{}, false, err
		}
		var (
			acct, mid []byte
			dev       uint32
			ts        int64
		)
		err = st.QueryRowContext(ctx, seq).Scan(&acct, &dev, &mid, &ts)
		if errors.Is(err, sql.ErrNoRows) {
			continue // expired since
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("sqlitestore: append: %w", err)
		}
		if bytes.Equal(dedupeKey(nil, acct, dev, mid), key) {
			return fromMS(ts), true, nil
		}
	}
	return time.Time{}, false, nil
}

// Append implements relay.Mailbox.
func (s *Store) Append(ctx context.Context, sd *relay.Send) (relay.AppendResult, error) {
	o := &op{kind: opAppend, send: sd}
	if err := s.submit(ctx, o); err != nil {
		return relay.AppendResult{}, err
	}
	return o.res, nil
}

// AppendAsync implements relay.AsyncMailbox.
func (s *Store) AppendAsync(sd *relay.Send, appended func(relay.AppendResult, error)) {
	s.submitAsync(&op{kind: opAppend, send: sd, appended: appended})
}

// DeleteAsync implements relay.AsyncMailbox.
func (s *Store) DeleteAsync(dev relay.DeviceAddr, ids []relay.EnvelopeID, deleted func(error)) {
	if len(ids) == 0 {
		deleted(nil)
		return
	}
	s.submitAsync(&op{kind: opDelete, dev: dev, ids: ids, deleted: deleted})
}

// Delete implements relay.Mailbox.
func (s *Store) Delete(ctx context.Context, dev relay.DeviceAddr, ids []relay.EnvelopeID) error {
	if len(ids) == 0 {
		return nil
	}
	return s.submit(ctx, &op{kind: opDelete, dev: dev, ids: ids})
}

// qFetch reads a device's envelopes: those in backlog through mailbox,
// and those of the segments the fresh index lists (?6, a JSON array of
// sequence numbers); SQLite merges the branches in sequence order.
var qFetch = `SELECT e.seq, e.tag, e.sender, e.sender_device, e.ts_ms, e.type, e.content, e.message_id
		FROM backlog_box m JOIN backlog e ON e.seq = m.seq
		WHERE m.account = ?1 AND m.device = ?2 AND m.seq > ?3 AND e.ts_ms >= ?4
	UNION ALL ` + unionSegs(`SELECT seq, tag, sender, sender_device, ts_ms, type, content, message_id
		FROM {T} WHERE seq IN (SELECT value FROM json_each(?6)) AND ts_ms >= ?4`, "\nUNION ALL ") + "\nORDER BY 1 LIMIT ?5"

// Fetch implements relay.Mailbox.
func (s *Store) Fetch(ctx context.Context, dev relay.DeviceAddr, after uint64, notBefore time.Time, limit int) ([]relay.Envelope, error) {
	// The fresh index is read first: an envelope whose segment is
	// cleared meanwhile is found in backlog instead.
	fresh := s.fresh.list(dev, int64(after), limit)
	rows, err := s.query(ctx, qFetch, dev.Account[:], dev.Device, int64(after), ms(notBefore), limit, fresh)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: fetch: %w", err)
	}
	defer rows.Close()
	var out []relay.Envelope
	for rows.Next() {
		var (
			e   relay.Envelope
			seq int64
			tag []byte
			ts  int64
		)
		if err := rows.Scan(&seq, &tag, &e.Sender, &e.SenderDevice, &ts, &e.Type, &e.Content, &e.MessageID); err != nil {
			return nil, fmt.Errorf("sqlitestore: fetch: %w", err)
		}
		binary.BigEndian.PutUint64(e.ID[:8], uint64(seq))
		copy(e.ID[8:], tag)
		e.Recipient = dev
		e.Timestamp = fromMS(ts)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: fetch: %w", err)
	}
	return out, nil
}

// Expire implements relay.Mailbox.
func (s *Store) Expire(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.mailboxTx(ctx, func(tx *sql.Tx) (func(), error) {
		k, after, err := s.dropFresh(ctx, tx, `ts_ms < ?`, []any{ms(before)},
			func(_ relay.DeviceAddr, e freshEnv) bool { return e.ts < ms(before) })
		if err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM backlog_box WHERE seq IN (SELECT seq FROM backlog WHERE ts_ms < ?)`, ms(before))
		if err != nil {
			return nil, err
		}
		n, _ = res.RowsAffected()
		n += k
		_, err = tx.ExecContext(ctx, `DELETE FROM backlog WHERE ts_ms < ?`, ms(before))
		return after, err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: expire: %w", err)
	}
	return n, nil
}

// expireSendsChunk is how many dedupe records (old or not) one expiry
// statement covers: the writer connection is shared with the mailbox's
// batches, which wait for each statement.
const expireSendsChunk = 8192

// send_log has no time index (it would cost every send a second B-tree
// insert), so an expiry pass walks the log once, a range of rows at a
// time: qSendsAhead finds the end of the next range, qExpireSends deletes
// the old records in it and names them for the index.
var (
	qSendsAhead  = `SELECT seq FROM send_log WHERE seq > ? ORDER BY seq LIMIT 1 OFFSET ` + fmt.Sprint(expireSendsChunk-1)
	qExpireSends = `DELETE FROM send_log WHERE seq > ? AND seq <= ? AND ts_ms < ? RETURNING seq, account, device, message_id`
)

// ExpireSends implements relay.Mailbox.
func (s *Store) ExpireSends(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	for after := int64(0); ; {
		var hi int64
		err := s.w.QueryRowContext(ctx, qSendsAhead, after).Scan(&hi)
		last := errors.Is(err, sql.ErrNoRows)
		switch {
		case last:
			hi = math.MaxInt64
		case err != nil:
			return n, fmt.Errorf("sqlitestore: expire sends: %w", err)
		}
		k, err := s.expireSendRange(ctx, after, hi, before)
		n += k
		if err != nil || last {
			return n, err
		}
		after = hi
	}
}

// expireSendRange deletes the dedupe records in (after, hi] older than
// before, then drops them from the index.
func (s *Store) expireSendRange(ctx context.Context, after, hi int64, before time.Time) (int64, error) {
	rows, err := s.w.QueryContext(ctx, qExpireSends, after, hi, ms(before))
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: expire sends: %w", err)
	}
	type gone struct {
		key []byte
		seq int64
	}
	var del []gone
	for rows.Next() {
		var (
			g         gone
			acct, mid []byte
			dev       uint32
		)
		if err := rows.Scan(&g.seq, &acct, &dev, &mid); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sqlitestore: expire sends: %w", err)
		}
		g.key = dedupeKey(nil, acct, dev, mid)
		del = append(del, g)
	}
	err = rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Not known to be deleted: the index keeps the rows, which is
		// safe (a hit is always checked against the log).
		return 0, fmt.Errorf("sqlitestore: expire sends: %w", err)
	}
	for _, g := range del {
		s.sends.remove(g.key, g.seq)
	}
	return int64(len(del)), nil
}

// DeleteDevice implements relay.Mailbox.
func (s *Store) DeleteDevice(ctx context.Context, dev relay.DeviceAddr) error {
	err := s.mailboxTx(ctx, func(tx *sql.Tx) (func(), error) {
		return s.deleteQueued(ctx, tx, dev.Account, dev.Device)
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: delete device: %w", err)
	}
	return nil
}

// deleteQueued deletes the envelopes queued for device dev of acct, or
// for all its devices when dev is 0 (a revoked account), in a
// mailboxTx; the func returned unlists them from the fresh index.
func (s *Store) deleteQueued(ctx context.Context, tx *sql.Tx, acct relay.AccountID, dev uint32) (func(), error) {
	_, after, err := s.dropFresh(ctx, tx, `account = ?1 AND (?2 = 0 OR device = ?2)`, []any{acct[:], dev},
		func(d relay.DeviceAddr, _ freshEnv) bool { return d.Account == acct && (dev == 0 || d.Device == dev) })
	if err != nil {
		return nil, err
	}
	const sel = `SELECT seq FROM backlog_box WHERE account = ? AND (? = 0 OR device = ?)`
	if _, err := tx.ExecContext(ctx, `DELETE FROM backlog WHERE seq IN (`+sel+`)`, acct[:], dev, dev); err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM backlog_box WHERE account = ? AND (? = 0 OR device = ?)`, acct[:], dev, dev)
	return after, err
}
