package relay

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"sotto/wire"
)

// AcceptLean upgrades an HTTP request to a Socket with a minimal RFC 6455
// server implementation that keeps no buffers while idle: an idle
// connection costs its net.Conn, this struct and one goroutine parked in
// Read with a small stack. No extensions (no compression) are negotiated.
func AcceptLean(w http.ResponseWriter, r *http.Request) (Socket, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Connection", "upgrade") ||
		!headerHasToken(r.Header, "Upgrade", "websocket") || r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "websocket upgrade required", http.StatusUpgradeRequired)
		return nil, fmt.Errorf("relay: not a websocket upgrade")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot upgrade", http.StatusInternalServerError)
		return nil, errors.New("relay: response writer cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("relay: hijack: %w", err)
	}
	s := &leanSocket{c: conn}
	// Bytes the client sent right after its handshake may sit in the
	// HTTP server's buffer: keep them, then forget that buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		s.pre = append([]byte(nil), p...)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay: websocket handshake: %w", err)
	}
	conn.SetWriteDeadline(time.Time{})
	return s, nil
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// leanSocket is the minimal RFC 6455 server side.
type leanSocket struct {
	c   net.Conn
	pre []byte // handshake leftovers, read first (reader goroutine only)

	wmu       sync.Mutex
	closeSent bool
}

var errWSProtocol = errors.New("relay: websocket protocol error")

// Close codes (RFC 6455 section 7.4.1).
const (
	wsNormal      = 1000
	wsGoingAway   = 1001
	wsProtocol    = 1002
	wsPolicy      = 1008
	wsTooBig      = 1009
	opContinue    = 0x0
	opText        = 0x1
	opBinary      = 0x2
	opClose       = 0x8
	opPing        = 0x9
	opPong        = 0xA
	maxCtrlLength = 125
)

func (s *leanSocket) read(p []byte) error {
	if len(s.pre) > 0 {
		n := copy(p, s.pre)
		s.pre = s.pre[n:]
		if n == len(p) {
			return nil
		}
		p = p[n:]
	}
	_, err := io.ReadFull(s.c, p)
	return err
}

// ReadFrame implements Socket.
func (s *leanSocket) ReadFrame(ctx context.Context) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { s.c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var (
		msg  []byte
		text bool
		more bool // inside a fragmented message
	)
	for {
		var h [14]byte
		if err := s.read(h[:2]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[0]&0x70 != 0 || h[1]&0x80 == 0 {
			// Reserved bits without an extension, or an unmasked client frame.
			s.closeWith(wsProtocol, "protocol error")
			return nil, errWSProtocol
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			if err := s.read(h[2:4]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			if err := s.read(h[2:10]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(h[2:10])
		}
		var mask [4]byte
		if err := s.read(mask[:]); err != nil {
			return nil, err
		}
		if op >= opClose {
			if !fin || n > maxCtrlLength {
				s.closeWith(wsProtocol, "bad control frame")
				return nil, errWSProtocol
			}
			var buf [maxCtrlLength]byte
			p := buf[:n]
			if err := s.read(p); err != nil {
				return nil, err
			}
			unmask(p, mask)
			switch op {
			case opPing:
				if err := s.write(opPong, p, time.Now().Add(10*time.Second)); err != nil {
					return nil, err
				}
			case opClose:
				code := wsNormal
				if len(p) >= 2 {
					code = int(binary.BigEndian.Uint16(p))
				}
				s.closeWith(code, "")
				return nil, io.EOF
			}
			continue
		}
		if (op == opContinue) != more || (op != opContinue && op != opText && op != opBinary) {
			s.closeWith(wsProtocol, "bad fragment")
			return nil, errWSProtocol
		}
		if uint64(len(msg))+n > hardFrameLimit {
			s.closeWith(wsTooBig, "message too big")
			return nil, ErrTooLarge
		}
		if op != opContinue {
			text = op == opText
		}
		// Grow as the payload arrives, so that a header announcing a big
		// frame costs nothing until its bytes are actually sent.
		start := len(msg)
		for rest := n; rest > 0; {
			chunk := int(min(rest, 64<<10))
			at := len(msg)
			msg = slices.Grow(msg, chunk)[:at+chunk]
			if err := s.read(msg[at:]); err != nil {
				return nil, err
			}
			rest -= uint64(chunk)
		}
		unmask(msg[start:], mask)
		if !fin {
			more = true
			continue
		}
		switch {
		case text:
			return nil, errTextFrame
		case len(msg) > wire.MaxFrameSize:
			return msg, ErrTooLarge
		}
		return msg, nil
	}
}

func unmask(p []byte, m [4]byte) {
	for i := range p {
		p[i] ^= m[i&3]
	}
}

// write sends one unfragmented, unmasked frame.
func (s *leanSocket) write(op byte, p []byte, deadline time.Time) error {
	var h [10]byte
	h[0] = 0x80 | op
	hl := 2
	switch {
	case len(p) < 126:
		h[1] = byte(len(p))
	case len(p) <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(len(p)))
		hl = 4
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(len(p)))
		hl = 10
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return net.ErrClosed
	}
	s.c.SetWriteDeadline(deadline)
	bufs := net.Buffers{h[:hl], p}
	_, err := bufs.WriteTo(s.c)
	if op == opClose {
		s.closeSent = true
	}
	return err
}

// WriteFrame implements Socket.
func (s *leanSocket) WriteFrame(ctx context.Context, b []byte) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	stop := context.AfterFunc(ctx, func() { s.c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	return s.write(opBinary, b, deadline)
}

// closeWith sends a close frame (once) and closes the connection.
func (s *leanSocket) closeWith(code int, reason string) {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	p = append(p, reason...)
	s.write(opClose, p, time.Now().Add(time.Second))
	s.c.Close()
}

// Close implements Socket.
func (s *leanSocket) Close(reason CloseReason) error {
	code, text := wsNormal, ""
	switch reason {
	case CloseGoingAway:
		code, text = wsGoingAway, "relay shutting down"
	case CloseUpgrade:
		code, text = wsPolicy, "upgrade required"
	case CloseRevoked:
		code, text = wsPolicy, "revoked"
	case CloseReplaced:
		text = "replaced by a newer connection"
	case CloseProtocol:
		code, text = wsProtocol, "protocol error"
	}
	s.closeWith(code, text)
	return nil
}
