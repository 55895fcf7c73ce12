package call

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// spin keeps n goroutines busy until stop closes: a loaded machine.
func spin(n int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	var sink atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := int64(0)
			for {
				select {
				case <-stop:
					sink.Add(x)
					return
				default:
				}
				for i := range 20000 {
					x += int64(i) ^ x>>3
				}
			}
		}()
	}
	return &wg
}

// Under CPU load the sender sends as many frames as the elapsed time
// calls for: none is lost to a late wake-up (a time.Ticker drops the ticks
// its reader misses). The check counts frames; it asserts no latency.
func TestPaceKeepsTheScheduleUnderLoad(t *testing.T) {
	stopLoad := make(chan struct{})
	load := spin(4*runtime.GOMAXPROCS(0), stopLoad)

	// Each frame costs what a real one does: G.711 encoding of 160
	// samples, and some allocation.
	frame := tone(FrameDuration, 440)
	var payload []byte
	var count pacing
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		pace(stop, start, &count, func(int) bool {
			payload = PCMU{}.Encode(payload[:0], frame)
			_ = make([]byte, 4096)
			return true
		}, func(k int) { t.Logf("skipped %d frames", k) })
	}()
	time.Sleep(3 * time.Second)
	// Frames 0..due-1 are due now. Once the load stops, the sender must
	// have sent (or, after a stall of 5 s or more, skipped and
	// counted) every one of them, and no more than are due by then.
	due := int64(time.Since(start)/FrameDuration) + 1
	close(stopLoad)
	load.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for count.Sent()+count.Skipped() < due && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-done
	sent, skipped := count.Sent(), count.Skipped()
	dueNow := int64(time.Since(start)/FrameDuration) + 1
	t.Logf("due %d at 3 s, sent %d, skipped %d (load: %d spinning goroutines on %d CPUs)", due, sent, skipped, 4*runtime.GOMAXPROCS(0), runtime.NumCPU())
	if sent+skipped < due {
		t.Errorf("sent %d frames (and skipped %d) of %d due: %d lost", sent, skipped, due, due-sent-skipped)
	}
	if sent+skipped > dueNow {
		t.Errorf("sent %d frames (and skipped %d) of %d due: ahead of the schedule", sent, skipped, dueNow)
	}
}
