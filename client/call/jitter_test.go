package call

import (
	"slices"
	"testing"

	"github.com/pion/rtp"
)

// seqs returns the sequence numbers of played frames, -1 for a lost one.
func seqs(ps []*rtp.Packet) []int {
	var out []int
	for _, p := range ps {
		if p == nil {
			out = append(out, -1)
		} else {
			out = append(out, int(p.SequenceNumber))
		}
	}
	return out
}

func TestJitterBufferOrdersAndConcealsGaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []uint16
		want []int
	}{
		{"in order", []uint16{10, 11, 12}, []int{10, 11, 12}},
		{"swapped", []uint16{10, 12, 11, 13}, []int{10, 11, 12, 13}},
		{"late beyond the depth", []uint16{10, 12, 13, 14, 11, 15}, []int{10, -1, 12, 13, 14, 15}},
		{"lost", []uint16{10, 12, 13, 14, 15}, []int{10, -1, 12, 13, 14, 15}},
		{"two lost", []uint16{10, 13, 14, 15, 16}, []int{10, -1, -1, 13, 14, 15, 16}},
		{"duplicate", []uint16{10, 11, 11, 12}, []int{10, 11, 12}},
		{"wraps", []uint16{65534, 65535, 1, 0, 2}, []int{65534, 65535, 0, 1, 2}},
		{"a new stream", []uint16{10, 11, 5000, 5001}, []int{10, 11, 5000, 5001}},
		{"flushed at the end", []uint16{10, 12}, []int{10, -1, 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJitterBuffer()
			var got []*rtp.Packet
			for _, s := range tc.in {
				got = j.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: s}}, got)
			}
			got = j.flush(got)
			if g := seqs(got); !slices.Equal(g, tc.want) {
				t.Errorf("played %v, want %v", g, tc.want)
			}
		})
	}
}

// A lost G.711 frame of a steady tone is concealed by the tone itself, in
// phase, not by silence.
func TestConcealG711ContinuesTheTone(t *testing.T) {
	x := tone(60*FrameDuration/20, 440) // 60 ms
	n := 160
	last, lost := x[n:2*n], x[2*n:3*n]
	got := concealG711(nil, last, 0, n)
	if s := snr(lost, got); s < 6 {
		t.Errorf("concealment of a 440 Hz tone: SNR %.1f dB, want >= 6", s)
	}
	if s := snr(lost, make([]int16, n)); s > 0.1 {
		t.Fatalf("silence scored %.1f dB", s)
	}
}
