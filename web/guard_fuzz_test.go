package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzGuard sends requests with any method, path, Host, Origin,
// Sec-Fetch-Site, content type and cookie to the whole handler, and checks
// what may reach the agent's API: only requests on this server's Host,
// carrying a live session made on that Host, not from another origin or
// site, with this server's Origin when they change state, and never a
// call that names a local file.
func FuzzGuard(f *testing.F) {
	const port = "4321"
	seeds := []struct{ method, path, host, origin, site, ctype string }{
		{"GET", "/api/v1/status", "127.0.0.1:" + port, "", "same-origin", ""},
		{"POST", "/api/v1/conversations/bob/messages", "127.0.0.1:" + port, "http://127.0.0.1:" + port, "same-origin", "application/json"},
		{"POST", "/api/v1/conversations/bob/messages", "localhost:" + port, "http://localhost:" + port, "", "application/json"},
		{"POST", "/api/v1/conversations/bob/files", "127.0.0.1:" + port, "http://127.0.0.1:" + port, "same-origin", "application/octet-stream"},
		{"POST", "/api/v1/conversations/bob/files", "127.0.0.1:" + port, "http://127.0.0.1:" + port, "same-origin", "application/json"},
		{"POST", "/api/v1/attachments/00/download", "127.0.0.1:" + port, "http://127.0.0.1:" + port, "same-origin", ""},
		{"DELETE", "/api/v1/conversations/bob/messages/00", "evil.example:" + port, "http://evil.example:" + port, "same-origin", ""},
		{"GET", "/api/v1/attachments/00/content", "127.0.0.1:" + port, "", "same-site", ""},
		{"POST", "/api//v1/../v1/conversations/x/files", "127.0.0.1:" + port, "http://127.0.0.1:" + port, "same-origin", ""},
		{"PUT", "/API/v1/settings", "127.0.0.1:" + port, "null", "none", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.host, s.origin, s.site, s.ctype, true)
		f.Add(s.method, s.path, s.host, s.origin, s.site, s.ctype, false)
	}
	f.Fuzz(func(t *testing.T, method, path, host, origin, site, ctype string, withCookie bool) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path+host, " \t\r\n?#") {
			return // not an HTTP request a server gets
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		probe := &apiProbe{}
		s := &Server{
			hosts:  [2]string{"127.0.0.1:" + port, "localhost:" + port},
			cookie: "sotto-session-" + port,
			keys:   newKeyring(time.Now),
			log:    discard(),
			api:    probe,
			files:  mustSub(),
		}
		id := ""
		if withCookie {
			id, _ = s.keys.redeem(s.keys.mintToken(), "127.0.0.1:"+port)
		}
		req := httptest.NewRequest(method, "http://x"+path, strings.NewReader("{}"))
		req.Host = host
		for k, v := range map[string]string{"Origin": origin, "Sec-Fetch-Site": site, "Content-Type": ctype} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		if id != "" {
			req.AddCookie(&http.Cookie{Name: s.cookie, Value: id})
		}
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
		if len(probe.calls) == 0 {
			return
		}
		switch {
		case host != "127.0.0.1:"+port:
			t.Errorf("reached the API with Host %q (the session was made on 127.0.0.1)", host)
		case !withCookie:
			t.Error("reached the API without a session")
		case site != "" && site != "same-origin":
			t.Errorf("reached the API with Sec-Fetch-Site %q", site)
		case origin != "" && origin != "http://"+host:
			t.Errorf("reached the API with Origin %q", origin)
		case !safeMethod(method) && origin == "":
			t.Errorf("%s reached the API without an Origin", method)
		}
		call := probe.calls[0] // "METHOD PATH" as the API saw it
		download := strings.HasPrefix(call, "POST /v1/attachments/") && strings.HasSuffix(call, "/download")
		byPath := strings.HasPrefix(call, "POST /v1/conversations/") && strings.HasSuffix(call, "/files") && ctype != "application/octet-stream"
		if download || byPath {
			t.Errorf("a local-path call reached the API: %s (%s)", call, ctype)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
