package call

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
)

// TURN over TLS (turns:). pion's ICE agent dials turns: servers itself
// against the system's roots only, which a relay with an organization's
// CA or a pinned key does not pass. So the agent is given a dialer of
// ours (SettingEngine.SetICEProxyDialer, which pion uses for every TURN
// URL over TCP): for the turns: servers of the call it dials TCP and
// completes the TLS handshake under the device's own TLS settings
// (Options.TLS: its roots and its pin of the relay's key, as for the
// relay's WebSocket); it dials the others (turn: over TCP) plainly, as
// pion would. A server that fails the check gets no allocation request,
// so the TURN username never reaches it.

// turnsDialTimeout bounds the TCP connection and TLS handshake to a TURN
// server.
const turnsDialTimeout = 10 * time.Second

// turnsDialer implements golang.org/x/net/proxy.Dialer for pion.
type turnsDialer struct {
	tls *tls.Config
	// secure holds the host:port of the turns: servers (as pion joins
	// them from the URL); others are plain TCP.
	secure map[string]bool
}

// newTURNSDialer returns the dialer for urls, or nil when none is turns:.
func newTURNSDialer(urls []string, conf *tls.Config) (*turnsDialer, error) {
	d := &turnsDialer{tls: conf, secure: map[string]bool{}}
	for _, u := range urls {
		rest, ok := strings.CutPrefix(u, "turns:")
		if !ok {
			continue
		}
		hostport, _, _ := strings.Cut(rest, "?")
		host, port, err := net.SplitHostPort(hostport)
		if err != nil { // no port: the default of turns: (RFC 7065)
			host, port = strings.Trim(hostport, "[]"), "5349"
		}
		// As pion joins them: host and port of the URL.
		addr := net.JoinHostPort(host, port)
		if _, _, err := net.SplitHostPort(addr); err != nil || host == "" {
			return nil, fmt.Errorf("call: TURN URL %q: bad host", u)
		}
		d.secure[addr] = true
	}
	if len(d.secure) == 0 {
		return nil, nil
	}
	return d, nil
}

// Dial connects to addr, over TLS when addr is a turns: server.
func (d *turnsDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), turnsDialTimeout)
	defer cancel()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil || !d.secure[addr] {
		return c, err
	}
	host, _, _ := net.SplitHostPort(addr)
	conf := d.tls.Clone()
	conf.ServerName = host
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("call: TURN over TLS to %s: %w", addr, err)
	}
	return tc, nil
}
