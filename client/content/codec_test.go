package content

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

func samples(t testing.TB) []*Content {
	now := time.Unix(1700000000, 0)
	text, err := NewText("hello, world", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := NewText("yes", &Quote{Id: text.Id, Author: "alice", Text: "hello"}, now)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := NewDeliveryReceipt([][]byte{text.Id, reply.Id}, now)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := NewReadReceipt([][]byte{text.Id}, now)
	if err != nil {
		t.Fatal(err)
	}
	wipe, err := NewWipeOrder(2, now)
	if err != nil {
		t.Fatal(err)
	}
	state, err := NewProfileKeyStateOrder(now)
	if err != nil {
		t.Fatal(err)
	}
	state.ProfileKey = make([]byte, 32)
	state.ProfileKeyState = &ProfileKeyState{Epoch: 3, Revocations: []*Revocation{{User: "mallory", Epoch: 2, Revoked: true}, {User: "eve", Epoch: 3}}}
	return []*Content{text, reply, dr, rr, NewSyncSent("bob", reply), wipe, state}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range samples(t) {
		enc, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc)%PadBlock != 0 {
			t.Fatalf("encoded length %d not a multiple of %d", len(enc), PadBlock)
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, c) {
			t.Fatalf("round trip: got %v want %v", got, c)
		}
	}
}

func TestPaddingHidesLength(t *testing.T) {
	now := time.Now()
	a, _ := NewText("hi", nil, now)
	b, _ := NewText("a somewhat longer message, still short", nil, now)
	ea, _ := Encode(a)
	eb, _ := Encode(b)
	if len(ea) != len(eb) {
		t.Fatalf("short texts padded to different lengths %d and %d", len(ea), len(eb))
	}
}

func TestNewerVersionRejected(t *testing.T) {
	c := samples(t)[0]
	c.Version = Version + 1
	b, _ := proto.Marshal(c)
	p, _ := Pad(b)
	_, err := Decode(p)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Version != Version+1 {
		t.Fatalf("got %v, want VersionError", err)
	}
}

func TestInvalid(t *testing.T) {
	good, _ := Encode(samples(t)[0])
	cases := map[string][]byte{
		"empty":       nil,
		"no marker":   bytes.Repeat([]byte{0}, PadBlock),
		"bad trailer": append(good[:len(good)-1:len(good)-1], 1),
		"garbage":     {0xff, 0xff, 0x80},
	}
	noID := samples(t)[0]
	noID.Id = nil
	b, _ := proto.Marshal(noID)
	cases["no id"], _ = Pad(b)
	nested := NewSyncSent("bob", NewSyncSent("carol", samples(t)[0]))
	b, _ = proto.Marshal(nested)
	cases["nested sync"], _ = Pad(b)
	for name, in := range cases {
		if _, err := Decode(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	seeds := samples(f)
	if len(seeds) == 0 {
		f.Fatal("content: empty seed corpus")
	}
	for _, c := range seeds {
		enc, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Decode(in)
		if err != nil {
			var ve *VersionError
			if !errors.Is(err, ErrInvalid) && !errors.As(err, &ve) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		enc, err := Encode(c)
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		c2, err := Decode(enc)
		if err != nil || !proto.Equal(c, c2) {
			t.Fatalf("re-decode mismatch: %v", err)
		}
	})
}
