package relay

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// conn is the relay's side of one client connection. Its goroutines:
//
//   - the reader: one read turn at a time (turn, see start). It reads
//     frames, hands sends and acks to the asynchronous mailbox
//     (fastpath.go) and handles anything else itself, in order;
//   - the deliverer (deliver), which pushes queued envelopes within the
//     delivery window;
//   - the writers: frames queued by any goroutine are written by the
//     server's write scheduler (writesched.go) without blocking, or by a
//     flush goroutine when the socket's buffer is full.
//
// The deliverer and flush goroutines belong to the connection's errgroup
// g; each runs only while it has work, so an idle connection costs one
// goroutine (the read turn waiting for bytes, with a 2 KiB stack).
// Stopping is canceling the connection's context with its socket
// (closeNow, from any goroutine: the turn's read fails); the last turn
// then waits for the group (end).
type conn struct {
	s    *Server
	sock Socket
	ip   string
	// ctx is &cx: canceled when the connection closes (closeNow).
	ctx  context.Context
	cx   connCtx
	once sync.Once

	// For the lifetime timer (written by the read turns).
	loggedIn     atomic.Bool
	provisioning atomic.Bool
	slot         *slot     // this connection's share of the caps (nil: none)
	opened       time.Time // when serve started
	timer        *time.Timer
	// approved says a link approval was pushed to this provisioning
	// connection: it gets one login timeout more to send LinkDevice.
	approved atomic.Bool
	// lastSealed is the time of the last sealed send (Unix nanoseconds;
	// 0: none yet), for the sealed-send idle timeout (sealedSent).
	lastSealed atomic.Int64

	// Owned by the read turns (one at a time).
	nonce    []byte
	authed   bool
	dev      DeviceAddr
	acct     Account
	username string
	bucket   bucket
	provAddr string
	unsub    func()

	// Delivery state.
	dmu         sync.Mutex
	stopped     bool
	running     bool
	pending     bool
	cursor      uint64                  // highest sequence read from the mailbox
	caughtUp    bool                    // the last mailbox read found nothing more
	direct      []Envelope              // notified envelopes to push without a mailbox read
	inflight    map[EnvelopeID]struct{} // pushed, not yet acked
	acking      map[EnvelopeID]struct{} // in a free Ack under way (claimFreeAck)
	drainedSent bool
	// fetching is set while a mailbox read and the push of what it
	// returned are under way; ackedInFetch holds what was acked
	// meanwhile. The read may have listed an envelope just before its ack
	// took it out of the mailbox, and by the push the ack has also taken
	// it out of inflight: without this it would be pushed again.
	fetching     bool
	ackedInFetch map[EnvelopeID]struct{}

	// g owns the connection's goroutines but the reader (see conn).
	g errgroup.Group
	// onEnd, if set, is called when the connection has ended (ServeSocket).
	onEnd func()

	// slots holds a token per SendMessage or Ack waiting for its commit
	// (see handleFast); made on first use.
	slots chan struct{}

	// Outgoing frames: queued by any goroutine, written by one flusher
	// goroutine at a time, which runs while the queue is not empty, so
	// that frames queued while a write is under way leave together in
	// the next write.
	batcher  frameBatcher // nil: the socket writes one frame per call
	omu      sync.Mutex
	out      []byte   // framed bytes waiting (batcher sockets)
	outq     [][]byte // frames waiting (other sockets)
	flushing bool     // a flusher goroutine or the write scheduler owns the queue
	outDead  bool     // closed or failed: queue nothing more
	fmu      sync.Mutex
	rest     []byte // the unwritten tail of a partial write, written first (fmu)
	// fwg counts the owners of the outgoing queue (flushing): a flush
	// goroutine, or the write scheduler while c waits in its list.
	fwg      sync.WaitGroup
	tryWrite bool // the socket can write without blocking: use the scheduler
}

// maxQueued caps the bytes waiting to be written to one connection; a
// client that does not read is disconnected rather than buffered for.
const maxQueued = 8 << 20

func newConn(s *Server, sock Socket, ip string) *conn {
	c := &conn{s: s, sock: sock, ip: ip, cx: connCtx{parent: s.ctx}}
	c.ctx = &c.cx
	c.batcher, _ = sock.(frameBatcher)
	c.tryWrite = c.batcher != nil && c.batcher.CanTryWrite()
	return c
}

// close ends the connection, after writing what is queued for it (with a
// short deadline); safe to call from any goroutine, many times.
func (c *conn) close(reason CloseReason) {
	c.fmu.Lock()
	if c.rest != nil {
		c.writeOut(c.rest, nil, time.Now().Add(min(time.Second, c.s.cfg.WriteTimeout)))
		c.rest = nil
	}
	out, q := c.takeOut()
	if out != nil || q != nil {
		c.writeOut(out, q, time.Now().Add(min(time.Second, c.s.cfg.WriteTimeout)))
	}
	c.fmu.Unlock()
	c.closeNow(reason)
}

// closeNow ends the connection without writing what is queued.
func (c *conn) closeNow(reason CloseReason) {
	c.once.Do(func() {
		c.omu.Lock()
		c.outDead = true
		c.out, c.outq = nil, nil
		c.omu.Unlock()
		c.sock.Close(reason)
		c.cx.cancel()
	})
}

// takeOut takes everything queued for writing.
func (c *conn) takeOut() ([]byte, [][]byte) {
	c.omu.Lock()
	defer c.omu.Unlock()
	out, q := c.out, c.outq
	c.out, c.outq = nil, nil
	return out, q
}

// writeOut writes frames taken from the queue (fmu held).
func (c *conn) writeOut(out []byte, q [][]byte, deadline time.Time) error {
	if c.batcher != nil {
		if len(out) == 0 {
			return nil
		}
		return c.batcher.WriteFrames(out, deadline)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, b := range q {
		if err := c.sock.WriteFrame(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// outBufs recycles flushed write buffers.
var outBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledOut = 64 << 10

// queue appends one encoded frame to the outgoing queue and makes sure a
// flusher runs.
func (c *conn) queue(b []byte) error {
	c.omu.Lock()
	if c.outDead {
		c.omu.Unlock()
		return net.ErrClosed
	}
	if c.batcher != nil {
		if c.out == nil {
			bp := outBufs.Get().(*[]byte)
			c.out = (*bp)[:0]
			*bp = nil
			outBufs.Put(bp)
		}
		c.out = c.batcher.AppendFrame(c.out, b)
	} else {
		c.outq = append(c.outq, append([]byte(nil), b...))
	}
	if len(c.out) > maxQueued || len(c.outq) > maxQueued/64 {
		c.omu.Unlock()
		c.s.log.Warn("client does not read its frames", "device", c.dev.String())
		c.closeNow(CloseProtocol)
		return net.ErrClosed
	}
	start := !c.flushing
	if start {
		c.flushing = true
		c.fwg.Add(1)
	}
	c.omu.Unlock()
	c.s.metrics.framesOut.Add(1)
	if start && !(c.tryWrite && c.s.sched.add(c.s.ctx, c)) {
		c.goFlush()
	}
	return nil
}

// recycleOut returns a written buffer to the pool.
func recycleOut(out []byte) {
	if cap(out) <= maxPooledOut {
		bp := outBufs.Get().(*[]byte)
		*bp = out[:0]
		outBufs.Put(bp)
	}
}

// goFlush starts a flush goroutine, which takes over the queue's
// ownership (an fwg count) from its caller.
func (c *conn) goFlush() {
	c.g.Go(func() error { c.flush(); return nil })
}

// flush writes the queue until it is empty.
func (c *conn) flush() {
	defer c.fwg.Done()
	for {
		c.fmu.Lock()
		out, q := c.rest, [][]byte(nil)
		c.rest = nil
		if out == nil {
			c.omu.Lock()
			out, q = c.out, c.outq
			if len(out) == 0 && len(q) == 0 {
				c.flushing = false
				c.omu.Unlock()
				c.fmu.Unlock()
				return
			}
			c.out, c.outq = nil, nil
			c.omu.Unlock()
		}
		err := c.writeOut(out, q, time.Now().Add(c.s.cfg.WriteTimeout))
		c.fmu.Unlock()
		c.s.metrics.writes.Add(1)
		recycleOut(out)
		if err != nil {
			c.closeNow(CloseProtocol)
			c.omu.Lock()
			c.flushing = false
			c.omu.Unlock()
			return
		}
	}
}

// start begins serving c: it pushes the login challenge and starts the
// connection's first read turn. It returns at once; the connection ends
// in its last turn (end), which calls onEnd.
//
// Reading runs in turns (turn): a goroutine waits for bytes, handles every
// frame that came with them, then hands the socket to a fresh goroutine
// and exits. Handling frames (storage, protobuf, writes) grows a
// goroutine's stack; the runtime never shrinks a parked stack that is
// more than a quarter used, so a reader that once handled a frame would
// keep a grown stack for the connection's lifetime. A fresh goroutine
// that only waits keeps the smallest stack (2 KiB) while the connection
// is idle.
func (c *conn) start() {
	// A connection must log in soon, or else it lives as long as its
	// kind allows (see lifetimeOver).
	c.opened = time.Now()
	c.timer = time.AfterFunc(c.s.cfg.LoginTimeout, c.lifetimeOver)
	if c.newChallenge() != nil {
		c.end()
		return
	}
	go c.turn()
}

// idleWaiter is implemented by sockets that can wait for bytes without
// reading a frame (leanSocket with a file descriptor).
type idleWaiter interface {
	// WaitReadable returns once bytes are buffered (or the read fails),
	// holding no buffer while it waits.
	WaitReadable() error
	// Buffered reports whether bytes are buffered: the next ReadFrame
	// starts without waiting.
	Buffered() bool
}

// turn is one read turn (see start): the connection's only goroutine
// while it is idle. It is owned by the connection's count in the
// server's wait group, which end releases.
func (c *conn) turn() {
	w, _ := c.sock.(idleWaiter)
	if w != nil {
		if err := w.WaitReadable(); err != nil {
			c.end()
			return
		}
	}
	for {
		b, err := c.sock.ReadFrame(context.Background())
		if !c.handleFrame(b, err) {
			c.end()
			return
		}
		if w == nil || !w.Buffered() {
			break
		}
	}
	go c.turn()
}

// handleFrame handles what one ReadFrame returned; it reports whether the
// connection goes on.
func (c *conn) handleFrame(b []byte, err error) bool {
	if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, errTextFrame) {
		return false
	}
	if err == nil {
		// Sends (named and sealed) and acks are handled without
		// waiting for earlier requests when they need not wait.
		if f, ok := wire.DecodeHotRequest(b); ok {
			c.s.metrics.framesIn.Add(1)
			if c.handleFast(f.GetRequest()) {
				return true
			}
			c.waitPending()
			return c.decoded(f, nil)
		}
	}
	c.waitPending()
	return c.frame(b, err)
}

// end tears the connection down once its reading is over; it runs once,
// in the last turn.
func (c *conn) end() {
	c.timer.Stop()
	c.close(CloseNormal)
	if c.unsub != nil {
		c.unsub()
	}
	c.dmu.Lock()
	c.stopped = true // no deliverer starts any more
	c.dmu.Unlock()
	// The queue is closed (close): once its owners are done no flush
	// goroutine starts any more, and the group can be waited.
	c.fwg.Wait()
	c.g.Wait()
	c.s.ended(c)
}

// lifetimeOver closes a connection that has not authenticated by the end
// of its allowance: LoginTimeout from its opening; for a provisioning
// connection ProvisionTimeout from its opening (one LoginTimeout more
// once an approval reached it); for a sealed-send connection
// SealedIdleTimeout after its last sealed send. The timer is re-armed by
// provisioned, sealedSent and approvalPushed.
func (c *conn) lifetimeOver() {
	if c.loggedIn.Load() {
		return
	}
	if last := c.lastSealed.Load(); last != 0 && !c.provisioning.Load() {
		// Sealed sends came since the timer was armed: wait out the
		// idle time from the last one.
		if d := time.Until(time.Unix(0, last).Add(c.s.cfg.SealedIdleTimeout)); d > 0 {
			c.timer.Reset(d)
			return
		}
	}
	c.close(CloseNormal)
}

// provisioned re-arms the timer for a provisioning connection.
func (c *conn) provisioned() {
	c.timer.Reset(time.Until(c.opened.Add(c.s.cfg.ProvisionTimeout)))
}

// approvalPushed gives a provisioning connection that received its
// approval the time to send LinkDevice, once.
func (c *conn) approvalPushed() {
	if c.approved.CompareAndSwap(false, true) {
		c.timer.Reset(time.Until(c.opened.Add(c.s.cfg.ProvisionTimeout)) + c.s.cfg.LoginTimeout)
	}
}

// sealedSent notes a sealed send on a sealed-send connection (not on a
// provisioning one: sealed sends do not lengthen its bound). The first
// re-arms the timer for SealedIdleTimeout; later ones only record their
// time, which lifetimeOver reads when the timer fires (a timer reset on
// every send cost the mailbox's completion goroutine a timer-heap update
// per sealed message).
func (c *conn) sealedSent() {
	if c.provisioning.Load() || c.loggedIn.Load() {
		return
	}
	if c.lastSealed.Swap(time.Now().UnixNano()) == 0 {
		c.timer.Reset(c.s.cfg.SealedIdleTimeout)
	}
}

// frame handles one frame read from the socket (or the read error that
// came with it); it reports whether the connection goes on.
func (c *conn) frame(b []byte, rerr error) bool {
	c.s.metrics.framesIn.Add(1)
	switch {
	case errors.Is(rerr, ErrTooLarge):
		return c.reply(c.errorFor(requestIDOf(b), ErrTooLarge)) == nil
	case rerr != nil:
		return c.reply(c.errorFor(0, rerr)) == nil
	}
	f, err := wire.DecodeFrame(b)
	return c.decoded(f, err)
}

// decoded handles a decoded frame or the decoding error.
func (c *conn) decoded(f *wire.Frame, err error) bool {
	var ve *wire.VersionError
	if errors.As(err, &ve) {
		c.reply(c.errorFor(f.GetRequest().GetId(), ErrUpgrade))
		c.close(CloseUpgrade)
		return false
	}
	if err != nil {
		return c.reply(c.errorFor(0, err)) == nil
	}
	req := f.GetRequest()
	if req == nil {
		return c.reply(c.errorFor(0, ErrBadRequest)) == nil
	}
	resp := c.handle(req)
	if resp.Code == wire.ErrorCode_OK && req.GetAck().GetQuiet() {
		return true // a quiet Ack is answered only when it fails
	}
	return c.reply(resp) == nil
}

// requestIDOf recovers the request id of an oversized frame, if it parses.
func requestIDOf(b []byte) uint64 {
	var f wire.Frame
	if proto.Unmarshal(b, &f) != nil {
		return 0
	}
	return f.GetRequest().GetId()
}

func (c *conn) errorFor(id uint64, err error) *wire.Response {
	r := &wire.Response{Id: id}
	errorResponse(r, err)
	c.s.metrics.countError(r.Code)
	return r
}

func (c *conn) reply(r *wire.Response) error {
	return c.write(&wire.Frame{Kind: &wire.Frame_Response{Response: r}})
}

func (c *conn) push(p *wire.Push) error {
	return c.write(&wire.Frame{Kind: &wire.Frame_Push{Push: p}})
}

// encBufs recycles frame encoding buffers.
var encBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// write queues f for writing; it fails only when the connection is closed.
func (c *conn) write(f *wire.Frame) error {
	bp := encBufs.Get().(*[]byte)
	b, err := wire.AppendFrame((*bp)[:0], f)
	if err != nil {
		c.s.log.Error("encoding frame", "err", err)
	}
	return c.queueEncoded(bp, b, err)
}

// queueEncoded queues frame b, encoded into the pooled buffer bp unless
// encoding failed, and recycles bp.
func (c *conn) queueEncoded(bp *[]byte, b []byte, err error) error {
	if err == nil {
		err = c.queue(b)
	}
	if cap(b) <= maxPooledOut {
		*bp = b[:0]
		encBufs.Put(bp)
	}
	return err
}

// newChallenge replaces the single-use nonce and pushes it.
func (c *conn) newChallenge() error {
	c.nonce = randomBytes(wire.NonceSize)
	return c.push(&wire.Push{Body: &wire.Push_Challenge{Challenge: &wire.Challenge{
		Nonce: c.nonce, ServerTimeMs: c.s.cfg.Now().UnixMilli(),
	}}})
}

// takeNonce returns the current nonce and pushes a fresh one, so that any
// signature is checked against a nonce used exactly once.
func (c *conn) takeNonce() []byte {
	n := c.nonce
	c.newChallenge()
	return n
}

// becomeDevice marks the connection authenticated and starts delivery.
func (c *conn) becomeDevice(acct Account, dev Device) {
	c.authed = true
	c.loggedIn.Store(true)
	c.slot.authenticated()
	c.acct = acct
	c.username = acct.Username
	c.dev = dev.Addr
	c.s.register(c)
	c.unsub = c.s.bus.Subscribe(c.dev, c.notified)
	if err := c.s.dir.TouchDevice(c.ctx, c.dev, c.s.cfg.Now()); err != nil {
		c.s.log.Warn("recording last seen", "device", c.dev.String(), "err", err)
	}
	c.wake()
}

// notified is the bus callback: envs were just stored for this device.
func (c *conn) notified(envs []Envelope) {
	c.dmu.Lock()
	if envs != nil && c.caughtUp && !c.running && !c.stopped && len(c.direct) == 0 &&
		len(c.inflight)+len(envs) <= c.s.cfg.DeliveryWindow {
		// Nothing else is being delivered: push at once, from here.
		for i := range envs {
			e := &envs[i]
			if _, dup := c.inflight[e.ID]; dup || e.ID.Seq() <= c.cursor {
				continue
			}
			if c.inflight == nil {
				c.inflight = make(map[EnvelopeID]struct{})
			}
			c.inflight[e.ID] = struct{}{}
			if c.pushEnvelope(e) != nil {
				break
			}
		}
		c.dmu.Unlock()
		return
	}
	if envs == nil || len(c.direct)+len(envs) > c.s.cfg.DeliveryWindow {
		// Unknown contents or too many: read the mailbox instead.
		c.caughtUp = false
		c.direct = nil
	} else {
		c.direct = append(c.direct, envs...)
	}
	c.dmu.Unlock()
	c.wake()
}

// wake makes sure a delivery pass runs after this call.
func (c *conn) wake() {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.stopped {
		return
	}
	if c.running {
		c.pending = true
		return
	}
	c.running = true
	c.g.Go(func() error { c.deliver(); return nil })
}

const fetchBatch = 128

// deliver pushes queued envelopes until the window is full or the queue
// is empty, then exits; wake starts it again.
//
// Two sources, one order: while the connection is caught up with the
// mailbox, envelopes handed over by the bus are pushed directly (no
// mailbox read); otherwise the mailbox is read from the cursor. Handed-over
// envelopes that arrived before a mailbox read started are dropped (the
// read sees them: they were committed before their notification); those
// arriving during the read are pushed after it unless the read already
// covered them (sequence <= cursor) or they are in flight.
func (c *conn) deliver() {
	stop := func() {
		c.dmu.Lock()
		c.running = false
		c.dmu.Unlock()
	}
	for {
		c.dmu.Lock()
		c.pending = false
		room := c.s.cfg.DeliveryWindow - len(c.inflight)
		cursor := c.cursor
		var envs []Envelope
		fetch := false
		switch {
		case c.caughtUp && len(c.direct) > 0 && len(c.direct) <= room:
			envs, c.direct = c.direct, nil
		case !c.caughtUp || len(c.direct) > room:
			c.direct = nil
			c.caughtUp = false
			fetch = room > 0
		}
		c.fetching = fetch
		c.dmu.Unlock()
		if c.ctx.Err() != nil {
			stop()
			return
		}
		more := false
		if fetch {
			limit := min(room, fetchBatch)
			var err error
			envs, err = c.s.mb.Fetch(c.ctx, c.dev, cursor, c.s.cfg.Now().Add(-c.s.cfg.MailboxTTL), limit)
			if err != nil {
				if c.ctx.Err() == nil {
					c.s.log.Error("fetching envelopes", "device", c.dev.String(), "err", err)
					c.close(CloseGoingAway)
				}
				stop()
				return
			}
			c.dmu.Lock()
			if len(envs) > 0 {
				c.cursor = envs[len(envs)-1].ID.Seq()
			}
			if len(envs) < limit {
				c.caughtUp = true
			} else {
				more = true
			}
			c.dmu.Unlock()
		}
		ok := c.pushAll(envs, fetch)
		if fetch {
			c.dmu.Lock()
			c.fetching, c.ackedInFetch = false, nil
			c.dmu.Unlock()
		}
		if !ok {
			stop()
			return
		}
		if fetch && !more && !c.drainedSent {
			c.drainedSent = true
			if c.push(&wire.Push{Body: &wire.Push_QueueEmpty{QueueEmpty: &wire.QueueEmpty{}}}) != nil {
				stop()
				return
			}
		}
		c.dmu.Lock()
		if !more && !c.pending && (len(c.direct) == 0 || !c.caughtUp) {
			c.running = false
			c.dmu.Unlock()
			return
		}
		c.dmu.Unlock()
	}
}

// pushAll pushes envs that are not in flight (and, for directly handed
// over ones, not already covered by a mailbox read). It reports false when
// the connection failed.
func (c *conn) pushAll(envs []Envelope, fetched bool) bool {
	for i := range envs {
		e := &envs[i]
		c.dmu.Lock()
		_, dup := c.inflight[e.ID]
		if !fetched && e.ID.Seq() <= c.cursor {
			dup = true // a mailbox read that started after it was stored pushed it
		}
		if _, acked := c.ackedInFetch[e.ID]; fetched && acked {
			dup = true // acked while the read was under way
		}
		if !dup {
			if c.inflight == nil {
				c.inflight = make(map[EnvelopeID]struct{})
			}
			c.inflight[e.ID] = struct{}{}
		}
		c.dmu.Unlock()
		if dup {
			continue
		}
		if c.pushEnvelope(e) != nil {
			return false
		}
	}
	return true
}

// pushEnvelope queues e for the device.
func (c *conn) pushEnvelope(e *Envelope) error {
	bp := encBufs.Get().(*[]byte)
	b, err := wire.AppendEnvelopePush((*bp)[:0], &wire.Envelope{
		Id: e.ID[:], Sender: e.Sender, SenderDevice: e.SenderDevice,
		ServerTimestampMs: e.Timestamp.UnixMilli(), Type: e.Type, Content: e.Content,
		MessageId: e.MessageID,
	})
	if err != nil {
		c.s.log.Error("encoding frame", "err", err)
	}
	if err = c.queueEncoded(bp, b, err); err == nil {
		c.s.metrics.delivered.Add(1)
	}
	return err
}

// claimFreeAck reports whether an Ack of ids is free of the request
// limit: at least one id, all pushed on this connection, not yet acked
// and in no other free Ack still under way. It then marks them under way
// until releaseFreeAck, so that repeating an Ack while its delete commits
// costs tokens like any request.
func (c *conn) claimFreeAck(ids [][]byte) bool {
	if len(ids) == 0 {
		return false
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	for _, b := range ids {
		if len(b) != len(EnvelopeID{}) {
			return false
		}
		id := EnvelopeID(b)
		if _, ok := c.inflight[id]; !ok {
			return false
		}
		if _, busy := c.acking[id]; busy {
			return false
		}
	}
	if c.acking == nil {
		c.acking = make(map[EnvelopeID]struct{})
	}
	for _, b := range ids {
		c.acking[EnvelopeID(b)] = struct{}{}
	}
	return true
}

// releaseFreeAck ends what claimFreeAck marked, once the Ack completed.
func (c *conn) releaseFreeAck(ids [][]byte) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	for _, b := range ids {
		delete(c.acking, EnvelopeID(b))
	}
}

// acked forgets acknowledged envelopes and lets delivery continue.
func (c *conn) acked(ids []EnvelopeID) {
	c.dmu.Lock()
	for _, id := range ids {
		delete(c.inflight, id)
		if c.fetching {
			if c.ackedInFetch == nil {
				c.ackedInFetch = make(map[EnvelopeID]struct{})
			}
			c.ackedInFetch[id] = struct{}{}
		}
	}
	// Caught up with nothing handed over: nothing waits for the room.
	idle := c.caughtUp && len(c.direct) == 0
	c.dmu.Unlock()
	if !idle {
		c.wake()
	}
}
