package wire

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
)

func hotSeeds(t testing.TB) [][]byte {
	frames := []*Frame{
		{Kind: &Frame_Request{Request: &Request{Id: 7, Body: &Request_SendMessage{SendMessage: &SendMessageRequest{
			Recipient: "bob", MessageId: bytes.Repeat([]byte{1}, 16),
			Messages: []*OutgoingMessage{
				{DeviceId: 1, RegistrationId: 99, Type: 1, Content: bytes.Repeat([]byte("x"), 300)},
				{DeviceId: 2, RegistrationId: 1 << 31, Type: 3, Content: []byte("y")},
			}}}}}},
		{Kind: &Frame_Request{Request: &Request{Id: 1 << 40, Body: &Request_SendMessage{SendMessage: &SendMessageRequest{}}}}},
		{Kind: &Frame_Request{Request: &Request{Id: 8, Body: &Request_Ack{Ack: &AckRequest{
			EnvelopeIds: [][]byte{bytes.Repeat([]byte{2}, 16), bytes.Repeat([]byte{3}, 16), {}}}}}}},
		{Kind: &Frame_Request{Request: &Request{Body: &Request_Ack{Ack: &AckRequest{}}}}},
		{Kind: &Frame_Request{Request: &Request{Id: 10, Body: &Request_Ack{Ack: &AckRequest{
			EnvelopeIds: [][]byte{bytes.Repeat([]byte{4}, 16)}, Quiet: true}}}}},
		{Kind: &Frame_Request{Request: &Request{Id: 9, Body: &Request_Ping{Ping: &PingRequest{}}}}},
		{Kind: &Frame_Request{Request: &Request{Id: 11, Body: &Request_SealedSend{SealedSend: &SealedSendRequest{
			Recipient: "carol", MessageId: bytes.Repeat([]byte{6}, 16), AccessKey: bytes.Repeat([]byte{7}, 16),
			Messages: []*OutgoingMessage{{DeviceId: 3, RegistrationId: 5, Type: 6, Content: []byte("sealed")}}}}}}},
	}
	var out [][]byte
	for _, f := range frames {
		b, err := EncodeFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	// Shapes left to the generated code: a repeated field, an old version.
	out = append(out, append(append([]byte(nil), out[2]...), out[2][2:]...))
	old := append([]byte(nil), out[0]...)
	old[1] = 2
	return append(out, old)
}

// checkHot fails if DecodeHotRequest accepts b and disagrees with DecodeFrame.
func checkHot(t *testing.T, b []byte) bool {
	f, ok := DecodeHotRequest(b)
	if !ok {
		return false
	}
	g, err := DecodeFrame(b)
	if err != nil {
		t.Fatalf("hot path accepted what DecodeFrame rejects (%v): %x", err, b)
	}
	if !proto.Equal(f, g) {
		t.Fatalf("hot path decoded %v, DecodeFrame %v", f, g)
	}
	// The result must not alias b.
	for i := range b {
		b[i] ^= 0xff
	}
	if !proto.Equal(f, g) {
		t.Fatal("hot path result aliases its input")
	}
	return true
}

func TestDecodeHotRequest(t *testing.T) {
	seeds := hotSeeds(t)
	for i, want := range []bool{true, true, true, true, true, false, true, false, false} {
		if got := checkHot(t, append([]byte(nil), seeds[i]...)); got != want {
			t.Errorf("seed %d: hot path took it: %v, want %v", i, got, want)
		}
	}
}

func FuzzDecodeHotRequest(f *testing.F) {
	seeds := hotSeeds(f)
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkHot(t, b) })
}

// checkEncoders compares the hot encoders with the generated code.
func checkEncoders(t *testing.T, id []byte, sender string, dev uint32, ts int64, typ uint32, content, mid []byte, rid uint64, dup bool) {
	if !utf8.ValidString(sender) {
		return
	}
	same := func(got []byte, want *Frame) {
		t.Helper()
		var g Frame
		if err := proto.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		want.Version = Version
		if !proto.Equal(&g, want) {
			t.Fatalf("got %v, want %v", &g, want)
		}
		if n := proto.Size(want); n != len(got) {
			t.Fatalf("encoded %d bytes, the generated code %d", len(got), n)
		}
	}
	env := &Envelope{Id: id, Sender: sender, SenderDevice: dev, ServerTimestampMs: ts, Type: typ, Content: content, MessageId: mid}
	prefix := []byte("keep")
	b, err := AppendEnvelopePush(append([]byte(nil), prefix...), env)
	if err != nil || !bytes.HasPrefix(b, prefix) {
		t.Fatal(err)
	}
	same(b[len(prefix):], &Frame{Kind: &Frame_Push{Push: &Push{Body: &Push_Envelope{Envelope: env}}}})
	sr := &SendMessageResponse{ServerTimestampMs: ts, Duplicate: dup}
	same(AppendSendMessageResponse(nil, rid, sr), &Frame{Kind: &Frame_Response{Response: &Response{Id: rid,
		Body: &Response_SendMessage{SendMessage: sr}}}})
	same(AppendSealedSendResponse(nil, rid, sr), &Frame{Kind: &Frame_Response{Response: &Response{Id: rid,
		Body: &Response_SealedSend{SealedSend: sr}}}})
	same(AppendAckResponse(nil, rid), &Frame{Kind: &Frame_Response{Response: &Response{Id: rid,
		Body: &Response_Ack{Ack: &AckResponse{}}}}})
}

func TestHotEncoders(t *testing.T) {
	checkEncoders(t, bytes.Repeat([]byte{5}, 16), "alice", 2, 1_700_000_000_000, 1, bytes.Repeat([]byte("c"), 300), []byte("mid"), 12, false)
	checkEncoders(t, nil, "", 0, -1, 0, nil, nil, 0, true)
	if _, err := AppendEnvelopePush(nil, &Envelope{Content: make([]byte, MaxFrameSize)}); err != ErrFrameTooLarge {
		t.Fatalf("oversized push: %v", err)
	}
}

func FuzzHotEncoders(f *testing.F) {
	f.Add([]byte{1, 2}, "alice", uint32(2), int64(1_700_000_000_000), uint32(1), []byte("content"), []byte("m"), uint64(3), false)
	f.Add([]byte{}, "", uint32(0), int64(-5), uint32(0), []byte{}, []byte{}, uint64(0), true)
	f.Fuzz(checkEncoders)
}
