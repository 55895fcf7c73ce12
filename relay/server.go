package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Config configures a Server. Zero fields take the defaults of
// DefaultConfig, except Directory, Mailbox and Logger which are required
// (Logger may be slog.New(slog.DiscardHandler)).
type Config struct {
	Directory Directory
	Mailbox   Mailbox
	Bus       Bus // default: a new LocalBus
	Logger    *slog.Logger
	Now       func() time.Time // default: time.Now

	MailboxTTL time.Duration // envelopes older than this are dropped (30 days)
	// DedupeTTL is how long a send's dedupe record is kept (10 min): a
	// client that retries a send within it gets "duplicate" and nothing is
	// stored twice; after it the relay has forgotten who sent that message
	// id (a later retry is stored again, and the recipient drops the
	// repeated message id). The expiry loop deletes records every
	// DedupeTTL/2, so one lives at most 1.5 DedupeTTL.
	DedupeTTL  time.Duration
	MaxDevices int  // per account (6)
	DeviceRate Rate // requests per connection
	EnrollRate Rate // enroll, link and failed authentications per client address key
	// EnrollRateAll limits enrollments and links of all clients together
	// (default 1/s with bursts of 50, or EnrollRate if that is higher).
	EnrollRateAll  Rate
	DeliveryWindow int           // envelopes pushed but not yet acked per connection (256)
	WriteTimeout   time.Duration // per frame written (10 s)
	RevocationPoll time.Duration // how often to look for revocations made by other processes (1 s)
	ExpireEvery    time.Duration // how often to delete expired envelopes (10 min)
	LinkTokenTTL   time.Duration // (10 min)
	LoginTimeout   time.Duration // unauthenticated connections are closed after this (30 s)
	// ProvisionTimeout bounds the life of a provisioning connection (a
	// new device waiting for a link approval), from its opening (3 min).
	ProvisionTimeout time.Duration
	// SealedIdleTimeout closes a sealed-send connection this long after
	// its last sealed send (30 s); the client redials when it next sends.
	SealedIdleTimeout time.Duration
	// ConnLimits caps connections per client address key and
	// unauthenticated ones in total (connlimit.go).
	ConnLimits ConnLimits
	// AddrPrefixV4 and AddrPrefixV6 are the prefix lengths that make a
	// client address key (32 and 64): limits apply to the whole prefix.
	AddrPrefixV4, AddrPrefixV6 int
	// TrustedProxies are the reverse proxies whose forwarding header
	// (ForwardedHeader: HeaderXForwardedFor, the default, or
	// HeaderForwarded) names the client; the header of any other peer is
	// ignored.
	TrustedProxies  []netip.Prefix
	ForwardedHeader string
	AcceptWebSocket func(http.ResponseWriter, *http.Request) (Socket, error)
	// DirectoryCacheTTL bounds how long a username's account and device
	// list are reused for sends without asking the store (5 s).
	DirectoryCacheTTL time.Duration
	// Blobs configures the attachment blob store (off when unset).
	Blobs BlobConfig
	// TURN issues TURN credentials to authenticated devices (nil: the
	// relay runs no TURN server).
	TURN *TURNCredentials
	// LogKey signs the key transparency log's heads (nil: no log). The
	// Directory must then implement KeyLog.
	LogKey ed25519.PrivateKey
	// Witness co-signs the log's heads (nil: none; needs LogKey). The
	// relay submits its newest head soon after the log grows and every
	// WitnessEvery (1 min), and serves the cosignatures with its heads.
	Witness      Witness
	WitnessEvery time.Duration
	// SenderCertificates issues sealed-sender certificates to authenticated
	// devices (nil: none). SenderCertificateTTL is their lifetime (24 h);
	// SealedRate bounds sealed sends per client IP (50/s, bursts of 200).
	SenderCertificates   CertificateIssuer
	SenderCertificateTTL time.Duration
	SealedRate           Rate
}

// DefaultDedupeTTL is the default Config.DedupeTTL.
const DefaultDedupeTTL = 10 * time.Minute

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MailboxTTL:        30 * 24 * time.Hour,
		DedupeTTL:         DefaultDedupeTTL,
		MaxDevices:        6,
		DeviceRate:        Rate{PerSecond: 500, Burst: 1000},
		EnrollRate:        Rate{PerSecond: 0.2, Burst: 20},
		DeliveryWindow:    256,
		WriteTimeout:      10 * time.Second,
		RevocationPoll:    time.Second,
		ExpireEvery:       10 * time.Minute,
		LinkTokenTTL:      10 * time.Minute,
		LoginTimeout:      30 * time.Second,
		DirectoryCacheTTL: 5 * time.Second,
		WitnessEvery:      time.Minute,
		EnrollRateAll:     Rate{PerSecond: 1, Burst: 50},
		ProvisionTimeout:  3 * time.Minute,
		SealedIdleTimeout: 30 * time.Second,
		ConnLimits:        DefaultConnLimits(),
		AddrPrefixV4:      32,
		AddrPrefixV6:      64,
	}
}

// Server is the relay. Serve its Handler over HTTP and call Run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	dir     Directory
	mb      Mailbox
	bus     Bus
	metrics *Metrics
	ipLimit *enrollLimiter
	limits  *connLimiter
	http    httpConns
	keyer   addrKeyer
	cache   *dirCache
	member  *memberCache // the member access document, for sealed sends
	routes  routes       // request handlers (dispatch.go)
	sched   writeSched   // writes queued frames of lean sockets
	blobs   *blobService // nil: no blob store
	klog    *keyLog      // nil: no key transparency log
	sealed  *sealedService
	groups  groupCache // group members for wake-ups (groupsds.go)
	// groupPush orders each group's pushes (grouppush.go).
	groupPush groupPusher

	groupUploads groupUploads // large handshake messages in parts (groupparts.go)

	ctx    context.Context // canceled by Close: ends every connection
	cancel context.CancelFunc
	wg     sync.WaitGroup // connections and background loops

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	byDev  map[DeviceAddr]*conn
	prov   map[string]*conn
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	d := DefaultConfig()
	var problems []error
	if cfg.Directory == nil {
		problems = append(problems, errors.New("relay: config: Directory is required"))
	}
	if cfg.Mailbox == nil {
		problems = append(problems, errors.New("relay: config: Mailbox is required"))
	}
	if cfg.Logger == nil {
		problems = append(problems, errors.New("relay: config: Logger is required"))
	}
	if cfg.Witness != nil && cfg.LogKey == nil {
		problems = append(problems, errors.New("relay: config: a Witness needs a LogKey (a key log to witness)"))
	}
	if cfg.MailboxTTL < 0 || cfg.DedupeTTL < 0 || cfg.DeliveryWindow < 0 || cfg.MaxDevices < 0 ||
		cfg.ConnLimits.PerAddr < 0 || cfg.ConnLimits.PerAddrUnauthenticated < 0 || cfg.ConnLimits.MaxUnauthenticated < 0 || cfg.ConnLimits.PerAddrHTTP < 0 ||
		cfg.ProvisionTimeout < 0 || cfg.SealedIdleTimeout < 0 || cfg.LoginTimeout < 0 {
		problems = append(problems, errors.New("relay: config: negative limits"))
	}
	if cfg.AddrPrefixV4 < 0 || cfg.AddrPrefixV4 > 32 || cfg.AddrPrefixV6 < 0 || cfg.AddrPrefixV6 > 128 {
		problems = append(problems, fmt.Errorf("relay: config: address prefixes /%d and /%d: want 0-32 and 0-128", cfg.AddrPrefixV4, cfg.AddrPrefixV6))
	}
	if h := cfg.ForwardedHeader; h != "" && h != HeaderXForwardedFor && h != HeaderForwarded {
		problems = append(problems, fmt.Errorf("relay: config: forwarded header %q: want %s or %s", h, HeaderXForwardedFor, HeaderForwarded))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if cfg.Bus == nil {
		cfg.Bus = NewLocalBus()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MailboxTTL == 0 {
		cfg.MailboxTTL = d.MailboxTTL
	}
	if cfg.DedupeTTL == 0 {
		cfg.DedupeTTL = d.DedupeTTL
	}
	if cfg.MaxDevices == 0 {
		cfg.MaxDevices = d.MaxDevices
	}
	if cfg.DeviceRate == (Rate{}) {
		cfg.DeviceRate = d.DeviceRate
	}
	if cfg.EnrollRate == (Rate{}) {
		cfg.EnrollRate = d.EnrollRate
	}
	if cfg.DeliveryWindow == 0 {
		cfg.DeliveryWindow = d.DeliveryWindow
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = d.WriteTimeout
	}
	if cfg.RevocationPoll == 0 {
		cfg.RevocationPoll = d.RevocationPoll
	}
	if cfg.ExpireEvery == 0 {
		cfg.ExpireEvery = d.ExpireEvery
	}
	if cfg.LoginTimeout == 0 {
		cfg.LoginTimeout = d.LoginTimeout
	}
	if cfg.LinkTokenTTL == 0 {
		cfg.LinkTokenTTL = d.LinkTokenTTL
	}
	if cfg.DirectoryCacheTTL == 0 {
		cfg.DirectoryCacheTTL = d.DirectoryCacheTTL
	}
	if cfg.WitnessEvery <= 0 {
		cfg.WitnessEvery = d.WitnessEvery
	}
	if cfg.AcceptWebSocket == nil {
		cfg.AcceptWebSocket = AcceptWebSocket
	}
	if cfg.EnrollRateAll == (Rate{}) {
		// Never below the per-address limit that was configured.
		cfg.EnrollRateAll = Rate{PerSecond: max(d.EnrollRateAll.PerSecond, cfg.EnrollRate.PerSecond),
			Burst: max(d.EnrollRateAll.Burst, cfg.EnrollRate.Burst)}
	}
	if cfg.ProvisionTimeout == 0 {
		cfg.ProvisionTimeout = d.ProvisionTimeout
	}
	if cfg.SealedIdleTimeout == 0 {
		cfg.SealedIdleTimeout = d.SealedIdleTimeout
	}
	if cfg.ConnLimits.PerAddr == 0 {
		cfg.ConnLimits.PerAddr = d.ConnLimits.PerAddr
	}
	if cfg.ConnLimits.PerAddrUnauthenticated == 0 {
		cfg.ConnLimits.PerAddrUnauthenticated = d.ConnLimits.PerAddrUnauthenticated
	}
	if cfg.ConnLimits.MaxUnauthenticated == 0 {
		cfg.ConnLimits.MaxUnauthenticated = d.ConnLimits.MaxUnauthenticated
	}
	if cfg.ConnLimits.PerAddrHTTP == 0 {
		cfg.ConnLimits.PerAddrHTTP = d.ConnLimits.PerAddrHTTP
	}
	if cfg.AddrPrefixV4 == 0 {
		cfg.AddrPrefixV4 = d.AddrPrefixV4
	}
	if cfg.AddrPrefixV6 == 0 {
		cfg.AddrPrefixV6 = d.AddrPrefixV6
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, log: cfg.Logger, dir: cfg.Directory, mb: cfg.Mailbox, bus: cfg.Bus,
		metrics: newMetrics(),
		ipLimit: newEnrollLimiter(cfg.EnrollRate, cfg.EnrollRateAll),
		limits:  newConnLimiter(cfg.ConnLimits),
		keyer:   newAddrKeyer(&cfg),
		cache:   newDirCache(cfg.Directory, cfg.DirectoryCacheTTL, cfg.Now),
		ctx:     ctx, cancel: cancel,
		conns: make(map[*conn]struct{}),
		byDev: make(map[DeviceAddr]*conn),
		prov:  make(map[string]*conn),
	}
	if err := s.initBlobs(); err != nil {
		cancel()
		return nil, err
	}
	if err := s.initKeyLog(); err != nil {
		cancel()
		return nil, err
	}
	s.initSealed()
	s.member = &memberCache{load: s.memberAccess, ttl: cfg.DirectoryCacheTTL, now: cfg.Now, goReload: s.goBackground}
	s.routes = newRoutes()
	return s, nil
}

// Metrics returns the server's counters.
func (s *Server) Metrics() *Metrics { return s.metrics }

// PublicHandler serves what clients use: /v1/ws, the blob routes and
// /healthz (a constant answer, for load balancers that probe the serving
// port). It answers 404 for /metrics and /readyz: those are on
// OpsHandler, for a listener of its own.
func (s *Server) PublicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	if s.blobs != nil {
		s.blobs.routes(mux)
	}
	mux.HandleFunc("GET /healthz", s.serveHealth)
	return mux
}

// OpsHandler serves /healthz, /readyz (which asks the store) and /metrics
// (counters that reveal traffic volumes, never content): for an operator's
// listener, not the public one.
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	s.opsRoutes(mux)
	return mux
}

// Handler serves both PublicHandler's and OpsHandler's routes on one mux,
// for tests and embedders that run a single private listener. A relay
// facing the Internet serves PublicHandler and OpsHandler apart.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	if s.blobs != nil {
		s.blobs.routes(mux)
	}
	s.opsRoutes(mux)
	return mux
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Write([]byte("ok\n"))
}

func (s *Server) opsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if s.isClosed() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if _, err := s.dir.RevocationsSince(ctx, 1<<62); err != nil {
			http.Error(w, "storage unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.mu.Lock()
		open := len(s.conns)
		s.mu.Unlock()
		s.metrics.write(w, open)
		s.writeLimitMetrics(w)
		if s.blobs != nil {
			s.blobs.writeMetrics(w)
		}
		for _, b := range []any{s.mb, s.dir} {
			if mw, ok := b.(MetricsWriter); ok {
				mw.WriteMetrics(w)
				break
			}
		}
	})
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.isClosed() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	// The caps are checked before the upgrade: a refused client costs an
	// HTTP answer, not a WebSocket.
	key := s.keyer.key(s.keyer.clientAddr(r))
	sl, err := s.limits.acquire(key)
	if err != nil {
		status := http.StatusTooManyRequests
		if errors.Is(err, ErrTooManyUnauthenticated) {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(max(s.cfg.LoginTimeout/time.Second, 1))))
		http.Error(w, err.Error(), status)
		s.log.Debug("connection refused", "err", err)
		return
	}
	sock, err := s.cfg.AcceptWebSocket(w, r)
	if err != nil {
		sl.release()
		s.log.Debug("websocket accept failed", "err", err)
		return
	}
	// The connection outlives this handler (it is hijacked): returning
	// frees the request and the handler goroutine, so an idle connection
	// costs one goroutine with a small stack (see conn.start).
	s.startConn(sock, key, sl, nil)
}

// ServeSocket runs the protocol on sock until it ends or the server closes.
// remote (an address, host:port or any other string) keys the per-client
// limits; a socket over the connection caps is closed at once.
func (s *Server) ServeSocket(sock Socket, remote string) {
	key := s.keyer.key(remote)
	sl, err := s.limits.acquire(key)
	if err != nil {
		s.log.Debug("connection refused", "err", err)
		sock.Close(CloseGoingAway)
		return
	}
	done := make(chan struct{})
	if s.startConn(sock, key, sl, func() { close(done) }) {
		<-done
	}
}

// startConn starts serving sock, which holds sl (released when the
// connection ends, as onEnd is then called); it reports whether it did
// (not if the server is closed).
func (s *Server) startConn(sock Socket, key string, sl *slot, onEnd func()) bool {
	c := newConn(s, sock, key)
	c.slot = sl
	c.onEnd = onEnd
	// Eviction closes the connection on a goroutine of its own (the
	// close frame's write is bounded by a deadline), never blocking the
	// newcomer's handler on a write.
	sl.setCloser(func() { go c.closeNow(CloseBusy) })
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sl.release()
		sock.Close(CloseGoingAway)
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1) // released by ended
	s.mu.Unlock()
	s.metrics.connections.Add(1)
	c.start()
	return true
}

// ended forgets c, which has ended, and releases what it held.
func (s *Server) ended(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.byDev[c.dev] == c {
		delete(s.byDev, c.dev)
	}
	if c.provAddr != "" {
		delete(s.prov, c.provAddr)
	}
	s.mu.Unlock()
	c.slot.release()
	if c.onEnd != nil {
		c.onEnd()
	}
	s.wg.Done()
}

// Run runs the background loops (expiry, revocation polling) until ctx
// is canceled or the server is closed.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	revs, err := s.dir.RevocationsSince(ctx, 0)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if err := s.backfillKeyLog(ctx); err != nil {
		return err
	}
	var revSeq int64
	if len(revs) > 0 {
		revSeq = revs[len(revs)-1].Seq
	}
	if gb, ok := s.bus.(GroupBus); ok {
		defer gb.SubscribeGroups(s.groupWoken)()
	}
	s.expire(ctx)
	s.expireSends(ctx)
	expireT := time.NewTicker(s.cfg.ExpireEvery)
	defer expireT.Stop()
	sendsT := time.NewTicker(max(s.cfg.DedupeTTL/2, time.Second))
	defer sendsT.Stop()
	if s.blobs != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.blobs.runJanitor(ctx) }()
	}
	if s.klog != nil && s.cfg.Witness != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.runWitness(ctx) }()
	}
	revT := time.NewTicker(s.cfg.RevocationPoll)
	defer revT.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-expireT.C:
			s.expire(ctx)
		case <-sendsT.C:
			s.expireSends(ctx)
		case <-revT.C:
			revs, err := s.dir.RevocationsSince(ctx, revSeq)
			if err != nil {
				s.log.Warn("polling revocations", "err", err)
				continue
			}
			for _, r := range revs {
				s.kick(r.Addr)
				revSeq = r.Seq
			}
		}
	}
}

func (s *Server) expire(ctx context.Context) {
	s.expireGroups(ctx)
	n, err := s.mb.Expire(ctx, s.cfg.Now().Add(-s.cfg.MailboxTTL))
	if err != nil {
		s.log.Warn("expiring envelopes", "err", err)
		return
	}
	if n > 0 {
		s.log.Info("expired envelopes", "count", n)
		s.metrics.expired.Add(uint64(n))
	}
}

// Expire runs one expiry pass now: envelopes older than MailboxTTL and
// send dedupe records older than DedupeTTL are deleted. Run does this
// every ExpireEvery and every DedupeTTL/2; Expire is for an operator's
// command and for tests, which cannot wait on a ticker.
func (s *Server) Expire(ctx context.Context) {
	s.expire(ctx)
	s.expireSends(ctx)
}

// expireSends deletes the dedupe records older than DedupeTTL.
func (s *Server) expireSends(ctx context.Context) {
	if _, err := s.mb.ExpireSends(ctx, s.cfg.Now().Add(-s.cfg.DedupeTTL)); err != nil {
		s.log.Warn("expiring send records", "err", err)
	}
}

// kick closes the connections of a revoked device (Device != 0) or of
// every device of a revoked account.
func (s *Server) kick(addr DeviceAddr) {
	s.cache.invalidate(addr.Account)
	s.mu.Lock()
	var victims []*conn
	for d, c := range s.byDev {
		if d == addr || (addr.Device == 0 && d.Account == addr.Account) {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.close(CloseRevoked)
	}
}

// Revoke revokes a device (addr.Device != 0) or a whole account, deletes
// its queued envelopes and closes its connections at once.
func (s *Server) Revoke(ctx context.Context, addr DeviceAddr) error {
	if err := s.dir.Revoke(ctx, addr, s.cfg.Now()); err != nil {
		return err
	}
	s.kick(addr)
	return nil
}

// Close closes every connection and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	s.cancel()
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() { defer wg.Done(); c.close(CloseGoingAway) }()
	}
	wg.Wait()
	s.wg.Wait()
	return nil
}

// goBackground runs f in a goroutine owned by the server's wait group
// (Close waits for it; f's loads stop with the server's context). Called
// only from a connection's goroutines, which the group counts, so the
// group never waits at zero while one is added.
func (s *Server) goBackground(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// register makes c the connection of its device, closing an older one.
func (s *Server) register(c *conn) {
	s.mu.Lock()
	old := s.byDev[c.dev]
	s.byDev[c.dev] = c
	s.mu.Unlock()
	if old != nil && old != c {
		old.close(CloseReplaced)
	}
}
