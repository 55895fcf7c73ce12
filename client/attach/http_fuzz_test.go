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
// of IDSize bytes and a write key of WriteKeySize bytes, or
// ErrBadResponse, never a panic, and an accepted answer reads back from
// its canonical encoding.
func FuzzParseCreated(f *testing.F) {
	// What relay/blobs.go's serveCreate writes (json.Encoder, so with a
	// newline).
	const wk = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	real := func(id, key string) []byte {
		var b bytes.Buffer
		json.NewEncoder(&b).Encode(struct {
			ID       string `json:"id"`
			WriteKey string `json:"write_key"`
			Expires  int64  `json:"expires_ms"`
		}{id, key, 1_800_086_400_000})
		return b.Bytes()
	}
	good := real("00112233445566778899aabbccddeeff", wk)
	if id, key, err := parseCreated(bytes.NewReader(good)); err != nil || hex.EncodeToString(id) != "00112233445566778899aabbccddeeff" || hex.EncodeToString(key) != wk {
		f.Fatalf("the relay's answer does not load: %x %x %v", id, key, err)
	}
	for _, s := range [][]byte{
		good,
		real("00112233445566778899AABBCCDDEEFF", wk),
		real("00112233445566778899aabbccddeeff", wk[:62]),
		real("00112233445566778899aabbccddeeff", ""),
		real("0011", wk),
		real("", wk),
		[]byte(`{"id":1}`),
		[]byte(`{"id":"` + strings.Repeat("00", 3000) + `"}`),
		[]byte("null"),
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, key, err := parseCreated(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(id) != IDSize || len(key) != WriteKeySize {
			t.Fatalf("id of %d bytes, write key of %d", len(id), len(key))
		}
		again, key2, err := parseCreated(bytes.NewReader(real(hex.EncodeToString(id), hex.EncodeToString(key))))
		if err != nil || !bytes.Equal(again, id) || !bytes.Equal(key2, key) {
			t.Fatalf("round trip: %x %x %v", again, key2, err)
		}
	})
}
