package relay

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Client addresses.
//
// Every per-client limit (connection caps, enrollment and sealed-send
// rates) is keyed by the client's address prefix, not its exact address:
// an IPv4 address (/32 by default) or an IPv6 /64 (the smallest block a
// subscriber usually gets, so one host cannot step through its 2^64
// addresses to get fresh buckets). Behind a reverse proxy the TCP peer is
// the proxy, shared by every client: the relay then reads the client's
// address from a forwarding header, but only when the peer is one of the
// configured trusted proxies; a header from anybody else is ignored.

// ForwardedHeader names the header a trusted proxy sets.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// addrKeyer turns a request into the key of its client's limits.
type addrKeyer struct {
	trusted []netip.Prefix
	header  string // HeaderXForwardedFor or HeaderForwarded
	v4, v6  int    // prefix lengths
}

func newAddrKeyer(cfg *Config) addrKeyer {
	k := addrKeyer{trusted: cfg.TrustedProxies, header: cfg.ForwardedHeader, v4: cfg.AddrPrefixV4, v6: cfg.AddrPrefixV6}
	if k.header == "" {
		k.header = HeaderXForwardedFor
	}
	return k
}

// key returns the limit key of remote (a host:port or a bare address).
func (k addrKeyer) key(remote string) string {
	a, ok := parseHostAddr(remote)
	if !ok {
		return remote // not an IP peer (a pipe, a Unix socket): its own key
	}
	return k.prefix(a).String()
}

// prefix masks a to the configured prefix length of its family.
func (k addrKeyer) prefix(a netip.Addr) netip.Prefix {
	bits := k.v6
	if a.Is4() {
		bits = k.v4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	return p
}

// clientAddr returns the address of the client behind r: the TCP peer,
// or, when the peer is a trusted proxy, the rightmost address in the
// forwarding header that is not itself a trusted proxy.
func (k addrKeyer) clientAddr(r *http.Request) string {
	peer, ok := parseHostAddr(r.RemoteAddr)
	if !ok || !k.isTrusted(peer) {
		return r.RemoteAddr
	}
	var hops []string
	if k.header == HeaderForwarded {
		hops = forwardedFor(r.Header.Values(HeaderForwarded))
	} else {
		for _, v := range r.Header.Values(HeaderXForwardedFor) {
			hops = append(hops, strings.Split(v, ",")...)
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHostAddr(strings.TrimSpace(hops[i]))
		if !ok {
			// Not an address (an obfuscated or garbled hop): what lies
			// left of it cannot be attributed; stop at the last hop
			// that can.
			break
		}
		client = a
		if !k.isTrusted(a) {
			break
		}
	}
	return client.String()
}

func (k addrKeyer) isTrusted(a netip.Addr) bool {
	for _, p := range k.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostAddr parses "1.2.3.4", "1.2.3.4:5", "[::1]:5", "::1" or
// "[::1]", dropping an IPv6 zone and unmapping IPv4-mapped addresses.
func parseHostAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

// forwardedFor extracts the for= parameters of RFC 7239 Forwarded header
// values, in order (an element without one yields "", which no address
// parses from).
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			hop := ""
			for _, pair := range strings.Split(elem, ";") {
				name, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(name, "for") {
					hop = strings.Trim(val, `"`)
				}
			}
			out = append(out, hop)
		}
	}
	return out
}
