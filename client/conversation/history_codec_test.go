package conversation

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
	"sotto/signal/session"
)

// historySeed is a well-formed export with every kind of record.
func historySeed(t testing.TB) *HistoryBundle {
	id, err := session.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := id.PublicKey().Serialize()
	mid := bytes.Repeat([]byte{1}, content.IDSize)
	ptr, err := proto.Marshal(&content.AttachmentPointer{BlobId: bytes.Repeat([]byte{2}, 16), Key: bytes.Repeat([]byte{3}, 32),
		Digest: bytes.Repeat([]byte{4}, 32), Size: 10, ChunkSize: 64 << 10, FileName: "a.txt"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_000).UTC()
	return &HistoryBundle{
		Settings: &SettingsRecord{Typing: true},
		Contacts: []HistoryContact{{User: "bob", Key: key, Verified: true, Bound: &Binding{Index: 7, Key: key}}, {User: "carol", Key: key, Changed: true, Previous: key}},
		Timers:   []HistoryTimer{{Peer: "carol", Seconds: 3600, AtMs: at.UnixMilli()}},
		Messages: []HistoryMessage{
			{Author: "bob", Message: &Message{ID: mid, Peer: "bob", From: "bob", SentAt: at, ServerTime: at, Text: "hi",
				Reactions: []Reaction{{From: "alice", Emoji: "👍", At: at}}}},
			{Author: "alice", Message: &Message{ID: bytes.Repeat([]byte{5}, 16), Peer: "carol", From: "alice", Outgoing: true, SentAt: at,
				Text: "file", Attachment: &Attachment{Name: "a.txt", Size: 10}, ExpireSeconds: 3600, ExpiresAt: at.Add(time.Hour)}, Pointer: ptr},
			{Author: "carol", Message: &Message{ID: bytes.Repeat([]byte{6}, 16), Peer: "carol", From: "carol", Kind: KindTimer, TimerSeconds: 60}},
		},
	}
}

func TestHistoryCodecRoundTripAndRefusals(t *testing.T) {
	t.Parallel()
	b := historySeed(t)
	enc, err := EncodeHistory(b)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeHistory(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EncodeHistory(dec)
	if err != nil || !bytes.Equal(again, enc) {
		t.Fatalf("round trip differs: %v", err)
	}
	for name, mut := range map[string]func([]byte) []byte{
		"version":   func(p []byte) []byte { p[9] = 2; return p },
		"magic":     func(p []byte) []byte { p[0] = 'X'; return p },
		"truncated": func(p []byte) []byte { return p[:len(p)-1] },
		"no end":    func(p []byte) []byte { return p[:len(p)-30] },
		"trailing":  func(p []byte) []byte { return append(p, 0) },
		"empty":     func([]byte) []byte { return nil },
	} {
		if _, err := DecodeHistory(mut(bytes.Clone(enc))); !errors.Is(err, ErrBadHistory) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, mut := range map[string]func(*HistoryBundle){
		"bad key":         func(b *HistoryBundle) { b.Contacts[0].Key = b.Contacts[0].Key[1:] },
		"unsorted":        func(b *HistoryBundle) { b.Contacts[0], b.Contacts[1] = b.Contacts[1], b.Contacts[0] },
		"bad id":          func(b *HistoryBundle) { b.Messages[0].Message.ID = []byte{1} },
		"repeated":        func(b *HistoryBundle) { b.Messages[2] = b.Messages[0] },
		"nul user":        func(b *HistoryBundle) { b.Messages[0].Message.Peer = "b\x00b" },
		"view-once key":   func(b *HistoryBundle) { b.Messages[1].Message.Attachment.ViewOnce = true },
		"path name":       func(b *HistoryBundle) { b.Messages[1].Message.Attachment.Name = "../x" },
		"timer":           func(b *HistoryBundle) { b.Timers[0].Seconds = content.MaxTimerSeconds + 1 },
		"expiry no timer": func(b *HistoryBundle) { b.Messages[1].Message.ExpireSeconds = 0 },
		"bound key":       func(b *HistoryBundle) { b.Contacts[0].Bound.Key = b.Contacts[0].Bound.Key[1:] },
		"bound no key":    func(b *HistoryBundle) { b.Contacts[0].Bound.Key = nil },
	} {
		b := historySeed(t)
		mut(b)
		enc, err := EncodeHistory(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeHistory(enc); !errors.Is(err, ErrBadHistory) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeHistory(f *testing.F) {
	enc, err := EncodeHistory(historySeed(f))
	if err != nil {
		f.Fatal(err)
	}
	empty, err := EncodeHistory(&HistoryBundle{})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := DecodeHistory(enc); err != nil {
		f.Fatalf("seed does not decode: %v", err)
	}
	if _, err := DecodeHistory(empty); err != nil {
		f.Fatalf("seed does not decode: %v", err)
	}
	older := historySeed(f) // an export from before key log bindings
	older.Contacts[0].Bound = nil
	old, err := EncodeHistory(older)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{enc, empty, old, enc[:historyHeader], append(bytes.Clone(enc), 0), []byte(historyMagic)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := DecodeHistory(p)
		if err != nil {
			if !errors.Is(err, ErrBadHistory) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What decodes re-encodes, and that decodes the same.
		re, err := EncodeHistory(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := DecodeHistory(re)
		if err != nil {
			t.Fatalf("re-encoded export refused: %v", err)
		}
		if len(b2.Messages) != len(b.Messages) || len(b2.Contacts) != len(b.Contacts) || len(b2.Timers) != len(b.Timers) {
			t.Fatal("re-encoded export differs")
		}
	})
}

// TestHistoryCodecBindings: a contact's key log binding round-trips, and
// an export written before bindings were carried (no "bound" field) still
// decodes, without one.
func TestHistoryCodecBindings(t *testing.T) {
	t.Parallel()
	b := historySeed(t)
	enc, err := EncodeHistory(b)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeHistory(enc)
	if err != nil {
		t.Fatal(err)
	}
	if g := dec.Contacts[0].Bound; g == nil || g.Index != 7 || !bytes.Equal(g.Key, b.Contacts[0].Key) || dec.Contacts[1].Bound != nil {
		t.Fatalf("bindings %+v %+v", dec.Contacts[0].Bound, dec.Contacts[1].Bound)
	}
	b.Contacts[0].Bound = nil
	enc, err = EncodeHistory(b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, []byte(`"bound"`)) {
		t.Fatal("an export without bindings names them")
	}
	if dec, err = DecodeHistory(enc); err != nil || dec.Contacts[0].Bound != nil {
		t.Fatalf("older export: %+v %v", dec, err)
	}
}

func TestFitHistoryKeepsTheNewest(t *testing.T) {
	t.Parallel()
	b := historySeed(t)
	base := time.UnixMilli(1_700_000_000_000)
	for i, m := range b.Messages {
		m.Message.ServerTime = base.Add(time.Duration(i) * time.Minute)
	}
	enc, err := EncodeHistory(b)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := FitHistory(b, len(enc)+128); err != nil || n != 0 || len(b.Messages) != 3 {
		t.Fatalf("a fitting export lost %d messages (%v)", n, err)
	}
	n, err := FitHistory(b, len(enc)-10)
	if err != nil || n == 0 {
		t.Fatalf("dropped %d (%v)", n, err)
	}
	last := b.Messages[len(b.Messages)-1].Message
	if !last.ServerTime.Equal(base.Add(2 * time.Minute)) {
		t.Fatalf("the newest message was dropped: %+v", last)
	}
	short, err := EncodeHistory(b)
	if err != nil || len(short) > len(enc)-10 {
		t.Fatalf("trimmed export of %d bytes (%v)", len(short), err)
	}
	if _, err := DecodeHistory(short); err != nil {
		t.Fatal(err)
	}
}
