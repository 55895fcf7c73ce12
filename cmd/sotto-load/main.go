// Command sotto-load measures a running relay with simulated devices that
// speak the real protocol (enrollment, challenge authentication, sends,
// pushes, acks) but carry opaque 300-byte payloads instead of Signal
// ciphertext, and verifies that every durable message was delivered once.
// bench.sh in this directory runs issue 4's two targets against a fresh
// local relay; README.md explains the output.
//
//	sotto-load throughput -relay ws://127.0.0.1:8080 -code CODE -devices 1000 -rate 20000 -duration 20s
//	sotto-load idle       -relay ws://127.0.0.1:8080 -code CODE -devices 10000
//	sotto-load hostile    -relay ws://127.0.0.1:8080 -conns 1000 -addrs 1 -mid-frame
//
// The code must have at least -devices seats (sottod admin codes create
// -seats N), and the relay's per-IP enrollment limit must allow the burst
// (sottod serve -enroll-rate 1000 -enroll-burst 100000).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Config is what both modes share.
type Config struct {
	Relay    string
	Metrics  string // URL of the relay's /metrics listener (default: the relay URL's host)
	Code     string
	Devices  int
	Prefix   string
	Parallel int // concurrent enrollments

	// throughput
	Rate       float64 // total messages per second; 0 = as fast as possible
	Duration   time.Duration
	Warmup     time.Duration
	Size       int
	AckBatch   int
	AckDelay   time.Duration // how long an ack may wait for a send or a full batch to ride along
	QuietAcks  bool          // AckRequest.quiet: the relay answers only failed acks
	Inflight   int           // sends awaiting a response per device (0: 1 back to back, 256 with -rate)
	Drain      time.Duration // how long to wait for outstanding messages after the window
	RelayPID   int           // when set, report the relay's CPU per delivered message
	CPUProfile string

	// idle
	Hold time.Duration
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Relay == "" {
		errs = append(errs, errors.New("-relay is required"))
	}
	if c.Code == "" {
		errs = append(errs, errors.New("-code is required (sottod admin codes create -seats N)"))
	}
	if c.Devices < 2 {
		errs = append(errs, errors.New("-devices must be at least 2"))
	}
	if c.Size < payloadHeader {
		errs = append(errs, fmt.Errorf("-size must be at least %d", payloadHeader))
	}
	if c.Duration <= 0 || c.Rate < 0 || c.Parallel < 1 || c.AckBatch < 1 || c.AckBatch > 1024 || c.Inflight < 0 || c.Drain < 0 {
		errs = append(errs, errors.New("-duration, -parallel and -ack-batch (at most 1024, the relay's limit) must be positive, -rate, -inflight and -drain not negative"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "hostile" {
		return hostileMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "throughput" && args[0] != "idle") {
		fmt.Fprintln(stderr, "usage: sotto-load throughput|idle|hostile [flags]  (sotto-load throughput -h)")
		return 2
	}
	mode := args[0]
	cfg := Config{Devices: 1000, Prefix: fmt.Sprintf("load%d", time.Now().Unix()%100000), Parallel: 32,
		Duration: 20 * time.Second, Warmup: 3 * time.Second, Size: 300, AckBatch: 64, AckDelay: -1, Drain: 15 * time.Second, Hold: 10 * time.Second}
	fs := flag.NewFlagSet("sotto-load "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Relay, "relay", "ws://127.0.0.1:8080", "relay URL")
	fs.StringVar(&cfg.Metrics, "metrics", "", "base URL of the relay's metrics listener, e.g. http://127.0.0.1:9090 (sottod -metrics-listen; default: the -relay host)")
	fs.StringVar(&cfg.Code, "code", "", "activation code with at least -devices seats")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "simulated devices")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "username prefix (must be new on this relay)")
	fs.IntVar(&cfg.Parallel, "parallel", cfg.Parallel, "concurrent enrollments")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target messages per second in total (0: each device sends back to back)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured duration")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured warm-up before the measurement")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "payload bytes")
	fs.IntVar(&cfg.AckBatch, "ack-batch", cfg.AckBatch, "most envelopes per Ack request (an Ack is written whenever the received bytes are handled)")
	fs.DurationVar(&cfg.AckDelay, "ack-delay", cfg.AckDelay, "hold acks up to this long so that they ride along with the device's next SendMessage in the same write, or fill a batch (0: ack as soon as the received bytes are handled; default 250ms, with -rate 1.25 x devices/rate up to 2s)")
	fs.BoolVar(&cfg.QuietAcks, "quiet-acks", true, "send quiet Acks (answered only when they fail; confirmed by the relay's sotto_messages_acked_total)")
	fs.IntVar(&cfg.Inflight, "inflight", 0, "sends awaiting their response per device: back to back, how many are kept in flight (default 1); with -rate, the limit beyond which a device skips its turn (default 256)")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after the window, how long to wait for outstanding sends, deliveries and acks before verifying")
	fs.IntVar(&cfg.RelayPID, "relay-pid", 0, "pid of a local relay: report its CPU time per delivered message (and this generator's)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write this generator's CPU profile of the measured window to this file")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "idle mode: how long to hold the connections before measuring")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if cfg.Metrics == "" {
		cfg.Metrics = cfg.Relay
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "sotto-load: invalid configuration:\n%v\n", err)
		return 2
	}
	var err error
	switch mode {
	case "throughput":
		err = throughput(ctx, cfg, stdout)
	case "idle":
		err = idle(ctx, cfg, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sotto-load: %v\n", err)
		return 1
	}
	return 0
}
