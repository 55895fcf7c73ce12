package call

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// Codec MIME types.
const (
	mimePCMU = "audio/PCMU"
	mimeOpus = "audio/opus"
)

// supportedCodecs lists what this build can send and receive, preferred
// first: Opus (builds with the opus tag, libopus through cgo) then PCMU.
func supportedCodecs(pcmuOnly bool) []Codec {
	var cs []Codec
	if c := newCodec(mimeOpus); c != nil && !pcmuOnly {
		cs = append(cs, c)
	}
	return append(cs, PCMU{})
}

// OpusAvailable reports whether this build has Opus (the opus build tag,
// libopus through cgo).
func OpusAvailable() bool { return newOpus() != nil }

// CodecName is a codec's name for people ("Opus", "G.711").
func CodecName(mime string) string {
	if strings.EqualFold(mime, mimeOpus) {
		return "Opus"
	}
	return "G.711"
}

// newCodec returns a codec with its own encoder and decoder state, or nil
// if this build has no such codec.
func newCodec(mime string) Codec {
	switch {
	case strings.EqualFold(mime, mimePCMU):
		return PCMU{}
	case strings.EqualFold(mime, mimeOpus):
		return newOpus()
	}
	return nil
}

// capability is how a codec is signalled in SDP. Opus is always
// signalled with two channels (RFC 7587 §7); we send mono.
func capability(c Codec) webrtc.RTPCodecCapability {
	cp := webrtc.RTPCodecCapability{MimeType: c.MimeType(), ClockRate: c.ClockRate(), Channels: 1}
	if c.MimeType() == mimeOpus {
		cp.Channels, cp.SDPFmtpLine = 2, "minptime=10;useinbandfec=1"
	}
	return cp
}

// chooseCodec picks the first codec of ours that the SDP (the peer's offer
// or answer) also lists.
func chooseCodec(sdp string, pcmuOnly bool) Codec {
	low := strings.ToLower(sdp)
	for _, c := range supportedCodecs(pcmuOnly) {
		name := strings.ToLower(strings.TrimPrefix(c.MimeType(), "audio/"))
		if strings.Contains(low, " "+name+"/") {
			return newCodec(c.MimeType())
		}
	}
	return PCMU{}
}
