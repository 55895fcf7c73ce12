package web

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/cmplx"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"sotto/client/call"
	"sotto/internal/testneed"
)

// Speech for the call tests: espeak-ng's voice, compared after it went
// through a call by normalized cross-correlation at 8 kHz.

// speech is one phrase: its samples at 8 kHz (one period: the phrase and
// a pause), and a 48 kHz WAV file of it for Chromium's fake microphone
// (which loops it) and the CLI device (reps periods).
type speech struct {
	pcm8k []float64
	wav   string // one period
	wavN  string // reps periods
}

func makeSpeech(t *testing.T, dir, name, text string, reps int) *speech {
	t.Helper()
	bin, err := exec.LookPath("espeak-ng")
	if err != nil {
		testneed.Skip(t, "espeak-ng not installed: %v", err)
	}
	raw := filepath.Join(dir, name+"-raw.wav")
	if out, err := exec.Command(bin, "-w", raw, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v\n%s", err, out)
	}
	pcm, rate := readAnyWAV(t, raw)
	// At 48 kHz, with a pause of 300 ms before the phrase repeats.
	n48 := int(int64(len(pcm)) * 48000 / int64(rate))
	one := make([]int16, n48+48000*3/10)
	for i := range n48 {
		x := float64(i) * float64(rate) / 48000
		j := int(x)
		f := x - float64(j)
		a, b := float64(pcm[j]), 0.0
		if j+1 < len(pcm) {
			b = float64(pcm[j+1])
		}
		one[i] = int16(a*(1-f) + b*f)
	}
	s := &speech{wav: filepath.Join(dir, name+".wav"), wavN: filepath.Join(dir, name+"-x.wav")}
	if err := call.WriteWAVFile(s.wav, one, 48000); err != nil {
		t.Fatal(err)
	}
	var many []int16
	for range reps {
		many = append(many, one...)
	}
	if err := call.WriteWAVFile(s.wavN, many, 48000); err != nil {
		t.Fatal(err)
	}
	s.pcm8k = floats(call.Decimate6(one))
	return s
}

// readAnyWAV reads a 16-bit mono WAV file of any rate (espeak-ng's 22050 Hz).
func readAnyWAV(t *testing.T, path string) ([]int16, uint32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s: not a WAV file", path)
	}
	b = b[12:]
	var rate uint32
	for len(b) >= 8 {
		id, n := string(b[:4]), int(binary.LittleEndian.Uint32(b[4:8]))
		b = b[8:]
		if n > len(b) {
			n = len(b)
		}
		switch id {
		case "fmt ":
			if ch, bits := binary.LittleEndian.Uint16(b[2:4]), binary.LittleEndian.Uint16(b[14:16]); ch != 1 || bits != 16 {
				t.Fatalf("%s: %d channels, %d bits", path, ch, bits)
			}
			rate = binary.LittleEndian.Uint32(b[4:8])
		case "data":
			pcm := make([]int16, n/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
			}
			return pcm, rate
		}
		b = b[n+n%2:]
	}
	t.Fatalf("%s: no data", path)
	return nil, 0
}

func floats(pcm []int16) []float64 {
	out := make([]float64, len(pcm))
	for i, v := range pcm {
		out[i] = float64(v)
	}
	return out
}

// pcmFromBase64 decodes what the page's recorder returned: little-endian
// 16-bit samples at 48 kHz.
func pcmFromBase64(t *testing.T, s string) []int16 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(b)/2)
	if err := binary.Read(bytes.NewReader(b[:2*len(pcm)]), binary.LittleEndian, pcm); err != nil {
		t.Fatal(err)
	}
	return pcm
}

// likeness measures how much got (8 kHz) sounds like the looped phrase
// (8 kHz). got is cut into half-second windows; up to ten windows with
// speech in them, spread over the recording, are each aligned with
// the phrase at the lag of best normalized cross-correlation (the fake
// microphone loops the file, and the network delays it); the result is the
// median of the best correlations (1: the same waveform). It also returns
// how many windows it measured.
func likeness(got8k, phrase8k []float64) (float64, int) {
	const win, step, most = 4000, 2000, 10
	got, phrase := got8k, phrase8k
	p := len(phrase)
	loop := make([]float64, 0, p+win)
	for len(loop) < p+win {
		loop = append(loop, phrase[:min(p, p+win-len(loop))]...)
	}
	size := 1
	for size < len(loop)+win {
		size <<= 1
	}
	fl := make([]complex128, size)
	for i, v := range loop {
		fl[i] = complex(v, 0)
	}
	fft(fl, false)
	// Energy of every loop segment of length win.
	pre := make([]float64, len(loop)+1)
	for i, v := range loop {
		pre[i+1] = pre[i] + v*v
	}
	// Only windows with speech: over a tenth of the loudest's energy.
	var starts []int
	var energies []float64
	top := 0.0
	for s := 0; s+win <= len(got); s += step {
		starts, energies = append(starts, s), append(energies, energy(got[s:s+win]))
		top = max(top, energies[len(energies)-1])
	}
	var loud []int
	for k, s := range starts {
		if top > 0 && energies[k] >= top/10 {
			loud = append(loud, s)
		}
	}
	if len(loud) > most {
		picked := make([]int, most)
		for i := range picked {
			picked[i] = loud[i*len(loud)/most]
		}
		loud = picked
	}
	var scores []float64
	fw := make([]complex128, size)
	for _, s := range loud {
		w := got[s : s+win]
		ew := energy(w)
		clear(fw)
		for i, v := range w {
			fw[i] = complex(v, 0)
		}
		fft(fw, false)
		for i := range fw {
			fw[i] = fl[i] * cmplx.Conj(fw[i])
		}
		fft(fw, true)
		best := -1.0
		for lag := 0; lag < p; lag++ {
			es := pre[lag+win] - pre[lag]
			if es <= 0 {
				continue
			}
			best = max(best, real(fw[lag])/float64(size)/math.Sqrt(ew*es))
		}
		scores = append(scores, best)
	}
	if len(scores) == 0 {
		return 0, 0
	}
	slices.Sort(scores)
	return scores[len(scores)/2], len(scores)
}

func energy(x []float64) float64 {
	var e float64
	for _, v := range x {
		e += v * v
	}
	return e
}

// fft transforms a in place (len a power of two); inverse without the
// 1/n scaling.
func fft(a []complex128, inverse bool) {
	n := len(a)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			a[i], a[j] = a[j], a[i]
		}
	}
	for l := 2; l <= n; l <<= 1 {
		ang := 2 * math.Pi / float64(l)
		if !inverse {
			ang = -ang
		}
		wl := cmplx.Rect(1, ang)
		for i := 0; i < n; i += l {
			w := complex(1, 0)
			for k := 0; k < l/2; k++ {
				u, v := a[i+k], a[i+k+l/2]*w
				a[i+k], a[i+k+l/2] = u+v, u-v
				w *= wl
			}
		}
	}
}

// checkSpeech fails t unless got (8 kHz) carries the phrase sent and not
// the control phrase that was never sent.
func checkSpeech(t *testing.T, what string, got []float64, sent, control *speech) {
	t.Helper()
	score, n := likeness(got, sent.pcm8k)
	other, _ := likeness(got, control.pcm8k)
	t.Logf("%s: correlation with the speech sent %.2f over %d windows (with speech never sent: %.2f)", what, score, n, other)
	if n < 4 {
		t.Errorf("%s: only %d half-second windows with sound arrived", what, n)
	}
	if score < minLikeness || score < other+0.2 {
		t.Errorf("%s: the speech did not arrive: correlation %.2f (need %.2f, and 0.2 over the %.2f of speech never sent)", what, score, minLikeness, other)
	}
}

// minLikeness is the correlation speech must keep through a call (G.711 or
// Opus, the browser's echo cancellation, noise suppression and jitter
// buffer).
const minLikeness = 0.5
