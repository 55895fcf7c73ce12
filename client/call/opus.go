//go:build opus

package call

import (
	"slices"

	"gopkg.in/hraban/opus.v2"
)

// Opus is Opus (RFC 6716) at 48 kHz mono through libopus, with its own
// encoder and decoder state (one per call direction).
type Opus struct {
	enc *opus.Encoder
	dec *opus.Decoder
}

// newOpus returns an Opus codec, or nil if libopus refuses to start.
func newOpus() Codec {
	enc, err := opus.NewEncoder(48000, 1, opus.AppVoIP)
	if err != nil {
		return nil
	}
	// In-band FEC: each packet also carries a coarse copy of the one
	// before, which the receiver decodes when that one is lost
	// (jitter.go). libopus adds it only when it expects loss.
	if enc.SetInBandFEC(true) != nil || enc.SetPacketLossPerc(expectedLoss) != nil {
		return nil
	}
	dec, err := opus.NewDecoder(48000, 1)
	if err != nil {
		return nil
	}
	return &Opus{enc: enc, dec: dec}
}

// MimeType is "audio/opus".
func (*Opus) MimeType() string { return mimeOpus }

// ClockRate is 48000.
func (*Opus) ClockRate() uint32 { return 48000 }

// PayloadType is the dynamic payload type 111.
func (*Opus) PayloadType() uint8 { return 111 }

// expectedLoss is the packet loss (%) the encoder protects against with
// in-band FEC.
const expectedLoss = 10

// maxOpusPacket is the largest Opus packet (RFC 6716 §3.4, R5).
const maxOpusPacket = 1275

// Encode appends the Opus packet of one 20 ms frame to dst (nothing on
// an encoder error).
func (o *Opus) Encode(dst []byte, pcm []int16) []byte {
	dst = slices.Grow(dst, maxOpusPacket)
	n, err := o.enc.Encode(pcm, dst[len(dst):len(dst)+maxOpusPacket])
	if err != nil {
		return dst
	}
	return dst[:len(dst)+n]
}

// Decode appends the samples of one Opus packet to dst (nothing for a
// packet libopus rejects).
func (o *Opus) Decode(dst []int16, payload []byte) []int16 {
	const maxFrame = 48000 * 120 / 1000 // 120 ms, the longest Opus frame
	dst = slices.Grow(dst, maxFrame)
	n, err := o.dec.Decode(payload, dst[len(dst):len(dst)+maxFrame])
	if err != nil {
		return dst
	}
	return dst[:len(dst)+n]
}

// Conceal appends n samples of libopus's own loss concealment.
func (o *Opus) Conceal(dst []int16, n int) []int16 {
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n : len(dst)+n] // libopus takes the frame size from cap
	if o.dec.DecodePLC(out) != nil {
		clear(out)
	}
	return dst[:len(dst)+n]
}

// Recover appends the lost frame before next, decoded from next's
// in-band FEC data (n samples); false if that fails.
func (o *Opus) Recover(dst []int16, next []byte, n int) ([]int16, bool) {
	dst = slices.Grow(dst, n)
	if o.dec.DecodeFEC(next, dst[len(dst):len(dst)+n:len(dst)+n]) != nil { // frame size from cap
		return dst, false
	}
	return dst[:len(dst)+n], true
}
