package call

import (
	"context"
	"math"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

// firstFrame is a Sink that reports when the first frame arrives.
type firstFrame struct {
	once sync.Once
	ch   chan struct{}
}

func (f *firstFrame) WriteFrame([]int16) { f.once.Do(func() { close(f.ch) }) }

// BenchmarkCallSetup measures dial until audio flows both ways (both
// sides received a first frame), over the real relay on loopback; the
// callee answers automatically.
func BenchmarkCallSetup(b *testing.B) {
	for _, relayOnly := range []bool{false, true} {
		name := "direct"
		if relayOnly {
			name = "relay-only"
		}
		b.Run(name, func(b *testing.B) {
			r := startRelay(b)
			var mu sync.Mutex
			sinks := map[string]*firstFrame{}
			sink := func(who string) func(*Call) Sink {
				return func(*Call) Sink {
					f := &firstFrame{ch: make(chan struct{})}
					mu.Lock()
					sinks[who] = f
					mu.Unlock()
					return f
				}
			}
			o := Options{RelayOnly: relayOnly}
			alice := r.enroll(b, "alice", nil, o)
			alice.m.opts.NewSink = sink("alice")
			bob := r.enroll(b, "bob", nil, Options{RelayOnly: relayOnly, AutoAnswer: true})
			bob.m.opts.NewSink = sink("bob")
			ctx := context.Background()
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				c, err := alice.m.Dial(ctx, "bob")
				if err != nil {
					b.Fatal(err)
				}
				callee := waitCall(b, bob.incoming, "the call")
				waitConnected(b, c, "caller")
				for _, who := range []string{"alice", "bob"} {
					mu.Lock()
					f := sinks[who]
					mu.Unlock()
					select {
					case <-f.ch:
					case <-time.After(10 * time.Second):
						b.Fatalf("no audio at %s", who)
					}
				}
				total += time.Since(start)
				b.StopTimer()
				c.Hangup(ctx)
				waitDone(b, callee, "callee")
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/setup")
		})
	}
}

// burstSource plays a 20 ms tone burst every 500 ms and notes when each
// burst frame was handed to the stack.
type burstSource struct {
	mu   sync.Mutex
	n    int
	sent []time.Time
}

func (s *burstSource) ReadFrame(frame []int16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.n%25 != 0 {
		clear(frame)
		return true
	}
	for i := range frame {
		frame[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/float64(frameRate(len(frame)))))
	}
	s.sent = append(s.sent, time.Now())
	return true
}

// burstSink notes when each burst arrives.
type burstSink struct {
	mu   sync.Mutex
	got  []time.Time
	prev bool
}

func (s *burstSink) WriteFrame(pcm []int16) {
	e := 0.0
	for _, v := range pcm {
		e += float64(v) * float64(v)
	}
	loud := len(pcm) > 0 && math.Sqrt(e/float64(len(pcm))) > 1000
	s.mu.Lock()
	defer s.mu.Unlock()
	if loud && !s.prev {
		s.got = append(s.got, time.Now())
	}
	s.prev = loud
}

// BenchmarkCallMedia measures the latency the stack adds (tone burst
// handed to the call -> decoded at the peer, same clock) and the CPU an
// active call costs, over SOTTO_CALL_SECONDS-free fixed 6 s of media.
func BenchmarkCallMedia(b *testing.B) {
	for _, relayOnly := range []bool{false, true} {
		name := "direct"
		if relayOnly {
			name = "relay-only"
		}
		b.Run(name, func(b *testing.B) {
			r := startRelay(b)
			src, sink := &burstSource{}, &burstSink{}
			alice := r.enroll(b, "alice", nil, Options{RelayOnly: relayOnly})
			alice.m.opts.NewSource = func(*Call) Source { return src }
			bob := r.enroll(b, "bob", nil, Options{RelayOnly: relayOnly, AutoAnswer: true})
			bob.m.opts.NewSink = func(*Call) Sink { return sink }
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				c, err := alice.m.Dial(ctx, "bob")
				if err != nil {
					b.Fatal(err)
				}
				callee := waitCall(b, bob.incoming, "the call")
				waitConnected(b, c, "caller")
				time.Sleep(time.Second) // settle
				var ru0, ru1 syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
				t0 := time.Now()
				time.Sleep(6 * time.Second)
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
				wall := time.Since(t0)
				cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
				c.Hangup(ctx)
				waitDone(b, callee, "callee")
				src.mu.Lock()
				sink.mu.Lock()
				n := min(len(src.sent), len(sink.got))
				var lat []float64
				for i := range n {
					lat = append(lat, float64(sink.got[i].Sub(src.sent[i]).Microseconds())/1000)
				}
				src.sent, sink.got, src.n = nil, nil, 0
				sink.mu.Unlock()
				src.mu.Unlock()
				if len(lat) < 5 {
					b.Fatalf("only %d bursts arrived", len(lat))
				}
				sort.Float64s(lat)
				mean := 0.0
				for _, v := range lat {
					mean += v
				}
				mean /= float64(len(lat))
				b.ReportMetric(mean, "ms-latency-mean")
				b.ReportMetric(lat[len(lat)/2], "ms-latency-p50")
				b.ReportMetric(lat[len(lat)-1], "ms-latency-max")
				// Both ends (and, relay-only, the TURN server) run in this
				// process: per end is half.
				b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/2, "%cpu-per-end")
			}
		})
	}
}
