package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"sotto/relay"
	"sotto/witness"
)

// Config is everything `sottod serve` needs.
type Config struct {
	// DataDir holds the relay's database, keys and blobs; there is no
	// default (config.go: -data or the config file).
	DataDir    string
	Listen     string
	TLSCert    string
	TLSKey     string
	ACMEDomain string
	MailboxTTL time.Duration
	// DedupeTTL is how long a send's dedupe record (its sender and message
	// id) is kept for retries (relay.Config.DedupeTTL).
	DedupeTTL time.Duration
	LogLevel  string
	// EnrollRate and EnrollBurst limit enrollments, device links and
	// failed authentications per client IP (token bucket).
	EnrollRate  float64
	EnrollBurst int
	// DeviceRate limits requests per connection per second (burst 2x).
	DeviceRate float64
	// SealedRate limits sealed sends per client address key per second
	// (burst 4x).
	SealedRate float64
	// DebugListen, when set, serves net/http/pprof there (keep it on
	// loopback: profiles reveal metadata, never content).
	DebugListen string
	// WebSocket selects the server WebSocket implementation: "lean"
	// (relay.AcceptLean, no buffers while idle: the default, since it is
	// the one that holds 10,000 idle devices in under 200 MB) or "coder"
	// (github.com/coder/websocket).
	WebSocket string
	// TURNListen is the TURN server's UDP and TCP listen address for call
	// media ("": no TURN); TURNPublicIP the address put in relayed
	// candidates (default: the host of TURNListen).
	TURNListen   string
	TURNPublicIP string
	// TURNSListen is the listen address of TURN over TLS (turns:), with
	// the relay's certificate (-tls-cert or -acme-domain; "": off);
	// TURNSName the host put in turns: URLs, which the certificate must
	// hold (default: -acme-domain, else the host of TURNSListen).
	TURNSListen, TURNSName string
	// Witness is the base URL of the org's key log witness ("": none);
	// the relay submits its log heads there and serves the cosignatures.
	Witness string
	// Releases is a release directory to mirror under /releases/ for
	// `sotto update` ("": none); see relay.WithReleases.
	Releases string
	// Attachments (blobs.go).
	BlobConfig
	// Store and bus (backends.go).
	BackendConfig
	// Connection caps, lifetimes, address keys, the metrics listener
	// (limits.go).
	LimitConfig
}

// DefaultConfig returns the defaults of the serve flags.
func DefaultConfig() Config {
	return Config{
		Listen:      "127.0.0.1:8080",
		MailboxTTL:  30 * 24 * time.Hour,
		DedupeTTL:   relay.DefaultDedupeTTL,
		LogLevel:    "info",
		WebSocket:   "lean",
		EnrollRate:  relay.DefaultConfig().EnrollRate.PerSecond,
		EnrollBurst: int(relay.DefaultConfig().EnrollRate.Burst),
		DeviceRate:  relay.DefaultConfig().DeviceRate.PerSecond,
		SealedRate:  relay.DefaultSealedRate.PerSecond,
		TURNListen:  "127.0.0.1:3478",
		BlobConfig:  defaultBlobConfig(),

		BackendConfig: defaultBackendConfig(),
		LimitConfig:   defaultLimitConfig(),
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errNoDataDir())
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("-listen %q: %v", c.Listen, err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	if c.ACMEDomain != "" && c.TLSCert != "" {
		errs = append(errs, errors.New("-acme-domain and -tls-cert are exclusive"))
	}
	if c.MailboxTTL < time.Minute {
		errs = append(errs, fmt.Errorf("-mailbox-ttl %v: must be at least 1m", c.MailboxTTL))
	}
	if c.DedupeTTL < 10*time.Second || c.DedupeTTL > time.Hour {
		errs = append(errs, fmt.Errorf("-dedupe-ttl %v: must be 10s to 1h (long enough for a retry, short enough to forget who sent what)", c.DedupeTTL))
	}
	if c.WebSocket != "coder" && c.WebSocket != "lean" {
		errs = append(errs, fmt.Errorf("-websocket %q: want coder or lean", c.WebSocket))
	}
	if c.EnrollRate <= 0 || c.EnrollBurst < 1 || c.DeviceRate <= 0 || c.SealedRate <= 0 {
		errs = append(errs, errors.New("-enroll-rate, -enroll-burst, -device-rate and -sealed-rate must be positive"))
	}
	if c.TURNSListen != "" && !c.tls() {
		errs = append(errs, errors.New("-turns-listen needs the relay's certificate (-tls-cert or -acme-domain)"))
	}
	if c.TURNSListen != "" && c.TURNListen == "" {
		errs = append(errs, errors.New("-turns-listen needs -turn-listen (the TURN server's relay addresses)"))
	}
	if c.Witness != "" {
		if u, err := url.Parse(c.Witness); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("-witness %q: want an http:// or https:// base URL", c.Witness))
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level %q: %v", c.LogLevel, err))
	}
	errs = append(errs, c.BackendConfig.problems()...)
	errs = append(errs, c.LimitConfig.problems()...)
	return errors.Join(errs...)
}

func (c Config) tls() bool { return c.TLSCert != "" || c.ACMEDomain != "" }

// loadTLS returns the relay's TLS configuration (nil: plaintext).
func loadTLS(cfg Config) (*tls.Config, error) {
	switch {
	case cfg.TLSCert != "":
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("sottod: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
	case cfg.ACMEDomain != "":
		return acmeTLS(cfg)
	}
	return nil, nil
}

// Daemon is a running relay: store, server and HTTP listener.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	store relay.Store
	bus   func() // closes the bus connection (backends.go)
	srv   *relay.Server
	http  *http.Server
	ln    net.Listener
	ops   *http.Server // /metrics, /healthz, /readyz; nil without -metrics-listen
	opsLn net.Listener
	turn  *relay.TURNServer
	blobs io.Closer // the blob index, nil when off
}

// NewDaemon opens the store and binds the listener.
func NewDaemon(ctx context.Context, cfg Config, log *slog.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	be, err := openBackends(ctx, cfg.DataDir, cfg.BackendConfig, cfg.MailboxTTL, cfg.DedupeTTL, log)
	if err != nil {
		return nil, err
	}
	store := be.store
	rcfg := relay.DefaultConfig()
	rcfg.Directory, rcfg.Mailbox, rcfg.Logger = store, be.mailbox, log
	rcfg.Bus = be.bus
	rcfg.MailboxTTL = cfg.MailboxTTL
	rcfg.DedupeTTL = cfg.DedupeTTL
	rcfg.EnrollRate = relay.Rate{PerSecond: cfg.EnrollRate, Burst: float64(cfg.EnrollBurst)}
	rcfg.DeviceRate = relay.Rate{PerSecond: cfg.DeviceRate, Burst: 2 * cfg.DeviceRate}
	rcfg.SealedRate = relay.Rate{PerSecond: cfg.SealedRate, Burst: 4 * cfg.SealedRate}
	cfg.LimitConfig.apply(&rcfg)
	if cfg.WebSocket == "lean" {
		rcfg.AcceptWebSocket = relay.AcceptLean
	}
	if rcfg.LogKey, err = loadLogKey(cfg.DataDir); err != nil {
		be.close()
		store.Close()
		return nil, err
	}
	if cfg.Witness != "" {
		rcfg.Witness = &witness.Client{URL: cfg.Witness, HTTP: &http.Client{Timeout: 15 * time.Second}}
	}
	if rcfg.SenderCertificates, err = loadSealedIssuer(cfg.DataDir); err != nil {
		be.close()
		store.Close()
		return nil, err
	}
	blobs, err := openBlobs(ctx, cfg.DataDir, cfg.BlobConfig, &rcfg)
	if err != nil {
		be.close()
		store.Close()
		return nil, err
	}
	tlsConf, err := loadTLS(cfg)
	if err != nil {
		be.close()
		store.Close()
		return nil, err
	}
	turnSrv, err := startTURN(ctx, cfg, &rcfg, tlsConf, log)
	if err != nil {
		be.close()
		store.Close()
		return nil, err
	}
	srv, err := relay.New(rcfg)
	if err != nil {
		be.close()
		store.Close()
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, store: store, bus: be.close, srv: srv, turn: turnSrv, blobs: blobs}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("sottod: %w", err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	d.ln = ln
	d.http = &http.Server{
		Handler:           relay.WithReleases(cfg.Releases, srv.PublicHandler()),
		ReadHeaderTimeout: 10 * time.Second,
		// A kept-alive HTTP connection that never upgrades holds no slot
		// of the connection caps: it idles no longer than a WebSocket
		// may stay logged out.
		IdleTimeout: cfg.LoginTimeout,
		ConnState:   srv.ConnState,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if cfg.MetricsListen != "" {
		if d.opsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			d.Close()
			return nil, fmt.Errorf("sottod: metrics listener: %w", err)
		}
		d.ops = &http.Server{Handler: srv.OpsHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	}
	for _, w := range d.Warnings() {
		log.Warn(w)
	}
	return d, nil
}

// Warnings lists what in the configuration exposes the relay: plaintext
// on an address other hosts reach, metrics on one.
func (d *Daemon) Warnings() []string {
	var ws []string
	if !d.cfg.tls() && exposedPlaintext(d.ln.Addr()) {
		ws = append(ws, fmt.Sprintf("listening WITHOUT TLS on %s, which other hosts can reach: clients' traffic and metadata cross the network in the clear (use -tls-cert/-tls-key or -acme-domain, or listen on loopback behind a TLS-terminating proxy)", d.ln.Addr()))
	}
	if d.opsLn != nil && exposedPlaintext(d.opsLn.Addr()) {
		ws = append(ws, fmt.Sprintf("serving /metrics on %s, which other hosts can reach: the counters reveal traffic volumes (keep -metrics-listen on loopback or a private network)", d.opsLn.Addr()))
	}
	return ws
}

// MetricsURL is the base URL of the metrics listener ("" when off).
func (d *Daemon) MetricsURL() string {
	if d.opsLn == nil {
		return ""
	}
	return "http://" + d.opsLn.Addr().String()
}

// URL is the address clients connect to.
func (d *Daemon) URL() string {
	scheme := "ws"
	if d.cfg.tls() {
		scheme = "wss"
	}
	host := d.ln.Addr().String()
	if d.cfg.ACMEDomain != "" {
		host = d.cfg.ACMEDomain
	}
	return scheme + "://" + host
}

// Run serves until ctx is canceled, then shuts down gracefully.
func (d *Daemon) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- d.srv.Run(ctx) }()
	go func() {
		if err := d.http.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	if d.ops != nil {
		go func() {
			if err := d.ops.Serve(d.opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Warn("metrics listener", "err", err)
			}
		}()
		defer d.ops.Close()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	d.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Stop accepting, then close the WebSockets (hijacked, so Shutdown
	// does not wait for them), then wait for the HTTP server.
	shut := make(chan error, 1)
	go func() { shut <- d.http.Shutdown(sctx) }()
	d.srv.Close()
	if serr := <-shut; serr != nil && err == nil {
		err = serr
	}
	return err
}

// Close releases the store. Call after Run returns.
func (d *Daemon) Close() error {
	if d.srv != nil {
		d.srv.Close()
	}
	if d.ln != nil {
		d.ln.Close()
	}
	if d.opsLn != nil {
		d.opsLn.Close()
	}
	if d.turn != nil {
		d.turn.Close()
	}
	if d.blobs != nil {
		d.blobs.Close()
	}
	if d.bus != nil {
		d.bus()
	}
	return d.store.Close()
}

func serveMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("sottod serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data `directory`: the relay's database, keys and blobs (required here or as `data` in the config file)")
	configPath := fs.String("config", "", "config `file`: a `name value` line per flag, overridden by the command line (default: the first of "+strings.Join(defaultConfigFiles(), ", ")+" that exists)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file (PEM)")
	fs.StringVar(&cfg.ACMEDomain, "acme-domain", "", "obtain a certificate for this domain from Let's Encrypt (listen on :443)")
	fs.DurationVar(&cfg.MailboxTTL, "mailbox-ttl", cfg.MailboxTTL, "drop undelivered envelopes after this long")
	fs.DurationVar(&cfg.DedupeTTL, "dedupe-ttl", cfg.DedupeTTL, "keep a send's dedupe record (sender and message id) this long for client retries")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.Float64Var(&cfg.EnrollRate, "enroll-rate", cfg.EnrollRate, "enrollments, links and failed logins per second per client IP")
	fs.IntVar(&cfg.EnrollBurst, "enroll-burst", cfg.EnrollBurst, "burst of -enroll-rate")
	fs.StringVar(&cfg.WebSocket, "websocket", cfg.WebSocket, "server WebSocket implementation: lean (little memory per idle connection) or coder (github.com/coder/websocket)")
	fs.StringVar(&cfg.DebugListen, "debug-listen", "", "serve /debug/pprof on this address (e.g. 127.0.0.1:6060)")
	fs.Float64Var(&cfg.DeviceRate, "device-rate", cfg.DeviceRate, "requests per second per connection (burst twice that)")
	fs.Float64Var(&cfg.SealedRate, "sealed-rate", cfg.SealedRate, "sealed sends per second per client address (burst four times that)")
	fs.StringVar(&cfg.TURNListen, "turn-listen", cfg.TURNListen, "TURN server address for call media, UDP and TCP (empty: no TURN)")
	fs.StringVar(&cfg.TURNPublicIP, "turn-public-ip", "", "public IP put in relayed candidates (default: the -turn-listen host)")
	fs.StringVar(&cfg.TURNSListen, "turns-listen", "", "TURN over TLS address (turns:) with the relay's certificate (empty: off)")
	fs.StringVar(&cfg.TURNSName, "turns-name", "", "host name put in turns: URLs, which the certificate must hold (default: -acme-domain, else the -turns-listen host)")
	fs.StringVar(&cfg.Witness, "witness", "", "base URL of the org's key log witness (sotto admin witness serve) to co-sign the log's heads")
	fs.StringVar(&cfg.Releases, "releases", "", "release `DIR` to mirror under /releases/ for sotto update (devices check every byte; the relay cannot push a build)")
	blobFlags(fs, &cfg.BlobConfig)
	backendFlags(fs, &cfg.BackendConfig)
	limitFlags(fs, &cfg.LimitConfig)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cf, err := loadConfig(*configPath)
	dataFrom := dataSource(fs, cf) // before the file's settings count as set
	if err == nil && cf != nil {
		err = cf.apply(fs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sottod serve: %v\n", err)
		return 2
	}
	if cfg.DataDir, err = absData(cfg.DataDir); err != nil {
		fmt.Fprintf(stderr, "sottod serve: -data: %v\n", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "sottod serve: invalid configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	var lvl slog.Level
	lvl.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	d, err := NewDaemon(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "sottod serve: %v\n", err)
		return 1
	}
	defer d.Close()
	fmt.Fprintf(stdout, "sottod: relay listening on %s\n", d.URL())
	fmt.Fprintf(stdout, "sottod: data directory %s (from %s)\n", cfg.DataDir, dataFrom)
	if u := d.MetricsURL(); u != "" {
		fmt.Fprintf(stdout, "sottod: metrics and health on %s/metrics, /healthz, /readyz\n", u)
	} else {
		fmt.Fprintf(stdout, "sottod: health on /healthz; no metrics listener (-metrics-listen)\n")
	}
	for _, w := range d.Warnings() {
		fmt.Fprintf(stdout, "sottod: WARNING: %s\n", w)
	}
	fmt.Fprintf(stdout, "sottod: before an organization exists: sottod admin bootstrap -data %s -relay %s\n", cfg.DataDir, d.URL())
	fmt.Fprintf(stdout, "sottod: then, on the first admin's device: sotto admin init --bootstrap CODE; its admins invite people (sotto admin invite)\n")
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	if cfg.DebugListen != "" {
		dbg := &http.Server{Addr: cfg.DebugListen, Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
		go dbg.ListenAndServe()
		defer dbg.Close()
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "sottod serve: %v\n", err)
		return 1
	}
	return 0
}
