package pgstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"sotto/relay"
)

// qAppend stores the sends of a batch in one statement: the dedupe
// records and, for the sends that are new, their envelopes (inserted in
// array order, so with increasing sequence numbers). The batch holds no
// two sends with the same key. It returns the indexes (1-based) of the
// new sends, the indexes and original timestamps of the duplicates, and
// the new envelopes' sequence numbers and tags in sequence order.
const qAppend = `WITH s AS (
	SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bigint[]) WITH ORDINALITY AS s(acct, dev, mid, ts, idx)
), old AS (
	SELECT s.idx, x.ts_ms FROM s JOIN sends x ON x.account = s.acct AND x.device = s.dev AND x.message_id = s.mid
), ins AS (
	INSERT INTO sends (account, device, message_id, ts_ms) SELECT acct, dev, mid, ts FROM s
	ON CONFLICT DO NOTHING RETURNING account, device, message_id
), fresh AS (
	SELECT s.idx, s.mid, s.ts FROM s JOIN ins ON ins.account = s.acct AND ins.device = s.dev AND ins.message_id = s.mid
), env AS (
	INSERT INTO envelopes (account, device, tag, sender, sender_device, ts_ms, type, content, message_id)
	SELECT e.a, e.d, e.t, e.sn, e.sd, f.ts, e.ty, e.c, f.mid
	FROM unnest($5::bigint[], $6::bytea[], $7::bigint[], $8::bytea[], $9::text[], $10::bigint[], $11::bigint[], $12::bytea[])
		WITH ORDINALITY AS e(sidx, a, d, t, sn, sd, ty, c, ord)
	JOIN fresh f ON f.idx = e.sidx
	ORDER BY e.ord
	RETURNING seq, tag
)
SELECT
	(SELECT coalesce(array_agg(idx ORDER BY idx), '{}') FROM fresh),
	(SELECT coalesce(array_agg(idx ORDER BY idx), '{}') FROM old),
	(SELECT coalesce(array_agg(ts_ms ORDER BY idx), '{}') FROM old),
	(SELECT coalesce(array_agg(seq ORDER BY seq), '{}') FROM env),
	(SELECT coalesce(array_agg(tag ORDER BY seq), '{}') FROM env)`

// qDelete removes the acknowledged envelopes of a batch; the tag must
// match too, so an id cannot be guessed from a sequence number, and the
// device too, so a device deletes only its own.
const qDelete = `DELETE FROM envelopes e USING unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bytea[]) AS u(a, d, seq, tag)
	WHERE e.seq = u.seq AND e.account = u.a AND e.device = u.d AND e.tag = u.tag`

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
	done      chan struct{}
	submitted time.Time
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
	// Once the writer has the op its outcome is decided soon: waiting
	// for it avoids an ambiguous "maybe stored" answer.
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
}

// writer is the single goroutine that commits mailbox writes in batches:
// whatever is queued when the previous commit returns goes into the next
// one (group commit without a timer: under load the batches grow by
// themselves, idle ops are not delayed).
func (s *Store) writer() {
	defer close(s.stopped)
	batch := make([]*op, 0, s.maxBatch)
	for {
		select {
		case o := <-s.ops:
			batch = append(batch[:0], o)
		case <-s.stop:
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
		clear(batch)
	}
}

// commit applies batch in one transaction; if that fails it retries each
// op alone so that one bad op cannot fail the others.
func (s *Store) commit(batch []*op) {
	start := time.Now()
	err := s.commitBatch(batch)
	if err != nil && len(batch) > 1 {
		for _, o := range batch {
			o.err = s.commitBatch([]*op{o})
		}
	} else {
		for _, o := range batch {
			o.err = err
		}
	}
	now := time.Now()
	s.commits.Add(1)
	s.committedOps.Add(uint64(len(batch)))
	s.commitNanos.Add(uint64(now.Sub(start)))
	for _, o := range batch {
		s.waitNanos.Add(uint64(now.Sub(o.submitted)))
		close(o.done)
	}
}

type sendKey struct {
	acct relay.AccountID
	dev  uint32
	mid  string
}

// commitBatch commits the batch in one pipeline of three statements
// (lock, appends, deletes), which PostgreSQL runs as one implicit
// transaction committed at its end. A send whose key repeats within the
// batch goes to a following transaction, so that it sees the first.
func (s *Store) commitBatch(batch []*op) error {
	var later []*op
	seen := make(map[sendKey]bool)
	var sends, dels []*op
	for _, o := range batch {
		switch o.kind {
		case opAppend:
			k := sendKey{o.send.Sender.Account, o.send.Sender.Device, string(o.send.MessageID)}
			if seen[k] {
				later = append(later, o)
				continue
			}
			seen[k] = true
			sends = append(sends, o)
		case opDelete:
			dels = append(dels, o)
		}
	}
	if err := s.commitOnce(sends, dels); err != nil {
		return err
	}
	if len(later) > 0 {
		return s.commitBatch(later)
	}
	return nil
}

func (s *Store) commitOnce(sends, dels []*op) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(lockMailbox))
	if len(sends) > 0 {
		var (
			sacct, smid           [][]byte
			sdev, sts             []int64
			eidx, edev, esd, etyp []int64
			eacct, etag, econt    [][]byte
			esender               []string
		)
		for i, o := range sends {
			sd := o.send
			sacct = append(sacct, sd.Sender.Account[:])
			sdev = append(sdev, int64(sd.Sender.Device))
			smid = append(smid, nonNil(sd.MessageID))
			sts = append(sts, ms(sd.Timestamp))
			for j := range sd.Envelopes {
				e := &sd.Envelopes[j]
				eidx = append(eidx, int64(i+1))
				eacct = append(eacct, e.Recipient.Account[:])
				edev = append(edev, int64(e.Recipient.Device))
				etag = append(etag, e.ID[8:])
				esender = append(esender, e.Sender)
				esd = append(esd, int64(e.SenderDevice))
				etyp = append(etyp, int64(e.Type))
				econt = append(econt, nonNil(e.Content))
			}
		}
		b.Queue(qAppend, sacct, sdev, smid, sts, eidx, eacct, edev, etag, esender, esd, etyp, econt)
	}
	if len(dels) > 0 {
		var (
			dacct, dtag [][]byte
			ddev, dseq  []int64
		)
		for _, o := range dels {
			for _, id := range o.ids {
				dacct = append(dacct, o.dev.Account[:])
				ddev = append(ddev, int64(o.dev.Device))
				dseq = append(dseq, int64(id.Seq()))
				dtag = append(dtag, id[8:])
			}
		}
		b.Queue(qDelete, dacct, ddev, dseq, dtag)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: mailbox: %w", err)
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, &b)
	var (
		fresh, dupIdx, dupTS, seqs []int64
		tags                       [][]byte
	)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if len(sends) > 0 {
			if err := br.QueryRow().Scan(&fresh, &dupIdx, &dupTS, &seqs, &tags); err != nil {
				return err
			}
		}
		if len(dels) > 0 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	}()
	// Close ends the pipeline: the implicit transaction commits here.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgstore: mailbox: %w", err)
	}
	return assign(sends, fresh, dupIdx, dupTS, seqs, tags)
}

// assign gives each send its result and its new envelopes their
// sequence numbers, checking the rows against the envelopes by tag.
func assign(sends []*op, fresh, dupIdx, dupTS, seqs []int64, tags [][]byte) error {
	if len(fresh)+len(dupIdx) != len(sends) || len(dupTS) != len(dupIdx) || len(tags) != len(seqs) {
		return fmt.Errorf("pgstore: mailbox: %d new and %d duplicate sends in a batch of %d", len(fresh), len(dupIdx), len(sends))
	}
	for i, idx := range dupIdx {
		o := sends[idx-1]
		o.res = relay.AppendResult{Duplicate: true, Timestamp: fromMS(dupTS[i])}
	}
	k := 0
	for _, idx := range fresh {
		o := sends[idx-1]
		o.res = relay.AppendResult{Timestamp: o.send.Timestamp}
		for j := range o.send.Envelopes {
			e := &o.send.Envelopes[j]
			if k >= len(seqs) || string(tags[k]) != string(e.ID[8:]) {
				return fmt.Errorf("pgstore: mailbox: stored envelopes do not match the batch")
			}
			binary.BigEndian.PutUint64(e.ID[:8], uint64(seqs[k]))
			k++
		}
	}
	if k != len(seqs) {
		return fmt.Errorf("pgstore: mailbox: %d envelopes stored for %d", len(seqs), k)
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

// Delete implements relay.Mailbox.
func (s *Store) Delete(ctx context.Context, dev relay.DeviceAddr, ids []relay.EnvelopeID) error {
	if len(ids) == 0 {
		return nil
	}
	return s.submit(ctx, &op{kind: opDelete, dev: dev, ids: ids})
}

// Fetch implements relay.Mailbox.
func (s *Store) Fetch(ctx context.Context, dev relay.DeviceAddr, after uint64, notBefore time.Time, limit int) ([]relay.Envelope, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, tag, sender, sender_device, ts_ms, type, content, message_id
		FROM envelopes WHERE account = $1 AND device = $2 AND seq > $3 AND ts_ms >= $4 ORDER BY seq LIMIT $5`,
		dev.Account[:], int64(dev.Device), int64(after), ms(notBefore), limit)
	if err != nil {
		return nil, fmt.Errorf("pgstore: fetch: %w", err)
	}
	defer rows.Close()
	var out []relay.Envelope
	for rows.Next() {
		var (
			e                  relay.Envelope
			seq, ts, sdev, typ int64
			tag                []byte
		)
		if err := rows.Scan(&seq, &tag, &e.Sender, &sdev, &ts, &typ, &e.Content, &e.MessageID); err != nil {
			return nil, fmt.Errorf("pgstore: fetch: %w", err)
		}
		binary.BigEndian.PutUint64(e.ID[:8], uint64(seq))
		copy(e.ID[8:], tag)
		e.Recipient, e.SenderDevice, e.Type = dev, uint32(sdev), uint32(typ)
		e.Timestamp = fromMS(ts)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: fetch: %w", err)
	}
	return out, nil
}

// Expire implements relay.Mailbox.
func (s *Store) Expire(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM envelopes WHERE ts_ms < $1`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("pgstore: expire: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ExpireSends implements relay.Mailbox.
func (s *Store) ExpireSends(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sends WHERE ts_ms < $1`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("pgstore: expire sends: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteDevice implements relay.Mailbox.
func (s *Store) DeleteDevice(ctx context.Context, dev relay.DeviceAddr) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM envelopes WHERE account = $1 AND device = $2`, dev.Account[:], int64(dev.Device)); err != nil {
		return fmt.Errorf("pgstore: delete device: %w", err)
	}
	return nil
}
