// Command sotto-load measures a running relay with simulated devices that
// speak the real protocol (enrollment, challenge authentication, sends,
// pushes, acks) but carry opaque 300-byte payloads instead of Signal
// ciphertext, and verifies that every durable message was delivered once.
// bench.sh in this directory runs issue 4's two targets against a fresh
// local relay; README.md explains the output.
//
//	sotto-load throughput -relay ws://127.0.0.1:8080 -data DIR -devices 1000 -rate 20000 -duration 20s
//	sotto-load backlog    -relay ws://127.0.0.1:8080 -data DIR -messages 20000
//	sotto-load idle       -relay ws://127.0.0.1:8080 -data DIR -devices 10000
//	sotto-load hostile    -relay ws://127.0.0.1:8080 -conns 1000 -addrs 1 -mid-frame
//	sotto-load jetstream  -nats nats://127.0.0.1:4333 -publish sync|async|batch [-rate 5000]
//	sotto-load group      -relay ws://127.0.0.1:8080 -data DIR -members 1000 -add 100 -duration 10s
//
// It runs on the relay's host: like `sottod admin` it opens the relay's
// store (-data DIR, or -store postgres -postgres-url URL), and acts as the
// admin of the relay's organization to invite its devices (org.go). It
// creates the organization, with an org key it keeps in -org-key (default
// DIR/sotto-load-org.key), when the relay has none yet, and refuses a
// relay whose organization's key it does not hold. The relay's per-IP
// enrollment limit must allow the burst (sottod serve -enroll-rate 1000
// -enroll-burst 100000).
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

	"sotto/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Config is what both modes share.
type Config struct {
	Relay   string
	Metrics string // URL of the relay's /metrics listener (default: the relay URL's host)
	Debug   string // idle mode: URL of the relay's debug listener, to collect garbage before measuring
	Data    string // the relay's data directory (its SQLite store)
	OrgKey  string // sotto-load's org key file ("": Data/sotto-load-org.key)
	Store   string // "sqlite" (in Data) or "postgres"
	Devices int

	PostgresURL string // with Store "postgres"
	PGSchema    string
	Prefix      string
	Parallel    int // concurrent enrollments

	// throughput
	Rate      float64 // total messages per second; 0 = as fast as possible
	Duration  time.Duration
	Warmup    time.Duration
	Size      int
	AckBatch  int
	AckDelay  time.Duration // how long an ack may wait for a send or a full batch to ride along
	QuietAcks bool          // AckRequest.quiet: the relay answers only failed acks
	Inflight  int           // sends awaiting a response per device (0: 1 back to back, 256 with -rate)
	// Authenticated: sends go as SendMessage on the authenticated
	// connection; else (the default) sealed (sealed.go).
	Authenticated bool
	Drain         time.Duration // how long to wait for outstanding messages after the window
	RelayPID      int           // when set, report the relay's CPU per delivered message
	CPUProfile    string

	// idle
	Hold time.Duration

	// backlog
	Messages int           // queued per receiver
	Timeout  time.Duration // bound of the drain
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Relay == "" {
		errs = append(errs, errors.New("-relay is required"))
	}
	switch c.Store {
	case "sqlite", "":
		if c.Data == "" {
			errs = append(errs, errors.New("-data is required: the relay's data directory (sotto-load invites its devices into the relay's organization)"))
		}
	case "postgres":
		if c.PostgresURL == "" {
			errs = append(errs, errors.New("-store postgres needs -postgres-url"))
		}
		if c.OrgKey == "" && c.Data == "" {
			errs = append(errs, errors.New("-store postgres needs -org-key (or -data for its default place)"))
		}
	default:
		errs = append(errs, fmt.Errorf("-store must be sqlite or postgres, not %q", c.Store))
	}
	if u, err := relay.NormalizeUsername(c.Prefix + "-org"); err != nil || u != c.Prefix+"-org" ||
		len(fmt.Sprintf("%s-%d", c.Prefix, c.Devices)) > 32 {
		errs = append(errs, errors.New("-prefix must be lowercase a-z 0-9 . _ - and short enough for usernames of at most 32 characters"))
	}
	if c.Devices < 2 {
		errs = append(errs, errors.New("-devices must be at least 2"))
	}
	if c.Size < payloadHeader {
		errs = append(errs, fmt.Errorf("-size must be at least %d", payloadHeader))
	}
	if c.Messages < 1 || c.Timeout <= 0 {
		errs = append(errs, errors.New("-messages and -timeout must be positive"))
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
	if len(args) > 0 && args[0] == "jetstream" {
		return jetstreamMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "group" {
		return groupMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "throughput" && args[0] != "idle" && args[0] != "backlog") {
		fmt.Fprintln(stderr, "usage: sotto-load throughput|backlog|idle|hostile|jetstream|group [flags]  (sotto-load throughput -h)")
		return 2
	}
	mode := args[0]
	cfg := Config{Devices: 1000, Prefix: fmt.Sprintf("load%d", time.Now().Unix()%100000), Parallel: 32,
		Duration: 20 * time.Second, Warmup: 3 * time.Second, Size: 300, AckBatch: 64, AckDelay: -1, Drain: 15 * time.Second, Hold: 10 * time.Second,
		Messages: 20000, Timeout: 10 * time.Minute}
	if mode == "backlog" {
		cfg.Devices, cfg.AckBatch = 2, 256
	}
	fs := flag.NewFlagSet("sotto-load "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Relay, "relay", "ws://127.0.0.1:8080", "relay URL")
	fs.StringVar(&cfg.Data, "data", "", "the relay's data directory (sottod serve -data): its store, and the default place of -org-key")
	fs.StringVar(&cfg.OrgKey, "org-key", "", "sotto-load's organization key file, created if missing (default: DIR/"+orgKeyFileName+" of -data)")
	fs.StringVar(&cfg.Store, "store", "sqlite", "the relay's store: sqlite (in -data) or postgres")
	fs.StringVar(&cfg.PostgresURL, "postgres-url", "", "with -store postgres: the relay's database URL")
	fs.StringVar(&cfg.PGSchema, "postgres-schema", "", "with -store postgres: the relay's schema")
	fs.StringVar(&cfg.Debug, "debug", "", "idle mode: base URL of the relay's debug listener (sottod -debug-listen); when set, the relay collects garbage before each memory reading")
	fs.StringVar(&cfg.Metrics, "metrics", "", "base URL of the relay's metrics listener, e.g. http://127.0.0.1:9090 (sottod -metrics-listen; default: the -relay host)")
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
	fs.BoolVar(&cfg.Authenticated, "authenticated", false, "send SendMessage on the authenticated connection, naming the sender (default: sealed sends, SealedSend with the recipient's access key on a second connection that never logs in; the relay's -sealed-rate must allow the rate)")
	fs.IntVar(&cfg.RelayPID, "relay-pid", 0, "pid of a local relay: report its CPU time per delivered message (and this generator's)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write this generator's CPU profile of the measured window to this file")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "idle mode: how long to hold the connections before measuring")
	fs.IntVar(&cfg.Messages, "messages", cfg.Messages, "backlog mode: messages queued for each receiver (devices/2 senders, each filling one receiver's queue)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "backlog mode: how long the drain may take before the run fails")
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
	case "backlog":
		err = backlog(ctx, cfg, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sotto-load: %v\n", err)
		return 1
	}
	return 0
}
