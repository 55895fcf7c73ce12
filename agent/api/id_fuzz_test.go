package api

import (
	"bytes"
	"testing"
)

// ParseID reads ids from request paths: anything is refused or round
// trips.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"00112233445566778899aabbccddeeff", "", "zz", "0", "AB", "../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		b, _ := id.MarshalText()
		again, err := ParseID(string(b))
		if err != nil || !bytes.Equal(again, id) {
			t.Fatalf("%q: round trip %q, %v", s, b, err)
		}
	})
}

// Stream.Next reads the agent's event stream: any bytes give events or
// an error, never a panic.
func FuzzStreamNext(f *testing.F) {
	f.Add([]byte("id: 1\nevent: idle\ndata: {\"seq\":1,\"type\":\"idle\"}\n\n: ping\n\n"))
	f.Add([]byte("data: {\n\n"))
	f.Add([]byte("data: {\"type\":\"message\",\"message\":{\"id\":\"zz\"}}\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st := newStream(nopCloser{bytes.NewReader(b)})
		for range 100 {
			if _, err := st.Next(); err != nil {
				return
			}
		}
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
