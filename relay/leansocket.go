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
	"syscall"
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
	if sc, ok := conn.(syscall.Conn); ok && canRawWrite {
		s.raw, _ = sc.SyscallConn()
	}
	// Bytes the client sent right after its handshake may sit in the
	// HTTP server's buffer: keep them, then forget that buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		s.r = append([]byte(nil), p...)
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
//
// Reads are buffered without holding any buffer while idle: on a socket
// with a file descriptor the reader waits for bytes through the poller
// with no buffer at all, then reads what is there into a pooled buffer,
// which it returns as soon as everything buffered is consumed. Other
// connections (net.Pipe in tests, a TLS connection) read into a small
// buffer, allocated on first use, until a read fills it.
type leanSocket struct {
	c net.Conn

	// Reader goroutine only.
	small *[leanSmallRead]byte // other connections' blocking reads
	big   *[leanBigRead]byte   // pooled, nil while idle
	r     []byte               // buffered, unread bytes (in small, big or pre)
	// useBig says the last read filled its buffer: the next read goes
	// into a pooled buffer.
	useBig bool
	// fillRaw's read attempt and its outcome.
	rawFn  func(uintptr) bool
	rawN   int
	rawErr error

	// peakBuf is the largest message buffer allocated (for tests).
	peakBuf int

	wmu       sync.Mutex
	closeSent bool
	raw       syscall.RawConn // for TryWrite; nil if the connection has none
}

// Read buffer sizes: small enough to keep in every connection, big
// enough for several typical frames at once.
const (
	leanSmallRead = 512
	leanBigRead   = 8 << 10
	// leanGrowMin is the first allocation for a message that is not
	// wholly buffered.
	leanGrowMin = 512
)

var leanBufs = sync.Pool{New: func() any { return new([leanBigRead]byte) }}

var errWSProtocol = errors.New("relay: websocket protocol error")

// Close codes (RFC 6455 section 7.4.1).
const (
	wsNormal      = 1000
	wsGoingAway   = 1001
	wsProtocol    = 1002
	wsPolicy      = 1008
	wsTooBig      = 1009
	wsTryAgain    = 1013
	opContinue    = 0x0
	opText        = 0x1
	opBinary      = 0x2
	opClose       = 0x8
	opPing        = 0x9
	opPong        = 0xA
	maxCtrlLength = 125
)

// fill reads at least one more byte into s.r, which must be empty.
func (s *leanSocket) fill() error {
	if s.raw != nil {
		return s.fillRaw()
	}
	var buf []byte
	if s.useBig {
		if s.big == nil {
			s.big = leanBufs.Get().(*[leanBigRead]byte)
		}
		buf = s.big[:]
	} else {
		if s.small == nil {
			s.small = new([leanSmallRead]byte)
		}
		buf = s.small[:]
	}
	// A read may return no bytes and no error (net.Pipe does for an empty
	// write); like bufio, give up only after many in a row.
	for range 100 {
		n, err := s.c.Read(buf)
		s.r = buf[:n]
		s.useBig = n == len(buf)
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// fillRaw is fill on a socket with a file descriptor: it waits for bytes
// in the poller holding no buffer, then reads them into a pooled one.
// Deadlines (ReadFrame's context) end the wait as they end a Read.
func (s *leanSocket) fillRaw() error {
	if s.rawFn == nil {
		s.rawFn = s.readRaw // one closure per socket, not one per read
	}
	s.rawN, s.rawErr = 0, nil
	err := s.raw.Read(s.rawFn)
	if err == nil {
		err = s.rawErr
	}
	switch {
	case err != nil:
		s.dropBig()
		return err
	case s.rawN == 0:
		s.dropBig()
		return io.EOF
	}
	s.r = s.big[:s.rawN]
	return nil
}

// readRaw is fillRaw's read attempt, called by the poller: false means
// nothing to read yet (wait for more, with the buffer back in the pool).
func (s *leanSocket) readRaw(fd uintptr) bool {
	if s.big == nil {
		s.big = leanBufs.Get().(*[leanBigRead]byte)
	}
	n, err := rawRead(fd, s.big[:])
	for errors.Is(err, syscall.EINTR) {
		n, err = rawRead(fd, s.big[:])
	}
	if errors.Is(err, syscall.EAGAIN) {
		// s.r is empty here, but may still point into the buffer: drop
		// it too, or it keeps the pooled buffer alive while idle.
		s.r = nil
		leanBufs.Put(s.big)
		s.big = nil
		return false
	}
	s.rawN, s.rawErr = n, err
	return true
}

// WaitReadable implements idleWaiter: on a socket with a file descriptor
// it waits in the poller, holding no buffer, and reads what arrives into
// a pooled buffer. Other sockets return at once (their ReadFrame waits).
func (s *leanSocket) WaitReadable() error {
	if len(s.r) > 0 || s.raw == nil {
		return nil
	}
	return s.fillRaw()
}

// Buffered implements idleWaiter.
func (s *leanSocket) Buffered() bool { return len(s.r) > 0 }

// dropBig returns the pooled buffer when it holds nothing.
func (s *leanSocket) dropBig() {
	if s.big != nil {
		leanBufs.Put(s.big)
		s.big = nil
	}
	s.r = nil
}

// release returns the pooled read buffer once nothing in it is unread.
func (s *leanSocket) release() {
	if len(s.r) == 0 && s.big != nil {
		s.r = nil
		leanBufs.Put(s.big)
		s.big = nil
	}
}

// read fills p from the buffered bytes and then the connection.
func (s *leanSocket) read(p []byte) error {
	n := copy(p, s.r)
	s.r = s.r[n:]
	p = p[n:]
	for len(p) > 0 {
		if len(p) >= leanSmallRead {
			// Large remainder: read straight into p.
			_, err := io.ReadFull(s.c, p)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if err := s.fill(); err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		c := copy(p, s.r)
		s.r = s.r[c:]
		p = p[c:]
		n += c
	}
	return nil
}

// readSome fills a prefix of p (at least one byte) from the buffered
// bytes or with one read of the connection.
func (s *leanSocket) readSome(p []byte) (int, error) {
	if len(s.r) > 0 {
		n := copy(p, s.r)
		s.r = s.r[n:]
		return n, nil
	}
	for range 100 {
		n, err := s.c.Read(p)
		if n > 0 {
			return n, nil
		}
		if err == io.EOF {
			return 0, io.ErrUnexpectedEOF
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

// ReadFrame implements Socket. The message returned may lie in the
// socket's read buffer: it is valid until the next call.
func (s *leanSocket) ReadFrame(ctx context.Context) ([]byte, error) {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { s.c.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	s.release()
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
				// A failed pong means a broken connection: reading
				// reports that once what is buffered is consumed.
				s.write(opPong, p, time.Now().Add(10*time.Second))
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
		if !more && fin && uint64(len(s.r)) >= n {
			// The whole message is buffered: hand it out in place.
			p := s.r[:n]
			s.r = s.r[n:]
			unmask(p, mask)
			switch {
			case op == opText:
				return nil, errTextFrame
			case len(p) > wire.MaxFrameSize:
				return p, ErrTooLarge
			}
			return p, nil
		}
		// Grow as the payload arrives, so that a header announcing a big
		// frame costs nothing until its bytes are actually sent: the
		// buffer at most doubles what has arrived (plus leanGrowMin).
		start := len(msg)
		for rest := n; rest > 0; {
			if len(msg) == cap(msg) {
				msg = slices.Grow(msg, int(min(rest, uint64(max(cap(msg), leanGrowMin)))))
				s.peakBuf = max(s.peakBuf, cap(msg))
			}
			at := len(msg)
			got, err := s.readSome(msg[at : at+int(min(rest, uint64(cap(msg)-at)))])
			msg = msg[:at+got]
			rest -= uint64(got)
			if err != nil {
				return nil, err
			}
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

// appendHeader appends the header of an unfragmented, unmasked frame
// with an n-byte payload.
func appendHeader(dst []byte, op byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, 0x80|op, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 0x80|op, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0x80|op, 127), uint64(n))
	}
}

// write sends one unfragmented, unmasked frame.
func (s *leanSocket) write(op byte, p []byte, deadline time.Time) error {
	var h [10]byte
	hdr := appendHeader(h[:0], op, len(p))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return net.ErrClosed
	}
	s.c.SetWriteDeadline(deadline)
	bufs := net.Buffers{hdr, p}
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
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { s.c.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	return s.write(opBinary, b, deadline)
}

// AppendFrame implements frameBatcher.
func (s *leanSocket) AppendFrame(dst, b []byte) []byte {
	return append(appendHeader(dst, opBinary, len(b)), b...)
}

// WriteFrames implements frameBatcher.
func (s *leanSocket) WriteFrames(b []byte, deadline time.Time) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return net.ErrClosed
	}
	s.c.SetWriteDeadline(deadline)
	_, err := s.c.Write(b)
	return err
}

// CanTryWrite implements frameBatcher.
func (s *leanSocket) CanTryWrite() bool { return s.raw != nil }

// TryWrite implements frameBatcher with one non-blocking write.
func (s *leanSocket) TryWrite(b []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return 0, net.ErrClosed
	}
	var (
		n    int
		werr error
	)
	if err := s.raw.Write(func(fd uintptr) bool {
		n, werr = rawWrite(fd, b)
		return true // never wait: the caller finishes blocking elsewhere
	}); err != nil {
		return 0, err
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		return 0, nil
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
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
	case CloseBusy:
		code, text = wsTryAgain, "too many connections waiting to log in"
	}
	s.closeWith(code, text)
	return nil
}
