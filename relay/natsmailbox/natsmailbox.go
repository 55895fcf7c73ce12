// Package natsmailbox is a relay.Mailbox on NATS JetStream (DESIGN §8):
// envelopes are messages of one file-backed stream, on the subject
// <prefix>.env.<account hex>.<device>, so that a device's envelopes are
// read in stream-sequence order with "next message for subject" gets and
// deleted one by one on acknowledgement. The dedupe records of sends
// live in a JetStream key-value bucket.
//
// Durability: JetStream acknowledges a publish once the message is in
// the server's file store, but by default fsyncs only every 2 minutes
// (sync_interval), so an OS crash or power loss can lose acknowledged
// envelopes. There is no per-stream setting. Run nats-server >= 2.10
// with `jetstream { sync_interval: always }` in its configuration (each
// write is fsynced before the ack), or replicate the stream (Replicas 3
// on a cluster). nats-server 2.9 has no such option.
//
// Semantics and limits compared with the SQL backends:
//   - A send of several envelopes is not atomic: they are published one
//     by one, then the dedupe record is created. A crash in between
//     leaves envelopes without a record, so a retried send is delivered
//     twice (clients drop repeated message ids). Two concurrent copies
//     of one send both publish; the loser of the record's creation
//     deletes its envelopes and reports a duplicate.
//   - Expire scans the whole stream, ExpireSends the whole bucket; MaxAge
//     (Options.TTL) and the bucket's TTL (Options.DedupeTTL) are what bound
//     them in production.
//   - The stream uses the work-queue retention policy, but no consumer:
//     messages leave only by acknowledgement (delete), TTL or purge.
package natsmailbox

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sotto/relay"
)

// Message headers of a stored envelope.
const (
	hdrTag          = "Sotto-Tag"
	hdrSender       = "Sotto-Sender"
	hdrSenderDevice = "Sotto-Sender-Device"
	hdrTimestamp    = "Sotto-Ts"
	hdrType         = "Sotto-Type"
	hdrMessageID    = "Sotto-Msg-Id"
)

// Options names the stream and bucket.
type Options struct {
	Stream   string        // stream name ("SOTTO_MAILBOX")
	Subjects string        // subject prefix ("sotto.mb")
	Bucket   string        // dedupe bucket ("sotto_sends")
	TTL      time.Duration // stream MaxAge (0: none; Expire still works)
	// DedupeTTL is the bucket's TTL (0: TTL): set it to the relay's
	// Config.DedupeTTL, so that a dedupe record (and the marker a purge
	// leaves) does not outlive the relay's window.
	DedupeTTL time.Duration
	Replicas  int // stream and bucket replicas (1)
}

func (o *Options) defaults() {
	if o.Stream == "" {
		o.Stream = "SOTTO_MAILBOX"
	}
	if o.Subjects == "" {
		o.Subjects = "sotto.mb"
	}
	if o.Bucket == "" {
		o.Bucket = "sotto_sends"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
}

// Mailbox implements relay.Mailbox on JetStream.
type Mailbox struct {
	opts   Options
	stream jetstream.Stream
	sends  jetstream.KeyValue
	js     jetstream.JetStream
	closed atomic.Bool
}

var _ relay.Mailbox = (*Mailbox)(nil)

// Open creates (or updates) the stream and bucket on nc. The caller
// owns nc.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Mailbox, error) {
	opts.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natsmailbox: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      opts.Stream,
		Subjects:  []string{opts.Subjects + ".env.>"},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
		MaxAge:    opts.TTL,
		Replicas:  opts.Replicas,
		Discard:   jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("natsmailbox: stream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   opts.Bucket,
		Storage:  jetstream.FileStorage,
		TTL:      cmp.Or(opts.DedupeTTL, opts.TTL),
		Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsmailbox: bucket: %w", err)
	}
	return &Mailbox{opts: opts, stream: st, sends: kv, js: js}, nil
}

// Close makes further calls fail with relay.ErrClosed.
func (m *Mailbox) Close() error {
	m.closed.Store(true)
	return nil
}

func (m *Mailbox) subject(d relay.DeviceAddr) string {
	return m.opts.Subjects + ".env." + d.Account.String() + "." + strconv.FormatUint(uint64(d.Device), 10)
}

// sendKey is the bucket key of a send: a hash, so that any message id
// bytes make a valid key.
func sendKey(sd *relay.Send) string {
	h := sha256.New()
	h.Write(sd.Sender.Account[:])
	binary.Write(h, binary.BigEndian, sd.Sender.Device)
	h.Write(sd.MessageID)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// Append implements relay.Mailbox.
func (m *Mailbox) Append(ctx context.Context, sd *relay.Send) (relay.AppendResult, error) {
	if m.closed.Load() {
		return relay.AppendResult{}, relay.ErrClosed
	}
	key := sendKey(sd)
	if r, ok, err := m.duplicate(ctx, key); err != nil || ok {
		return r, err
	}
	ts := strconv.FormatInt(sd.Timestamp.UnixMilli(), 10)
	var published []uint64
	undo := func() {
		for _, seq := range published {
			m.stream.DeleteMsg(context.WithoutCancel(ctx), seq)
		}
	}
	for i := range sd.Envelopes {
		e := &sd.Envelopes[i]
		msg := &nats.Msg{Subject: m.subject(e.Recipient), Data: e.Content, Header: nats.Header{
			hdrTag:          {hex.EncodeToString(e.ID[8:])},
			hdrSender:       {e.Sender},
			hdrSenderDevice: {strconv.FormatUint(uint64(e.SenderDevice), 10)},
			hdrTimestamp:    {ts},
			hdrType:         {strconv.FormatUint(uint64(e.Type), 10)},
			hdrMessageID:    {hex.EncodeToString(sd.MessageID)},
		}}
		ack, err := m.js.PublishMsg(ctx, msg)
		if err != nil {
			undo()
			return relay.AppendResult{}, fmt.Errorf("natsmailbox: append: %w", err)
		}
		published = append(published, ack.Sequence)
		binary.BigEndian.PutUint64(e.ID[:8], ack.Sequence)
	}
	if _, err := m.sends.Create(ctx, key, []byte(ts)); err != nil {
		undo()
		if errors.Is(err, jetstream.ErrKeyExists) { // a concurrent copy won
			if r, ok, err := m.duplicate(ctx, key); err != nil || ok {
				return r, err
			}
		}
		return relay.AppendResult{}, fmt.Errorf("natsmailbox: append: %w", err)
	}
	return relay.AppendResult{Timestamp: sd.Timestamp}, nil
}

// duplicate looks up the dedupe record of key.
func (m *Mailbox) duplicate(ctx context.Context, key string) (relay.AppendResult, bool, error) {
	e, err := m.sends.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return relay.AppendResult{}, false, nil
	}
	if err != nil {
		return relay.AppendResult{}, false, fmt.Errorf("natsmailbox: append: %w", err)
	}
	ms, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return relay.AppendResult{}, false, fmt.Errorf("natsmailbox: bad send record: %w", err)
	}
	return relay.AppendResult{Duplicate: true, Timestamp: time.UnixMilli(ms)}, true, nil
}

// parse turns a stored message into an envelope.
func parse(dev relay.DeviceAddr, raw *jetstream.RawStreamMsg) (relay.Envelope, error) {
	e := relay.Envelope{Recipient: dev, Sender: raw.Header.Get(hdrSender), Content: raw.Data}
	binary.BigEndian.PutUint64(e.ID[:8], raw.Sequence)
	tag, err := hex.DecodeString(raw.Header.Get(hdrTag))
	if err != nil || len(tag) != 8 {
		return e, fmt.Errorf("natsmailbox: message %d: bad tag", raw.Sequence)
	}
	copy(e.ID[8:], tag)
	sdev, err1 := strconv.ParseUint(raw.Header.Get(hdrSenderDevice), 10, 32)
	ts, err2 := strconv.ParseInt(raw.Header.Get(hdrTimestamp), 10, 64)
	typ, err3 := strconv.ParseUint(raw.Header.Get(hdrType), 10, 32)
	mid, err4 := hex.DecodeString(raw.Header.Get(hdrMessageID))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return e, fmt.Errorf("natsmailbox: message %d: %w", raw.Sequence, err)
	}
	e.SenderDevice, e.Timestamp, e.Type, e.MessageID = uint32(sdev), time.UnixMilli(ts), uint32(typ), mid
	if e.Content == nil {
		e.Content = []byte{}
	}
	return e, nil
}

// Fetch implements relay.Mailbox.
func (m *Mailbox) Fetch(ctx context.Context, dev relay.DeviceAddr, after uint64, notBefore time.Time, limit int) ([]relay.Envelope, error) {
	if m.closed.Load() {
		return nil, relay.ErrClosed
	}
	subj := m.subject(dev)
	var out []relay.Envelope
	for seq := after + 1; len(out) < limit; {
		raw, err := m.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("natsmailbox: fetch: %w", err)
		}
		e, err := parse(dev, raw)
		if err != nil {
			return nil, err
		}
		if !e.Timestamp.Before(notBefore) {
			out = append(out, e)
		}
		seq = raw.Sequence + 1
	}
	return out, nil
}

// Delete implements relay.Mailbox: an envelope is deleted only if it is
// on dev's subject and its tag matches.
func (m *Mailbox) Delete(ctx context.Context, dev relay.DeviceAddr, ids []relay.EnvelopeID) error {
	if m.closed.Load() {
		return relay.ErrClosed
	}
	subj := m.subject(dev)
	for _, id := range ids {
		raw, err := m.stream.GetMsg(ctx, id.Seq())
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("natsmailbox: delete: %w", err)
		}
		if raw.Subject != subj || raw.Header.Get(hdrTag) != hex.EncodeToString(id[8:]) {
			continue
		}
		if err := m.stream.DeleteMsg(ctx, id.Seq()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("natsmailbox: delete: %w", err)
		}
	}
	return nil
}

// Expire implements relay.Mailbox by scanning the stream and the bucket.
func (m *Mailbox) Expire(ctx context.Context, before time.Time) (int64, error) {
	if m.closed.Load() {
		return 0, relay.ErrClosed
	}
	cut := before.UnixMilli()
	var n int64
	for seq := uint64(1); ; {
		raw, err := m.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(m.opts.Subjects+".env.>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("natsmailbox: expire: %w", err)
		}
		if ts, err := strconv.ParseInt(raw.Header.Get(hdrTimestamp), 10, 64); err == nil && ts < cut {
			if err := m.stream.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return n, fmt.Errorf("natsmailbox: expire: %w", err)
			}
			n++
		}
		seq = raw.Sequence + 1
	}
	return n, nil
}

// ExpireSends implements relay.Mailbox by scanning the bucket. Purge
// leaves a marker under the key until the bucket's TTL removes it
// (Options.DedupeTTL bounds that).
func (m *Mailbox) ExpireSends(ctx context.Context, before time.Time) (int64, error) {
	if m.closed.Load() {
		return 0, relay.ErrClosed
	}
	cut := before.UnixMilli()
	keys, err := m.sends.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("natsmailbox: expire sends: %w", err)
	}
	var n int64
	for _, k := range keys {
		e, err := m.sends.Get(ctx, k)
		if err != nil {
			continue
		}
		if ts, err := strconv.ParseInt(string(e.Value()), 10, 64); err == nil && ts < cut {
			if err := m.sends.Purge(ctx, k); err != nil {
				return n, fmt.Errorf("natsmailbox: expire sends: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// DeleteDevice implements relay.Mailbox.
func (m *Mailbox) DeleteDevice(ctx context.Context, dev relay.DeviceAddr) error {
	if m.closed.Load() {
		return relay.ErrClosed
	}
	if err := m.stream.Purge(ctx, jetstream.WithPurgeSubject(m.subject(dev))); err != nil {
		return fmt.Errorf("natsmailbox: delete device: %w", err)
	}
	return nil
}
