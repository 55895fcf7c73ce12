package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
)

// idle connects cfg.Devices authenticated devices, holds them idle and
// reports the relay's memory per connection (from its /metrics).
func idle(ctx context.Context, cfg Config, out io.Writer) error {
	if err := relayGC(ctx, cfg.Debug); err != nil {
		return err
	}
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
	if err := relayGC(ctx, cfg.Debug); err != nil {
		return err
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
	if cfg.Debug != "" {
		fmt.Fprintln(out, "(memory read right after two garbage collections in the relay)")
	}
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

// relayGC makes the relay collect garbage (through its pprof heap
// endpoint with gc=1) when debug, the base URL of its debug listener, is
// set, so that its heap figures count live memory.
func relayGC(ctx context.Context, debug string) error {
	if debug == "" {
		return nil
	}
	// Twice: a sync.Pool (the relay's read and write buffers) keeps its
	// contents through one collection.
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(debug, "/")+"/debug/pprof/heap?gc=1", nil)
		if err != nil {
			return fmt.Errorf("relay debug listener: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("relay debug listener: %w", err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("relay debug listener: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("relay debug listener: %s", resp.Status)
		}
	}
	return nil
}
