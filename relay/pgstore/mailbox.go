package pgstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"sotto/relay"
)

// qAppend stores one send: the dedupe record and, only when it is new,
// the envelopes. It returns one row: whether the send was new, the
// original timestamp when it was not, and the new envelopes' sequence
// numbers with their tags (to match them to the envelopes).
const qAppend = `WITH ins AS (
	INSERT INTO sends (account, device, message_id, ts_ms) VALUES ($1, $2, $3, $4)
	ON CONFLICT DO NOTHING RETURNING 1
), env AS (
	INSERT INTO envelopes (account, device, tag, sender, sender_device, ts_ms, type, content, message_id)
	SELECT u.a, u.d, u.t, u.s, u.sd, $4, u.ty, u.c, $3
	FROM unnest($5::bytea[], $6::bigint[], $7::bytea[], $8::text[], $9::bigint[], $10::bigint[], $11::bytea[])
		WITH ORDINALITY AS u(a, d, t, s, sd, ty, c, ord)
	WHERE EXISTS (SELECT 1 FROM ins)
	ORDER BY u.ord
	RETURNING seq, tag
)
SELECT EXISTS (SELECT 1 FROM ins),
	(SELECT ts_ms FROM sends WHERE account = $1 AND device = $2 AND message_id = $3),
	coalesce((SELECT array_agg(seq ORDER BY seq) FROM env), '{}'),
	coalesce((SELECT array_agg(tag ORDER BY seq) FROM env), '{}')`

// qDelete removes acknowledged envelopes of one device; the tag must
// match too, so an id cannot be guessed from a sequence number.
const qDelete = `DELETE FROM envelopes e USING unnest($3::bigint[], $4::bytea[]) AS u(seq, tag)
	WHERE e.account = $1 AND e.device = $2 AND e.seq = u.seq AND e.tag = u.tag`

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

// commitBatch sends the whole batch in one pipeline, which PostgreSQL
// runs as one implicit transaction committed at its end.
func (s *Store) commitBatch(batch []*op) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(lockMailbox))
	for _, o := range batch {
		switch o.kind {
		case opAppend:
			sd := o.send
			n := len(sd.Envelopes)
			accts, devs, tags := make([][]byte, n), make([]int64, n), make([][]byte, n)
			senders, sdevs, types, contents := make([]string, n), make([]int64, n), make([]int64, n), make([][]byte, n)
			for i := range sd.Envelopes {
				e := &sd.Envelopes[i]
				accts[i], devs[i], tags[i] = e.Recipient.Account[:], int64(e.Recipient.Device), e.ID[8:]
				senders[i], sdevs[i], types[i], contents[i] = e.Sender, int64(e.SenderDevice), int64(e.Type), nonNil(e.Content)
			}
			b.Queue(qAppend, sd.Sender.Account[:], int64(sd.Sender.Device), nonNil(sd.MessageID), ms(sd.Timestamp),
				accts, devs, tags, senders, sdevs, types, contents)
		case opDelete:
			seqs, tags := make([]int64, len(o.ids)), make([][]byte, len(o.ids))
			for i, id := range o.ids {
				seqs[i], tags[i] = int64(id.Seq()), id[8:]
			}
			b.Queue(qDelete, o.dev.Account[:], int64(o.dev.Device), seqs, tags)
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: mailbox: %w", err)
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, &b)
	results := make([]relay.AppendResult, len(batch))
	seqsOf := make([][]int64, len(batch))
	tagsOf := make([][][]byte, len(batch))
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		for i, o := range batch {
			switch o.kind {
			case opAppend:
				var (
					fresh bool
					oldTS *int64
				)
				if err := br.QueryRow().Scan(&fresh, &oldTS, &seqsOf[i], &tagsOf[i]); err != nil {
					return err
				}
				if fresh {
					results[i] = relay.AppendResult{Timestamp: o.send.Timestamp}
				} else {
					if oldTS == nil {
						return fmt.Errorf("send record vanished")
					}
					results[i] = relay.AppendResult{Duplicate: true, Timestamp: fromMS(*oldTS)}
				}
			case opDelete:
				if _, err := br.Exec(); err != nil {
					return err
				}
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
	for i, o := range batch {
		if o.kind != opAppend {
			continue
		}
		o.res = results[i]
		if !results[i].Duplicate {
			if err := setSeqs(o.send, seqsOf[i], tagsOf[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// setSeqs writes the sequence numbers into the envelopes' ids, matching
// the returned rows to envelopes by tag (positionally among equal tags).
func setSeqs(sd *relay.Send, seqs []int64, tags [][]byte) error {
	if len(seqs) != len(sd.Envelopes) || len(tags) != len(seqs) {
		return fmt.Errorf("pgstore: mailbox: %d rows stored for %d envelopes", len(seqs), len(sd.Envelopes))
	}
	used := make([]bool, len(seqs))
	for i := range sd.Envelopes {
		e := &sd.Envelopes[i]
		found := false
		for j := range seqs {
			if !used[j] && string(tags[j]) == string(e.ID[8:]) {
				binary.BigEndian.PutUint64(e.ID[:8], uint64(seqs[j]))
				used[j], found = true, true
				break
			}
		}
		if !found {
			return fmt.Errorf("pgstore: mailbox: stored envelope tags do not match")
		}
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
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM envelopes WHERE ts_ms < $1`, ms(before))
		if err != nil {
			return fmt.Errorf("pgstore: expire: %w", err)
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM sends WHERE ts_ms < $1`, ms(before)); err != nil {
			return fmt.Errorf("pgstore: expire: %w", err)
		}
		return nil
	})
	return n, err
}

// DeleteDevice implements relay.Mailbox.
func (s *Store) DeleteDevice(ctx context.Context, dev relay.DeviceAddr) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM envelopes WHERE account = $1 AND device = $2`, dev.Account[:], int64(dev.Device)); err != nil {
		return fmt.Errorf("pgstore: delete device: %w", err)
	}
	return nil
}
