package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"sotto/wire"
)

// wsConn is a minimal RFC 6455 client for the load generator: one
// buffered reader owned by one goroutine, and a write buffer that the
// caller fills with whole frames (appendHeader, then the payload, then
// maskFrom) and flushes with one write. It negotiates no extensions and
// masks every frame it sends (section 5.3) with keys from a ChaCha8
// generator seeded from crypto/rand.
type wsConn struct {
	c  net.Conn
	br *connReader

	// Reader state (reader goroutine only).
	big     []byte // payloads larger than the read buffer, or fragmented
	frag    bool
	discard int // bytes of the last in-place payload still in br

	mu   sync.Mutex // guards everything below
	out  []byte
	rng  *mrand.ChaCha8
	dead error // first write error
}

var (
	errWSProtocol = errors.New("sotto-load: websocket protocol error")
	errWSClosed   = errors.New("sotto-load: websocket closed by the relay")
)

const (
	opContinue = 0x0
	opText     = 0x1
	opBinary   = 0x2
	opClose    = 0x8
	opPing     = 0x9
	opPong     = 0xA
)

// wsDial opens a WebSocket to the relay (ws:// or wss://; path /v1/ws
// when the URL has none). readBuf is the size of the read buffer: frames
// that fit are parsed in place.
func wsDial(ctx context.Context, relayURL string, readBuf int) (*wsConn, error) {
	u, err := url.Parse(relayURL)
	if err != nil {
		return nil, fmt.Errorf("sotto-load: relay url: %w", err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/ws"
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"ws": "80", "wss": "443"}[u.Scheme])
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("sotto-load: dial: %w", err)
	}
	switch u.Scheme {
	case "ws":
	case "wss":
		tc := tls.Client(c, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("sotto-load: tls: %w", err)
		}
		c = tc
	default:
		c.Close()
		return nil, fmt.Errorf("sotto-load: relay url must be ws:// or wss://")
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, fmt.Errorf("sotto-load: websocket handshake: %w", err)
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("sotto-load: websocket handshake: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, fmt.Errorf("sotto-load: websocket handshake: relay answered %s", resp.Status)
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, ctx.Err()
	}
	var seed [32]byte
	rand.Read(seed[:])
	// Keep what the relay sent right after its handshake response.
	pre, _ := br.Peek(br.Buffered())
	return &wsConn{c: c, br: newConnReader(c, readBuf, pre), rng: mrand.NewChaCha8(seed)}, nil
}

// appendHeader appends the header of one unfragmented, masked frame of n
// payload bytes to w.out and returns where the payload starts. Call with
// w.mu held; append exactly n bytes, then call maskFrom.
func (w *wsConn) appendHeader(op byte, n int) int {
	b := append(w.out, 0x80|op)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(w.rng.Uint64()))
	w.out = b
	return len(b)
}

// maskFrom masks the payload that starts at start (the mask key is the
// four bytes before it).
func (w *wsConn) maskFrom(start int) {
	maskBytes(w.out[start:], [4]byte(w.out[start-4:start]))
}

// maskBytes XORs p with the repeated 4-byte key, 8 bytes at a time.
func maskBytes(p []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k64)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
}

// flush writes w.out in one write. Call with w.mu held.
func (w *wsConn) flush() error {
	if w.dead != nil {
		w.out = w.out[:0]
		return w.dead
	}
	if len(w.out) == 0 {
		return nil
	}
	_, err := w.c.Write(w.out)
	w.out = w.out[:0]
	if err != nil {
		w.dead = err
	}
	return err
}

// writeMessage sends one binary message at once (setup path).
func (w *wsConn) writeMessage(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := w.appendHeader(opBinary, len(p))
	w.out = append(w.out, p...)
	w.maskFrom(at)
	return w.flush()
}

// writeFrame encodes and sends f (setup path: allocates).
func (w *wsConn) writeFrame(f *wire.Frame) error {
	b, err := wire.EncodeFrame(f)
	if err != nil {
		return err
	}
	return w.writeMessage(b)
}

// next returns the payload of the next binary message. The slice is
// valid until the following call (it may point into the read buffer).
// Pings are answered; a close frame ends the connection.
func (w *wsConn) next() ([]byte, error) {
	if w.discard > 0 {
		w.br.discard(w.discard)
		w.discard = 0
	}
	if !w.frag {
		w.big = w.big[:0]
	}
	for {
		h, err := w.br.peek(2)
		if err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[0]&0x70 != 0 || h[1]&0x80 != 0 {
			// Reserved bits without an extension, or a masked server frame.
			return nil, errWSProtocol
		}
		n, hl := uint64(h[1]&0x7f), 2
		switch n {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if h, err = w.br.peek(hl); err != nil {
			return nil, err
		}
		switch hl {
		case 4:
			n = uint64(binary.BigEndian.Uint16(h[2:]))
		case 10:
			n = binary.BigEndian.Uint64(h[2:])
		}
		w.br.discard(hl)
		if n > wire.MaxFrameSize || uint64(len(w.big))+n > wire.MaxFrameSize {
			return nil, wire.ErrFrameTooLarge
		}
		if op >= opClose {
			if !fin || n > 125 {
				return nil, errWSProtocol
			}
			var buf [125]byte
			p := buf[:n]
			if err := w.br.readFull(p); err != nil {
				return nil, err
			}
			switch op {
			case opPing:
				w.mu.Lock()
				at := w.appendHeader(opPong, len(p))
				w.out = append(w.out, p...)
				w.maskFrom(at)
				err := w.flush()
				w.mu.Unlock()
				if err != nil {
					return nil, err
				}
			case opClose:
				w.mu.Lock()
				at := w.appendHeader(opClose, min(len(p), 2))
				w.out = append(w.out, p[:min(len(p), 2)]...)
				w.maskFrom(at)
				w.flush()
				w.mu.Unlock()
				return nil, errWSClosed
			}
			continue
		}
		if (op == opContinue) != w.frag || (op != opContinue && op != opBinary) {
			return nil, errWSProtocol
		}
		if fin && !w.frag && int(n) <= w.br.size() {
			// The common case: parse in place in the read buffer.
			p, err := w.br.peek(int(n))
			if err != nil {
				return nil, err
			}
			w.discard = int(n)
			return p, nil
		}
		at := len(w.big)
		w.big = append(w.big, make([]byte, n)...)
		if err := w.br.readFull(w.big[at:]); err != nil {
			return nil, err
		}
		if !fin {
			w.frag = true
			continue
		}
		w.frag = false
		return w.big, nil
	}
}

// take returns the next complete binary message in the read buffer
// without reading from the connection (ok false: more bytes are
// needed; the buffer grows to hold a frame larger than it). The message
// is valid until the next call. Pings are answered; a close frame ends
// the connection.
func (w *wsConn) take() (p []byte, ok bool, err error) {
	cr := w.br
	if w.discard > 0 {
		cr.discard(w.discard)
		w.discard = 0
	}
	if !w.frag {
		w.big = w.big[:0]
	}
	for {
		h := cr.buf[cr.r:cr.w]
		if len(h) < 2 {
			return nil, false, nil
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[0]&0x70 != 0 || h[1]&0x80 != 0 {
			return nil, false, errWSProtocol
		}
		n, hl := uint64(h[1]&0x7f), 2
		switch n {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if len(h) < hl {
			return nil, false, nil
		}
		switch hl {
		case 4:
			n = uint64(binary.BigEndian.Uint16(h[2:]))
		case 10:
			n = binary.BigEndian.Uint64(h[2:])
		}
		if n > wire.MaxFrameSize || uint64(len(w.big))+n > wire.MaxFrameSize {
			return nil, false, wire.ErrFrameTooLarge
		}
		if op >= opClose && (!fin || n > 125) {
			return nil, false, errWSProtocol
		}
		if op < opClose && ((op == opContinue) != w.frag || (op != opContinue && op != opBinary)) {
			return nil, false, errWSProtocol
		}
		total := hl + int(n)
		if len(h) < total {
			if total > len(cr.buf) {
				nb := make([]byte, total)
				cr.w = copy(nb, h)
				cr.r, cr.buf = 0, nb
			}
			return nil, false, nil
		}
		p := h[hl:total]
		switch {
		case op == opPing:
			w.mu.Lock()
			at := w.appendHeader(opPong, len(p))
			w.out = append(w.out, p...)
			w.maskFrom(at)
			err := w.flush()
			w.mu.Unlock()
			cr.discard(total)
			if err != nil {
				return nil, false, err
			}
			continue
		case op == opClose:
			w.mu.Lock()
			at := w.appendHeader(opClose, min(len(p), 2))
			w.out = append(w.out, p[:min(len(p), 2)]...)
			w.maskFrom(at)
			w.flush()
			w.mu.Unlock()
			return nil, false, errWSClosed
		case op >= opClose:
			cr.discard(total) // pong or reserved control frame
			continue
		case fin && !w.frag:
			cr.r += hl
			w.discard = int(n)
			return p, true, nil
		}
		w.big = append(w.big, p...)
		cr.discard(total)
		if fin {
			w.frag = false
			return w.big, true, nil
		}
		w.frag = true
	}
}

// pending reports whether received bytes beyond the current message
// wait in the read buffer.
func (w *wsConn) pending() bool { return w.br.buffered() > w.discard }

// readFrame reads and decodes the next frame (setup path: allocates).
func (w *wsConn) readFrame() (*wire.Frame, error) {
	p, err := w.next()
	if err != nil {
		return nil, err
	}
	return wire.DecodeFrame(p)
}

// close sends a normal close frame and closes the connection.
func (w *wsConn) close() {
	w.mu.Lock()
	at := w.appendHeader(opClose, 2)
	w.out = binary.BigEndian.AppendUint16(w.out, 1000)
	w.maskFrom(at)
	w.flush()
	w.dead = net.ErrClosed
	w.mu.Unlock()
	w.c.Close()
}
