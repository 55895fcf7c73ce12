package call

// G.711 μ-law (ITU-T G.711), the standard segment/mantissa transform.

const (
	ulawBias = 0x84
	ulawClip = 32635
)

// ulawEncode compresses one 16-bit linear sample.
func ulawEncode(s int16) byte {
	x := int(s)
	sign := 0
	if x < 0 {
		x, sign = -x, 0x80
	}
	if x > ulawClip {
		x = ulawClip
	}
	x += ulawBias
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (x >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// ulawDecode expands one μ-law byte.
func ulawDecode(u byte) int16 {
	u = ^u
	exp := (u >> 4) & 7
	t := ((int(u&0x0f) << 3) + ulawBias) << exp
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

// Codec turns 20 ms frames of 16-bit PCM into RTP payloads and back.
type Codec interface {
	MimeType() string
	ClockRate() uint32
	PayloadType() uint8
	Encode(dst []byte, pcm []int16) []byte
	Decode(dst []int16, payload []byte) []int16
}

// PCMU is G.711 μ-law at 8 kHz (payload type 0).
type PCMU struct{}

// MimeType is "audio/PCMU".
func (PCMU) MimeType() string { return "audio/PCMU" }

// ClockRate is 8000.
func (PCMU) ClockRate() uint32 { return 8000 }

// PayloadType is the static RTP payload type 0.
func (PCMU) PayloadType() uint8 { return 0 }

// Encode appends the μ-law bytes of pcm to dst.
func (PCMU) Encode(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = append(dst, ulawEncode(s))
	}
	return dst
}

// Decode appends the samples of payload to dst.
func (PCMU) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, ulawDecode(b))
	}
	return dst
}
