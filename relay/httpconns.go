package relay

import (
	"net"
	"net/http"
	"sync"
)

// httpConns caps the HTTP connections per client address that have not
// become WebSockets: a TCP connection costs the relay a file descriptor
// before it sends a request, and the WebSocket caps count only upgraded
// ones. Peers that are trusted proxies are not capped here (their
// clients are, by the WebSocket caps, once their address is known).
type httpConns struct {
	mu      sync.Mutex
	byAddr  map[string]int
	keys    map[net.Conn]string
	refused uint64
}

// ConnState is the http.Server ConnState hook that applies
// ConnLimits.PerAddrHTTP: a connection over the cap is closed as soon as
// it is accepted; a connection stops counting when it is hijacked (it is
// a WebSocket then, under the WebSocket caps) or closed.
func (s *Server) ConnState(c net.Conn, st http.ConnState) {
	h := &s.http
	switch st {
	case http.StateNew:
		remote := c.RemoteAddr().String()
		if a, ok := parseHostAddr(remote); ok && s.keyer.isTrusted(a) {
			return
		}
		key := s.keyer.key(remote)
		h.mu.Lock()
		if h.byAddr[key] >= s.cfg.ConnLimits.PerAddrHTTP {
			h.refused++
			h.mu.Unlock()
			c.Close()
			return
		}
		if h.byAddr == nil {
			h.byAddr, h.keys = make(map[string]int), make(map[net.Conn]string)
		}
		h.byAddr[key]++
		h.keys[c] = key
		h.mu.Unlock()
	case http.StateHijacked, http.StateClosed:
		h.mu.Lock()
		if key, ok := h.keys[c]; ok {
			delete(h.keys, c)
			if h.byAddr[key]--; h.byAddr[key] == 0 {
				delete(h.byAddr, key)
			}
		}
		h.mu.Unlock()
	}
}

func (h *httpConns) counts() (open int, refused uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.keys), h.refused
}
