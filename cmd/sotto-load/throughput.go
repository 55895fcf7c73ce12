package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sotto/client/transport"
	"sotto/wire"
)

func asError(err error, te **transport.Error) bool { return errors.As(err, te) }

// stats collects latencies of the measured window.
type stats struct {
	mu        sync.Mutex
	e2e       []time.Duration // send start -> envelope received
	sendAck   []time.Duration // send start -> relay acknowledged (durable)
	measuring atomic.Bool
	sent      atomic.Int64 // sends acknowledged by the relay (measured window)
	received  atomic.Int64 // envelopes received (measured window)
	acked     atomic.Int64 // envelopes whose Ack the relay confirmed (measured window)
	errors    atomic.Int64
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func throughput(ctx context.Context, cfg Config, out io.Writer) error {
	devs, err := enrollAll(ctx, cfg, out)
	if err != nil {
		return err
	}
	defer func() {
		for _, d := range devs {
			d.conn.Close()
		}
	}()
	var st stats
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup

	// Receivers: measure and ack in batches.
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			receive(ctx, cfg, d, &st)
		}()
	}
	// Senders: device i writes to device i+1.
	perDevice := cfg.Rate / float64(len(devs))
	payload := randBytes(cfg.Size)
	for i, d := range devs {
		to := devs[(i+1)%len(devs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendLoop(ctx, d, to, perDevice, payload, &st)
		}()
	}
	before, _ := relayMetrics(ctx, cfg.Relay)
	fmt.Fprintf(out, "warming up %v, then measuring %v (rate %s, %d devices, %d-byte payloads)\n",
		cfg.Warmup, cfg.Duration, rateString(cfg.Rate), len(devs), cfg.Size)
	select {
	case <-time.After(cfg.Warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	st.measuring.Store(true)
	cpu0 := sampleCPU(cfg.RelayPID)
	start := time.Now()
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	st.measuring.Store(false)
	el := time.Since(start)
	cpu1 := sampleCPU(cfg.RelayPID)
	after, _ := relayMetrics(context.Background(), cfg.Relay)
	cancel()
	wg.Wait()

	st.mu.Lock()
	slices.Sort(st.e2e)
	slices.Sort(st.sendAck)
	st.mu.Unlock()
	fmt.Fprintf(out, "\nmeasured %v:\n", el.Round(time.Millisecond))
	fmt.Fprintf(out, "  sent (durable, acknowledged by relay): %8d  %9.0f msg/s\n", st.sent.Load(), float64(st.sent.Load())/el.Seconds())
	fmt.Fprintf(out, "  delivered to recipient devices:        %8d  %9.0f msg/s\n", st.received.Load(), float64(st.received.Load())/el.Seconds())
	fmt.Fprintf(out, "  acked by recipients (deleted):         %8d  %9.0f msg/s\n", st.acked.Load(), float64(st.acked.Load())/el.Seconds())
	fmt.Fprintf(out, "  errors: %d\n", st.errors.Load())
	fmt.Fprintf(out, "  end-to-end latency (send -> delivered): p50 %v  p95 %v  p99 %v  max %v  (n=%d)\n",
		pct(st.e2e, .50), pct(st.e2e, .95), pct(st.e2e, .99), pct(st.e2e, 1), len(st.e2e))
	fmt.Fprintf(out, "  send latency (send -> durable ack):     p50 %v  p95 %v  p99 %v  max %v\n",
		pct(st.sendAck, .50), pct(st.sendAck, .95), pct(st.sendAck, .99), pct(st.sendAck, 1))
	if before != nil && after != nil {
		fmt.Fprintf(out, "  relay: stored %.0f, delivered %.0f, acked %.0f during the run; RSS %.1f MiB, goroutines %.0f\n",
			after["sotto_messages_stored_total"]-before["sotto_messages_stored_total"],
			after["sotto_messages_delivered_total"]-before["sotto_messages_delivered_total"],
			after["sotto_messages_acked_total"]-before["sotto_messages_acked_total"],
			after["process_resident_memory_bytes"]/(1<<20), after["go_goroutines"])
		if cpu0.ok && cpu1.ok && st.received.Load() > 0 {
			// CPU used during the measured window divided by the
			// messages delivered in it: less sensitive to a shared
			// machine's load than messages per second.
			fmt.Fprintf(out, "  cpu per delivered message: relay %.1f us, load generator %.1f us (measured window: relay %.2f cores)\n",
				float64((cpu1.relay-cpu0.relay).Microseconds())/float64(st.received.Load()),
				float64((cpu1.self-cpu0.self).Microseconds())/float64(st.received.Load()),
				(cpu1.relay-cpu0.relay).Seconds()/el.Seconds())
		}
	}
	return nil
}

func rateString(r float64) string {
	if r == 0 {
		return "unlimited (back-to-back per device)"
	}
	return fmt.Sprintf("%.0f msg/s", r)
}

func sendLoop(ctx context.Context, from, to *simDevice, rate float64, payload []byte, st *stats) {
	var tick <-chan time.Time
	if rate > 0 {
		interval := time.Duration(float64(time.Second) / rate)
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
		// Spread the devices' phases over one interval.
		select {
		case <-time.After(time.Duration(int64(interval) * int64(from.reg%1000) / 1000)):
		case <-ctx.Done():
			return
		}
	}
	body := make([]byte, len(payload))
	copy(body, payload)
	var seq uint64
	msgID := make([]byte, 16)
	for ctx.Err() == nil {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return
			}
		}
		seq++
		now := time.Now()
		binary.BigEndian.PutUint64(body[:8], uint64(now.UnixNano()))
		binary.BigEndian.PutUint32(msgID, from.reg)
		binary.BigEndian.PutUint64(msgID[8:], seq)
		_, err := from.conn.SendMessage(ctx, &wire.SendMessageRequest{Recipient: to.name, MessageId: msgID,
			Messages: []*wire.OutgoingMessage{{DeviceId: to.id, RegistrationId: to.reg, Type: 1, Content: body}}})
		if err != nil {
			if ctx.Err() == nil {
				st.errors.Add(1)
				var te *transport.Error
				if asError(err, &te) && te.Code == wire.ErrorCode_RATE_LIMITED {
					time.Sleep(te.RetryAfter)
					continue
				}
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		if st.measuring.Load() {
			st.sent.Add(1)
			d := time.Since(now)
			st.mu.Lock()
			st.sendAck = append(st.sendAck, d)
			st.mu.Unlock()
		}
	}
}

func receive(ctx context.Context, cfg Config, d *simDevice, st *stats) {
	var (
		batch    [][]byte
		measured int64
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		err := d.conn.Ack(context.Background(), batch...)
		if err == nil {
			st.acked.Add(measured)
		} else {
			st.errors.Add(1)
		}
		batch, measured = batch[:0], 0
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-d.conn.Envelopes():
			if !ok {
				return
			}
			now := time.Now()
			if len(e.Content) >= 8 && st.measuring.Load() {
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(e.Content[:8])))
				st.received.Add(1)
				measured++
				st.mu.Lock()
				st.e2e = append(st.e2e, now.Sub(sent))
				st.mu.Unlock()
			}
			if len(batch) == 0 {
				timer.Reset(2 * time.Millisecond)
			}
			batch = append(batch, e.Id)
			if len(batch) >= cfg.AckBatch {
				flush()
			}
		case <-timer.C:
			flush()
		case <-ctx.Done():
			flush()
			return
		}
	}
}
