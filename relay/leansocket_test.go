package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
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
