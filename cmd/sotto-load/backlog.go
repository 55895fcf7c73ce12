package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"sotto/wire"
)

// backlog measures a device coming back to a queue: -devices/2 senders
// each queue -messages messages (sealed, or named with -authenticated)
// for one receiver that is offline; then the receivers log in and drain
// their queues, acking in batches of up to -ack-batch ids as they read.
// It reports how long the queues took to fill, and how long from login
// until every message was delivered and its ack confirmed, and checks
// that each message came exactly once.

// errDrained ends a receiver's read loop once its queue is drained.
var errDrained = errors.New("sotto-load: drained")

// drainer is one receiver during the drain (its read goroutine only).
type drainer struct {
	dev      *simDevice
	fromName string
	fromID   uint32
	fromIdx  uint32
	runTag   uint32
	want     int
	size     int
	sealed   bool
	ackBatch int

	ws      *wsConn
	start   time.Time
	got     bitset
	n       int
	dup     int
	bad     int
	ids     [][envelopeIDSize]byte
	pend    map[uint64][][envelopeIDSize]byte // Acks awaiting their response
	reqID   uint64
	acked   int
	refused int
	first   time.Duration
	all     time.Duration
	done    time.Duration
	err     error
}

func backlog(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Devices%2 != 0 {
		return errors.New("backlog: -devices must be even (pairs of sender and receiver)")
	}
	sims, err := enrollAll(ctx, cfg, 64<<10, out)
	if err != nil {
		return err
	}
	devs := make([]*loadDev, len(sims))
	for i, s := range sims {
		devs[i] = &loadDev{simDevice: s}
	}
	defer func() {
		for _, d := range devs {
			if d.ws != nil {
				d.ws.close()
			}
			if d.sws != nil {
				d.sws.close()
			}
		}
	}()
	sealed := !cfg.Authenticated
	var keys [][]byte
	if sealed {
		if keys, err = sealedSetup(ctx, cfg, devs, out); err != nil {
			return err
		}
	}
	half := len(devs) / 2
	for _, d := range devs[half:] {
		d.ws.close() // the receivers are offline while their queues fill
		d.ws = nil
	}
	inflight := cfg.Inflight
	if inflight == 0 {
		inflight = 64
	}
	runTag := mrand.Uint32()
	filler := randBytes(cfg.Size - payloadHeader)
	kind := "sealed sends"
	if !sealed {
		kind = "named sends"
	}
	fmt.Fprintf(out, "filling %d queues of %d %s (%d-byte payloads, %d in flight per sender)\n", half, cfg.Messages, kind, cfg.Size, inflight)
	base, _ := relayMetrics(ctx, cfg.Metrics)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, half)
	for i := range half {
		s, to := devs[i], devs[half+i]
		spec := sendSpec{recipient: to.name, deviceID: to.id, regID: to.reg, sender: uint32(i), runTag: runTag, filler: filler}
		conn := s.ws
		if sealed {
			spec.accessKey, conn = keys[half+i], s.sws
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fillQueue(ctx, conn, &spec, cfg.Messages, inflight)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("filling the queues: %w", err)
	}
	fill := time.Since(start)
	total := half * cfg.Messages
	fmt.Fprintf(out, "queued %d messages in %v (%.0f msg/s)\n", total, fill.Round(time.Millisecond), float64(total)/fill.Seconds())

	load0 := loadAvg()
	ds := make([]*drainer, half)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start = time.Now()
	for i := range half {
		from := devs[i]
		d := &drainer{dev: devs[half+i].simDevice, fromName: from.name, fromID: from.id, fromIdx: uint32(i), runTag: runTag,
			want: cfg.Messages, size: cfg.Size, sealed: sealed, ackBatch: cfg.AckBatch, pend: map[uint64][][envelopeIDSize]byte{},
			reqID: 1 << 32} // above the login's request ids
		if sealed {
			d.fromName, d.fromID = "", 0
		}
		ds[i] = d
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.run(ctx, cfg)
		}()
	}
	wg.Wait()
	el := time.Since(start)
	load1 := loadAvg()
	final, _ := relayMetrics(context.Background(), cfg.Metrics)

	var delivered, dup, bad, acked, refused int
	var first, all, done time.Duration
	var runErrs []error
	for _, d := range ds {
		delivered += d.n
		dup += d.dup
		bad += d.bad
		acked += d.acked
		refused += d.refused
		first = max(first, d.first)
		all = max(all, d.all)
		done = max(done, d.done)
		if d.err != nil && !errors.Is(d.err, errDrained) {
			runErrs = append(runErrs, fmt.Errorf("receiver %s: %w", d.dev.name, d.err))
		}
	}
	fmt.Fprintf(out, "\ndrain of %d queued messages by %d device(s) logging in (load average %s at the start, %s at the end):\n", total, half, load0, load1)
	fmt.Fprintf(out, "  first envelope %v after login; every message delivered after %v, every ack confirmed after %v\n",
		first.Round(time.Microsecond), all.Round(time.Millisecond), done.Round(time.Millisecond))
	if done > 0 {
		fmt.Fprintf(out, "  drain rate: %.0f msg/s (delivered and acked)\n", float64(acked)/done.Seconds())
	}
	fmt.Fprintf(out, "  acks refused and sent again: %d\n", refused)
	if base != nil && final != nil {
		fmt.Fprintf(out, "relay's counters over the whole run: stored %.0f, pushed %.0f, acked %.0f\n",
			final["sotto_messages_stored_total"]-base["sotto_messages_stored_total"],
			final["sotto_messages_delivered_total"]-base["sotto_messages_delivered_total"],
			final["sotto_messages_acked_total"]-base["sotto_messages_acked_total"])
	}
	lost := total - delivered
	state := "drained"
	if lost > 0 || acked < total {
		state = "NOT drained"
	}
	fmt.Fprintf(out, "verification (%s after %v): %d queued, %d delivered once, lost %d, duplicates %d, malformed or misaddressed %d, acked %d\n",
		state, el.Round(time.Millisecond), total, delivered, lost, dup, bad, acked)
	if len(runErrs) > 0 {
		fmt.Fprintf(out, "  errors: %v\n", errors.Join(runErrs...))
	}
	if lost > 0 || bad > 0 || acked < total || len(runErrs) > 0 {
		return ErrVerification
	}
	return nil
}

// fillQueue sends n messages on conn with spec, keeping inflight sends
// awaiting their response, and returns once all were answered OK (a
// RATE_LIMITED send is sent again, same message id, after retry_after).
func fillQueue(ctx context.Context, conn *wsConn, spec *sendSpec, n, inflight int) error {
	stop := context.AfterFunc(ctx, func() { conn.c.Close() })
	defer stop()
	pending := map[uint64]uint64{} // request id -> sequence number
	var reqID, next uint64
	send := func(seq uint64) error {
		reqID++
		pending[reqID] = seq
		conn.mu.Lock()
		defer conn.mu.Unlock()
		conn.appendSend(reqID, spec, seq, 0)
		return conn.flush()
	}
	for next < uint64(min(inflight, n)) {
		next++
		if err := send(next); err != nil {
			return err
		}
	}
	for done := 0; done < n; {
		f, err := conn.readFrame()
		if err != nil {
			return err
		}
		r := f.GetResponse()
		seq, ok := pending[r.GetId()]
		if r == nil || !ok {
			continue
		}
		delete(pending, r.Id)
		switch r.Code {
		case wire.ErrorCode_OK:
			done++
			if next < uint64(n) {
				next++
				err = send(next)
			}
		case wire.ErrorCode_RATE_LIMITED:
			time.Sleep(max(time.Duration(r.RetryAfterMs)*time.Millisecond, time.Millisecond))
			err = send(seq)
		default:
			return fmt.Errorf("send %d: %s %s", seq, r.Code, r.Message)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// run logs the receiver in and reads until every message is delivered
// and acked, the connection fails or ctx ends.
func (d *drainer) run(ctx context.Context, cfg Config) {
	ws, err := login(ctx, cfg, d.dev, 64<<10)
	if err != nil {
		d.err = err
		return
	}
	d.start = time.Now()
	d.ws = ws
	defer ws.close()
	stop := context.AfterFunc(ctx, func() { ws.c.Close() })
	defer stop()
	var f hotFrame
	d.err = ws.serve(func(p []byte) error {
		if err := parseHot(p, &f); err != nil {
			return err
		}
		switch f.kind {
		case kindEnvelope:
			d.envelope(&f)
		case kindResponse:
			return d.response(&f)
		}
		return nil
	}, d.ack)
	if ctx.Err() != nil && !errors.Is(d.err, errDrained) {
		d.err = fmt.Errorf("not drained within -timeout: %d of %d delivered, %d acked", d.n, d.want, d.acked)
	}
}

func (d *drainer) envelope(f *hotFrame) {
	if d.n == 0 && d.dup == 0 {
		d.first = time.Since(d.start)
	}
	c, m := f.content, f.messageID
	ok := len(f.envID) == envelopeIDSize && string(f.sender) == d.fromName && f.senderDevice == d.fromID &&
		len(c) == d.size && len(m) == messageIDSize
	var seq uint64
	if ok {
		seq = binary.BigEndian.Uint64(c[12:20])
		ok = binary.BigEndian.Uint32(c[8:12]) == d.fromIdx && binary.BigEndian.Uint32(m[4:8]) == d.runTag &&
			binary.BigEndian.Uint64(m[8:16]) == seq && seq > 0 && seq <= uint64(d.want)
	}
	switch {
	case !ok:
		d.bad++
	case d.got.has(seq):
		d.dup++
	default:
		d.got.set(seq)
		if d.n++; d.n == d.want {
			d.all = time.Since(d.start)
		}
	}
	if len(f.envID) == envelopeIDSize {
		d.ids = append(d.ids, [envelopeIDSize]byte(f.envID))
	}
}

func (d *drainer) response(f *hotFrame) error {
	ids, ok := d.pend[f.id]
	if !ok {
		return nil // the login's, or a challenge's
	}
	delete(d.pend, f.id)
	switch f.code {
	case wire.ErrorCode_OK:
		d.acked += len(ids)
	case wire.ErrorCode_RATE_LIMITED:
		d.refused++
		d.ids = append(d.ids, ids...) // sent again with the next Ack
	default:
		return fmt.Errorf("ack refused: %s %s", f.code, f.message)
	}
	if d.n == d.want && d.acked >= d.want {
		d.done = time.Since(d.start)
		return errDrained
	}
	return nil
}

// ack writes Acks for everything read so far, in one write.
func (d *drainer) ack() {
	if len(d.ids) == 0 {
		return
	}
	d.ws.mu.Lock()
	defer d.ws.mu.Unlock()
	for i := 0; i < len(d.ids); i += d.ackBatch {
		chunk := d.ids[i:min(i+d.ackBatch, len(d.ids))]
		d.reqID++
		d.pend[d.reqID] = append([][envelopeIDSize]byte(nil), chunk...)
		d.ws.appendAck(d.reqID, chunk, false)
	}
	d.ids = d.ids[:0]
	d.ws.flush()
}
