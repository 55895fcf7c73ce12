package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	mrand "math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sotto/wire"
)

// The throughput engine: device i sends to device i+1 (mod N). Every
// connection has one goroutine, its reader, which parses frames in
// place, records latencies, collects envelope ids and, whenever it has
// consumed everything the kernel handed it, writes one Ack for them
// (together with the next SendMessage in back-to-back mode) in a single
// write. With -rate, one pacer goroutine issues the sends on schedule.

// pendKind is what a request awaiting its response was.
type pendKind uint8

const (
	pendDone pendKind = iota // answered (a hole left by an out-of-order response)
	pendSend
	pendAck
)

type pendReq struct {
	id   uint64
	seq  uint64 // pendSend: sequence number
	t    int64  // pendSend: send time, ns since the run started
	off  uint64 // pendAck: position of its first envelope id in ackFIFO
	n    int    // pendAck: envelope ids
	kind pendKind
}

// bitset records sequence numbers (1, 2, ...).
type bitset []uint64

func (b *bitset) set(i uint64) {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, max(w+1-len(*b), len(*b)))...)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b bitset) has(i uint64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

// andNotCount counts the bits set in b but not in c.
func (b bitset) andNotCount(c bitset) int {
	n := 0
	for i, w := range b {
		if i < len(c) {
			w &^= c[i]
		}
		n += bits.OnesCount64(w)
	}
	return n
}

// loadDev is a device during a throughput run.
type loadDev struct {
	*simDevice
	sws       *wsConn  // the unauthenticated connection of its sealed sends (nil: sends go named on ws)
	sealedErr error    // why sws failed (reader of sws)
	spec      sendSpec // what it sends, to the next device
	fromName  string   // who sends to it
	fromID    uint32
	fromIdx   uint32

	// Guarded by ws.mu.
	reqID    uint64
	pend     []pendReq
	ph       int                    // first unanswered entry of pend
	ackFIFO  [][envelopeIDSize]byte // ids of the Acks in pend (to retry one)
	ackBase  uint64                 // position of ackFIFO[0]
	quiet    []pendReq              // quiet Acks that may still fail (see pruneQuiet)
	quietIDs [][envelopeIDSize]byte // their ids
	qBase    uint64                 // position of quietIDs[0]
	inflight int                    // sends awaiting their response
	nextSeq  uint64

	acks     [][envelopeIDSize]byte // received, not yet acked (guarded by ws.mu)
	ackSince int64                  // when acks[0] arrived (guarded by ws.mu)

	// Owned by the reader goroutine.
	got     bitset // sequence numbers received from the sender
	durable bitset // own sequence numbers the relay acknowledged
	maxGot  uint64
	readErr error

	// Counters, read from other goroutines.
	cDurable, cDelivered, cEnvelopes, cAcked, cErrors atomic.Int64
	cQuiet                                            atomic.Int64 // ids sent in quiet Acks that did not fail
	cStray                                            atomic.Int64 // OK answers to forgotten quiet Acks
	cNoReq                                            atomic.Int64 // other responses to no request (counted in cBad too)
	cDup, cReorder, cBad, cSkipped, cDupSend          atomic.Int64
}

func (d *loadDev) pendPush(p pendReq) {
	if d.ph == len(d.pend) {
		d.pend, d.ph = d.pend[:0], 0
		d.ackBase += uint64(len(d.ackFIFO))
		d.ackFIFO = d.ackFIFO[:0]
	} else if d.ph > 4096 {
		d.pend, d.ph = append(d.pend[:0], d.pend[d.ph:]...), 0
		keep := d.ackBase + uint64(len(d.ackFIFO))
		for _, q := range d.pend {
			if q.kind == pendAck {
				keep = min(keep, q.off)
			}
		}
		d.ackFIFO = append(d.ackFIFO[:0], d.ackFIFO[keep-d.ackBase:]...)
		d.ackBase = keep
	}
	d.pend = append(d.pend, p)
}

// flush writes what is queued on d's connections. Call with d.ws.mu
// held.
func (d *loadDev) flush() {
	d.ws.flush()
	if d.sws != nil {
		d.sws.mu.Lock()
		d.sws.flush()
		d.sws.mu.Unlock()
	}
}

// pruneQuiet forgets the quiet Acks sent before request id, which got
// an OK response. Such a response comes from the commit of that request
// (in commit order, or in request order off the relay's fast path),
// while the relay refuses a request (RATE_LIMITED) as soon as it reads
// it: so the refusal or failure of an earlier quiet Ack, if any, has
// already arrived. Nothing else can tell when a quiet Ack is safe to
// forget: the relay reads a connection's frames only as its pipeline
// has room, and many Acks (retries included) may be written before it
// reads, and refuses, the first. Call with d.ws.mu held.
func (d *loadDev) pruneQuiet(id uint64) {
	k := 0
	for k < len(d.quiet) && d.quiet[k].id < id {
		k++
	}
	if k == 0 {
		return
	}
	n := uint64(len(d.quietIDs))
	if k < len(d.quiet) {
		n = d.quiet[k].off - d.qBase
	}
	d.quiet = append(d.quiet[:0], d.quiet[k:]...)
	d.quietIDs = append(d.quietIDs[:0], d.quietIDs[n:]...)
	d.qBase += n
}

// pendTake removes and returns the request answered by response id.
// Responses come in request order, so it is normally the first one.
func (d *loadDev) pendTake(id uint64) (pendReq, bool) {
	for i := d.ph; i < len(d.pend); i++ {
		if d.pend[i].id == id && d.pend[i].kind != pendDone {
			p := d.pend[i]
			d.pend[i].kind = pendDone
			for d.ph < len(d.pend) && d.pend[d.ph].kind == pendDone {
				d.ph++
			}
			return p, true
		}
	}
	return pendReq{}, false
}

type runner struct {
	cfg       Config
	devs      []*loadDev
	start     time.Time
	b2b       bool
	inflight  int
	quiet     bool        // quiet Acks
	sealed    bool        // sends are sealed (on a second, unauthenticated connection per device)
	stopping  atomic.Bool // no new sends
	closing   atomic.Bool // connections are being closed
	measuring atomic.Bool
	e2e       histogram // send -> delivered
	dur       histogram // send -> durable (SendMessage response)
	codes     [32]atomic.Int64
	wg        sync.WaitGroup
}

func (r *runner) now() int64 { return int64(time.Since(r.start)) }

// queueSend appends a SendMessage frame and then an Ack for the
// envelopes received so far (in this order: the relay handles a
// connection's requests one after the other, and the send should not
// wait for the ack's deletion). Call with d.ws.mu held.
func (r *runner) queueSend(d *loadDev, seq uint64, t int64) {
	d.reqID++
	if d.sws != nil {
		d.sws.mu.Lock()
		d.sws.appendSend(d.reqID, &d.spec, seq, t)
		d.sws.mu.Unlock()
	} else {
		d.ws.appendSend(d.reqID, &d.spec, seq, t)
	}
	d.pendPush(pendReq{id: d.reqID, seq: seq, t: t, kind: pendSend})
	d.inflight++
	if len(d.acks) > 0 {
		r.queueAck(d)
	}
}

// queueAck appends an Ack frame for the collected envelope ids. Call
// with d.ws.mu held.
func (r *runner) queueAck(d *loadDev) {
	r.queueAckIDs(d, d.acks)
	d.acks = d.acks[:0]
}

// queueAckIDs appends an Ack frame for ids. Call with d.ws.mu held.
func (r *runner) queueAckIDs(d *loadDev, ids [][envelopeIDSize]byte) {
	d.reqID++
	d.ws.appendAck(d.reqID, ids, r.quiet)
	if r.quiet {
		// Keep it until it cannot fail any more, to retry it if it is
		// refused.
		d.quiet = append(d.quiet, pendReq{id: d.reqID, off: d.qBase + uint64(len(d.quietIDs)), n: len(ids), kind: pendAck})
		d.quietIDs = append(d.quietIDs, ids...)
		d.cQuiet.Add(int64(len(ids)))
		return
	}
	d.pendPush(pendReq{id: d.reqID, off: d.ackBase + uint64(len(d.ackFIFO)), n: len(ids), kind: pendAck})
	d.ackFIFO = append(d.ackFIFO, ids...)
}

// read is the reader goroutine of d.
func (r *runner) read(d *loadDev) {
	defer r.wg.Done()
	var f hotFrame
	err := d.ws.serve(func(p []byte) error {
		if err := parseHot(p, &f); err != nil {
			return err
		}
		switch f.kind {
		case kindResponse:
			r.response(d, &f, true)
		case kindEnvelope:
			r.envelope(d, &f)
		}
		return nil
	}, func() {
		// Everything received so far is handled: one write for the
		// acks and sends it produced.
		d.ws.mu.Lock()
		if len(d.acks) > 0 && r.cfg.AckDelay == 0 {
			r.queueAck(d)
		}
		d.flush()
		d.ws.mu.Unlock()
	})
	if !r.closing.Load() {
		d.readErr = err
	}
}

// readSealed is the reader goroutine of d's sealed-send connection: it
// takes the answers to d's sends.
func (r *runner) readSealed(d *loadDev) {
	defer r.wg.Done()
	var f hotFrame
	err := d.sws.serve(func(p []byte) error {
		if err := parseHot(p, &f); err != nil {
			return err
		}
		if f.kind == kindResponse {
			r.response(d, &f, false)
		}
		return nil
	}, func() {
		d.ws.mu.Lock()
		d.flush()
		d.ws.mu.Unlock()
	})
	if !r.closing.Load() {
		d.sealedErr = err
	}
}

// response handles a response that came on d's authenticated
// connection (main) or on its sealed-send connection.
func (r *runner) response(d *loadDev, f *hotFrame, main bool) {
	d.ws.mu.Lock()
	if r.quiet && f.code == wire.ErrorCode_OK && main {
		// (An answer on the sealed connection says nothing of the
		// Acks on the other one.)
		d.pruneQuiet(f.id)
	}
	p, ok := d.pendTake(f.id)
	var retryIDs [][envelopeIDSize]byte
	if p.kind == pendAck && f.code == wire.ErrorCode_RATE_LIMITED {
		i := p.off - d.ackBase
		retryIDs = append(retryIDs, d.ackFIFO[i:i+uint64(p.n)]...)
	}
	if !ok {
		for i, q := range d.quiet {
			if q.id != f.id || q.kind != pendAck {
				continue
			}
			// A quiet Ack answered: refused, or a relay that does not
			// know quiet Acks.
			d.quiet[i].kind = pendDone
			if f.code == wire.ErrorCode_OK {
				d.ws.mu.Unlock()
				return
			}
			p, ok = q, true
			d.cQuiet.Add(-int64(q.n))
			if f.code == wire.ErrorCode_RATE_LIMITED {
				j := q.off - d.qBase
				retryIDs = append(retryIDs, d.quietIDs[j:j+uint64(q.n)]...)
			}
			break
		}
	}
	if p.kind == pendSend {
		d.inflight--
		if r.b2b && !r.stopping.Load() && f.code != wire.ErrorCode_RATE_LIMITED {
			d.nextSeq++
			r.queueSend(d, d.nextSeq, r.now())
		}
	}
	d.ws.mu.Unlock()
	if !ok {
		if r.quiet && f.code == wire.ErrorCode_OK && f.body == fRespAck {
			// A relay that answers quiet Acks, after a later request's
			// answer: harmless.
			d.cStray.Add(1)
			return
		}
		d.cBad.Add(1) // a response to no request
		d.cNoReq.Add(1)
		return
	}
	if f.code != wire.ErrorCode_OK {
		d.cErrors.Add(1)
		r.codes[min(int(f.code), len(r.codes)-1)].Add(1)
		if f.code == wire.ErrorCode_RATE_LIMITED {
			// Retry the same message (same message id: idempotent), or
			// the same acks.
			time.AfterFunc(max(time.Duration(f.retryAfterMs)*time.Millisecond, time.Millisecond), func() {
				d.ws.mu.Lock()
				if p.kind == pendSend {
					r.queueSend(d, p.seq, p.t)
				} else if p.kind == pendAck {
					r.queueAckIDs(d, retryIDs)
				}
				d.flush()
				d.ws.mu.Unlock()
			})
		}
		return
	}
	switch p.kind {
	case pendSend:
		if f.body != fRespSend {
			d.cBad.Add(1)
			return
		}
		if f.duplicate {
			d.cDupSend.Add(1)
		}
		if !d.durable.has(p.seq) {
			d.durable.set(p.seq)
			d.cDurable.Add(1)
		}
		if r.measuring.Load() {
			r.dur.record(time.Duration(r.now() - p.t))
		}
	case pendAck:
		if f.body != fRespAck {
			d.cBad.Add(1)
			return
		}
		d.cAcked.Add(int64(p.n))
	}
}

// envelope checks a pushed envelope: from the expected sender device,
// the generator's payload of the configured size, a consistent message
// id; then counts it once per sequence number and queues its ack.
func (r *runner) envelope(d *loadDev, f *hotFrame) {
	now := r.now()
	c, m := f.content, f.messageID
	fromName, fromID := d.fromName, d.fromID
	if r.sealed {
		fromName, fromID = "", 0 // a sealed envelope names no sender
	}
	ok := len(f.envID) == envelopeIDSize && string(f.sender) == fromName && f.senderDevice == fromID &&
		len(c) == r.cfg.Size && len(m) == messageIDSize
	var seq uint64
	if ok {
		seq = binary.BigEndian.Uint64(c[12:20])
		ok = binary.BigEndian.Uint32(c[8:12]) == d.fromIdx && binary.BigEndian.Uint32(m[0:4]) == d.fromIdx &&
			binary.BigEndian.Uint32(m[4:8]) == d.spec.runTag && binary.BigEndian.Uint64(m[8:16]) == seq && seq > 0
	}
	switch {
	case !ok:
		d.cBad.Add(1)
	case d.got.has(seq):
		d.cDup.Add(1)
	default:
		d.got.set(seq)
		d.cDelivered.Add(1)
		if seq < d.maxGot {
			d.cReorder.Add(1)
		} else {
			d.maxGot = seq
		}
		if r.measuring.Load() {
			r.e2e.record(time.Duration(now - int64(binary.BigEndian.Uint64(c[0:8]))))
		}
	}
	if len(f.envID) != envelopeIDSize {
		return // cannot be acked
	}
	d.cEnvelopes.Add(1)
	d.ws.mu.Lock()
	if len(d.acks) == 0 {
		d.ackSince = now
	}
	d.acks = append(d.acks, [envelopeIDSize]byte(f.envID))
	if len(d.acks) >= r.cfg.AckBatch {
		r.queueAck(d)
	}
	d.ws.mu.Unlock()
}

// sweepAcks writes the Acks held longer than cfg.AckDelay (those not
// sent along with a SendMessage or a full batch by then).
func (r *runner) sweepAcks() {
	defer r.wg.Done()
	every := max(r.cfg.AckDelay/4, time.Millisecond)
	for !r.closing.Load() {
		time.Sleep(every)
		limit := r.now() - int64(r.cfg.AckDelay)
		for _, d := range r.devs {
			d.ws.mu.Lock()
			if len(d.acks) > 0 && d.ackSince <= limit {
				r.queueAck(d)
				d.flush()
			}
			d.ws.mu.Unlock()
		}
	}
}

// pace issues sends at cfg.Rate in total, round robin over the devices,
// each stamped with its scheduled time (so that a late pacer shows up in
// the latencies instead of hiding them). A device with too many sends
// awaiting their response skips its turn (counted).
func (r *runner) pace() {
	defer r.wg.Done()
	n := int64(len(r.devs))
	var k int64
	for !r.stopping.Load() {
		due := int64(float64(r.now()) * r.cfg.Rate / 1e9)
		for ; k < due && !r.stopping.Load(); k++ {
			d := r.devs[k%n]
			t := int64(float64(k) * 1e9 / r.cfg.Rate)
			d.ws.mu.Lock()
			if d.inflight >= r.inflight {
				d.cSkipped.Add(1)
			} else {
				d.nextSeq++
				r.queueSend(d, d.nextSeq, t)
				d.flush()
			}
			d.ws.mu.Unlock()
		}
		time.Sleep(time.Millisecond)
	}
}

// counts is a snapshot of the devices' counters.
type counts struct {
	durable, delivered, envelopes, acked, errors, dup, reorder, bad, skipped, dupSend int64
}

func (r *runner) snapshot() counts {
	var c counts
	for _, d := range r.devs {
		c.durable += d.cDurable.Load()
		c.delivered += d.cDelivered.Load()
		c.envelopes += d.cEnvelopes.Load()
		c.acked += d.cAcked.Load() + d.cQuiet.Load()
		c.errors += d.cErrors.Load()
		c.dup += d.cDup.Load()
		c.reorder += d.cReorder.Load()
		c.bad += d.cBad.Load()
		c.skipped += d.cSkipped.Load()
		c.dupSend += d.cDupSend.Load()
	}
	return c
}

// idleRequests reports whether no device awaits a response.
func (r *runner) idleRequests() bool {
	for _, d := range r.devs {
		d.ws.mu.Lock()
		busy := d.ph < len(d.pend)
		d.ws.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func throughput(ctx context.Context, cfg Config, out io.Writer) error {
	sims, err := enrollAll(ctx, cfg, 16<<10, out)
	if err != nil {
		return err
	}
	if cfg.AckDelay < 0 {
		// Default: long enough for an ack to ride along with the
		// device's next send (every devices/rate seconds with -rate).
		cfg.AckDelay = 250 * time.Millisecond
		if cfg.Rate > 0 {
			cfg.AckDelay = min(max(cfg.AckDelay, time.Duration(1.25*float64(cfg.Devices)/cfg.Rate*float64(time.Second))), 2*time.Second)
		}
	}
	r := &runner{cfg: cfg, b2b: cfg.Rate == 0, inflight: cfg.Inflight}
	if r.inflight == 0 {
		r.inflight = 1
		if !r.b2b {
			r.inflight = 256
		}
	}
	runTag := mrand.Uint32()
	filler := randBytes(cfg.Size - payloadHeader)
	r.devs = make([]*loadDev, len(sims))
	for i, s := range sims {
		r.devs[i] = &loadDev{simDevice: s, acks: make([][envelopeIDSize]byte, 0, cfg.AckBatch)}
	}
	r.sealed = !cfg.Authenticated
	var keys [][]byte
	if r.sealed {
		if keys, err = sealedSetup(ctx, cfg, r.devs, out); err != nil {
			for _, d := range r.devs {
				d.ws.close()
				if d.sws != nil {
					d.sws.close()
				}
			}
			return err
		}
	}
	for i, d := range r.devs {
		to, from := r.devs[(i+1)%len(sims)], r.devs[(i+len(sims)-1)%len(sims)]
		d.spec = sendSpec{recipient: to.name, deviceID: to.id, regID: to.reg, sender: uint32(i), runTag: runTag, filler: filler}
		if r.sealed {
			d.spec.accessKey = keys[(i+1)%len(sims)]
		}
		d.fromName, d.fromID, d.fromIdx = from.name, from.id, uint32(from.idx)
	}
	stopped := false
	closeAll := func() {
		if stopped {
			return
		}
		stopped = true
		r.stopping.Store(true)
		r.closing.Store(true)
		for _, d := range r.devs {
			d.ws.close()
			if d.sws != nil {
				d.sws.close()
			}
		}
		r.wg.Wait()
	}
	defer closeAll()

	base, err := relayMetrics(ctx, cfg.Metrics)
	if r.quiet = cfg.QuietAcks; r.quiet && err != nil {
		fmt.Fprintf(out, "no relay metrics (%v): acks are not quiet\n", err)
		r.quiet = false
	}
	r.start = time.Now()
	for _, d := range r.devs {
		r.wg.Add(1)
		go r.read(d)
		if d.sws != nil {
			r.wg.Add(1)
			go r.readSealed(d)
		}
	}
	if r.b2b {
		for _, d := range r.devs {
			d.ws.mu.Lock()
			for range r.inflight {
				d.nextSeq++
				r.queueSend(d, d.nextSeq, r.now())
			}
			d.flush()
			d.ws.mu.Unlock()
		}
	} else {
		r.wg.Add(1)
		go r.pace()
	}
	if cfg.AckDelay > 0 {
		r.wg.Add(1)
		go r.sweepAcks()
	}
	before, _ := relayMetrics(ctx, cfg.Metrics)
	kind := "sealed sends (SealedSend on an unauthenticated connection per device)"
	if !r.sealed {
		kind = "named sends (SendMessage on the authenticated connection)"
	}
	fmt.Fprintf(out, "warming up %v, then measuring %v (%s, rate %s, %d devices, %d-byte payloads, %d in flight per device, ack delay %v)\n",
		cfg.Warmup, cfg.Duration, kind, rateString(cfg.Rate), len(r.devs), cfg.Size, r.inflight, cfg.AckDelay)
	select {
	case <-time.After(cfg.Warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	load0 := loadAvg()
	mid, _ := relayMetrics(ctx, cfg.Metrics)
	c0 := r.snapshot()
	cpu0 := sampleCPU(cfg.RelayPID)
	t0 := time.Now()
	r.measuring.Store(true)
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	r.measuring.Store(false)
	el := time.Since(t0)
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	cpu1 := sampleCPU(cfg.RelayPID)
	c1 := r.snapshot()
	load1 := loadAvg()
	after, _ := relayMetrics(context.Background(), cfg.Metrics)

	// Drain: no new sends; wait until every send is answered, every
	// acknowledged message delivered and every delivery's ack confirmed.
	r.stopping.Store(true)
	drainStart := time.Now()
	drained := false
	var relayAcked int64
	for time.Since(drainStart) < cfg.Drain && ctx.Err() == nil {
		c := r.snapshot()
		if c.delivered >= c.durable && c.acked == c.envelopes && r.idleRequests() {
			if !r.quiet {
				drained = true
				break
			}
			// Quiet acks are confirmed by the relay's count.
			if m, err := relayMetrics(ctx, cfg.Metrics); err == nil {
				relayAcked = int64(m["sotto_messages_acked_total"] - base["sotto_messages_acked_total"])
				if relayAcked >= c.acked {
					drained = true
					break
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	final, _ := relayMetrics(context.Background(), cfg.Metrics)
	closeAll()

	w := c1.sub(c0)
	rate := func(n int64) float64 { return float64(n) / el.Seconds() }
	fmt.Fprintf(out, "\nmeasured %v (load average %s at the start, %s at the end):\n", el.Round(time.Millisecond), load0, load1)
	if !r.b2b {
		fmt.Fprintf(out, "  offered: %.0f msg/s; skipped (device had %d sends awaiting a response): %d\n", cfg.Rate, r.inflight, w.skipped)
	}
	fmt.Fprintf(out, "  sent (durable, acknowledged by relay): %8d  %9.0f msg/s\n", w.durable, rate(w.durable))
	fmt.Fprintf(out, "  delivered to recipient devices:        %8d  %9.0f msg/s\n", w.delivered, rate(w.delivered))
	if r.quiet && mid != nil && after != nil {
		n := int64(after["sotto_messages_acked_total"] - mid["sotto_messages_acked_total"])
		fmt.Fprintf(out, "  acked by recipients (deleted):         %8d  %9.0f msg/s (quiet acks: the relay's count)\n", n, rate(n))
	} else {
		fmt.Fprintf(out, "  acked by recipients (deleted):         %8d  %9.0f msg/s\n", w.acked, rate(w.acked))
	}
	fmt.Fprintf(out, "  errors: %d%s\n", w.errors, r.codeString())
	fmt.Fprintf(out, "  end-to-end latency (send -> delivered): %v\n", &r.e2e)
	fmt.Fprintf(out, "  send latency (send -> durable ack):     %v\n", &r.dur)
	if before != nil && after != nil {
		fmt.Fprintf(out, "  relay: stored %.0f, delivered %.0f, acked %.0f from warm-up start to window end; RSS %.1f MiB, goroutines %.0f\n",
			after["sotto_messages_stored_total"]-before["sotto_messages_stored_total"],
			after["sotto_messages_delivered_total"]-before["sotto_messages_delivered_total"],
			after["sotto_messages_acked_total"]-before["sotto_messages_acked_total"],
			after["process_resident_memory_bytes"]/(1<<20), after["go_goroutines"])
	}
	if g, ok := after["sotto_sends_general_path_total"]; ok && mid != nil {
		// Sends that found something uncached (a recipient, the member
		// access document) and waited for their own commit on the read
		// goroutine; steady traffic keeps this near 0.
		fmt.Fprintf(out, "  relay: %.0f sends on the general path in the measured window\n", g-mid["sotto_sends_general_path_total"])
	}
	if w.delivered > 0 {
		// CPU used during the measured window divided by the messages
		// delivered in it: less sensitive to a shared machine's load
		// than messages per second.
		perMsg := func(a, b time.Duration) float64 { return float64((b - a).Microseconds()) / float64(w.delivered) }
		cores := func(a, b time.Duration) float64 { return (b - a).Seconds() / el.Seconds() }
		if cpu0.relayOK && cpu1.relayOK {
			fmt.Fprintf(out, "  cpu per delivered message: relay %.1f us, load generator %.1f us (measured window: relay %.2f cores, load generator %.2f cores)\n",
				perMsg(cpu0.relay, cpu1.relay), perMsg(cpu0.self, cpu1.self), cores(cpu0.relay, cpu1.relay), cores(cpu0.self, cpu1.self))
			if cpu0.ioOK && cpu1.ioOK {
				n := float64(w.delivered)
				fmt.Fprintf(out, "  system calls per delivered message: relay %.2f reads, %.2f writes; load generator %.2f reads, %.2f writes\n",
					float64(cpu1.relayR-cpu0.relayR)/n, float64(cpu1.relayW-cpu0.relayW)/n, float64(cpu1.selfR-cpu0.selfR)/n, float64(cpu1.selfW-cpu0.selfW)/n)
				fmt.Fprintf(out, "  bytes the relay wrote to disk per delivered message: %.0f (write_bytes of /proc/PID/io; payload %d)\n",
					float64(cpu1.relayDisk-cpu0.relayDisk)/n, cfg.Size)
			}
		} else if cpu0.selfOK && cpu1.selfOK {
			fmt.Fprintf(out, "  cpu per delivered message: load generator %.1f us (%.2f cores; -relay-pid adds the relay's)\n",
				perMsg(cpu0.self, cpu1.self), cores(cpu0.self, cpu1.self))
		}
	}
	if base != nil && final != nil {
		relayAcked = int64(final["sotto_messages_acked_total"] - base["sotto_messages_acked_total"])
		fmt.Fprintf(out, "relay's counters over the whole run: stored %.0f, pushed %.0f, acked %.0f\n",
			final["sotto_messages_stored_total"]-base["sotto_messages_stored_total"],
			final["sotto_messages_delivered_total"]-base["sotto_messages_delivered_total"],
			final["sotto_messages_acked_total"]-base["sotto_messages_acked_total"])
	}
	return r.verify(out, drained, time.Since(drainStart), relayAcked)
}

func (c counts) sub(o counts) counts {
	return counts{c.durable - o.durable, c.delivered - o.delivered, c.envelopes - o.envelopes, c.acked - o.acked,
		c.errors - o.errors, c.dup - o.dup, c.reorder - o.reorder, c.bad - o.bad, c.skipped - o.skipped, c.dupSend - o.dupSend}
}

func (r *runner) codeString() string {
	var b strings.Builder
	for i := range r.codes {
		if n := r.codes[i].Load(); n > 0 {
			fmt.Fprintf(&b, " %s:%d", wire.ErrorCode(i), n)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return " (whole run, by code: " + strings.TrimSpace(b.String()) + ")"
}

func rateString(r float64) string {
	if r == 0 {
		return "unlimited (back-to-back per device)"
	}
	return fmt.Sprintf("%.0f msg/s", r)
}
