package main

import (
	"bytes"
	"encoding/binary"
	"io"
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// testConn is a wsConn that writes into its out buffer only (nothing is
// flushed) and reads from in.
func testConn(t testing.TB, in []byte) *wsConn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go io.Copy(io.Discard, b)
	return &wsConn{c: a, br: newConnReader(bytes.NewReader(in), 64, nil), rng: mrand.NewChaCha8([32]byte{1})}
}

// unmaskClientFrame checks one masked client frame at the start of b and
// returns its payload and the rest.
func unmaskClientFrame(t *testing.T, b []byte) ([]byte, []byte) {
	t.Helper()
	if b[0] != 0x80|opBinary || b[1]&0x80 == 0 {
		t.Fatalf("not a final masked binary frame: % x", b[:2])
	}
	n, h := int(b[1]&0x7f), 2
	switch n {
	case 126:
		n, h = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, h = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	key := [4]byte(b[h : h+4])
	p := append([]byte(nil), b[h+4:h+4+n]...)
	maskBytes(p, key)
	return p, b[h+4+n:]
}

func TestSendFrameMatchesWireProto(t *testing.T) {
	w := testConn(t, nil)
	s := &sendSpec{recipient: "load-7", deviceID: 3, regID: 8, sender: 6, runTag: 0xabcdef01, filler: bytes.Repeat([]byte{0x5a}, 280)}
	w.appendSend(300, s, 42, 123456789)
	w.appendAck(301, [][envelopeIDSize]byte{{1, 2}, {3, 4}}, true)
	p, rest := unmaskClientFrame(t, w.out)
	f, err := wire.DecodeFrame(p)
	if err != nil {
		t.Fatal(err)
	}
	req := f.GetRequest()
	sm := req.GetSendMessage()
	if req.GetId() != 300 || sm.GetRecipient() != "load-7" || len(sm.GetMessages()) != 1 {
		t.Fatalf("decoded %v", f)
	}
	m := sm.Messages[0]
	if m.DeviceId != 3 || m.RegistrationId != 8 || m.Type != 1 || len(m.Content) != 300 || !bytes.Equal(m.Content[20:], s.filler) {
		t.Fatalf("message %v", m)
	}
	if binary.BigEndian.Uint64(m.Content) != 123456789 || binary.BigEndian.Uint32(m.Content[8:]) != 6 || binary.BigEndian.Uint64(m.Content[12:]) != 42 {
		t.Fatalf("payload header % x", m.Content[:20])
	}
	if want := []byte{0, 0, 0, 6, 0xab, 0xcd, 0xef, 0x01, 0, 0, 0, 0, 0, 0, 0, 42}; !bytes.Equal(sm.MessageId, want) {
		t.Fatalf("message id % x", sm.MessageId)
	}
	// The generated code encodes the same bytes.
	want, _ := wire.EncodeFrame(f)
	if !bytes.Equal(p, want) {
		t.Fatal("hand-encoded SendMessage differs from proto.Marshal")
	}

	p, rest = unmaskClientFrame(t, rest)
	if len(rest) != 0 {
		t.Fatalf("%d trailing bytes", len(rest))
	}
	f, err = wire.DecodeFrame(p)
	if err != nil {
		t.Fatal(err)
	}
	ids := f.GetRequest().GetAck().GetEnvelopeIds()
	if f.GetRequest().GetId() != 301 || len(ids) != 2 || ids[0][0] != 1 || ids[1][1] != 4 || len(ids[1]) != 16 || !f.GetRequest().GetAck().GetQuiet() {
		t.Fatalf("ack %v", f)
	}
	if want, _ := wire.EncodeFrame(f); !bytes.Equal(p, want) {
		t.Fatal("hand-encoded Ack differs from proto.Marshal")
	}
}

func TestSealedSendFrameMatchesWireProto(t *testing.T) {
	w := testConn(t, nil)
	s := &sendSpec{recipient: "load-9", deviceID: 4, regID: 10, sender: 8, runTag: 7, filler: bytes.Repeat([]byte{1}, 100),
		accessKey: bytes.Repeat([]byte{0x42}, wire.AccessKeySize)}
	w.appendSend(17, s, 3, 99)
	p, rest := unmaskClientFrame(t, w.out)
	if len(rest) != 0 {
		t.Fatalf("%d trailing bytes", len(rest))
	}
	f, err := wire.DecodeFrame(p)
	if err != nil {
		t.Fatal(err)
	}
	ss := f.GetRequest().GetSealedSend()
	if f.GetRequest().GetId() != 17 || ss.GetRecipient() != "load-9" || !bytes.Equal(ss.GetAccessKey(), s.accessKey) ||
		len(ss.GetMessages()) != 1 || ss.Messages[0].Type != wire.EnvelopeTypeSealed || len(ss.Messages[0].Content) != 120 {
		t.Fatalf("decoded %v", f)
	}
	if want, _ := wire.EncodeFrame(f); !bytes.Equal(p, want) {
		t.Fatal("hand-encoded SealedSend differs from proto.Marshal")
	}
	var h hotFrame
	resp, _ := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Response{Response: &wire.Response{Id: 17,
		Body: &wire.Response_SealedSend{SealedSend: &wire.SendMessageResponse{ServerTimestampMs: 1, Duplicate: true}}}}})
	if err := parseHot(resp, &h); err != nil || h.kind != kindResponse || h.id != 17 || h.body != fRespSend || !h.duplicate {
		t.Fatalf("sealed send response parsed as %+v, %v", h, err)
	}
}

func hotSeeds() [][]byte {
	enc := func(f *wire.Frame) []byte {
		b, err := wire.EncodeFrame(f)
		if err != nil {
			panic(err)
		}
		return b
	}
	return [][]byte{
		enc(&wire.Frame{Kind: &wire.Frame_Response{Response: &wire.Response{Id: 77, Body: &wire.Response_SendMessage{SendMessage: &wire.SendMessageResponse{ServerTimestampMs: 5, Duplicate: true}}}}}),
		enc(&wire.Frame{Kind: &wire.Frame_Response{Response: &wire.Response{Id: 1 << 40, Body: &wire.Response_Ack{Ack: &wire.AckResponse{}}}}}),
		enc(&wire.Frame{Kind: &wire.Frame_Response{Response: &wire.Response{Id: 9, Code: wire.ErrorCode_RATE_LIMITED, Message: "slow down", RetryAfterMs: 250}}}),
		enc(&wire.Frame{Kind: &wire.Frame_Push{Push: &wire.Push{Body: &wire.Push_Envelope{Envelope: &wire.Envelope{
			Id: bytes.Repeat([]byte{7}, 16), Sender: "alice", SenderDevice: 2, ServerTimestampMs: 99, Type: 1,
			Content: []byte("hello"), MessageId: []byte{1, 2, 3},
		}}}}}),
		enc(&wire.Frame{Kind: &wire.Frame_Push{Push: &wire.Push{Body: &wire.Push_Challenge{Challenge: &wire.Challenge{Nonce: make([]byte, 32)}}}}}),
		enc(&wire.Frame{Kind: &wire.Frame_Push{Push: &wire.Push{Body: &wire.Push_QueueEmpty{QueueEmpty: &wire.QueueEmpty{}}}}}),
		// Last: TestParseHot checks the others by position.
		enc(&wire.Frame{Kind: &wire.Frame_Response{Response: &wire.Response{Id: 78, Body: &wire.Response_SealedSend{SealedSend: &wire.SendMessageResponse{ServerTimestampMs: 6}}}}}),
	}
}

func TestParseHot(t *testing.T) {
	seeds := hotSeeds()
	var f hotFrame
	if err := parseHot(seeds[0], &f); err != nil || f.kind != kindResponse || f.id != 77 || f.body != fRespSend || !f.duplicate || f.code != wire.ErrorCode_OK {
		t.Fatalf("send response: %+v %v", f, err)
	}
	if err := parseHot(seeds[1], &f); err != nil || f.kind != kindResponse || f.id != 1<<40 || f.body != fRespAck {
		t.Fatalf("ack response: %+v %v", f, err)
	}
	if err := parseHot(seeds[2], &f); err != nil || f.code != wire.ErrorCode_RATE_LIMITED || f.retryAfterMs != 250 || string(f.message) != "slow down" || f.body != 0 {
		t.Fatalf("error response: %+v %v", f, err)
	}
	if err := parseHot(seeds[3], &f); err != nil || f.kind != kindEnvelope || string(f.sender) != "alice" || f.senderDevice != 2 ||
		string(f.content) != "hello" || len(f.envID) != 16 || !bytes.Equal(f.messageID, []byte{1, 2, 3}) {
		t.Fatalf("envelope: %+v %v", f, err)
	}
	if err := parseHot(seeds[len(seeds)-1], &f); err != nil || f.kind != kindResponse || f.id != 78 || f.body != fRespSend {
		t.Fatalf("sealed send response: %+v %v", f, err)
	}
	for _, s := range seeds[4 : len(seeds)-1] {
		if err := parseHot(s, &f); err != nil || f.kind != kindOther {
			t.Fatalf("other push: %+v %v", f, err)
		}
	}
	if err := parseHot([]byte{0x08, 0x02, 0x1a, 0x00}, &f); err == nil {
		t.Fatal("accepted protocol version 2")
	}
	if err := parseHot([]byte{0x08, 0x01, 0x1a, 0x05, 0x08}, &f); err == nil {
		t.Fatal("accepted a truncated frame")
	}
	if n := testing.AllocsPerRun(100, func() { parseHot(seeds[3], &f); parseHot(seeds[0], &f) }); n != 0 {
		t.Fatalf("parseHot allocates %.1f times", n)
	}
	w := testConn(t, nil)
	s := &sendSpec{recipient: "r", filler: make([]byte, 280)}
	if n := testing.AllocsPerRun(100, func() {
		w.out = w.out[:0]
		w.appendSend(5, s, 1, 1)
		w.appendAck(6, make([][16]byte, 3), false)
	}); n != 0 {
		t.Fatalf("encoding allocates %.1f times", n)
	}
}

// FuzzParseHot checks the in-place decoder against the generated code on
// arbitrary bytes: it never panics, and wherever proto.Unmarshal reads a
// canonical frame, both agree.
func FuzzParseHot(f *testing.F) {
	seeds := hotSeeds()
	if len(seeds) < 6 {
		f.Fatal("seeds did not load")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var h hotFrame
		err := parseHot(b, &h)
		w, werr := wire.DecodeFrame(b)
		if werr != nil {
			return
		}
		if again, _ := (proto.MarshalOptions{Deterministic: true}).Marshal(w); !bytes.Equal(again, b) {
			return // not canonical: repeated or unknown fields, where merging differs
		}
		if err != nil && (w.GetResponse() != nil || w.GetPush() != nil) {
			t.Fatalf("rejected a valid frame: %v", err)
		}
		if r := w.GetResponse(); r != nil {
			if h.kind != kindResponse || h.id != r.Id || h.code != r.Code || h.retryAfterMs != r.RetryAfterMs ||
				h.duplicate != r.GetSendMessage().GetDuplicate() {
				t.Fatalf("response %v decoded as %+v", r, h)
			}
		}
		if e := w.GetPush().GetEnvelope(); e != nil {
			if h.kind != kindEnvelope || !bytes.Equal(h.envID, e.Id) || string(h.sender) != e.Sender ||
				!bytes.Equal(h.content, e.Content) || h.senderDevice != e.SenderDevice || !bytes.Equal(h.messageID, e.MessageId) {
				t.Fatalf("envelope %v decoded as %+v", e, h)
			}
		}
	})
}

// serverFrame is an unmasked frame as the relay sends it.
func serverFrame(op byte, fin bool, p []byte) []byte {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	switch {
	case len(p) < 126:
		b = append(b, byte(len(p)))
	case len(p) <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	}
	return append(b, p...)
}

func TestWSNext(t *testing.T) {
	big := bytes.Repeat([]byte{9}, 1000) // larger than the 64-byte test buffer
	var in []byte
	in = append(in, serverFrame(opBinary, true, []byte("small"))...)
	in = append(in, serverFrame(opPing, true, []byte("p"))...)
	in = append(in, serverFrame(opBinary, true, big)...)
	in = append(in, serverFrame(opBinary, false, []byte("frag"))...)
	in = append(in, serverFrame(opContinue, true, []byte("ment"))...)
	in = append(in, serverFrame(opClose, true, []byte{3, 232})...)
	w := testConn(t, in)
	for _, want := range [][]byte{[]byte("small"), big, []byte("fragment")} {
		p, err := w.next()
		if err != nil || !bytes.Equal(p, want) {
			t.Fatalf("got %q, %v; want %d bytes", p[:min(len(p), 20)], err, len(want))
		}
	}
	if _, err := w.next(); err != errWSClosed {
		t.Fatalf("after a close frame: %v", err)
	}
	// A masked server frame is a protocol error.
	w = testConn(t, []byte{0x82, 0x81, 1, 2, 3, 4, 5})
	if _, err := w.next(); err != errWSProtocol {
		t.Fatalf("masked server frame: %v", err)
	}
}

// takeAll feeds in to take in chunks of the given size, as serve does
// after each read, and returns the messages.
func takeAll(t testing.TB, in []byte, chunk int) ([][]byte, error) {
	w := testConn(t, nil)
	cr := w.br
	var got [][]byte
	for {
		for {
			p, ok, err := w.take()
			if err != nil {
				return got, err
			}
			if !ok {
				break
			}
			got = append(got, append([]byte(nil), p...))
		}
		if len(in) == 0 {
			return got, nil
		}
		if cr.r == cr.w {
			cr.r, cr.w = 0, 0
		} else if len(cr.buf)-cr.w < len(cr.buf)/4 {
			cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
			cr.r = 0
		}
		n := copy(cr.buf[cr.w:], in[:min(chunk, len(in))])
		if n == 0 {
			t.Fatal("no room in the read buffer")
		}
		cr.w += n
		in = in[n:]
	}
}

func TestWSTake(t *testing.T) {
	big := bytes.Repeat([]byte{9}, 1000) // larger than the 64-byte test buffer
	var in []byte
	in = append(in, serverFrame(opBinary, true, []byte("small"))...)
	in = append(in, serverFrame(opPing, true, []byte("p"))...)
	in = append(in, serverFrame(opBinary, true, big)...)
	in = append(in, serverFrame(opBinary, false, []byte("frag"))...)
	in = append(in, serverFrame(opContinue, true, []byte("ment"))...)
	in = append(in, serverFrame(opBinary, true, []byte("last"))...)
	in = append(in, serverFrame(opClose, true, []byte{3, 232})...)
	for _, chunk := range []int{1, 3, 7, 64, 5000} {
		got, err := takeAll(t, in, chunk)
		if err != errWSClosed || len(got) != 4 || string(got[0]) != "small" || !bytes.Equal(got[1], big) ||
			string(got[2]) != "fragment" || string(got[3]) != "last" {
			t.Fatalf("chunks of %d: %d messages, %v", chunk, len(got), err)
		}
	}
}

// FuzzWSNext feeds arbitrary bytes to the frame reader: it must not
// panic, and never returns more than wire.MaxFrameSize bytes.
func FuzzWSNext(f *testing.F) {
	f.Add(serverFrame(opBinary, true, []byte("hello")))
	f.Add(append(serverFrame(opBinary, false, []byte("a")), serverFrame(opContinue, true, []byte("b"))...))
	f.Add(serverFrame(opPing, true, nil))
	f.Add([]byte{0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		w := testConn(t, b)
		var pulled [][]byte
		for range 16 {
			p, err := w.next()
			if err != nil {
				break
			}
			if len(p) > wire.MaxFrameSize {
				t.Fatalf("%d-byte message", len(p))
			}
			pulled = append(pulled, append([]byte(nil), p...))
		}
		// take, fed in pieces, finds the same messages.
		taken, _ := takeAll(t, b, 5)
		for i := range min(len(pulled), len(taken)) {
			if !bytes.Equal(pulled[i], taken[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
	})
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Millisecond / 10) // 0.1 ms .. 1 s
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 500 * time.Millisecond}, {.99, 990 * time.Millisecond}, {.999, 999 * time.Millisecond}, {.01, 10 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.02 {
			t.Errorf("q%v = %v, want %v (+2%%)", c.q, got, c.want)
		}
	}
	if h.quantile(1) != time.Second || h.n.Load() != 10000 {
		t.Fatalf("max %v, n %d", h.quantile(1), h.n.Load())
	}
	for us := range uint64(1 << 20) {
		if i := histIndex(us); histUpper(i) < us || (i > 0 && histUpper(i-1) >= us) {
			t.Fatalf("%d us in bucket %d (upper %d)", us, i, histUpper(i))
		}
	}
}
