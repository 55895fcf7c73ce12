package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"sotto/internal/safetext"
	"sotto/wire"
)

// ErrClosed reports a request on, or interrupted by, a connection that ended.
var ErrClosed = errors.New("transport: connection closed")

// Error is a non-OK response from the relay.
type Error struct {
	Code       wire.ErrorCode
	Message    string             // as the relay sent it: untrusted text, see Reason
	Stale      *wire.StaleDevices // set with STALE_DEVICES
	RetryAfter time.Duration      // set with RATE_LIMITED
}

// maxReason bounds, in runes, the relay's reason shown to a person.
const maxReason = 200

// Reason returns the relay's explanation fit to show a person ("username
// must be 3 to 32 characters"): the message sanitized as one line
// (internal/safetext), without the relay's "relay: " prefix, and at most
// maxReason runes. It is "" when the relay gave none.
func (e *Error) Reason() string {
	msg := safetext.Line(strings.TrimPrefix(e.Message, "relay: "))
	if r := []rune(msg); len(r) > maxReason {
		msg = string(r[:maxReason-1]) + "…"
	}
	return msg
}

func (e *Error) Error() string {
	if r := e.Reason(); r != "" {
		return fmt.Sprintf("transport: the relay refused: %s (%s)", r, e.Code)
	}
	return fmt.Sprintf("transport: the relay refused (%s)", e.Code)
}

// Code returns the wire code of err: OK for nil, the code of a *Error in
// its chain, or UNAVAILABLE for any other error.
func Code(err error) wire.ErrorCode {
	if err == nil {
		return wire.ErrorCode_OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return wire.ErrorCode_UNAVAILABLE
}

// Options tunes Dial, and every HTTP request to the relay (tls.go). The
// zero value is usable: TLS against the system's roots, plaintext only on
// loopback.
type Options struct {
	// HTTPClient is used for the WebSocket handshake; nil: one built from
	// RootCAs and Pin (Client). It excludes RootCAs and Pin.
	HTTPClient *http.Client
	// HTTPHeader is sent with the handshake.
	HTTPHeader http.Header
	// RootCAs verifies the relay's certificate (an internal CA); nil: the
	// system's roots.
	RootCAs *x509.CertPool
	// Pin, when set, is the SHA-256 of the relay certificate's
	// SubjectPublicKeyInfo, required on top of the usual verification
	// (ErrPinMismatch).
	Pin []byte
	// Insecure allows plaintext ws:// to a relay that is not on loopback
	// (ErrPlaintext otherwise).
	Insecure bool
}

// Conn is one connection to the relay. Its methods are safe for concurrent use.
type Conn struct {
	ws     *websocket.Conn
	cancel context.CancelFunc
	done   chan struct{} // closed when the read loop ends
	wg     sync.WaitGroup

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *wire.Response
	nonce   []byte        // current challenge nonce
	nonceCh chan struct{} // closed when the first challenge arrived
	err     error         // why the connection ended

	envelopes *queue[*wire.Envelope]
	prov      *queue[[]byte]
	acks      *acks
	drained   chan struct{}
	groupWake chan struct{} // GroupWaiting pushes, coalesced (groups.go)
	groupIn   groupPushes   // the messages they carried
	drainOnce sync.Once
}

// Dial connects to the relay at relayURL (ws:// or wss://, path /v1/ws is
// added when the URL has no path) and waits for the relay's challenge.
// The connection is unauthenticated until Authenticate, Enroll or
// LinkDevice succeeds.
func Dial(ctx context.Context, relayURL string, opts Options) (*Conn, error) {
	u, err := wsURL(relayURL)
	if err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := opts.CheckURL(u); err != nil {
		return nil, err
	}
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: opts.Client(),
		HTTPHeader: opts.HTTPHeader,
	})
	if err != nil {
		return nil, fmt.Errorf("transport: dial: %w", err)
	}
	ws.SetReadLimit(wire.MaxFrameSize)
	loopCtx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		ws:        ws,
		cancel:    cancel,
		done:      make(chan struct{}),
		pending:   make(map[uint64]chan *wire.Response),
		nonceCh:   make(chan struct{}),
		envelopes: newQueue[*wire.Envelope](),
		prov:      newQueue[[]byte](),
		drained:   make(chan struct{}),
		acks:      newAcks(),
		groupWake: make(chan struct{}, 1),
	}
	c.wg.Add(4)
	go c.readLoop(loopCtx)
	go c.ackLoop(loopCtx)
	go func() { defer c.wg.Done(); c.envelopes.run(c.done, loopCtx.Done()) }()
	go func() { defer c.wg.Done(); c.prov.run(c.done, loopCtx.Done()) }()
	select {
	case <-c.nonceCh:
		return c, nil
	case <-c.done:
		err := c.Err()
		c.Close()
		return nil, fmt.Errorf("transport: waiting for challenge: %w", err)
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("transport: waiting for challenge: %w", ctx.Err())
	}
}

// Envelopes delivers the envelopes the relay pushes, in arrival order. It
// is closed when the connection ends. Envelopes stay queued on the relay
// until acknowledged with Ack.
func (c *Conn) Envelopes() <-chan *wire.Envelope { return c.envelopes.out }

// Drained is closed when the relay reports that the backlog queued before
// this connection authenticated has been delivered, once every envelope
// pushed before that report was taken from Envelopes.
func (c *Conn) Drained() <-chan struct{} { return c.drained }

// ProvisioningMessages delivers messages sent to this connection's
// provisioning address (see Provision).
func (c *Conn) ProvisioningMessages() <-chan []byte { return c.prov.out }

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open. It
// wraps ErrClosed and the cause (a *wire.VersionError when the relay
// speaks a newer protocol).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ackFlushOnClose bounds how long Close waits for queued acks.
const ackFlushOnClose = 2 * time.Second

// Close sends the acks queued by AckLater (waiting at most a couple of
// seconds), ends the connection and waits for its goroutines.
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ackFlushOnClose)
	_ = c.FlushAcks(ctx) // what is not acked comes again on the next connection
	cancel()
	// Close performs the closing handshake; errors only mean the
	// connection was already gone, which is the goal anyway.
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	c.cancel()
	c.wg.Wait()
	return nil
}

// Do sends req (its id is assigned here) and waits for the response. A
// non-OK response is returned together with a *Error.
func (c *Conn) Do(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	ch := make(chan *wire.Response, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.nextID++
	req.Id = c.nextID
	c.pending[req.Id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, req.Id)
		c.mu.Unlock()
	}()

	b, err := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: req}})
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	if err := c.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	select {
	case resp := <-ch:
		if resp.Code != wire.ErrorCode_OK {
			return resp, &Error{
				Code:       resp.Code,
				Message:    resp.Message,
				Stale:      resp.Stale,
				RetryAfter: time.Duration(resp.RetryAfterMs) * time.Millisecond,
			}
		}
		return resp, nil
	case <-c.done:
		return nil, c.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Conn) readLoop(ctx context.Context) {
	defer c.wg.Done()
	var err error
	for {
		var b []byte
		_, b, err = c.ws.Read(ctx)
		if err != nil {
			break
		}
		f, derr := wire.DecodeFrame(b)
		if derr != nil {
			// A version error for a response still carries its id; treat
			// every undecodable frame as fatal for this connection.
			err = derr
			break
		}
		switch k := f.Kind.(type) {
		case *wire.Frame_Response:
			c.mu.Lock()
			ch := c.pending[k.Response.Id]
			c.mu.Unlock()
			if ch != nil {
				ch <- k.Response
			}
		case *wire.Frame_Push:
			c.handlePush(k.Push)
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %w", ErrClosed, err) // errors.As finds e.g. a *wire.VersionError
	c.mu.Unlock()
	close(c.done)
	c.ws.CloseNow()
}

func (c *Conn) handlePush(p *wire.Push) {
	switch b := p.Body.(type) {
	case *wire.Push_Challenge:
		c.mu.Lock()
		first := c.nonce == nil
		c.nonce = b.Challenge.Nonce
		c.mu.Unlock()
		if first {
			close(c.nonceCh)
		}
	case *wire.Push_Envelope:
		c.envelopes.push(b.Envelope)
	case *wire.Push_QueueEmpty:
		// Closed once the envelopes pushed before are taken, so that a
		// consumer that sees Drained has every one of them.
		c.envelopes.after(func() { c.drainOnce.Do(func() { close(c.drained) }) })
	case *wire.Push_Provisioning:
		c.prov.push(b.Provisioning.Body)
	case *wire.Push_GroupWaiting:
		c.groupIn.add(b.GroupWaiting.GetMessages())
		select {
		case c.groupWake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// Challenge returns a copy of the relay's current single-use challenge
// nonce (what Authenticate, Enroll and LinkDevice sign).
func (c *Conn) Challenge() []byte {
	return append([]byte(nil), c.currentNonce()...)
}

// currentNonce returns the challenge nonce to sign next.
func (c *Conn) currentNonce() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nonce
}
