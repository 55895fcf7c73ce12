package call

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// The call's media loops: audio out on a monotonic schedule, audio in
// through the jitter buffer.

// send paces audio frames to the peer until the call ends, on a
// monotonic schedule (pace.go).
func (c *Call) send() {
	defer c.wg.Done()
	c.mu.Lock()
	codec := c.codec
	c.mu.Unlock()
	n := int(codec.ClockRate()) * int(FrameDuration/time.Millisecond) / 1000
	frame := make([]int16, n)
	var payload []byte
	write := func(skipped int) bool {
		for range skipped { // frames the schedule gave up: the source moves on
			c.source.ReadFrame(frame)
		}
		c.source.ReadFrame(frame)
		c.mu.Lock()
		muted, track := c.muted, c.track
		c.mu.Unlock()
		if muted {
			clear(frame)
		}
		payload = codec.Encode(payload[:0], frame)
		if c.m.stallSend.Load() {
			return true
		}
		return track.WriteSample(media.Sample{Data: payload, Duration: FrameDuration, PrevDroppedPackets: uint16(skipped)}) == nil
	}
	pace(c.stop, time.Now(), &c.sent, write, func(k int) {
		c.m.log.Warn("call: the sender fell behind; audio skipped", "frames", k)
	})
}

// receive plays the peer's audio into the sink until the call ends,
// through the jitter buffer and loss concealment (jitter.go).
func (c *Call) receive(tr *webrtc.TrackRemote) {
	params := tr.Codec()
	dec := newCodec(params.MimeType)
	if dec == nil {
		c.m.log.Warn("call: peer sends an unsupported codec", "mime", params.MimeType)
		return
	}
	read := func() (*rtp.Packet, error) {
		p, _, err := tr.ReadRTP()
		return p, err
	}
	if c.m.netem != nil {
		read = c.m.netem(read)
	}
	jb := newJitterBuffer()
	pl := &player{dec: dec, sink: c.sink, plain: c.m.plainReceive}
	var frames []*rtp.Packet
	for {
		p, err := read()
		if err != nil {
			break
		}
		if p.PayloadType != uint8(params.PayloadType) {
			continue
		}
		c.heard()
		if pl.plain {
			pl.play([]*rtp.Packet{p})
			continue
		}
		frames = jb.push(p, frames[:0])
		pl.play(frames)
	}
	pl.play(jb.flush(frames[:0]))
	c.mu.Lock()
	c.rx = receiveStats{Played: pl.played, Concealed: pl.concealed, Recovered: pl.recovered}
	c.mu.Unlock()
}

// receiveStats counts what the receive side played.
type receiveStats struct {
	Played, Concealed, Recovered int // frames decoded, concealed, recovered by FEC
}
