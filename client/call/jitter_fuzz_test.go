package call

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// A peer chooses its packets' sequence numbers and payloads: whatever it
// sends, the jitter buffer holds fewer than jitterDepth packets, plays
// each sequence number at most once between restarts, and the G.711
// player conceals without panicking.
func FuzzJitterBuffer(f *testing.F) {
	f.Add([]byte{0, 10, 0, 12, 0, 11, 0, 13})
	f.Add([]byte{255, 254, 255, 255, 0, 1, 0, 0, 0, 2})
	f.Add([]byte{0, 10, 19, 136, 0, 11, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		j := newJitterBuffer()
		rec := NewRecorder()
		pl := &player{dec: PCMU{}, sink: rec}
		var frames []*rtp.Packet
		payload := make([]byte, 160)
		for i := 0; i+2 <= len(b); i += 2 {
			seq := binary.BigEndian.Uint16(b[i:])
			payload[0] = byte(i)
			frames = j.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq}, Payload: payload}, frames[:0])
			if len(j.held) >= jitterDepth {
				t.Fatalf("%d packets held", len(j.held))
			}
			if len(frames) > maxConcealed+jitterDepth+1 {
				t.Fatalf("%d frames played at once", len(frames))
			}
			pl.play(frames)
		}
		pl.play(j.flush(frames[:0]))
		if n := len(rec.PCM()); n%160 != 0 {
			t.Fatalf("%d samples: not whole frames", n)
		}
	})
}
