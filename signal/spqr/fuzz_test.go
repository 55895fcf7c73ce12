package spqr

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// fuzzStates returns states and messages of a real conversation, one from
// every phase the Braid goes through.
func fuzzStates(t testing.TB) (states, msgs [][]byte) {
	a, b := newPair(t, Version1)
	rnd := rand.NewChaCha8([32]byte{9})
	for i := range 120 {
		m := a.send(t, rnd)
		msgs = append(msgs, m.msg)
		b.recv(t, m)
		if i%3 != 0 {
			m = b.send(t, rnd)
			msgs = append(msgs, m.msg)
			a.recv(t, m)
		}
		if i%8 == 0 {
			states = append(states, a.state, b.state)
		}
	}
	return states, msgs
}

// FuzzMessage: decodeMessage never panics, fails only with
// ErrInvalidMessage, and what it accepts re-encodes to a message that
// decodes the same.
func FuzzMessage(f *testing.F) {
	_, msgs := fuzzStates(f)
	if len(msgs) == 0 {
		f.Fatal("no seeds")
	}
	for _, m := range msgs[:40] {
		f.Add(m)
	}
	f.Add([]byte{1, 1, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, idx, err := decodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error %v", err)
			}
			return
		}
		m2, idx2, err := decodeMessage(m.encode(idx))
		if err != nil || idx2 != idx || *m2 != *m {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzRecv feeds arbitrary pq_ratchet fields to real states: no panic, the
// errors are the package's, and a failed Recv returns no state.
func FuzzRecv(f *testing.F) {
	states, msgs := fuzzStates(f)
	if len(states) == 0 || len(msgs) == 0 {
		f.Fatal("no seeds")
	}
	for i, m := range msgs[:60] {
		f.Add(uint8(i), m)
	}
	f.Fuzz(func(t *testing.T, which uint8, msg []byte) {
		s, _, err := Recv(states[int(which)%len(states)], msg)
		if err != nil {
			if s != nil {
				t.Fatal("state returned with an error")
			}
			checkErr(t, err)
		}
	})
}

// FuzzState feeds arbitrary stored states to Send and Recv.
func FuzzState(f *testing.F) {
	states, msgs := fuzzStates(f)
	if len(states) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range states {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, state []byte) {
		if _, _, _, err := Send(state, bytes.NewReader(make([]byte, 128))); err != nil {
			checkErr(t, err)
		}
		for _, m := range msgs[:4] {
			if _, _, err := Recv(state, m); err != nil {
				checkErr(t, err)
			}
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	for _, known := range []error{ErrInvalidMessage, ErrMAC, ErrState, ErrEncoding, ErrMinimumVersion,
		ErrVersionMismatch, ErrKeyJump, ErrKeyTrimmed, ErrKeyUsed, ErrEpoch} {
		if errors.Is(err, known) {
			return
		}
	}
	t.Fatalf("unknown error %v", err)
}

// FuzzDecoder: chunks of arbitrary indexes and contents never panic the
// erasure decoder, and once it yields a message it has the right length.
func FuzzDecoder(f *testing.F) {
	f.Add(uint16(96), []byte("0123456789abcdef0123456789abcdef\x00\x05"))
	f.Add(uint16(160), bytes.Repeat([]byte{7}, 34*6))
	f.Fuzz(func(t *testing.T, length uint16, chunks []byte) {
		d, err := newDecoder(int(length) &^ 1)
		if err != nil {
			t.Fatal(err)
		}
		for len(chunks) >= chunkSize+2 {
			var ch chunk
			ch.index = uint16(chunks[0])<<8 | uint16(chunks[1])
			copy(ch.data[:], chunks[2:])
			chunks = chunks[chunkSize+2:]
			d.add(ch)
			if got, ok := d.message(); ok && len(got) != int(length)&^1 {
				t.Fatalf("decoded %d bytes, want %d", len(got), length)
			}
		}
	})
}
