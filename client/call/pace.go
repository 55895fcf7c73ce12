package call

import (
	"sync/atomic"
	"time"
)

// Pacing the sender.
//
// Frame n of a call is due at start + n×FrameDuration on the monotonic
// clock. The sender wakes for the next due frame and sends every frame due
// by then, so a late wake-up (a loaded machine) delays frames but loses
// none: a time.Ticker, by contrast, drops the ticks its reader misses, and
// the peer hears the audio short by as much. Catching up is capped at
// burstFrames back to back, with a short pause between bursts. A sender
// more than maxLag behind (the process was stopped, say) skips the frames
// it can no longer send in time: it counts them, logs them, marks them in
// RTP (the sequence numbers and timestamps jump, so the receiver conceals
// them) and reads them from the source, which stays in step with the clock.

const (
	burstFrames = 3                 // frames sent back to back when behind
	burstPause  = FrameDuration / 4 // between bursts when behind
	maxLag      = 5 * time.Second   // behind by more (a suspended process): skip
)

// pacing counts a sender's frames.
type pacing struct {
	sent, skipped atomic.Int64
}

// Sent is how many frames were sent.
func (p *pacing) Sent() int64 { return p.sent.Load() }

// Skipped is how many frames were skipped because the sender fell more
// than maxLag behind.
func (p *pacing) Skipped() int64 { return p.skipped.Load() }

// pace calls write for each frame due since start until stop closes or
// write reports false. write is told how many frames were skipped just
// before this one (0 but after a long stall); onSkip is told too.
func pace(stop <-chan struct{}, start time.Time, count *pacing, write func(skipped int) bool, onSkip func(int)) {
	t := time.NewTimer(0)
	defer t.Stop()
	next := 0 // the next frame's number
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		due := int(time.Since(start)/FrameDuration) + 1 // frames 0..due-1 are due
		skipped := 0
		if lag := due - next; lag > int(maxLag/FrameDuration) {
			skipped = lag - 1
			next += skipped
			count.skipped.Add(int64(skipped))
			onSkip(skipped)
		}
		for burst := 0; next < due && burst < burstFrames; burst++ {
			if !write(skipped) {
				return
			}
			skipped = 0
			next++
			count.sent.Add(1)
		}
		wait := time.Until(start.Add(time.Duration(next) * FrameDuration))
		if next < due {
			wait = burstPause
		}
		t.Reset(max(wait, 0))
	}
}
