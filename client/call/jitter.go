package call

import (
	"math"

	"github.com/pion/rtp"
)

// The receive side: a jitter buffer, loss concealment and Opus FEC.
//
// Packets are played in RTP sequence order. One that arrives early (its
// predecessor is missing) waits in the buffer; the missing one is declared
// lost once jitterDepth later packets are held, i.e. after about
// jitterDepth×20 ms, and concealed: over Opus by the FEC copy of it that
// the next packet carries (the encoder sends in-band FEC), else by the
// decoder's own loss concealment; over G.711 by repeating the last pitch
// period, fading out (concealG711). A packet older than the one last
// played is dropped. So the audio keeps its timeline whatever the
// network does, which the sink (a WAV file, a sound card) relies on.

// jitterDepth is how many later packets wait for a missing one.
const jitterDepth = 3

// maxConcealed is the longest gap concealed frame by frame (500 ms); a
// longer jump in sequence numbers (a new stream, a long outage) restarts
// the buffer at the new packet.
const maxConcealed = 25

// jitterBuffer orders packets by sequence number.
type jitterBuffer struct {
	started bool
	next    uint16 // the sequence number to play next
	held    map[uint16]*rtp.Packet
}

func newJitterBuffer() *jitterBuffer { return &jitterBuffer{held: map[uint16]*rtp.Packet{}} }

// push adds p and returns what can be played now, in order: packets, and
// nil for each one given up as lost.
func (j *jitterBuffer) push(p *rtp.Packet, out []*rtp.Packet) []*rtp.Packet {
	if !j.started {
		j.started, j.next = true, p.SequenceNumber
	}
	d := int16(p.SequenceNumber - j.next)
	switch {
	case d < 0:
		return out // late or a duplicate: its slot was played or concealed
	case int(d) > maxConcealed:
		clear(j.held)
		j.next = p.SequenceNumber
	}
	j.held[p.SequenceNumber] = p
	for len(j.held) > 0 {
		if q, ok := j.held[j.next]; ok {
			delete(j.held, j.next)
			out = append(out, q)
			j.next++
			continue
		}
		if len(j.held) < jitterDepth {
			break
		}
		out = append(out, nil) // waited long enough: lost
		j.next++
	}
	return out
}

// flush returns what is still held, gaps concealed, at the stream's end.
func (j *jitterBuffer) flush(out []*rtp.Packet) []*rtp.Packet {
	for len(j.held) > 0 {
		q, ok := j.held[j.next]
		if ok {
			delete(j.held, j.next)
		}
		out = append(out, q)
		j.next++
	}
	return out
}

// concealer is a codec whose decoder conceals a lost frame itself (Opus).
type concealer interface {
	// Conceal appends n samples standing in for a lost frame.
	Conceal(dst []int16, n int) []int16
	// Recover appends the lost frame before next from next's in-band FEC
	// data, n samples; false if next carries none.
	Recover(dst []int16, next []byte, n int) ([]int16, bool)
}

// player decodes played packets into the sink and conceals lost ones.
type player struct {
	dec   Codec
	sink  Sink
	plain bool // tests only: the old pipeline (no concealment)
	pcm   []int16
	last  []int16 // the last frame played, for G.711 concealment
	lost  int     // frames concealed in a row
	frame int     // samples per frame, from the first decoded one

	// Counts, for tests and benchmarks.
	played, concealed, recovered int
}

// play decodes frames (packets, nil for a lost one) into the sink.
func (p *player) play(frames []*rtp.Packet) {
	for i, f := range frames {
		if f != nil {
			p.pcm = p.dec.Decode(p.pcm[:0], f.Payload)
			if len(p.pcm) > 0 && p.frame == 0 {
				p.frame = len(p.pcm)
			}
			p.out(false)
			p.played++
			continue
		}
		if p.frame == 0 || p.plain {
			continue // nothing heard yet to conceal from
		}
		p.pcm = p.pcm[:0]
		cc, ok := p.dec.(concealer)
		recovered := false
		if ok && i+1 < len(frames) && frames[i+1] != nil {
			p.pcm, recovered = cc.Recover(p.pcm, frames[i+1].Payload, p.frame)
		}
		switch {
		case recovered:
			p.recovered++
		case ok:
			p.pcm = cc.Conceal(p.pcm, p.frame)
			p.concealed++
		default:
			p.pcm = concealG711(p.pcm, p.last, p.lost, p.frame)
			p.concealed++
		}
		p.out(!recovered)
	}
}

// out hands the decoded frame to the sink.
func (p *player) out(concealed bool) {
	if len(p.pcm) == 0 {
		return
	}
	if concealed {
		p.lost++
	} else {
		p.lost = 0
		p.last = append(p.last[:0], p.pcm...)
	}
	p.sink.WriteFrame(p.pcm)
}

// concealG711 appends n samples standing in for the k-th lost frame in a
// row after last (the last frame received): last's final pitch period
// repeated, in phase, fading out over five frames (after G.711 Appendix I,
// simplified).
func concealG711(dst, last []int16, k, n int) []int16 {
	if len(last) < n {
		return append(dst, make([]int16, n)...)
	}
	period := pitchPeriod(last)
	start := len(last) - period
	for i := range n {
		pos := k*n + i // samples since the loss began
		gain := 1 - float64(pos)/float64(5*n)
		if gain <= 0 {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, int16(float64(last[start+pos%period])*gain))
	}
	return dst
}

// pitchPeriod is the lag, 2.5 to 15 ms, at which x best matches itself (at
// least one period for unvoiced sound).
func pitchPeriod(x []int16) int {
	n := len(x)
	minLag, maxLag := n/8, min(n*3/4, n-1) // 20 ms frames: 2.5 ms, 15 ms
	best, bestLag := -1.0, maxLag
	for lag := minLag; lag <= maxLag; lag++ {
		var num, e1, e2 float64
		for i := lag; i < n; i++ {
			a, b := float64(x[i]), float64(x[i-lag])
			num += a * b
			e1 += a * a
			e2 += b * b
		}
		if e1 == 0 || e2 == 0 {
			continue
		}
		if c := num / math.Sqrt(e1*e2); c > best {
			best, bestLag = c, lag
		}
	}
	return bestLag
}
