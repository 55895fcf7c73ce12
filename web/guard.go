package web

import (
	"net/http"
	"strings"
)

// defence names one of the guard's checks, so that tests can switch one
// off and show that its attack then succeeds.
type defence uint

const (
	defHost      defence = 1 << iota // Host must be this server's (DNS rebinding)
	defFetchSite                     // Sec-Fetch-Site must be same-origin (or a typed URL)
	defOrigin                        // Origin must be this server's on every state-changing call
	defSession                       // a session cookie is needed
	defSingleUse                     // a login token works once
	defFrame                         // no framing (frame-ancestors, X-Frame-Options)
	defCSP                           // the Content-Security-Policy
	defPaths                         // no API call that names a local file
)

// contentSecurityPolicy lets the page load script, style and images only
// from this server (and images, audio and video it made itself as blob:
// URLs), connect only to this server, never be framed, and assign no
// string as HTML (Trusted Types with no policy: innerHTML = "..." throws).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' blob:; media-src 'self' blob: mediastream:; connect-src 'self'; " +
	"manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; " +
	"frame-src 'none'; object-src 'none'; worker-src 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// setHeaders puts the security headers on every response.
func (s *Server) setHeaders(h http.Header) {
	if !s.isOff(defCSP) {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
	}
	if !s.isOff(defFrame) {
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) isOff(d defence) bool { return s.off&d != 0 }

// guard runs the checks every request passes before next sees it.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.setHeaders(w.Header())
		if !s.isOff(defHost) && !s.ownHost(r.Host) {
			// A page of another name that resolves to 127.0.0.1 (DNS
			// rebinding), or a request not meant for this server.
			s.deny(w, r, http.StatusMisdirectedRequest, "unknown host")
			return
		}
		api := strings.HasPrefix(r.URL.Path, "/api/")
		if !s.isOff(defFetchSite) && !fetchSiteAllowed(r.Header.Get("Sec-Fetch-Site"), api) {
			s.deny(w, r, http.StatusForbidden, "cross-origin request")
			return
		}
		if !s.isOff(defOrigin) && !s.originAllowed(r) {
			s.deny(w, r, http.StatusForbidden, "cross-origin request")
			return
		}
		if !s.isOff(defPaths) && localPathCall(r) {
			s.deny(w, r, http.StatusForbidden, "the web app sends and opens files as bytes, never by local path")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ownHost reports whether host is how the browser reached this server.
func (s *Server) ownHost(host string) bool {
	return host == s.hosts[0] || host == s.hosts[1]
}

// fetchSiteAllowed: the browser says where a request comes from. Only this
// origin may call the API; a person may also open the app by typing or
// clicking its URL outside any page ("none"). "same-site" is refused too:
// another port on 127.0.0.1 is the same site but not this server.
// Browsers that send no fetch metadata still meet the Origin check.
func fetchSiteAllowed(site string, api bool) bool {
	switch site {
	case "", "same-origin":
		return true
	case "none":
		return !api
	}
	return false
}

// originAllowed: a state-changing request must carry this server's Origin
// (browsers send it on every such request); any request that carries an
// Origin must carry this server's.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return safeMethod(r.Method)
	}
	return origin == "http://"+r.Host && s.ownHost(r.Host)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead
}

// deny answers a refused request with a short reason (and logs it: these
// are attacks or mistakes, worth seeing, but carry no secret).
func (s *Server) deny(w http.ResponseWriter, r *http.Request, code int, reason string) {
	s.log.Warn("web: request refused", "reason", reason, "method", r.Method, "path", r.URL.Path,
		"host", r.Host, "origin", r.Header.Get("Origin"), "fetch_site", r.Header.Get("Sec-Fetch-Site"))
	http.Error(w, "sotto web: "+reason, code)
}

// localPathCall reports whether r is an API call in which the caller
// names a file on this machine for the agent to read or write (a file
// sent by path, an attachment saved to a path). The agent runs as the
// person, so from a browser that would turn any session (or a forged
// request that got through) into a way to read ~/.ssh and send it away.
// The app sends files as bytes and opens attachments as bytes instead.
// Every API path that takes a path is one of these two shapes, whether
// of a 1:1 conversation or of a group: POST …/download (never allowed)
// and POST …/files (allowed only as bytes).
func localPathCall(r *http.Request) bool {
	p := r.URL.Path
	if r.Method != http.MethodPost || !strings.HasPrefix(p, "/api/") {
		return false
	}
	p = strings.TrimRight(p, "/")
	if strings.HasSuffix(p, "/download") {
		return true
	}
	if strings.HasSuffix(p, "/files") {
		return r.Header.Get("Content-Type") != "application/octet-stream"
	}
	return false
}
