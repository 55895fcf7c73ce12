package call

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrWAV reports a WAV file this package cannot use.
var ErrWAV = errors.New("call: wav")

// MaxWAVSamples bounds what ReadWAV loads (10 minutes at 48 kHz).
const MaxWAVSamples = 10 * 60 * 48000

// ReadWAV parses a 16-bit PCM mono WAV file at 8 kHz or 48 kHz and returns
// its samples at 8 kHz (48 kHz input is low-pass filtered and decimated).
func ReadWAV(b []byte) ([]int16, error) {
	pcm, rate, err := ReadWAVRate(b)
	if err != nil {
		return nil, err
	}
	if rate == 48000 {
		pcm = Decimate6(pcm)
	}
	return pcm, nil
}

// ReadWAVRate parses a 16-bit PCM mono WAV file at 8 kHz or 48 kHz and
// returns its samples at their own rate, and that rate.
func ReadWAVRate(b []byte) ([]int16, uint32, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("%w: not a RIFF/WAVE file", ErrWAV)
	}
	b = b[12:]
	var rate uint32
	var gotFmt bool
	for len(b) >= 8 {
		id, n := string(b[0:4]), binary.LittleEndian.Uint32(b[4:8])
		b = b[8:]
		if uint64(n) > uint64(len(b)) {
			if id != "data" {
				return nil, 0, fmt.Errorf("%w: truncated %q chunk", ErrWAV, id)
			}
			n = uint32(len(b)) // streaming writers leave the size unset
		}
		body := b[:n]
		switch id {
		case "fmt ":
			if n < 16 {
				return nil, 0, fmt.Errorf("%w: short fmt chunk", ErrWAV)
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			channels := binary.LittleEndian.Uint16(body[2:4])
			rate = binary.LittleEndian.Uint32(body[4:8])
			bits := binary.LittleEndian.Uint16(body[14:16])
			if format != 1 || channels != 1 || bits != 16 || (rate != 8000 && rate != 48000) {
				return nil, 0, fmt.Errorf("%w: need 16-bit PCM mono at 8000 or 48000 Hz (got format %d, %d channels, %d bits, %d Hz)", ErrWAV, format, channels, bits, rate)
			}
			gotFmt = true
		case "data":
			if !gotFmt {
				return nil, 0, fmt.Errorf("%w: data before fmt", ErrWAV)
			}
			if n/2 > MaxWAVSamples {
				return nil, 0, fmt.Errorf("%w: longer than %d samples", ErrWAV, MaxWAVSamples)
			}
			pcm := make([]int16, n/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			return pcm, rate, nil
		}
		b = b[n:]
		if n%2 == 1 && len(b) > 0 {
			b = b[1:] // chunks are padded to even sizes
		}
	}
	return nil, 0, fmt.Errorf("%w: no data chunk", ErrWAV)
}

// ReadWAVFileRate reads a WAV file at its own rate (see ReadWAVRate).
func ReadWAVFileRate(path string) ([]int16, uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("call: %w", err)
	}
	return ReadWAVRate(b)
}

// ReadWAVFile reads a WAV file (see ReadWAV).
func ReadWAVFile(path string) ([]int16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	return ReadWAV(b)
}

// WriteWAV writes pcm as a 16-bit PCM mono WAV file at rate Hz.
func WriteWAV(w io.Writer, pcm []int16, rate uint32) error {
	n := uint32(2 * len(pcm))
	h := make([]byte, 44, 44+n)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+n)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], rate)
	binary.LittleEndian.PutUint32(h[28:], 2*rate)
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], n)
	for _, s := range pcm {
		h = binary.LittleEndian.AppendUint16(h, uint16(s))
	}
	_, err := w.Write(h)
	return err
}

// WriteWAVFile writes pcm to path (see WriteWAV).
func WriteWAVFile(path string, pcm []int16, rate uint32) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	if err := WriteWAV(f, pcm, rate); err != nil {
		f.Close()
		return fmt.Errorf("call: %w", err)
	}
	return f.Close()
}

// lowpassTaps returns a 63-tap Hamming-windowed sinc low-pass at 3.6 kHz
// for 48 kHz input.
func lowpassTaps() [63]float64 {
	var h [63]float64
	const fc = 3600.0 / 48000
	sum := 0.0
	for i := range h {
		m := float64(i - 31)
		v := 2 * fc
		if m != 0 {
			v = math.Sin(2*math.Pi*fc*m) / (math.Pi * m)
		}
		v *= 0.54 - 0.46*math.Cos(2*math.Pi*float64(i)/62)
		h[i] = v
		sum += v
	}
	for i := range h {
		h[i] /= sum
	}
	return h
}

// Upsample6 resamples 8 kHz to 48 kHz (linear interpolation).
func Upsample6(in []int16) []int16 {
	out := make([]int16, 0, 6*len(in))
	for i, v := range in {
		next := v
		if i+1 < len(in) {
			next = in[i+1]
		}
		for k := range 6 {
			out = append(out, int16((int(v)*(6-k)+int(next)*k)/6))
		}
	}
	return out
}

// Decimate6 resamples 48 kHz to 8 kHz.
func Decimate6(in []int16) []int16 {
	taps := lowpassTaps()
	out := make([]int16, 0, len(in)/6)
	for i := 0; i < len(in); i += 6 {
		acc := 0.0
		for k, h := range taps {
			j := i + k - 31
			if j >= 0 && j < len(in) {
				acc += h * float64(in[j])
			}
		}
		out = append(out, int16(max(-32768, min(32767, math.Round(acc)))))
	}
	return out
}
