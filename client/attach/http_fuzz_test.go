package attach

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParseCreated feeds the relay's answer to a blob create: a blob id
// of IDSize bytes or ErrBadResponse, never a panic, and an accepted id
// reads back from its canonical encoding.
func FuzzParseCreated(f *testing.F) {
	// What relay/blobs.go's serveCreate writes (json.Encoder, so with a
	// newline).
	real := func(id string) []byte {
		var b bytes.Buffer
		json.NewEncoder(&b).Encode(struct {
			ID      string `json:"id"`
			Expires int64  `json:"expires_ms"`
		}{id, 1_800_086_400_000})
		return b.Bytes()
	}
	good := real("00112233445566778899aabbccddeeff")
	if id, err := parseCreated(bytes.NewReader(good)); err != nil || hex.EncodeToString(id) != "00112233445566778899aabbccddeeff" {
		f.Fatalf("the relay's answer does not load: %x %v", id, err)
	}
	for _, s := range [][]byte{
		good,
		real("00112233445566778899AABBCCDDEEFF"),
		real("0011"),
		real(""),
		[]byte(`{"id":1}`),
		[]byte(`{"id":"` + strings.Repeat("00", 3000) + `"}`),
		[]byte("null"),
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseCreated(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(id) != IDSize {
			t.Fatalf("id of %d bytes", len(id))
		}
		again, err := parseCreated(bytes.NewReader(real(hex.EncodeToString(id))))
		if err != nil || !bytes.Equal(again, id) {
			t.Fatalf("round trip: %x %v", again, err)
		}
	})
}
