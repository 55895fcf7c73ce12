package wire

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

func seedFrames(t testing.TB) [][]byte {
	frames := []*Frame{
		{Kind: &Frame_Request{Request: &Request{Id: 1, Body: &Request_Ping{Ping: &PingRequest{}}}}},
		{Kind: &Frame_Request{Request: &Request{Id: 7, Body: &Request_SendMessage{SendMessage: &SendMessageRequest{
			Recipient: "bob", MessageId: bytes.Repeat([]byte{1}, 16),
			Messages: []*OutgoingMessage{{DeviceId: 1, RegistrationId: 42, Type: 3, Content: []byte("opaque")}},
		}}}}},
		{Kind: &Frame_Response{Response: &Response{Id: 7, Code: ErrorCode_STALE_DEVICES, Stale: &StaleDevices{Missing: []uint32{2}}}}},
		{Kind: &Frame_Push{Push: &Push{Body: &Push_Challenge{Challenge: &Challenge{Nonce: make([]byte, NonceSize)}}}}},
		{Kind: &Frame_Push{Push: &Push{Body: &Push_Envelope{Envelope: &Envelope{Id: make([]byte, 16), Sender: "alice", SenderDevice: 1, Content: []byte("x")}}}}},
	}
	var out [][]byte
	for _, f := range frames {
		b, err := EncodeFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestDecodeFrame(t *testing.T) {
	for _, b := range seedFrames(t) {
		f, err := DecodeFrame(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		b2, err := EncodeFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(f, mustDecode(t, b2)) {
			t.Fatal("round trip changed the frame")
		}
	}
	if _, err := DecodeFrame(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized: got %v", err)
	}
	if _, err := DecodeFrame([]byte{0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: got %v", err)
	}
	old, _ := proto.Marshal(&Frame{Version: 99, Kind: &Frame_Request{Request: &Request{Id: 5}}})
	f, err := DecodeFrame(old)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Got != 99 || f.GetRequest().GetId() != 5 {
		t.Fatalf("version: got %v %v", f, err)
	}
	empty, _ := proto.Marshal(&Frame{Version: Version})
	if _, err := DecodeFrame(empty); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("empty: got %v", err)
	}
}

func TestTranscriptsAreDistinct(t *testing.T) {
	n := make([]byte, NonceSize)
	a := AuthTranscript(n, "alice", 1)
	e := EnrollTranscript(n, "alice", nil, nil, 1)
	l := LinkTranscript(n, "alice", nil, nil, 1)
	if bytes.Equal(a, e) || bytes.Equal(e, l) || bytes.Equal(a, l) {
		t.Fatal("transcripts collide across domains")
	}
	if bytes.Equal(AuthTranscript(n, "ab", 1), AuthTranscript(append(n, 'a'), "b", 1)) {
		t.Fatal("field boundaries are ambiguous")
	}
}

func mustDecode(t testing.TB, b []byte) *Frame {
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func FuzzDecodeFrame(f *testing.F) {
	seeds := seedFrames(f)
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			var ve *VersionError
			if !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrEmptyFrame) && !errors.As(err, &ve) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		enc, err := EncodeFrame(fr)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				return
			}
			t.Fatal(err)
		}
		again, err := DecodeFrame(enc)
		if err != nil || !proto.Equal(fr, again) {
			t.Fatalf("re-decode mismatch: %v", err)
		}
	})
}
