package web

import (
	"context"
	"encoding/base64"
	"errors"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// switchOff disables one defence, so a test can show that its attack then
// succeeds, and therefore that the defence is what stops it.
func (s *Server) switchOff(d defence) {
	s.off |= d
	if d&defSingleUse != 0 {
		s.keys.keepTokens = true
	}
}

// apiProbe stands in for the agent's API: it records that a request got
// through the guard.
type apiProbe struct {
	mu    sync.Mutex
	calls []string
}

func (p *apiProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.calls = append(p.calls, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	io.WriteString(w, `{"ok":true}`)
}

// startServer serves the app on a random loopback port until the test ends.
func startServer(t *testing.T, off defence) (*Server, *apiProbe) {
	t.Helper()
	probe := &apiProbe{}
	s, err := Listen(Config{API: probe})
	if err != nil {
		t.Fatal(err)
	}
	s.switchOff(off)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, probe
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// login spends a fresh login token like the browser does and returns the
// session cookie.
func login(t *testing.T, s *Server) *http.Cookie {
	t.Helper()
	resp, err := noRedirect.Get(s.LoginURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == s.cookie {
			return c
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

// do sends one request with the given headers (Host among them) and returns
// the status.
func do(t *testing.T, s *Server, method, path string, cookie *http.Cookie, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.Origin()+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// attack runs fn against a server with every defence on, where it must be
// refused, and against one with defence d off, where it must get through:
// so the test fails if d stops working.
func attack(t *testing.T, d defence, fn func(t *testing.T, s *Server) bool) {
	t.Helper()
	t.Run("defended", func(t *testing.T) {
		s, _ := startServer(t, 0)
		if fn(t, s) {
			t.Error("the attack got through")
		}
	})
	t.Run("defence off", func(t *testing.T) {
		s, _ := startServer(t, d)
		if !fn(t, s) {
			t.Error("the attack failed even without the defence: the test proves nothing")
		}
	})
}

func TestOwnRequestsPass(t *testing.T) {
	s, probe := startServer(t, 0)
	c := login(t, s)
	same := map[string]string{"Sec-Fetch-Site": "same-origin"}
	if code := do(t, s, "GET", "/", c, map[string]string{"Sec-Fetch-Site": "none"}); code != 200 {
		t.Errorf("GET / typed: %d", code)
	}
	if code := do(t, s, "GET", "/app.js", c, same); code != 200 {
		t.Errorf("GET /app.js: %d", code)
	}
	if code := do(t, s, "GET", "/api/v1/state", c, same); code != 200 {
		t.Errorf("GET api: %d", code)
	}
	post := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": s.Origin()}
	if code := do(t, s, "POST", "/api/v1/send", c, post); code != 200 {
		t.Errorf("POST api: %d", code)
	}
	if got := strings.Join(probe.calls, ","); got != "GET /v1/state,POST /v1/send" {
		t.Errorf("the API saw %q", got)
	}
	// localhost:PORT is the same server under its other name; a session
	// made there is good there.
	port := s.hosts[0][strings.LastIndex(s.hosts[0], ":")+1:]
	resp, err := noRedirect.Do(&http.Request{Method: "GET", URL: mustURL(t, s.LoginURL()), Host: "localhost:" + port, Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login on localhost: %s", resp.Status)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestHeaders(t *testing.T) {
	s, _ := startServer(t, 0)
	c := login(t, s)
	for _, path := range []string{"/", "/app.js", "/api/v1/state", "/nope"} {
		req, _ := http.NewRequest("GET", s.Origin()+path, nil)
		req.AddCookie(c)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"frame-ancestors 'none'", "script-src 'self';", "default-src 'none'", "connect-src 'self';", "require-trusted-types-for 'script'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
			if strings.Contains(csp, bad) {
				t.Errorf("%s: CSP %q allows %q", path, csp, bad)
			}
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

func TestListenOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", "[::]:0", "localhost:0", "example.com:0"} {
		s, err := Listen(Config{Addr: addr})
		if !errors.Is(err, ErrNotLoopback) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Listen(%q) = %v, want ErrNotLoopback", addr, err)
		}
	}
}

// DNS rebinding: a page at http://evil.example:PORT/, its name now
// resolving to 127.0.0.1, is same-origin with itself and sends the
// browser's requests here with Host evil.example:PORT. (It has no cookie,
// but the defence must not rest on that alone: with the session check
// also off, only the Host check stands.)
func TestAttackDNSRebinding(t *testing.T) {
	attack(t, defHost|defSession, func(t *testing.T, s *Server) bool {
		port := s.hosts[0][strings.LastIndex(s.hosts[0], ":")+1:]
		host := "evil.example:" + port
		return do(t, s, "GET", "/api/v1/state", nil, map[string]string{"Host": host, "Sec-Fetch-Site": "same-origin"}) == 200
	})
	t.Run("login", func(t *testing.T) {
		// Even with a token, a login under a foreign name is refused.
		s, _ := startServer(t, 0)
		u := mustURL(t, s.LoginURL())
		resp, err := noRedirect.Do(&http.Request{Method: "GET", URL: u, Host: "evil.example", Header: http.Header{}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("login under a foreign host: %s", resp.Status)
		}
	})
}

// CSRF by a browser without fetch metadata: a cross-site form posts to the
// API. The cookie is SameSite=Strict, but the Origin check must hold on
// its own (switched off here with the fetch-metadata check, as an older
// browser would be).
func TestAttackCSRFOrigin(t *testing.T) {
	attack(t, defOrigin, func(t *testing.T, s *Server) bool {
		c := login(t, s)
		return do(t, s, "POST", "/api/v1/send", c, map[string]string{"Origin": "http://evil.example"}) == 200
	})
	attack(t, defOrigin, func(t *testing.T, s *Server) bool {
		// Another port on 127.0.0.1 is same-site: SameSite=Strict does not
		// keep the cookie from it.
		c := login(t, s)
		return do(t, s, "POST", "/api/v1/send", c, map[string]string{"Origin": "http://127.0.0.1:1"}) == 200
	})
	attack(t, defOrigin, func(t *testing.T, s *Server) bool {
		// No Origin at all on a state-changing call.
		c := login(t, s)
		return do(t, s, "DELETE", "/api/v1/messages/x", c, nil) == 200
	})
}

// CSRF by fetch metadata: a page on another port of 127.0.0.1 (same site,
// so the cookie goes along) loads an API URL as an image, a GET with no
// Origin: only Sec-Fetch-Site tells it apart. A GET on the API can spend
// something (a view-once attachment).
func TestAttackSameSiteGet(t *testing.T) {
	attack(t, defFetchSite, func(t *testing.T, s *Server) bool {
		c := login(t, s)
		return do(t, s, "GET", "/api/v1/attachments/x", c, map[string]string{"Sec-Fetch-Site": "same-site"}) == 200
	})
	attack(t, defFetchSite, func(t *testing.T, s *Server) bool {
		c := login(t, s)
		return do(t, s, "GET", "/api/v1/attachments/x", c, map[string]string{"Sec-Fetch-Site": "cross-site"}) == 200
	})
}

// Another local user connects to the port: without the session cookie,
// nothing but the login page's refusal.
func TestAttackNoCookie(t *testing.T) {
	attack(t, defSession, func(t *testing.T, s *Server) bool {
		return do(t, s, "GET", "/api/v1/state", nil, nil) == 200
	})
	attack(t, defSession, func(t *testing.T, s *Server) bool {
		return do(t, s, "POST", "/api/v1/send", &http.Cookie{Name: s.cookie, Value: newSecret()}, map[string]string{"Origin": s.Origin()}) == 200
	})
	t.Run("bound to host", func(t *testing.T) {
		// A session made on 127.0.0.1:PORT is not good on localhost:PORT.
		s, _ := startServer(t, 0)
		c := login(t, s)
		if code := do(t, s, "GET", "/api/v1/state", c, map[string]string{"Host": s.hosts[1]}); code != http.StatusUnauthorized {
			t.Errorf("session used on the other host name: %d", code)
		}
	})
	t.Run("logout", func(t *testing.T) {
		s, _ := startServer(t, 0)
		c := login(t, s)
		if code := do(t, s, "POST", "/logout", c, map[string]string{"Origin": s.Origin()}); code != http.StatusNoContent {
			t.Fatalf("logout: %d", code)
		}
		if code := do(t, s, "GET", "/api/v1/state", c, nil); code != http.StatusUnauthorized {
			t.Errorf("session after logout: %d", code)
		}
	})
}

// A login token that leaked after use (terminal scrollback, shell history,
// the browser's history) must not open a second session.
func TestAttackTokenReuse(t *testing.T) {
	attack(t, defSingleUse, func(t *testing.T, s *Server) bool {
		u := s.LoginURL()
		for i := range 2 {
			resp, err := noRedirect.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				return false
			}
			_ = i
		}
		return true
	})
	t.Run("guessed", func(t *testing.T) {
		s, _ := startServer(t, 0)
		s.LoginURL()
		for _, tok := range []string{"", "x", newSecret()} {
			resp, err := noRedirect.Get(s.Origin() + "/login?token=" + url.QueryEscape(tok))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("token %q: %s", tok, resp.Status)
			}
		}
	})
}

// Framing: the browser test shows the frame stays empty; here, that the
// headers that make it so are there, and go when switched off.
func TestAttackFraming(t *testing.T) {
	attack(t, defFrame|defCSP, func(t *testing.T, s *Server) bool {
		c := login(t, s)
		req, _ := http.NewRequest("GET", s.Origin()+"/", nil)
		req.AddCookie(c)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Frame-Options") == "" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors")
	})
}

// A session (or a request that got through) names a local file for the
// agent to send: the agent runs as the person and would read it.
func TestAttackLocalPaths(t *testing.T) {
	post := func(t *testing.T, s *Server, path, ctype, body string) int {
		c := login(t, s)
		req, _ := http.NewRequest("POST", s.Origin()+path, strings.NewReader(body))
		req.AddCookie(c)
		req.Header.Set("Origin", s.Origin())
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	attack(t, defPaths, func(t *testing.T, s *Server) bool {
		return post(t, s, "/api/v1/conversations/mallory/files", "application/json", `{"path":"/root/.ssh/id_ed25519"}`) == 200
	})
	attack(t, defPaths, func(t *testing.T, s *Server) bool {
		return post(t, s, "/api/v1/attachments/00/download", "application/json", `{"out":"/root/.bashrc"}`) == 200
	})
	// The same for a group's files (issue 14): sent by path, saved to a
	// path.
	attack(t, defPaths, func(t *testing.T, s *Server) bool {
		return post(t, s, "/api/v1/groups/00112233445566778899aabbccddeeff/files", "application/json", `{"path":"/root/.ssh/id_ed25519"}`) == 200
	})
	attack(t, defPaths, func(t *testing.T, s *Server) bool {
		return post(t, s, "/api/v1/groups/00112233445566778899aabbccddeeff/messages/00112233445566778899aabbccddeeff/download", "application/json", `{"out":"/root/.bashrc"}`) == 200
	})
	t.Run("group bytes pass", func(t *testing.T) {
		s, _ := startServer(t, 0)
		if code := post(t, s, "/api/v1/groups/00112233445566778899aabbccddeeff/files?name=a.txt", "application/octet-stream", "hello"); code != 200 {
			t.Errorf("a group file sent as bytes: %d", code)
		}
	})
	t.Run("bytes pass", func(t *testing.T) {
		s, _ := startServer(t, 0)
		if code := post(t, s, "/api/v1/conversations/bob/files?name=a.txt", "application/octet-stream", "hello"); code != 200 {
			t.Errorf("a file sent as bytes: %d", code)
		}
	})
}

func TestQRCode(t *testing.T) {
	s, _ := startServer(t, 0)
	c := login(t, s)
	get := func(q string) *http.Response {
		req, _ := http.NewRequest("GET", s.Origin()+"/qr.png?"+q, nil)
		req.AddCookie(c)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("data=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("\x00\x01 safety number bytes"))))
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("QR code: %v, %s", err, resp.Header.Get("Content-Type"))
	}
	if b := img.Bounds(); b.Dx() != b.Dy() || b.Dx() < 21*6 {
		t.Errorf("QR code of %v", b)
	}
	for _, q := range []string{"", "data=%%%", "data=" + strings.Repeat("A", 2000)} {
		if resp := get(q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %s", q, resp.Status)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func mustSub() fs.FS {
	f, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	return f
}
