// Command sotto-load measures a running relay with simulated devices that
// speak the real protocol (enrollment, challenge authentication, sends,
// pushes, acks) but carry opaque 300-byte payloads instead of Signal
// ciphertext.
//
//	sotto-load throughput -relay ws://127.0.0.1:8080 -code CODE -devices 1000 -rate 20000 -duration 20s
//	sotto-load idle       -relay ws://127.0.0.1:8080 -code CODE -devices 10000
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
	Code     string
	Devices  int
	Prefix   string
	Parallel int // concurrent enrollments

	// throughput
	Rate     float64 // total messages per second; 0 = as fast as possible
	Duration time.Duration
	Warmup   time.Duration
	Size     int
	AckBatch int
	RelayPID int // when set, report CPU per delivered message

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
	if c.Size < 16 {
		errs = append(errs, errors.New("-size must be at least 16"))
	}
	if c.Duration <= 0 || c.Rate < 0 || c.Parallel < 1 || c.AckBatch < 1 {
		errs = append(errs, errors.New("-duration, -parallel and -ack-batch must be positive, -rate not negative"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "throughput" && args[0] != "idle") {
		fmt.Fprintln(stderr, "usage: sotto-load throughput|idle [flags]  (sotto-load throughput -h)")
		return 2
	}
	mode := args[0]
	cfg := Config{Devices: 1000, Prefix: fmt.Sprintf("load%d", time.Now().Unix()%100000), Parallel: 32,
		Duration: 20 * time.Second, Warmup: 3 * time.Second, Size: 300, AckBatch: 32, Hold: 10 * time.Second}
	fs := flag.NewFlagSet("sotto-load "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Relay, "relay", "ws://127.0.0.1:8080", "relay URL")
	fs.StringVar(&cfg.Code, "code", "", "activation code with at least -devices seats")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "simulated devices")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "username prefix (must be new on this relay)")
	fs.IntVar(&cfg.Parallel, "parallel", cfg.Parallel, "concurrent enrollments")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target messages per second in total (0: each device sends back to back)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured duration")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured warm-up before the measurement")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "payload bytes")
	fs.IntVar(&cfg.AckBatch, "ack-batch", cfg.AckBatch, "envelopes per Ack request")
	fs.IntVar(&cfg.RelayPID, "relay-pid", 0, "pid of a local relay: report its CPU time per delivered message (and this generator's)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "idle mode: how long to hold the connections before measuring")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
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
