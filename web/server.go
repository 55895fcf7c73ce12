package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

//go:embed static
var static embed.FS

// Config says how to serve the app.
type Config struct {
	// Addr is where to listen: a loopback address, 127.0.0.1:0 (a random
	// port) by default.
	Addr string
	// API is the agent's local API, served under /api/ (the prefix
	// stripped) behind the same guard as the app.
	API http.Handler
	// Logger gets refused requests; slog.DiscardHandler by default.
	Logger *slog.Logger
	// Now is the clock for token and session expiry; time.Now by default.
	Now func() time.Time
}

// Server serves the web app on loopback.
type Server struct {
	ln     net.Listener
	hosts  [2]string // 127.0.0.1:port, localhost:port
	cookie string    // the session cookie's name, per port: cookies ignore ports
	keys   *keyring
	log    *slog.Logger
	api    http.Handler
	files  fs.FS
	http   *http.Server
	off    defence // defences switched off, by tests only
}

// ErrNotLoopback is returned for an address off loopback: the app is never
// served to the network.
var ErrNotLoopback = errors.New("web: the app is served on 127.0.0.1 only")

// Listen binds the app's address. Serve serves it.
func Listen(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ap, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil || !ap.Addr().Is4() || !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, cfg.Addr)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	files, err := fs.Sub(static, "static")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{
		ln:     ln,
		hosts:  [2]string{"127.0.0.1:" + port, "localhost:" + port},
		cookie: "sotto-session-" + port,
		keys:   newKeyring(cfg.Now),
		log:    cfg.Logger,
		api:    cfg.API,
		files:  files,
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Origin is the app's origin, http://127.0.0.1:PORT.
func (s *Server) Origin() string { return "http://" + s.hosts[0] }

// LoginURL mints a login token and returns the URL that spends it. The
// token works once, within ten minutes; anyone who can read it can open
// the app, so it goes only to the person's own terminal.
func (s *Server) LoginURL() string {
	return s.Origin() + "/login?token=" + url.QueryEscape(s.keys.mintToken())
}

// EndSessions logs every browser out and voids every login token.
func (s *Server) EndSessions() { s.keys.endAll() }

// Serve serves until ctx ends, then closes the listener and waits for
// requests in flight (event streams end with ctx).
func (s *Server) Serve(ctx context.Context) error {
	s.http.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	// Requests in flight end with ctx (their context derives from it);
	// a browser that keeps connections busy past the grace period is cut.
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shut); err != nil {
		s.http.Close()
	}
	<-errc
	return nil
}

// Close stops the server without waiting (Serve's caller normally cancels
// its context instead).
func (s *Server) Close() error { return s.http.Close() }

// Listener is the server's bound listener, for a host that serves it
// itself (the agent's Mounts) instead of calling Serve.
func (s *Server) Listener() net.Listener { return s.ln }

// Handler is the whole app behind its guard, with Config.API under /api/.
func (s *Server) Handler() http.Handler { return s.Wrap(s.api) }

// Wrap is the whole app behind its guard with api under /api/: for a host
// that serves Listener itself and hands over its API handler then.
func (s *Server) Wrap(api http.Handler) http.Handler {
	if api == nil {
		api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "sotto web: no agent API", http.StatusServiceUnavailable)
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.Handle("GET /qr.png", s.needSession(http.HandlerFunc(qrPNG)))
	files := http.FileServerFS(s.files)
	mux.Handle("/", s.needSession(getOnly(files)))
	mux.Handle("/api/", s.needSession(http.StripPrefix("/api", api)))
	return s.guard(mux)
}

// getOnly refuses every method but GET and HEAD.
func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) {
			http.Error(w, "sotto web: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// login spends a login token and sets the session cookie in its place.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	id, ok := s.keys.redeem(token, r.Host)
	if !ok {
		s.deny(w, r, http.StatusForbidden, "this link was used or has expired: run `sotto web` for a new one")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(s.cookie); err == nil {
		s.keys.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// needSession lets through only requests with a live session cookie made
// on the host they were sent to.
func (s *Server) needSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.isOff(defSession) || s.hasSession(r) {
			next.ServeHTTP(w, r)
			return
		}
		s.deny(w, r, http.StatusUnauthorized, "not logged in: open the link that `sotto web` printed")
	})
}

func (s *Server) hasSession(r *http.Request) bool {
	c, err := r.Cookie(s.cookie)
	return err == nil && s.keys.check(c.Value, r.Host)
}
