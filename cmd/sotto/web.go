package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"

	"sotto/web"
)

// agentSocket is the agent's socket in the device's home (docs/agent-api.md).
const agentSocket = "agent.sock"

// cmdWeb serves the web app from this binary on 127.0.0.1 and prints a
// single-use login URL. The app's API calls go to the device's agent
// through its owner-only socket; the relay is never involved.
func cmdWeb(e *env, args []string) error {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	addr := fs.String("addr", "127.0.0.1:0", "serve on `ADDR` (a loopback address; port 0: a random one)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		return errUsage
	}
	sock := filepath.Join(e.home, agentSocket)
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("no agent runs for %s: start it with `sotto up`", e.home)
	}
	srv, err := newWebServer(e, *addr, agentProxy(sock))
	if err != nil {
		return err
	}
	printLoginURL(e, srv)
	fmt.Fprintln(e.stdout, "(open it in your browser: the link works once, for ten minutes; Ctrl-C stops the app)")
	if err := srv.Serve(e.ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newWebServer binds the web app's server on addr (loopback only), with
// api behind it (nil: the agent hands its API over when it serves it).
func newWebServer(e *env, addr string, api http.Handler) (*web.Server, error) {
	logger := slog.New(slog.DiscardHandler)
	if e.verbose {
		logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	return web.Listen(web.Config{Addr: addr, API: api, Logger: logger})
}

// printLoginURL prints a new login link on standard output (never in a
// log: it is a secret).
func printLoginURL(e *env, srv *web.Server) {
	fmt.Fprintf(e.stdout, "Sotto is at %s\n", srv.LoginURL())
}

// agentProxy passes API calls to the agent's socket. The browser's cookie
// stays here: the agent's API needs none, and the session id never
// leaves the web server.
func agentProxy(sock string) http.Handler {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "sotto"
			r.Out.Host = "sotto"
			r.Out.Header.Del("Cookie")
		},
		Transport:     tr,
		FlushInterval: -1, // the event stream
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"kind":"unavailable","message":"the agent is not running: start it with sotto up"}}`)
		},
	}
}

// closeWeb closes the listener of a web server that will not be served.
func closeWeb(srv *web.Server) {
	if srv != nil {
		srv.Listener().Close()
	}
}
