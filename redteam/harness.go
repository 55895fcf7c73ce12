package redteam

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/signal/keys"
	"sotto/signal/sealed"
)

// Env is the scratch space of one attack: a directory and what to stop
// and remove when the attack is over (Close).
type Env struct {
	dir string
	mu  sync.Mutex
	fns []func()
}

// NewEnv makes an Env in a fresh directory under parent ("": the system's
// temporary directory).
func NewEnv(parent string) (*Env, error) {
	dir, err := os.MkdirTemp(parent, "redteam-")
	if err != nil {
		return nil, err
	}
	return &Env{dir: dir}, nil
}

// Dir returns a fresh subdirectory.
func (e *Env) Dir() (string, error) { return os.MkdirTemp(e.dir, "d") }

// OnClose registers fn to run at Close, before what was registered earlier.
func (e *Env) OnClose(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fns = append(e.fns, fn)
}

// Close stops everything the attack started and removes its files.
func (e *Env) Close() {
	e.mu.Lock()
	fns := e.fns
	e.fns = nil
	e.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	os.RemoveAll(e.dir)
}

// RelayOptions shape a test relay.
type RelayOptions struct {
	// Config changes the relay's configuration before it starts.
	Config func(*relay.Config)
	// SingleListener serves every route, /metrics included, on the public
	// listener (relay.Server.Handler), as relays did before -metrics-listen.
	SingleListener bool
	// MemberAccess has the relay keep a member access key the org signed,
	// as the admin's PublishMemberAccess leaves it, before anybody enrolls.
	MemberAccess bool
}

// Relay is a real relay on loopback: relay.Server over HTTP with a SQLite
// store in a directory the attacker may edit behind its back.
type Relay struct {
	Server  *relay.Server
	Store   *sqlitestore.Store
	DataDir string
	// HTTP is the public listener's base URL (http://127.0.0.1:port); WS
	// is the relay URL clients are given (ws://127.0.0.1:port); Ops is the
	// operator listener's base URL (/metrics, /readyz).
	HTTP, WS, Ops string
	Org           *orgtest.Org
	LogKey        ed25519.PrivateKey
	Config        relay.Config
	// Mint, when set, changes the invitations Invitation mints (the
	// floors of org documents, a TLS pin...).
	Mint func(*org.MintParams)
}

// StartRelay starts a relay with an organization, a key transparency log
// and sealed sender, with enrollment limits loose enough for attacks that
// enroll several members (the attacks on those limits set their own).
func (e *Env) StartRelay(ctx context.Context, o RelayOptions) (*Relay, error) {
	dir, err := e.Dir()
	if err != nil {
		return nil, err
	}
	st, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		return nil, err
	}
	r := &Relay{Store: st, DataDir: dir, Org: orgtest.New("Red Team Org")}
	if err := r.Org.Register(ctx, st); err != nil {
		st.Close()
		return nil, err
	}
	issuer, err := newIssuer()
	if err != nil {
		st.Close()
		return nil, err
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = st, st
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.EnrollRate = relay.Rate{PerSecond: 100, Burst: 100}
	cfg.EnrollRateAll = relay.Rate{PerSecond: 100, Burst: 100}
	cfg.DirectoryCacheTTL = time.Nanosecond // edits to the store are seen at once
	cfg.SenderCertificates = issuer
	if _, cfg.LogKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		st.Close()
		return nil, err
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	r.LogKey, r.Config = cfg.LogKey, cfg
	srv, err := relay.New(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	public := srv.PublicHandler()
	if o.SingleListener {
		public = srv.Handler()
	}
	// As sottod serves it: the HTTP connection cap and header timeout.
	hs := httptest.NewUnstartedServer(public)
	hs.Config.ConnState, hs.Config.ReadHeaderTimeout = srv.ConnState, 10*time.Second
	hs.Start()
	ops := httptest.NewServer(srv.OpsHandler())
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(runCtx) }()
	e.OnClose(func() {
		cancel()
		<-done
		srv.Close()
		hs.Close()
		ops.Close()
		st.Close()
	})
	r.Server, r.HTTP, r.Ops = srv, hs.URL, ops.URL
	r.WS = "ws://" + strings.TrimPrefix(hs.URL, "http://")
	if o.MemberAccess {
		if err := publishMemberAccess(ctx, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// World starts a relay with o and enrolls, in order, the users of
// receiving (connected and receiving) and of silent (connected, not
// receiving: what is sent to them stays in the relay's mailbox).
func (e *Env) World(ctx context.Context, o RelayOptions, receiving []string, silent ...string) (*Relay, map[string]*Member, error) {
	r, err := e.StartRelay(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	ms := map[string]*Member{}
	for i, u := range append(append([]string(nil), receiving...), silent...) {
		if ms[u], err = e.Enroll(ctx, r, u, i < len(receiving)); err != nil {
			return nil, nil, err
		}
	}
	return r, ms, nil
}

// Invitation mints and registers an invitation for user to this relay at
// relayURL ("": r.WS), as the org admin's client would.
func (r *Relay) Invitation(ctx context.Context, user, relayURL string) (*org.Opened, error) {
	if relayURL == "" {
		relayURL = r.WS
	}
	now := time.Now()
	p := org.MintParams{Username: user, Expires: now.Add(time.Hour),
		RelayURL: relayURL, LogKey: r.LogKey.Public().(ed25519.PublicKey), Now: now}
	if r.Mint != nil {
		r.Mint(&p)
	}
	return r.Org.Invitation(ctx, r.Store, p)
}

// Member is an enrolled device with the events its client reported.
type Member struct {
	*client.Client
	Events chan client.Event
}

// fastKDF keeps enrollments of throwaway members quick.
var fastKDF = store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// MemberOptions returns the client options of a member: a fast KDF, no
// passphrase policy, receipts after 1 to 5 ms, events to events.
func MemberOptions(events chan client.Event) *client.Options {
	return &client.Options{KDF: fastKDF, MinPassphraseBits: store.NoPassphrasePolicy,
		ReceiptDelayMin: time.Millisecond, ReceiptDelayMax: 5 * time.Millisecond,
		OnEvent: func(ev client.Event) {
			select {
			case events <- ev:
			default: // a member nobody listens to drops its events
			}
		}}
}

// Enroll enrolls user with an invitation from the organization and
// connects it (receiving when receive is set).
func (e *Env) Enroll(ctx context.Context, r *Relay, user string, receive bool) (*Member, error) {
	events := make(chan client.Event, 256)
	return e.EnrollWith(ctx, r, user, "", receive, MemberOptions(events), events)
}

// EnrollWith is Enroll through relayURL ("": the relay's own) with the
// client options o, whose events go to events.
func (e *Env) EnrollWith(ctx context.Context, r *Relay, user, relayURL string, receive bool, o *client.Options, events chan client.Event) (*Member, error) {
	inv, err := r.Invitation(ctx, user, relayURL)
	if err != nil {
		return nil, err
	}
	dir, err := e.Dir()
	if err != nil {
		return nil, err
	}
	c, err := client.Enroll(ctx, client.EnrollParams{Dir: filepath.Join(dir, user), Passphrase: []byte("red team"),
		Invitation: inv, DeviceName: "device"}, o)
	if err != nil {
		return nil, err
	}
	e.OnClose(func() { c.Close() })
	if err := c.Connect(ctx, client.ConnectOptions{Receive: receive}); err != nil {
		return nil, err
	}
	return &Member{Client: c, Events: events}, nil
}

// WaitEvent waits up to 20 s for an event of kind (0: any) that match
// accepts (nil: any).
func (m *Member) WaitEvent(ctx context.Context, kind client.EventKind, match func(client.Event) bool) (client.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		select {
		case ev := <-m.Events:
			if (kind == 0 || ev.Kind == kind) && (match == nil || match(ev)) {
				return ev, nil
			}
		case <-ctx.Done():
			return client.Event{}, fmt.Errorf("%s: no event of kind %d: %w", m.Username(), kind, ctx.Err())
		}
	}
}

// Text returns the event's message text ("" for none).
func Text(ev client.Event) string {
	if ev.Message == nil {
		return ""
	}
	return ev.Message.Text
}

// DB opens the relay's SQLite file behind its back, as an operator with
// the disk would.
func (r *Relay) DB() (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+filepath.Join(r.DataDir, sqlitestore.FileName)+"?_pragma=busy_timeout(10000)")
}

// Exec runs statements on the relay's database behind its back, each of
// which must change at least one row.
func (r *Relay) Exec(ctx context.Context, stmts ...string) error {
	db, err := r.DB()
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		res, err := db.ExecContext(ctx, s)
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("%s: no row changed (%v)", s, err)
		}
	}
	return nil
}

// Count runs a SELECT count(*) query on the relay's database.
func (r *Relay) Count(ctx context.Context, query string, args ...any) (int, error) {
	db, err := r.DB()
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// Get fetches path from base and returns the status and body.
func Get(ctx context.Context, base, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Metric reads one counter or gauge from the relay's operator listener.
func (r *Relay) Metric(ctx context.Context, name string) (string, error) {
	_, body, err := Get(ctx, r.Ops, "/metrics")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no metric %s", name)
}

// issuer makes sealed-sender certificates, as cmd/sottod's does.
type issuer struct {
	root, signer keys.KeyPair
	cert         *sealed.ServerCertificate
}

func newIssuer() (*issuer, error) {
	var is issuer
	var err error
	if is.root, err = keys.GenerateKeyPair(rand.Reader); err != nil {
		return nil, err
	}
	if is.signer, err = keys.GenerateKeyPair(rand.Reader); err != nil {
		return nil, err
	}
	is.cert, err = sealed.NewServerCertificate(rand.Reader, 7, is.signer.Public, is.root.Private)
	return &is, err
}

func (is *issuer) TrustRoot() []byte { return is.root.Public.Serialize() }

func (is *issuer) SenderCertificate(sender string, device uint32, identityKey []byte, expires time.Time) ([]byte, error) {
	pub, err := keys.ParsePublicKey(identityKey)
	if err != nil {
		return nil, err
	}
	sc, err := sealed.NewSenderCertificate(rand.Reader, sender, "", pub, device, expires, is.cert, is.signer.Private)
	if err != nil {
		return nil, err
	}
	return sc.Serialize(), nil
}

// randomID is 16 random bytes.
func randomID() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}
