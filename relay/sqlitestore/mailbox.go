package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"sotto/relay"
)

// The writer's statements, prepared once at Open.
const (
	qInsEnv  = `INSERT INTO envelopes (account, device, tag, sender, sender_device, ts_ms, type, content, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qSelSend = `SELECT ts_ms FROM sends WHERE account = ? AND device = ? AND message_id = ?`
	qDelEnv  = `DELETE FROM envelopes WHERE seq = ? AND account = ? AND device = ? AND tag = ?`
)

// multiRows is how many envelopes one multi-row statement inserts or
// deletes: per-statement overhead dominates the writer's time otherwise.
const multiRows = 32

var (
	qInsEnvMulti = `INSERT INTO envelopes (account, device, tag, sender, sender_device, ts_ms, type, content, message_id) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", multiRows), ", ")
	// The CASE keeps the tag check of qDelEnv for every row.
	qDelEnvMulti = `DELETE FROM envelopes WHERE account = ? AND device = ? AND seq IN (` +
		strings.TrimSuffix(strings.Repeat("?, ", multiRows), ", ") + `) AND tag = CASE seq ` +
		strings.Repeat("WHEN ? THEN ? ", multiRows) + `END`
	writerQueries = []string{qInsEnv, qSelSend, qDelEnv, qInsEnvMulti, qDelEnvMulti,
		qInsSendN(1), qInsSendN(4), qInsSendN(16), qInsSendN(multiRows),
		qAddSendN(1), qAddSendN(4), qAddSendN(16), qAddSendN(multiRows)}
)

// qAddSendN records n sends for deduplication without saying which were
// new: when it inserts all n rows, none was a duplicate (the usual case),
// which costs far less than reading back the keys qInsSendN returns.
func qAddSendN(n int) string {
	return `INSERT OR IGNORE INTO sends (account, device, message_id, ts_ms) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", n), ", ")
}

// errDuplicates makes commit redo a batch the careful way: a send in it
// was stored before (or is in it twice).
var errDuplicates = errors.New("sqlitestore: duplicate sends in batch")

// qInsSendN records n sends for deduplication and returns the keys of
// those that were new.
func qInsSendN(n int) string {
	return `INSERT OR IGNORE INTO sends (account, device, message_id, ts_ms) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", n), ", ") +
		` RETURNING account, device, message_id`
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

// sendKey appends the dedupe key of a send to b.
func sendKey(b, acct []byte, dev uint32, mid []byte) []byte {
	b = append(b, acct...)
	b = binary.BigEndian.AppendUint32(b, dev)
	return append(b, mid...)
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
	for {
		select {
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
	err := s.commitTx(batch, true)
	if errors.Is(err, errDuplicates) {
		err = s.commitTx(batch, false)
	}
	if err != nil && len(batch) > 1 {
		for _, o := range batch {
			o.err = s.commitTx([]*op{o}, false)
		}
		s.finish(batch)
		return
	}
	for _, o := range batch {
		o.err = err
	}
	s.finish(batch)
}

// commitTx commits batch in one transaction. With optimistic set it
// fails with errDuplicates, having written nothing, if any send in the
// batch is a duplicate.
func (s *Store) commitTx(batch []*op, optimistic bool) error {
	ctx := context.Background()
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
	// Appends: the dedupe records first, several sends per statement,
	// then every new envelope of the batch with multi-row inserts.
	var (
		envs  []*relay.Envelope
		sends []*relay.Send
		apps  []*op
	)
	for _, o := range batch {
		if o.kind == opAppend {
			apps = append(apps, o)
		}
	}
	var key []byte
	for optimistic && len(apps) > 0 {
		n := sendChunk(len(apps))
		st, err := get(qAddSendN(n))
		if err != nil {
			return err
		}
		args := make([]any, 0, 4*n)
		for _, o := range apps[:n] {
			sd := o.send
			args = append(args, sd.Sender.Account[:], sd.Sender.Device, sd.MessageID, ms(sd.Timestamp))
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		if added, err := res.RowsAffected(); err != nil || added != int64(n) {
			return errDuplicates
		}
		for _, o := range apps[:n] {
			sd := o.send
			o.res = relay.AppendResult{Timestamp: sd.Timestamp}
			for i := range sd.Envelopes {
				envs = append(envs, &sd.Envelopes[i])
				sends = append(sends, sd)
			}
		}
		apps = apps[n:]
	}
	for len(apps) > 0 {
		n := sendChunk(len(apps))
		st, err := get(qInsSendN(n))
		if err != nil {
			return err
		}
		args := make([]any, 0, 4*n)
		for _, o := range apps[:n] {
			sd := o.send
			args = append(args, sd.Sender.Account[:], sd.Sender.Device, sd.MessageID, ms(sd.Timestamp))
		}
		// RETURNING yields the rows actually inserted (not the ignored
		// duplicates), in no promised order: match them by key.
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		fresh := make(map[string]int, n)
		for rows.Next() {
			var (
				acct, mid []byte
				dev       uint32
			)
			if err := rows.Scan(&acct, &dev, &mid); err != nil {
				rows.Close()
				return fmt.Errorf("sqlitestore: append: %w", err)
			}
			key = sendKey(key[:0], acct, dev, mid)
			fresh[string(key)]++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		for _, o := range apps[:n] {
			sd := o.send
			key = sendKey(key[:0], sd.Sender.Account[:], sd.Sender.Device, sd.MessageID)
			if fresh[string(key)] > 0 {
				// The first of equal sends in one statement is the one inserted.
				fresh[string(key)]--
				o.res = relay.AppendResult{Timestamp: sd.Timestamp}
				for i := range sd.Envelopes {
					envs = append(envs, &sd.Envelopes[i])
					sends = append(sends, sd)
				}
				continue
			}
			selSend, err := get(qSelSend)
			if err != nil {
				return err
			}
			var ts int64
			if err := selSend.QueryRowContext(ctx, sd.Sender.Account[:], sd.Sender.Device, sd.MessageID).Scan(&ts); err != nil {
				return fmt.Errorf("sqlitestore: append: %w", err)
			}
			o.res = relay.AppendResult{Duplicate: true, Timestamp: fromMS(ts)}
		}
		apps = apps[n:]
	}
	for len(envs) > 0 {
		n, q := 1, qInsEnv
		if len(envs) >= multiRows {
			n, q = multiRows, qInsEnvMulti
		}
		st, err := get(q)
		if err != nil {
			return err
		}
		args := make([]any, 0, 9*n)
		for i := range n {
			e, sd := envs[i], sends[i]
			content := e.Content
			if content == nil {
				content = []byte{} // an empty ciphertext is stored, not NULL
			}
			args = append(args, e.Recipient.Account[:], e.Recipient.Device, e.ID[8:],
				e.Sender, e.SenderDevice, ms(sd.Timestamp), e.Type, content, sd.MessageID)
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("sqlitestore: append: %w", err)
		}
		// One statement inserts its rows in order with consecutive
		// AUTOINCREMENT rowids (this is the only writer).
		for i := range n {
			binary.BigEndian.PutUint64(envs[i].ID[:8], uint64(last-int64(n-1-i)))
		}
		envs, sends = envs[n:], sends[n:]
	}
	// Acknowledged deletes, several ids per statement.
	for _, o := range batch {
		if o.kind != opDelete {
			continue
		}
		ids := o.ids
		for len(ids) > 0 {
			n, q := 1, qDelEnv
			if len(ids) >= multiRows {
				n, q = multiRows, qDelEnvMulti
			}
			st, err := get(q)
			if err != nil {
				return err
			}
			args := make([]any, 0, 2+3*n)
			if n == 1 {
				args = append(args, int64(ids[0].Seq()), o.dev.Account[:], o.dev.Device, ids[0][8:])
			} else {
				args = append(args, o.dev.Account[:], o.dev.Device)
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
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
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

// Fetch implements relay.Mailbox.
func (s *Store) Fetch(ctx context.Context, dev relay.DeviceAddr, after uint64, notBefore time.Time, limit int) ([]relay.Envelope, error) {
	rows, err := s.query(ctx, `SELECT seq, tag, sender, sender_device, ts_ms, type, content, message_id
		FROM envelopes WHERE account = ? AND device = ? AND seq > ? AND ts_ms >= ? ORDER BY seq LIMIT ?`,
		dev.Account[:], dev.Device, int64(after), ms(notBefore), limit)
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
	res, err := s.w.ExecContext(ctx, `DELETE FROM envelopes WHERE ts_ms < ?`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: expire: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// expireSendsChunk is how many dedupe records (old or not) one expiry
// statement covers: the writer connection is shared with the mailbox's
// batches, which wait for each statement.
const expireSendsChunk = 8192

// The sends table has no time index (it would cost every send a second
// B-tree insert), so an expiry pass walks the primary key once, a range
// of keys at a time: qSendsAhead finds the end of the next range,
// qExpireSendsRange deletes the old records in it.
var (
	qSendsAhead = `SELECT account, device, message_id FROM sends
	WHERE (account, device, message_id) > (?, ?, ?)
	ORDER BY account, device, message_id LIMIT 1 OFFSET ` + fmt.Sprint(expireSendsChunk-1)
	qExpireSendsRange = `DELETE FROM sends WHERE (account, device, message_id) > (?, ?, ?)
	AND (account, device, message_id) <= (?, ?, ?) AND ts_ms < ?`
	qExpireSendsRest = `DELETE FROM sends WHERE (account, device, message_id) > (?, ?, ?) AND ts_ms < ?`
)

// ExpireSends implements relay.Mailbox.
func (s *Store) ExpireSends(ctx context.Context, before time.Time) (int64, error) {
	var (
		n    int64
		acct = []byte{}
		dev  = int64(-1)
		mid  = []byte{}
	)
	for {
		var (
			a, m []byte
			d    int64
		)
		err := s.w.QueryRowContext(ctx, qSendsAhead, acct, dev, mid).Scan(&a, &d, &m)
		var res sql.Result
		switch {
		case errors.Is(err, sql.ErrNoRows):
			res, err = s.w.ExecContext(ctx, qExpireSendsRest, acct, dev, mid, ms(before))
		case err == nil:
			res, err = s.w.ExecContext(ctx, qExpireSendsRange, acct, dev, mid, a, d, m, ms(before))
		}
		if err != nil {
			return n, fmt.Errorf("sqlitestore: expire sends: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
		if a == nil {
			return n, nil
		}
		acct, dev, mid = a, d, m
	}
}

// DeleteDevice implements relay.Mailbox.
func (s *Store) DeleteDevice(ctx context.Context, dev relay.DeviceAddr) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM envelopes WHERE account = ? AND device = ?`, dev.Account[:], dev.Device)
	if err != nil {
		return fmt.Errorf("sqlitestore: delete device: %w", err)
	}
	return nil
}
