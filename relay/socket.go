package relay

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"sotto/wire"
)

// Socket is one client connection carrying whole frames. It is the seam
// between the protocol logic and the WebSocket implementation: a cheaper
// per-connection implementation can replace the default one.
//
// ReadFrame is called from one goroutine; WriteFrame and Close may be
// called concurrently with it and with each other.
type Socket interface {
	// ReadFrame returns the next binary message. A message above the read
	// limit but below the hard limit is returned with ErrTooLarge.
	ReadFrame(ctx context.Context) ([]byte, error)
	WriteFrame(ctx context.Context, b []byte) error
	// Close ends the connection with a reason the peer may see.
	Close(reason CloseReason) error
}

// frameBatcher is implemented by Sockets that can write several frames
// with one system call: the connection frames what it has queued into one
// buffer and writes it at once.
type frameBatcher interface {
	// AppendFrame appends b framed as one binary message to dst.
	AppendFrame(dst, b []byte) []byte
	// WriteFrames writes bytes made by AppendFrame.
	WriteFrames(b []byte, deadline time.Time) error
	// CanTryWrite reports whether TryWrite can write.
	CanTryWrite() bool
	// TryWrite writes a prefix of b without blocking: n < len(b) with a
	// nil error means the rest would block.
	TryWrite(b []byte) (n int, err error)
}

// CloseReason says why the relay closed a connection.
type CloseReason int

// Close reasons.
const (
	CloseNormal CloseReason = iota
	CloseGoingAway
	CloseUpgrade
	CloseRevoked
	CloseReplaced
	CloseProtocol
	// CloseBusy: closed to make room for a newer connection while the
	// relay holds its maximum of unauthenticated ones.
	CloseBusy
)

var errTextFrame = withReason(ErrBadRequest, "text frames are not accepted")

// hardFrameLimit closes connections sending absurd frames; frames between
// wire.MaxFrameSize and it are answered with TOO_LARGE.
const hardFrameLimit = 4 * wire.MaxFrameSize

// wsSocket is the coder/websocket Socket.
type wsSocket struct{ c *websocket.Conn }

// AcceptWebSocket upgrades an HTTP request to a Socket.
func AcceptWebSocket(w http.ResponseWriter, r *http.Request) (Socket, error) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Browsers on other origins may connect: authentication is by
		// device signature, never by cookie.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: websocket accept: %w", err)
	}
	c.SetReadLimit(hardFrameLimit)
	return &wsSocket{c: c}, nil
}

func (s *wsSocket) ReadFrame(ctx context.Context) ([]byte, error) {
	typ, b, err := s.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, errTextFrame
	}
	if len(b) > wire.MaxFrameSize {
		return b, ErrTooLarge
	}
	return b, nil
}

func (s *wsSocket) WriteFrame(ctx context.Context, b []byte) error {
	return s.c.Write(ctx, websocket.MessageBinary, b)
}

func (s *wsSocket) Close(reason CloseReason) error {
	code, text := websocket.StatusNormalClosure, ""
	switch reason {
	case CloseGoingAway:
		code, text = websocket.StatusGoingAway, "relay shutting down"
	case CloseUpgrade:
		code, text = websocket.StatusPolicyViolation, "upgrade required"
	case CloseRevoked:
		code, text = websocket.StatusPolicyViolation, "revoked"
	case CloseReplaced:
		code, text = websocket.StatusNormalClosure, "replaced by a newer connection"
	case CloseProtocol:
		code, text = websocket.StatusProtocolError, "protocol error"
	case CloseBusy:
		code, text = websocket.StatusTryAgainLater, "too many connections waiting to log in"
	}
	// Close sends the close frame and waits (bounded by the library,
	// 5 s each way) for the peer's; any error means the connection is
	// gone either way.
	_ = s.c.Close(code, text)
	return nil
}
