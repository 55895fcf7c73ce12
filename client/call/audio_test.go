package call

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// G.711 μ-law reference points (ITU-T G.711 table 2a): 0 encodes to 0xFF,
// the extremes to 0x80/0x00, and decoding then encoding is the identity.
func TestULaw(t *testing.T) {
	for _, c := range []struct {
		in  int16
		out byte
	}{{0, 0xff}, {32767, 0x80}, {-32768, 0x00}, {-1, 0x7f}} {
		if got := ulawEncode(c.in); got != c.out {
			t.Errorf("encode(%d) = %#x, want %#x", c.in, got, c.out)
		}
	}
	for b := range 256 {
		if got := ulawEncode(ulawDecode(byte(b))); got != byte(b) && !(b == 0x7f && got == 0xff) {
			t.Errorf("encode(decode(%#x)) = %#x", b, got)
		}
	}
	// The quantization error stays within the segment's step.
	for s := -32000; s <= 32000; s += 7 {
		d := int(ulawDecode(ulawEncode(int16(s)))) - s
		if math.Abs(float64(d)) > math.Max(8, math.Abs(float64(s))/16) {
			t.Fatalf("%d decodes %d away", s, d)
		}
	}
}

func TestWAVRoundTripAndDecimation(t *testing.T) {
	in := tone(time.Second, 700)
	var buf bytes.Buffer
	if err := WriteWAV(&buf, in, 8000); err != nil {
		t.Fatal(err)
	}
	got, err := ReadWAV(buf.Bytes())
	if err != nil || len(got) != len(in) {
		t.Fatalf("read back %d samples, %v", len(got), err)
	}
	for i := range in {
		if got[i] != in[i] {
			t.Fatalf("sample %d differs", i)
		}
	}
	// 48 kHz: a 700 Hz tone survives, a 9 kHz one (above 8 kHz Nyquist)
	// is filtered out instead of aliasing to 1 kHz.
	hi := make([]int16, 48000)
	for i := range hi {
		hi[i] = int16(8000*math.Sin(2*math.Pi*700*float64(i)/48000) + 8000*math.Sin(2*math.Pi*9000*float64(i)/48000))
	}
	buf.Reset()
	if err := WriteWAV(&buf, hi, 48000); err != nil {
		t.Fatal(err)
	}
	lo, err := ReadWAV(buf.Bytes())
	if err != nil || len(lo) != 8000 {
		t.Fatalf("decimated to %d samples, %v", len(lo), err)
	}
	if p700, p1k := goertzel(lo, 700), goertzel(lo, 1000); p700 < 1000*p1k {
		t.Errorf("700 Hz %.3g vs alias at 1 kHz %.3g", p700, p1k)
	}
	if _, err := ReadWAV([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00")); !errors.Is(err, ErrWAV) {
		t.Errorf("stereo/truncated file: %v", err)
	}
}

func FuzzReadWAV(f *testing.F) {
	var seeds [][]byte
	for _, rate := range []uint32{8000, 48000} {
		var buf bytes.Buffer
		if err := WriteWAV(&buf, tone(30*time.Millisecond, 440), rate); err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	seeds = append(seeds, []byte("RIFF\x04\x00\x00\x00WAVE"), []byte("RIFF\x24\x00\x00\x00WAVEdata\xff\xff\xff\xff"))
	if len(seeds) == 0 {
		f.Fatal("call: empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, err := ReadWAV(b)
		if err != nil {
			if !errors.Is(err, ErrWAV) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(pcm) > MaxWAVSamples {
			t.Fatalf("%d samples", len(pcm))
		}
	})
}

// FuzzSDPFingerprint: the fingerprint reader never panics and returns
// either nothing or an upper-case value taken from a fingerprint line.
func FuzzSDPFingerprint(f *testing.F) {
	seeds := []string{
		"v=0\r\na=fingerprint:sha-256 AB:CD:EF\r\n",
		"a=fingerprint:sha-1 00:11\na=fingerprint:sha-256 0a:0b\n",
		"",
		"a=fingerprint:sha-256 ",
	}
	if len(seeds) == 0 {
		f.Fatal("call: empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sdp string) {
		fp := sdpFingerprint(sdp)
		if fp != "" && (fp != strings.ToUpper(fp) || !strings.Contains(strings.ToUpper(sdp), fp)) {
			t.Fatalf("fingerprint %q not from %q", fp, sdp)
		}
	})
}
