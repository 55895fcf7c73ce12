package call

import (
	"sync"
	"time"
)

// FrameDuration is the duration of one audio frame (one RTP packet).
const FrameDuration = 20 * time.Millisecond

// Source produces the audio sent to the peer, one frame at a time.
type Source interface {
	// ReadFrame fills frame (FrameDuration at the codec rate) and
	// reports false once the source is exhausted (the frame is then
	// silence).
	ReadFrame(frame []int16) bool
}

// Sink receives the audio decoded from the peer.
type Sink interface {
	WriteFrame(pcm []int16)
}

// PCMSource plays samples once, then silence.
type PCMSource struct {
	mu   sync.Mutex
	pcm  []int16
	rate uint32 // 0: whatever the codec's rate is
	pos  int
}

// NewPCMSource plays pcm (at the codec rate).
func NewPCMSource(pcm []int16) *PCMSource { return &PCMSource{pcm: pcm} }

// NewPCMSourceRate plays pcm sampled at rate (8000 or 48000), resampled
// to the codec's rate (8 kHz for PCMU, 48 kHz for Opus) on first use.
func NewPCMSourceRate(pcm []int16, rate uint32) *PCMSource {
	return &PCMSource{pcm: pcm, rate: rate}
}

// frameRate is the sample rate of a FrameDuration frame of n samples.
func frameRate(n int) uint32 { return uint32(n * int(time.Second/FrameDuration)) }

// ReadFrame implements Source.
func (s *PCMSource) ReadFrame(frame []int16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := frameRate(len(frame)); s.rate != 0 && s.rate != want {
		switch {
		case s.rate == 48000 && want == 8000:
			s.pcm = Decimate6(s.pcm)
		case s.rate == 8000 && want == 48000:
			s.pcm = Upsample6(s.pcm)
		}
		s.rate = want
	}
	n := copy(frame, s.pcm[s.pos:])
	clear(frame[n:])
	s.pos += n
	return n > 0
}

// Recorder is a Sink that keeps what it received.
type Recorder struct {
	mu    sync.Mutex
	pcm   []int16
	rate  uint32    // of the frames received (0: none yet)
	first time.Time // arrival of the first frame
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// WriteFrame implements Sink.
func (r *Recorder) WriteFrame(pcm []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first.IsZero() {
		r.first = time.Now()
		r.rate = frameRate(len(pcm))
	}
	r.pcm = append(r.pcm, pcm...)
}

// PCM returns a copy of the samples received so far.
func (r *Recorder) PCM() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.pcm...)
}

// Rate is the sample rate of what was received: 8000 over PCMU, 48000
// over Opus (0 before the first frame).
func (r *Recorder) Rate() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rate
}

// First is when the first frame arrived (zero: none yet).
func (r *Recorder) First() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

// silence is a Source that never ends.
type silence struct{}

func (silence) ReadFrame(frame []int16) bool { clear(frame); return true }

// discard is a Sink that drops everything.
type discard struct{}

func (discard) WriteFrame([]int16) {}
