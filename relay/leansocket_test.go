package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// clientFrame encodes one masked client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	h := []byte{op, 0x80}
	if fin {
		h[0] |= 0x80
	}
	switch {
	case len(payload) < 126:
		h[1] |= byte(len(payload))
	case len(payload) <= 0xffff:
		h[1] |= 126
		h = binary.BigEndian.AppendUint16(h, uint16(len(payload)))
	default:
		h[1] |= 127
		h = binary.BigEndian.AppendUint64(h, uint64(len(payload)))
	}
	mask := [4]byte{1, 2, 3, 4}
	h = append(h, mask[:]...)
	p := append([]byte(nil), payload...)
	unmask(p, mask)
	return append(h, p...)
}

// readAll feeds stream to a leanSocket and returns the messages it reads
// and the error that ended reading.
func readAll(stream []byte) ([][]byte, error) {
	server, client := net.Pipe()
	defer client.Close()
	s := &leanSocket{c: server}
	go io.Copy(io.Discard, client) // pongs and close frames
	go func() {
		client.Write(stream)
		client.Close()
	}()
	var msgs [][]byte
	for {
		b, err := s.ReadFrame(context.Background())
		// ErrTooLarge with the message: answered, reading goes on;
		// without: the hard limit, the connection is closed.
		if err != nil && !(errors.Is(err, ErrTooLarge) && b != nil) && !errors.Is(err, errTextFrame) {
			server.Close()
			return msgs, err
		}
		if b != nil {
			b = append([]byte(nil), b...) // valid only until the next read
		}
		msgs = append(msgs, b)
	}
}

func leanSeeds() [][]byte {
	big := make([]byte, 300)
	return [][]byte{
		clientFrame(true, opBinary, []byte("hello")),
		append(clientFrame(false, opBinary, []byte("hel")), clientFrame(true, opContinue, []byte("lo"))...),
		append(clientFrame(true, opPing, []byte("p")), clientFrame(true, opBinary, big)...),
		clientFrame(true, opText, []byte("text")),
		clientFrame(true, opClose, []byte{3, 232}),
		{0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4},
	}
}

func TestLeanSocketReads(t *testing.T) {
	seeds := leanSeeds()
	msgs, err := readAll(seeds[0])
	if len(msgs) != 1 || string(msgs[0]) != "hello" || !errors.Is(err, io.EOF) {
		t.Fatalf("single frame: %q %v", msgs, err)
	}
	msgs, _ = readAll(seeds[1])
	if len(msgs) != 1 || string(msgs[0]) != "hello" {
		t.Fatalf("fragments: %q", msgs)
	}
	msgs, _ = readAll(seeds[2])
	if len(msgs) != 1 || len(msgs[0]) != 300 {
		t.Fatalf("ping then 300 bytes: %d messages", len(msgs))
	}
	if msgs, _ := readAll(seeds[3]); len(msgs) != 1 || msgs[0] != nil {
		t.Fatal("text frame not rejected")
	}
	if _, err := readAll(seeds[4]); !errors.Is(err, io.EOF) {
		t.Fatalf("close: %v", err)
	}
	if _, err := readAll(seeds[5]); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("absurd length: %v", err)
	}
	unmasked := clientFrame(true, opBinary, []byte("x"))
	unmasked[1] &^= 0x80
	if _, err := readAll(unmasked); !errors.Is(err, errWSProtocol) {
		t.Fatalf("unmasked: %v", err)
	}
}

func FuzzLeanSocket(f *testing.F) {
	seeds := leanSeeds()
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		msgs, err := readAll(stream)
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errWSProtocol) &&
			!errors.Is(err, ErrTooLarge) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("untyped error %v", err)
		}
		total := 0
		for _, m := range msgs {
			total += len(m)
		}
		if total > len(stream) {
			t.Fatalf("read %d payload bytes from a %d-byte stream", total, len(stream))
		}
	})
}

// TestLeanSocketAnnouncedFrameAllocatesLittle: a header announcing a big
// frame followed by a trickle of its bytes costs buffers for the bytes
// that arrived, not for the length announced.
func TestLeanSocketAnnouncedFrameAllocatesLittle(t *testing.T) {
	for _, announced := range []uint64{200 << 10, hardFrameLimit} {
		h := []byte{0x82, 0x80 | 127}
		h = binary.BigEndian.AppendUint64(h, announced)
		h = append(h, 1, 2, 3, 4)
		server, client := net.Pipe()
		s := &leanSocket{c: server}
		go func() {
			client.Write(h)
			for range 100 {
				client.Write(make([]byte, 10))
			}
			client.Close()
		}()
		if _, err := s.ReadFrame(context.Background()); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d announced: %v", announced, err)
		}
		server.Close()
		// 1,000 bytes arrived: a buffer of at most 2 KiB.
		if s.peakBuf > 2<<10 {
			t.Fatalf("%d announced, 1000 sent: a %d-byte buffer", announced, s.peakBuf)
		}
	}
	// A whole big frame still reads.
	msgs, err := readAll(clientFrame(true, opBinary, make([]byte, 100<<10)))
	if len(msgs) != 1 || len(msgs[0]) != 100<<10 || !errors.Is(err, io.EOF) {
		t.Fatalf("100 KiB frame: %d messages, %v", len(msgs), err)
	}
}

// tcpLean returns a leanSocket over the server side of a real TCP
// connection (so with a file descriptor: the poller path) and the client
// side.
func tcpLean(t *testing.T) (*leanSocket, net.Conn) {
	t.Helper()
	if !canRawWrite {
		t.Skip("no raw socket reads on this platform")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	s := &leanSocket{c: server}
	s.raw, err = server.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return s, client
}

// TestLeanIdleHoldsNoBuffer: on a TCP connection the reader waits for
// bytes holding no read buffer (it takes a pooled one only when bytes
// are there, and gives it back when they are consumed), and still reads
// frames whole, split or several per segment.
func TestLeanIdleHoldsNoBuffer(t *testing.T) {
	s, client := tcpLean(t)
	// A wait that ends by deadline, with nothing received: no buffer held.
	s.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := s.fill(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("fill with nothing to read: %v, want the deadline", err)
	}
	if s.big != nil || s.small != nil {
		t.Fatal("a read buffer is held while waiting for bytes")
	}
	s.c.SetReadDeadline(time.Time{})
	big := make([]byte, 20000)
	for i := range big {
		big[i] = byte(i)
	}
	stream := append(clientFrame(true, opBinary, []byte("one")), clientFrame(true, opBinary, []byte("two"))...)
	stream = append(stream, clientFrame(true, opBinary, big)...)
	stream = append(stream, clientFrame(true, opBinary, []byte("last"))...)
	go func() {
		// Split mid-header and mid-payload.
		for _, part := range [][]byte{stream[:1], stream[1:9], stream[9:3000], stream[3000:]} {
			client.Write(part)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i, want := range [][]byte{[]byte("one"), []byte("two"), big, []byte("last")} {
		got, err := s.ReadFrame(context.Background())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
	}
	s.release()
	if s.big != nil || s.small != nil {
		t.Fatal("a read buffer is held after everything received was consumed")
	}
	client.Close()
	if _, err := s.ReadFrame(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after the client closed: %v, want EOF", err)
	}
}

// TestLeanWaitReadableHoldsNoBuffer: a read turn that consumed every
// byte and waits again for more (WaitReadable) references no read buffer,
// not even through the empty remainder of the last read, which would keep
// a pooled 8 KiB buffer alive for every idle connection.
func TestLeanWaitReadableHoldsNoBuffer(t *testing.T) {
	s, client := tcpLean(t)
	client.Write(clientFrame(true, opBinary, []byte("hello")))
	if err := s.WaitReadable(); err != nil || !s.Buffered() {
		t.Fatalf("WaitReadable: %v, buffered %v", err, s.Buffered())
	}
	if got, err := s.ReadFrame(context.Background()); err != nil || string(got) != "hello" {
		t.Fatalf("frame: %q, %v", got, err)
	}
	if s.Buffered() {
		t.Fatal("bytes left after the only frame")
	}
	// The state in which WaitReadable parks: its read attempt found
	// nothing (the poller would now wait).
	var parked, held bool
	if err := s.raw.Read(func(fd uintptr) bool {
		parked = !s.readRaw(fd)
		held = s.big != nil || s.small != nil || s.r != nil
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !parked {
		t.Fatal("the read attempt found bytes; none were sent")
	}
	if held {
		t.Fatal("a read buffer is referenced while waiting for bytes")
	}
	s.c.SetReadDeadline(time.Time{})
	client.Write(clientFrame(true, opBinary, []byte("again")))
	if err := s.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadFrame(context.Background()); err != nil || string(got) != "again" {
		t.Fatalf("frame after the wait: %q, %v", got, err)
	}
}
