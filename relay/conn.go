package relay

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// conn is the relay's side of one client connection. The goroutine that
// runs serve owns it; a delivery goroutine runs only while there are
// envelopes to push, so an idle connection costs one goroutine.
type conn struct {
	s      *Server
	sock   Socket
	ip     string
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	// For the login timer (written by the workers).
	loggedIn     atomic.Bool
	provisioning atomic.Bool

	// Owned by the serve goroutine.
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
	drainedSent bool
	dwg         sync.WaitGroup
}

func newConn(s *Server, sock Socket, ip string) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &conn{s: s, sock: sock, ip: ip, ctx: ctx, cancel: cancel}
}

// close ends the connection; safe to call from any goroutine, many times.
func (c *conn) close(reason CloseReason) {
	c.once.Do(func() {
		c.sock.Close(reason)
		c.cancel()
	})
}

func (c *conn) serve(ctx context.Context) {
	defer func() {
		c.close(CloseNormal)
		if c.unsub != nil {
			c.unsub()
		}
		c.dmu.Lock()
		c.stopped = true
		c.dmu.Unlock()
		c.dwg.Wait()
	}()
	// Everything but reading runs in short-lived worker goroutines, one
	// at a time (so requests are still handled in order): the deep call
	// chains of storage, protobuf and writes grow their stacks, not the
	// stack of this goroutine, which idles for the connection's lifetime.
	// That keeps an idle connection's stack small.
	// A connection must log in (or open a provisioning channel) soon.
	timer := time.AfterFunc(c.s.cfg.LoginTimeout, c.loginTimeout)
	defer timer.Stop()
	work := make(chan bool, 1)
	run := func(fn func() bool) bool {
		go func() { work <- fn() }()
		return <-work
	}
	if !run(func() bool { return c.newChallenge() == nil }) {
		return
	}
	for {
		b, err := c.sock.ReadFrame(c.ctx)
		if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, errTextFrame) {
			return
		}
		if !run(func() bool { return c.frame(b, err) }) {
			return
		}
	}
}

// loginTimeout closes a connection that neither authenticated nor opened
// a provisioning channel in time; a provisioning channel gets as long as
// a link token lives.
func (c *conn) loginTimeout() {
	if c.loggedIn.Load() {
		return
	}
	if c.provisioning.Load() {
		time.AfterFunc(c.s.cfg.LinkTokenTTL, func() {
			if !c.loggedIn.Load() {
				c.close(CloseNormal)
			}
		})
		return
	}
	c.close(CloseNormal)
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
	return c.reply(c.handle(req)) == nil
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

func (c *conn) write(f *wire.Frame) error {
	b, err := wire.EncodeFrame(f)
	if err != nil {
		c.s.log.Error("encoding frame", "err", err)
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.WriteTimeout)
	defer cancel()
	if err := c.sock.WriteFrame(ctx, b); err != nil {
		c.close(CloseProtocol)
		return err
	}
	c.s.metrics.framesOut.Add(1)
	return nil
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
	c.dwg.Add(1)
	go c.deliver()
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
	defer c.dwg.Done()
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
		if !c.pushAll(envs, fetch) {
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
		err := c.push(&wire.Push{Body: &wire.Push_Envelope{Envelope: &wire.Envelope{
			Id: e.ID[:], Sender: e.Sender, SenderDevice: e.SenderDevice,
			ServerTimestampMs: e.Timestamp.UnixMilli(), Type: e.Type, Content: e.Content,
			MessageId: e.MessageID,
		}}})
		if err != nil {
			return false
		}
		c.s.metrics.delivered.Add(1)
	}
	return true
}

// acked forgets acknowledged envelopes and lets delivery continue.
func (c *conn) acked(ids []EnvelopeID) {
	c.dmu.Lock()
	for _, id := range ids {
		delete(c.inflight, id)
	}
	c.dmu.Unlock()
	c.wake()
}
