package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"sotto/wire"
)

// The hostile mode plays an outsider without an account (issue 12): it
// opens as many WebSockets as the relay lets it from one or several
// loopback addresses, holds them idle or in the middle of a frame that
// announces a large length, reports what the relay accepted and what the
// connections cost it, then leaves and times how long a normal client
// waits to be served. Loopback only, and bounded in count and time.

// HostileConfig configures the hostile mode.
type HostileConfig struct {
	Relay    string
	Metrics  string
	Conns    int           // connection attempts in all
	Addrs    int           // source addresses 127.0.0.2, 127.0.0.3, ...
	MidFrame bool          // announce a frame of wire.MaxFrameSize, send 100 bytes of it
	Silent   bool          // open TCP connections and send nothing (no HTTP request)
	Hold     time.Duration // how long to hold before measuring
	Parallel int
}

const (
	maxHostileConns = 20000
	maxHostileHold  = 5 * time.Minute
)

func (c HostileConfig) validate() error {
	var errs []error
	u, err := url.Parse(c.Relay)
	if err != nil || u.Scheme != "ws" {
		errs = append(errs, fmt.Errorf("-relay %q: want ws://LOOPBACK:PORT", c.Relay))
	} else if a, err := netip.ParseAddr(u.Hostname()); err != nil || !a.IsLoopback() {
		errs = append(errs, fmt.Errorf("-relay %q: the hostile mode runs against loopback only", c.Relay))
	}
	if c.Conns < 1 || c.Conns > maxHostileConns {
		errs = append(errs, fmt.Errorf("-conns: 1 to %d", maxHostileConns))
	}
	if c.Addrs < 1 || c.Addrs > 250 {
		errs = append(errs, errors.New("-addrs: 1 to 250 (127.0.0.2 to 127.0.0.251)"))
	}
	if c.Hold < 0 || c.Hold > maxHostileHold || c.Parallel < 1 {
		errs = append(errs, fmt.Errorf("-hold: 0 to %v; -parallel positive", maxHostileHold))
	}
	return errors.Join(errs...)
}

func hostileMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := HostileConfig{Relay: "ws://127.0.0.1:8080", Conns: 1000, Addrs: 1, Hold: 5 * time.Second, Parallel: 32}
	fs := flag.NewFlagSet("sotto-load hostile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Relay, "relay", cfg.Relay, "relay URL (loopback)")
	fs.StringVar(&cfg.Metrics, "metrics", "", "base URL of the relay's metrics listener (default: the -relay host)")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "connection attempts in all")
	fs.IntVar(&cfg.Addrs, "addrs", cfg.Addrs, "source addresses, from 127.0.0.2 up")
	fs.BoolVar(&cfg.MidFrame, "mid-frame", false, "after the upgrade, announce a frame of wire.MaxFrameSize bytes and send 100 of them")
	fs.BoolVar(&cfg.Silent, "silent", false, "open TCP connections and send nothing, not even an HTTP request")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "hold the connections this long before measuring (keep it under the relay's -login-timeout)")
	fs.IntVar(&cfg.Parallel, "parallel", cfg.Parallel, "concurrent connection attempts")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.Metrics == "" {
		cfg.Metrics = cfg.Relay
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "sotto-load: invalid configuration:\n%v\n", err)
		return 2
	}
	if err := hostile(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "sotto-load: %v\n", err)
		return 1
	}
	return 0
}

// hostileResult counts the outcomes of the connection attempts.
type hostileResult struct {
	mu       sync.Mutex
	held     []net.Conn
	byStatus map[string]int
}

func (r *hostileResult) add(status string, c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byStatus[status]++
	if c != nil {
		r.held = append(r.held, c)
	}
}

func hostile(ctx context.Context, cfg HostileConfig, out io.Writer) error {
	u, _ := url.Parse(cfg.Relay)
	host := u.Host
	before, err := relayMetrics(ctx, cfg.Metrics)
	if err != nil {
		return fmt.Errorf("reading relay metrics: %w", err)
	}
	res := &hostileResult{byStatus: map[string]int{}}
	defer func() {
		for _, c := range res.held {
			c.Close()
		}
	}()
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				from := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i%cfg.Addrs)})
				c, status := hostileDial(ctx, host, from, cfg.MidFrame, cfg.Silent)
				res.add(strings.TrimSuffix(status, "+challenge"), c)
			}
		}()
	}
	for i := range cfg.Conns {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if cfg.Silent {
		// The relay closes the connections over its cap as soon as it
		// accepts them: keep those it did not close.
		open := make([]bool, len(res.held))
		deadline := time.Now().Add(300 * time.Millisecond)
		var cwg sync.WaitGroup
		for i, c := range res.held {
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				c.SetReadDeadline(deadline)
				var b [1]byte
				_, err := c.Read(b[:])
				open[i] = errors.Is(err, os.ErrDeadlineExceeded)
				c.SetReadDeadline(time.Time{})
			}()
		}
		cwg.Wait()
		kept := res.held[:0]
		for i, c := range res.held {
			if open[i] {
				kept = append(kept, c)
				continue
			}
			c.Close()
			res.byStatus["connected"]--
			res.byStatus["closed by the relay"]++
		}
		res.held = kept
	}
	fmt.Fprintf(out, "%d attempts from %d address(es) in %v: %v\n", cfg.Conns, cfg.Addrs, time.Since(start).Round(time.Millisecond), res.byStatus)
	// A normal client from another address while the attacker holds on.
	during := probeClient(ctx, host, 5*time.Second)
	fmt.Fprintf(out, "normal client (127.0.0.1) during the attack: %s\n", during)
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := relayMetrics(ctx, cfg.Metrics)
	if err != nil {
		return fmt.Errorf("reading relay metrics: %w", err)
	}
	// Per connection the relay holds: it may have closed some of ours
	// (the oldest, to make room for newer ones).
	n := after["sotto_connections_open"]
	if n == 0 {
		n = float64(len(res.held))
	}
	rss0, rss1 := before["process_resident_memory_bytes"], after["process_resident_memory_bytes"]
	heap0, heap1 := before["go_memstats_heap_inuse_bytes"]+before["go_memstats_stack_inuse_bytes"], after["go_memstats_heap_inuse_bytes"]+after["go_memstats_stack_inuse_bytes"]
	fmt.Fprintf(out, "this side holds %d connections (%s); the relay reports %.0f open\n", len(res.held), map[bool]string{true: "mid-frame", false: "idle"}[cfg.MidFrame]+map[bool]string{true: ", silent TCP", false: ""}[cfg.Silent], after["sotto_connections_open"])
	if n > 0 {
		fmt.Fprintf(out, "  RSS:          %7.1f MiB (before %.1f) -> %.1f KiB per open connection\n", rss1/(1<<20), rss0/(1<<20), (rss1-rss0)/n/1024)
		fmt.Fprintf(out, "  heap+stacks:  %7.1f MiB (before %.1f) -> %.1f KiB per open connection\n", heap1/(1<<20), heap0/(1<<20), (heap1-heap0)/n/1024)
	}
	// Leave, then time how long a normal client waits to be served.
	for _, c := range res.held {
		c.Close()
	}
	res.held = nil
	left := time.Now()
	recovered := probeClient(ctx, host, 60*time.Second)
	fmt.Fprintf(out, "after the attacker left: %s (%v after leaving)\n", recovered, time.Since(left).Round(time.Millisecond))
	return nil
}

// hostileDial opens one WebSocket from the address from; it returns the
// held connection (nil when refused) and an outcome label.
func hostileDial(ctx context.Context, host string, from netip.Addr, midFrame, silent bool) (net.Conn, string) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, "dial error"
	}
	if silent {
		return c, "connected"
	}
	status, buffered, err := upgrade(c, host)
	if err != nil || status != 101 {
		c.Close()
		if err != nil {
			return nil, "handshake error"
		}
		return nil, fmt.Sprintf("HTTP %d", status)
	}
	if midFrame {
		h := []byte{0x82, 0x80 | 127}
		h = binary.BigEndian.AppendUint64(h, wire.MaxFrameSize)
		h = append(h, 1, 2, 3, 4)
		h = append(h, make([]byte, 100)...)
		if _, err := c.Write(h); err != nil {
			c.Close()
			return nil, "write error"
		}
	}
	if buffered > 0 {
		return c, "accepted+challenge"
	}
	return c, "accepted"
}

// upgrade sends the WebSocket handshake and reads the status line and
// headers of the answer; it returns how many bytes of what follows (the
// relay's first push) it read along.
func upgrade(c net.Conn, host string) (int, int, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: c290dG8taG9zdGlsZS1rZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return 0, 0, err
	}
	br := bufio.NewReaderSize(c, 512)
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, 0, err
	}
	var status int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &status); err != nil {
		return 0, 0, fmt.Errorf("status line %q", strings.TrimSpace(line))
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return status, 0, err
		}
		if l == "\r\n" {
			return status, br.Buffered(), nil
		}
	}
}

// probeClient dials from 127.0.0.1 until the relay upgrades a connection
// and pushes its challenge, or until limit; it describes the outcome.
func probeClient(ctx context.Context, host string, limit time.Duration) string {
	start := time.Now()
	tries := 0
	last := ""
	for time.Since(start) < limit && ctx.Err() == nil {
		tries++
		c, status := hostileDial(ctx, host, netip.MustParseAddr("127.0.0.1"), false, false)
		if c != nil {
			err := error(nil)
			if status != "accepted+challenge" {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				var b [2]byte
				_, err = io.ReadFull(c, b[:])
			}
			c.Close()
			if err == nil {
				return fmt.Sprintf("served after %v (%d attempts)", time.Since(start).Round(time.Millisecond), tries)
			}
			status = "no challenge"
		}
		last = status
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Sprintf("NOT served within %v (%d attempts, last: %s)", limit, tries, last)
}
