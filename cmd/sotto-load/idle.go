package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"
)

// idle connects cfg.Devices authenticated devices, holds them idle and
// reports the relay's memory per connection (from its /metrics).
func idle(ctx context.Context, cfg Config, out io.Writer) error {
	before, err := relayMetrics(ctx, cfg.Metrics)
	if err != nil {
		return fmt.Errorf("reading relay metrics: %w", err)
	}
	devs, err := enrollAll(ctx, cfg, 512, out)
	if err != nil {
		return err
	}
	// One reader per connection answers pings and notices a close.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var closed int
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.ws.serve(func([]byte) error { return nil }, func() {})
			mu.Lock()
			closed++
			mu.Unlock()
		}()
	}
	defer func() {
		for _, d := range devs {
			d.ws.close()
		}
		wg.Wait()
	}()
	fmt.Fprintf(out, "holding %d idle connections for %v\n", len(devs), cfg.Hold)
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := relayMetrics(ctx, cfg.Metrics)
	if err != nil {
		return fmt.Errorf("reading relay metrics: %w", err)
	}
	mu.Lock()
	lost := closed
	mu.Unlock()
	n := float64(len(devs))
	rss0, rss1 := before["process_resident_memory_bytes"], after["process_resident_memory_bytes"]
	fmt.Fprintf(out, "relay with %.0f open connections (%d closed by the relay while held):\n", after["sotto_connections_open"], lost)
	fmt.Fprintf(out, "  RSS:        %7.1f MiB (before: %.1f MiB) -> %.1f KiB per connection\n", rss1/(1<<20), rss0/(1<<20), (rss1-rss0)/n/1024)
	fmt.Fprintf(out, "  heap inuse: %7.1f MiB (before: %.1f MiB) -> %.1f KiB per connection\n",
		after["go_memstats_heap_inuse_bytes"]/(1<<20), before["go_memstats_heap_inuse_bytes"]/(1<<20),
		(after["go_memstats_heap_inuse_bytes"]-before["go_memstats_heap_inuse_bytes"])/n/1024)
	fmt.Fprintf(out, "  stacks:     %7.1f MiB, goroutines %.0f (%.2f per connection)\n",
		after["go_memstats_stack_inuse_bytes"]/(1<<20), after["go_goroutines"], (after["go_goroutines"]-before["go_goroutines"])/n)
	hs0 := before["go_memstats_heap_inuse_bytes"] + before["go_memstats_stack_inuse_bytes"]
	hs1 := after["go_memstats_heap_inuse_bytes"] + after["go_memstats_stack_inuse_bytes"]
	fmt.Fprintf(out, "  heap+stacks:%7.1f MiB (before: %.1f MiB) -> %.1f KiB per connection\n", hs1/(1<<20), hs0/(1<<20), (hs1-hs0)/n/1024)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(out, "  (load generator itself: %.1f MiB from the OS)\n", float64(ms.Sys)/(1<<20))
	if lost > 0 {
		return fmt.Errorf("the relay closed %d of %d idle connections", lost, len(devs))
	}
	return nil
}
