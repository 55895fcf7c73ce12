package groups

import (
	"errors"
	"testing"
	"time"

	"sotto/client/content"
)

var testTime = time.UnixMilli(1_700_000_000_000)

// Messages of older builds (a type byte, then the text) still read.
func TestDecodePayloadLegacy(t *testing.T) {
	ct, text, err := decodePayload(append([]byte{payloadText}, "from an older build"...))
	if err != nil || ct != nil || text != "from an older build" {
		t.Fatalf("%v %v %q", ct, err, text)
	}
	if _, _, err := decodePayload([]byte{payloadText, 0xff}); err == nil {
		t.Fatal("legacy text that is not UTF-8 accepted")
	}
}

func encodeSeed(t testing.TB, ct *content.Content) []byte {
	b, err := content.Encode(ct)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedContents(t testing.TB) [][]byte {
	text, err := content.NewText("hi @bob", nil, testTime)
	if err != nil {
		t.Fatal(err)
	}
	text.GetText().Mentions = []string{"bob"}
	text.EpochCheck = &content.EpochCheck{Epoch: 3, Authenticator: make([]byte, epochCheckSize)}
	react, err := content.NewReaction("alice", make([]byte, 16), "👍", false, testTime)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{encodeSeed(t, text), encodeSeed(t, react), append([]byte{payloadText}, "old"...)}
}

// Group fields are checked beyond content.Decode's checks.
func TestDecodePayloadChecks(t *testing.T) {
	for name, mutate := range map[string]func(*content.Content){
		"epoch check size": func(c *content.Content) { c.EpochCheck = &content.EpochCheck{Epoch: 1, Authenticator: []byte{1}} },
		"timer":            func(c *content.Content) { c.ExpireSeconds = content.MaxTimerSeconds + 1 },
		"empty mention":    func(c *content.Content) { c.GetText().Mentions = []string{""} },
		"many mentions":    func(c *content.Content) { c.GetText().Mentions = make([]string, MaxMentions+1) },
	} {
		ct, err := content.NewText("x", nil, testTime)
		if err != nil {
			t.Fatal(err)
		}
		mutate(ct)
		if _, _, err := decodePayload(encodeSeed(t, ct)); !errors.Is(err, content.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, b := range seedContents(t) {
		if _, _, err := decodePayload(b); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzDecodePayload: a group message's plaintext comes from any member.
func FuzzDecodePayload(f *testing.F) {
	seeds := seedContents(f)
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ct, text, err := decodePayload(b)
		if err != nil {
			if ct != nil || text != "" {
				t.Fatal("an error with a result")
			}
			return
		}
		if ct != nil {
			if _, err := content.Encode(ct); err != nil {
				t.Fatalf("decoded content does not encode: %v", err)
			}
		}
	})
}
