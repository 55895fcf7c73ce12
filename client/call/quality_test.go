package call

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"

	"sotto/internal/testneed"
)

// speech is a few seconds of speech at 8 kHz, spoken by espeak-ng.
func speech(t *testing.T) []int16 {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		testneed.Skip(t, "espeak-ng not installed (it speaks the call quality test's speech)")
	}
	path := filepath.Join(t.TempDir(), "speech.wav")
	out, err := exec.Command("espeak-ng", "-w", path, "-s", "160",
		"The quick brown fox jumps over the lazy dog. Calls must hold up on a lossy network.").CombinedOutput()
	if err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// espeak-ng writes 16-bit mono at 22050 Hz: the sample rate at byte
	// 24, the samples after the "data" chunk header.
	i := bytes.Index(b, []byte("data"))
	if len(b) < 44 || i < 0 || i+8 > len(b) {
		t.Fatalf("espeak-ng wrote no WAV (%d bytes)", len(b))
	}
	rate := binary.LittleEndian.Uint32(b[24:])
	data := b[i+8:]
	pcm := make([]int16, len(data)/2)
	for k := range pcm {
		pcm[k] = int16(binary.LittleEndian.Uint16(data[2*k:]))
	}
	return resample(pcm, rate, 8000)
}

// resample converts x from rate in to out by linear interpolation after a
// moving-average low-pass (good enough: the test compares what was sent
// with what was heard, both at the output rate).
func resample(x []int16, in, out uint32) []int16 {
	if in == out {
		return x
	}
	w := max(int(in/out), 1)
	smooth := make([]float64, len(x))
	var acc float64
	for i := range x {
		acc += float64(x[i])
		if i >= w {
			acc -= float64(x[i-w])
		}
		smooth[i] = acc / float64(min(i+1, w))
	}
	n := int(int64(len(x)) * int64(out) / int64(in))
	y := make([]int16, n)
	for i := range y {
		pos := float64(i) * float64(in) / float64(out)
		j := int(pos)
		if j+1 >= len(smooth) {
			break
		}
		f := pos - float64(j)
		y[i] = int16(smooth[j]*(1-f) + smooth[j+1]*f)
	}
	return y
}

// lossyNetwork drops a share loss of the packets, delivers a share
// reorder of them after their successor and delays some reads by up to
// 15 ms, from a fixed seed.
func lossyNetwork(seed uint64, loss, reorder float64) func(read func() (*rtp.Packet, error)) func() (*rtp.Packet, error) {
	return func(read func() (*rtp.Packet, error)) func() (*rtp.Packet, error) {
		rng := rand.New(rand.NewPCG(seed, seed))
		var held, queued *rtp.Packet
		return func() (*rtp.Packet, error) {
			if queued != nil {
				p := queued
				queued = nil
				return p, nil
			}
			for {
				p, err := read()
				if err != nil {
					return nil, err
				}
				if rng.Float64() < 0.1 {
					time.Sleep(time.Duration(rng.IntN(15)) * time.Millisecond)
				}
				if rng.Float64() < loss {
					continue
				}
				if held != nil {
					queued, held = held, nil
					return p, nil
				}
				if rng.Float64() < reorder {
					held = p
					continue
				}
				return p, nil
			}
		}
	}
}

// snr is the signal-to-noise ratio of got against want (same length), in
// dB, with got scaled by its best gain.
func snr(want, got []int16) float64 {
	var sw, sg, sgg float64
	for i := range want {
		sw += float64(want[i]) * float64(want[i])
		sg += float64(want[i]) * float64(got[i])
		sgg += float64(got[i]) * float64(got[i])
	}
	g := 0.0
	if sgg > 0 {
		g = sg / sgg
	}
	var noise float64
	for i := range want {
		d := float64(want[i]) - g*float64(got[i])
		noise += d * d
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sw/noise)
}

// alignedSNR finds where sent begins in heard (the lag of highest
// correlation over the first second of speech) and is the SNR of the
// whole of sent against heard from there.
func alignedSNR(sent, heard []int16) float64 {
	probe := sent[:min(len(sent), 8000)]
	best, bestLag := math.Inf(-1), -1
	for lag := 0; lag+len(sent) <= len(heard); lag++ {
		var c float64
		for i, v := range probe {
			c += float64(v) * float64(heard[lag+i])
		}
		if c > best {
			best, bestLag = c, lag
		}
	}
	if bestLag < 0 {
		return math.Inf(-1)
	}
	return snr(sent, heard[bestLag:bestLag+len(sent)])
}

// qualityCall plays sent from a to b through net and returns the SNR of
// what b heard, and b's receive counts.
func qualityCall(t *testing.T, a, b *device, sent []int16) (float64, receiveStats) {
	t.Helper()
	a.rec.mu.Lock()
	a.rec.pcm, a.rec.rate, a.rec.first = nil, 0, time.Time{}
	a.rec.mu.Unlock()
	b.rec.mu.Lock()
	b.rec.pcm, b.rec.rate, b.rec.first = nil, 0, time.Time{}
	b.rec.mu.Unlock()
	ctx := context.Background()
	caller, err := a.m.Dial(ctx, b.c.Username())
	if err != nil {
		t.Fatal(err)
	}
	callee := waitCall(t, b.incoming, "the incoming call")
	if err := callee.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, callee, "callee")
	// The speech, then a second of silence (the source's): lost frames
	// shorten what the old receiver recorded.
	want := len(sent) + 8000
	deadline := time.Now().Add(60 * time.Second)
	for len(heard(b.rec)) < want {
		if time.Now().After(deadline) {
			t.Fatalf("audio stalled: %d samples of %d", len(heard(b.rec)), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	caller.Hangup(ctx)
	waitDone(t, callee, "callee")
	waitDone(t, caller, "caller")
	callee.mu.Lock()
	rx := callee.rx
	callee.mu.Unlock()
	return alignedSNR(sent, heard(b.rec)), rx
}

// Speech sent through a network that loses 8 % of the packets and
// reorders 10 %: the jitter buffer puts the packets back in order and
// keeps the timeline, concealment (G.711: pitch repetition; Opus: PLC)
// and Opus FEC fill the gaps. Measured as the SNR of what was heard
// against what was sent, after alignment, with the old receiver (packets
// played as they come) and the new one.
func TestCallQualityUnderLossAndJitter(t *testing.T) {
	sent := speech(t)
	r := startRelay(t)
	alice := r.enroll(t, "alice", sent, Options{})
	bob := r.enroll(t, "bob", nil, Options{})
	bob.m.netem = lossyNetwork(7, 0.08, 0.10)

	bob.m.plainReceive = true
	before, _ := qualityCall(t, alice, bob, sent)
	bob.m.plainReceive = false
	after, rx := qualityCall(t, alice, bob, sent)
	codec := "G.711"
	if OpusAvailable() {
		codec = "Opus"
	}
	t.Logf("codec %s, 8%% loss, 10%% reordered: SNR %.1f dB as played (old receiver), %.1f dB with jitter buffer and concealment; %+v",
		codec, before, after, rx)
	const threshold = 5 // dB
	if after < threshold {
		t.Errorf("SNR %.1f dB with the jitter buffer and concealment, want >= %d", after, threshold)
	}
	if before >= threshold {
		t.Errorf("the old receiver scored %.1f dB: the test does not tell them apart", before)
	}
	if rx.Concealed+rx.Recovered == 0 {
		t.Error("nothing was concealed or recovered")
	}
	if OpusAvailable() && rx.Recovered == 0 {
		t.Error("Opus FEC recovered no frame")
	}
}
