package content

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

func messagingSamples(tb testing.TB) []*Content {
	tb.Helper()
	now := time.UnixMilli(1_700_000_000_000)
	target := make([]byte, IDSize)
	var out []*Content
	add := func(c *Content, err error) {
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, c)
	}
	add(NewReaction("alice", target, "👍", false, now))
	add(NewReaction("bob", target, "❤️", true, now))
	add(NewEdit(target, "corrected text", now))
	add(NewDelete(target, now))
	add(NewTyping(true, now))
	add(NewTimerChange(time.Hour, now))
	add(NewTimerChange(0, now))
	c, err := NewText("disappearing", &Quote{Id: target, Author: "bob", Text: "quoted"}, now)
	if err != nil {
		tb.Fatal(err)
	}
	c.GetText().ExpireSeconds = 30
	out = append(out, c)
	edit, err := NewEdit(target, "synced edit", now)
	if err != nil {
		tb.Fatal(err)
	}
	out = append(out, NewSyncSent("bob", edit))
	return out
}

func TestMessagingKindsRoundTrip(t *testing.T) {
	for _, c := range messagingSamples(t) {
		enc, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(enc)
		if err != nil || !proto.Equal(c, got) {
			t.Fatalf("round trip of %T: %v", c.Body, err)
		}
	}
}

func TestMessagingKindsRejected(t *testing.T) {
	now := time.Now()
	target := make([]byte, IDSize)
	for name, fn := range map[string]func() (*Content, error){
		"no emoji": func() (*Content, error) { return NewReaction("a", target, "", false, now) },
		"long emoji": func() (*Content, error) {
			return NewReaction("a", target, strings.Repeat("x", MaxEmojiBytes+1), false, now)
		},
		"no author":      func() (*Content, error) { return NewReaction("", target, "x", false, now) },
		"short target":   func() (*Content, error) { return NewEdit(target[:3], "x", now) },
		"delete no id":   func() (*Content, error) { return NewDelete(nil, now) },
		"timer too long": func() (*Content, error) { return NewTimerChange((MaxTimerSeconds+1)*time.Second, now) },
	} {
		if _, err := fn(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecodeMessaging fuzzes Decode from the messaging kinds.
func FuzzDecodeMessaging(f *testing.F) {
	seeds := messagingSamples(f)
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
		if c2, err := Decode(enc); err != nil || !proto.Equal(c, c2) {
			t.Fatalf("re-decode mismatch: %v", err)
		}
	})
}
