package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The durable-broker anchor of the relay's figures: the same payloads
// published to a NATS JetStream file stream (work-queue retention, like
// relay/natsmailbox), each publish acknowledged by the server. Run it
// against a nats-server with `jetstream { sync_interval: always }`, so
// that an acknowledged publish is on disk as a relay's acknowledged send
// is (JetStream's default acknowledges before fsync).
//
//	sotto-load jetstream -nats nats://127.0.0.1:4333 -publish sync|async|batch [-rate R]
//
// -publish sync: each of -devices publishers waits for every ack (one in
// flight each, as a device sending back to back); async: each keeps
// -inflight publishes awaiting their ack; batch: each publishes atomic
// batches of -ack-batch messages (JetStream's atomic batch publish,
// nats-server >= 2.12: one commit, one ack and one fsync per batch; the
// server takes at most 1,000 messages per batch and 50 batches in flight
// per stream, so use -devices <= 50) and waits for each batch's ack. With -rate R,
// one pacer publishes R messages/s in total, round robin, open loop, and
// the publish->ack latency is measured from each message's scheduled time.

// jsConns is how many NATS connections the publishers share.
const jsConns = 8

type jsConfig struct {
	url      string
	mode     string
	devices  int
	inflight int
	batch    int
	rate     float64
	duration time.Duration
	warmup   time.Duration
	size     int
}

func jetstreamMain(ctx context.Context, args []string, out, errOut io.Writer) int {
	cfg := jsConfig{url: "nats://127.0.0.1:4222", mode: "sync", devices: 1000, inflight: 4, batch: 256,
		duration: 20 * time.Second, warmup: 5 * time.Second, size: 300}
	fs := flag.NewFlagSet("sotto-load jetstream", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&cfg.url, "nats", cfg.url, "NATS server URL (a server with jetstream { sync_interval: always })")
	fs.StringVar(&cfg.mode, "publish", cfg.mode, "sync (one publish in flight per publisher), async (-inflight each) or batch (-ack-batch, then wait)")
	fs.IntVar(&cfg.devices, "devices", cfg.devices, "publishers")
	fs.IntVar(&cfg.inflight, "inflight", cfg.inflight, "async: publishes awaiting their ack per publisher")
	fs.IntVar(&cfg.batch, "ack-batch", cfg.batch, "batch: publishes per batch")
	fs.Float64Var(&cfg.rate, "rate", 0, "messages per second in total (0: publishers back to back)")
	fs.DurationVar(&cfg.duration, "duration", cfg.duration, "measured duration")
	fs.DurationVar(&cfg.warmup, "warmup", cfg.warmup, "unmeasured warm-up")
	fs.IntVar(&cfg.size, "size", cfg.size, "payload bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (cfg.mode != "sync" && cfg.mode != "async" && cfg.mode != "batch") || cfg.devices < 1 || cfg.inflight < 1 ||
		cfg.batch < 1 || cfg.rate < 0 || cfg.duration <= 0 || cfg.size < 1 {
		fmt.Fprintln(errOut, "sotto-load jetstream: -publish must be sync, async or batch; -devices, -inflight, -ack-batch, -duration and -size positive")
		return 2
	}
	if err := jsRun(ctx, cfg, out); err != nil {
		fmt.Fprintf(errOut, "sotto-load jetstream: %v\n", err)
		return 1
	}
	return 0
}

func jsRun(ctx context.Context, cfg jsConfig, out io.Writer) error {
	conns := make([]jetstream.JetStream, jsConns)
	ncs := make([]*nats.Conn, jsConns)
	for i := range conns {
		nc, err := nats.Connect(cfg.url)
		if err != nil {
			return err
		}
		defer nc.Close()
		ncs[i] = nc
		if conns[i], err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<16)); err != nil {
			return err
		}
	}
	const stream = "SOTTOLOAD"
	_ = conns[0].DeleteStream(ctx, stream)
	if _, err := conns[0].CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"sottoload.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, AllowAtomicPublish: cfg.mode == "batch"}); err != nil {
		return err
	}
	defer conns[0].DeleteStream(context.Background(), stream)

	payload := randBytes(cfg.size)
	var (
		acked     atomic.Int64
		errs      atomic.Int64
		lat       histogram
		measuring atomic.Bool
		stop      atomic.Bool
		wg        sync.WaitGroup
	)
	start := time.Now()
	record := func(sent time.Time) {
		acked.Add(1)
		if measuring.Load() {
			lat.record(time.Since(sent))
		}
	}
	subject := func(i int) string { return fmt.Sprintf("sottoload.%d", i) }
	if cfg.rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var k int64
			for !stop.Load() {
				due := int64(time.Since(start).Seconds() * cfg.rate)
				for ; k < due && !stop.Load(); k++ {
					sched := start.Add(time.Duration(float64(k) / cfg.rate * 1e9))
					f, err := conns[k%jsConns].PublishAsync(subject(int(k)%cfg.devices), payload)
					if err != nil {
						errs.Add(1)
						continue
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						select {
						case <-f.Ok():
							record(sched)
						case <-f.Err():
							errs.Add(1)
						}
					}()
				}
				time.Sleep(time.Millisecond)
			}
		}()
	} else {
		for i := range cfg.devices {
			js, nc, subj := conns[i%jsConns], ncs[i%jsConns], subject(i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if cfg.mode == "batch" {
					for !stop.Load() {
						t := time.Now()
						n, err := atomicBatch(nc, subj, payload, cfg.batch, i)
						if err != nil {
							errs.Add(1)
							continue
						}
						for range n {
							record(t)
						}
					}
					return
				}
				for !stop.Load() {
					n := 1
					switch cfg.mode {
					case "async":
						n = cfg.inflight
					case "batch":
						n = cfg.batch
					}
					if cfg.mode == "sync" {
						t := time.Now()
						if _, err := js.Publish(ctx, subj, payload); err != nil {
							errs.Add(1)
							continue
						}
						record(t)
						continue
					}
					// async keeps n in flight by waiting for the oldest;
					// batch sends n and waits for all of them.
					type pub struct {
						f jetstream.PubAckFuture
						t time.Time
					}
					fs := make([]pub, 0, n)
					for range n {
						t := time.Now()
						f, err := js.PublishAsync(subj, payload)
						if err != nil {
							errs.Add(1)
							continue
						}
						fs = append(fs, pub{f, t})
					}
					for len(fs) > 0 && !(cfg.mode == "async" && stop.Load()) {
						p := fs[0]
						select {
						case <-p.f.Ok():
							record(p.t)
						case <-p.f.Err():
							errs.Add(1)
						}
						fs = fs[1:]
						if cfg.mode == "async" && !stop.Load() {
							t := time.Now()
							if f, err := js.PublishAsync(subj, payload); err == nil {
								fs = append(fs, pub{f, t})
							} else {
								errs.Add(1)
							}
						}
					}
				}
			}()
		}
	}
	fmt.Fprintf(out, "JetStream %s publish, %d publishers on %d connections, rate %s, %d-byte payloads; warming up %v, then measuring %v\n",
		cfg.mode, cfg.devices, jsConns, rateString(cfg.rate), cfg.size, cfg.warmup, cfg.duration)
	select {
	case <-time.After(cfg.warmup):
	case <-ctx.Done():
	}
	load0 := loadAvg()
	a0 := acked.Load()
	t0 := time.Now()
	measuring.Store(true)
	select {
	case <-time.After(cfg.duration):
	case <-ctx.Done():
	}
	measuring.Store(false)
	el := time.Since(t0)
	a1 := acked.Load()
	load1 := loadAvg()
	fmt.Fprintf(out, "\nmeasured %v (load average %s at the start, %s at the end):\n", el.Round(time.Millisecond), load0, load1)
	fmt.Fprintf(out, "  published (acked by the server): %8d  %9.0f msg/s\n", a1-a0, float64(a1-a0)/el.Seconds())
	fmt.Fprintf(out, "  errors: %d\n", errs.Load())
	fmt.Fprintf(out, "  publish latency (publish -> ack):  %v\n", &lat)
	if cfg.rate > 0 {
		if due := int64(time.Since(start).Seconds() * cfg.rate); due > acked.Load()+errs.Load() {
			fmt.Fprintf(out, "  not keeping up: %d publishes awaiting their ack at the end of the window (their latency is not in the figures above)\n",
				due-acked.Load()-errs.Load())
		}
	}
	stop.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		fmt.Fprintln(out, "  (publishers still waiting for acks 30 s after the window; stopped)")
	}
	return nil
}

// atomicBatch publishes n copies of payload to subj as one JetStream
// atomic batch and waits for the commit's ack; it returns how many the
// ack says were stored.
func atomicBatch(nc *nats.Conn, subj string, payload []byte, n, publisher int) (int, error) {
	id := fmt.Sprintf("p%d-%x", publisher, randBytes(8))
	for seq := 1; seq <= n; seq++ {
		m := nats.NewMsg(subj)
		m.Data = payload
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", fmt.Sprint(seq))
		if seq < n {
			if err := nc.PublishMsg(m); err != nil {
				return 0, err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		resp, err := nc.RequestMsg(m, 30*time.Second)
		if err != nil {
			return 0, err
		}
		var ack struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
			BatchSize int `json:"count"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return 0, err
		}
		if ack.Error != nil {
			return 0, errors.New(ack.Error.Description)
		}
		if ack.BatchSize != n {
			return 0, fmt.Errorf("batch ack counts %d of %d", ack.BatchSize, n)
		}
	}
	return n, nil
}
