package main

import (
	"io"
	"net"
	"syscall"
)

// connReader is the read buffer of one connection. On a TCP connection
// it reads through syscall.RawConn: see wsConn.serve for why.
type connReader struct {
	buf  []byte
	r, w int

	src io.Reader // when raw is nil
	raw syscall.RawConn

	fn  func(fd uintptr) bool
	n   int
	err error
}

func newConnReader(c io.Reader, size int, pre []byte) *connReader {
	cr := &connReader{buf: make([]byte, max(size, len(pre), 64)), src: c}
	cr.w = copy(cr.buf, pre)
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			cr.raw, cr.src = raw, nil
			cr.fn = cr.rawRead
		}
	}
	return cr
}

func (cr *connReader) rawRead(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), cr.buf[cr.w:])
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		cr.n, cr.err = n, err
		return true
	}
}

// fill reads once into the free space at the end of the buffer.
func (cr *connReader) fill() error {
	if cr.w == len(cr.buf) {
		cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
		cr.r = 0
	}
	if cr.raw == nil {
		for range 100 {
			n, err := cr.src.Read(cr.buf[cr.w:])
			cr.w += n
			if n > 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return io.ErrNoProgress
	}
	cr.n, cr.err = 0, nil
	if err := cr.raw.Read(cr.fn); err != nil {
		return err
	}
	if cr.err != nil {
		return cr.err
	}
	if cr.n <= 0 {
		return io.EOF
	}
	cr.w += cr.n
	return nil
}

// peek returns the next n bytes (n <= len(buf)) without consuming them.
func (cr *connReader) peek(n int) ([]byte, error) {
	for cr.w-cr.r < n {
		if cr.r+n > len(cr.buf) {
			cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
			cr.r = 0
		}
		if err := cr.fill(); err != nil {
			return nil, err
		}
	}
	return cr.buf[cr.r : cr.r+n], nil
}

func (cr *connReader) discard(n int) {
	cr.r += n
	if cr.r == cr.w {
		cr.r, cr.w = 0, 0
	}
}

// readFull fills p (of any size).
func (cr *connReader) readFull(p []byte) error {
	for len(p) > 0 {
		if cr.r == cr.w {
			cr.r, cr.w = 0, 0
			if err := cr.fill(); err != nil {
				return err
			}
		}
		n := copy(p, cr.buf[cr.r:cr.w])
		cr.discard(n)
		p = p[n:]
	}
	return nil
}

// buffered is how many received bytes wait in the buffer.
func (cr *connReader) buffered() int { return cr.w - cr.r }

func (cr *connReader) size() int { return len(cr.buf) }

// serve calls handle with each binary message received until the
// connection fails, and done after each batch of messages handled (when
// everything received so far is handled). Messages are parsed in place
// and valid only during handle.
//
// On a TCP connection the whole loop runs inside one RawConn.Read call:
// after a read that did not fill the buffer (the socket was drained) it
// waits for readiness instead of first trying a read that fails with
// EAGAIN, as net.Conn.Read does before every wait (a wasted system call
// per arrival). This is safe only inside one RawConn.Read call: a new
// call resets the readiness the runtime noted meanwhile, so the first
// attempt after entering must read.
func (w *wsConn) serve(handle func(p []byte) error, done func()) error {
	cr := w.br
	if cr.raw == nil {
		for {
			p, err := w.next()
			if err != nil {
				return err
			}
			if err := handle(p); err != nil {
				return err
			}
			if !w.pending() {
				done()
			}
		}
	}
	var ferr error
	drained := false
	err := cr.raw.Read(func(fd uintptr) bool {
		for {
			handled := false
			for {
				p, ok, err := w.take()
				if err == nil && ok {
					err = handle(p)
				}
				if err != nil {
					ferr = err
					return true
				}
				if !ok {
					break
				}
				handled = true
			}
			if handled {
				done()
			}
			if drained {
				drained = false
				return false // wait for readiness
			}
			if cr.r == cr.w {
				cr.r, cr.w = 0, 0
			} else if len(cr.buf)-cr.w < len(cr.buf)/4 {
				cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
				cr.r = 0
			}
			space := len(cr.buf) - cr.w
			n, err := syscall.Read(int(fd), cr.buf[cr.w:])
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false
			case err != nil:
				ferr = err
				return true
			case n == 0:
				ferr = io.EOF
				return true
			}
			cr.w += n
			drained = n < space
		}
	})
	if ferr != nil {
		return ferr
	}
	return err
}
