package relay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v5"

	"sotto/wire"
)

// TURNCredentials issues short-lived TURN credentials to authenticated
// devices, following the TURN REST convention shared with the TURN server:
// username "<expiry unix seconds>:<nonce>", password
// base64(HMAC-SHA1(secret, username)). The nonce is crypto/rand.Text (26
// base32 characters, 130 random bits) drawn per credential: the username names no account or
// device, so TURN traffic (in clear over UDP and TCP) does not say who
// calls, and two credentials of one device do not look alike.
type TURNCredentials struct {
	Secret []byte        // shared with the TURN server; at least 32 bytes
	URLs   []string      // turn: URIs handed to clients
	TTL    time.Duration // lifetime of a credential (10 min)
}

// DefaultTURNTTL is the lifetime of issued TURN credentials.
const DefaultTURNTTL = 10 * time.Minute

// turnPassword is the TURN REST password of username.
func turnPassword(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// issue returns a fresh credential valid until now+TTL.
func (t *TURNCredentials) issue(now time.Time) *wire.TurnCredentials {
	ttl := t.TTL
	if ttl <= 0 {
		ttl = DefaultTURNTTL
	}
	exp := now.Add(ttl)
	user := fmt.Sprintf("%d:%s", exp.Unix(), rand.Text())
	return &wire.TurnCredentials{
		Username:    user,
		Password:    turnPassword(t.Secret, user),
		Urls:        append([]string(nil), t.URLs...),
		ExpiresAtMs: exp.UnixMilli(),
	}
}

// turnCredentials answers a TurnCredentialsRequest of an authenticated
// device.
func (c *conn) turnCredentials() (*wire.TurnCredentials, error) {
	t := c.s.cfg.TURN
	if t == nil || len(t.Secret) == 0 {
		return nil, withReason(ErrNotFound, "this relay runs no TURN server")
	}
	return t.issue(c.s.cfg.Now()), nil
}

// TURNServerConfig configures a TURN server.
type TURNServerConfig struct {
	Secret []byte
	// UDPAddr and TCPAddr are the listen addresses ("127.0.0.1:3478");
	// empty: that transport is off.
	UDPAddr, TCPAddr string
	// TLSAddr is the listen address of TURN over TLS (turns:, RFC 8656
	// §3.2) with TLSConfig (the relay's certificate): the TURN username
	// and the peers' addresses are then hidden from the path. Empty: off.
	TLSAddr   string
	TLSConfig *tls.Config
	// RelayIP is the address put in relayed candidates (the public IP
	// behind which the relay runs); RelayBind is the local address relay
	// sockets bind to. Defaults: 127.0.0.1 for both.
	RelayIP, RelayBind string
	Realm              string // "sotto"
	Logger             *slog.Logger
	Now                func() time.Time
	// OnAllocate, when set, is called for every allocation made (tests
	// count them). It is given nothing about the allocation.
	OnAllocate func()
}

// TURNServer is a TURN server (RFC 8656) for call media, run next to the
// relay. It sees only SRTP/DTLS packets it cannot decrypt.
type TURNServer struct {
	srv *turn.Server
	udp []net.PacketConn
	tcp net.Listener
	tls net.Listener // nil: no TURN over TLS
}

// ErrTURNConfig reports an unusable TURN configuration.
var ErrTURNConfig = errors.New("relay: turn: bad configuration")

// StartTURN listens and serves TURN until Close.
func StartTURN(ctx context.Context, cfg TURNServerConfig) (*TURNServer, error) {
	if len(cfg.Secret) < 16 {
		return nil, fmt.Errorf("%w: secret shorter than 16 bytes", ErrTURNConfig)
	}
	if cfg.UDPAddr == "" && cfg.TCPAddr == "" && cfg.TLSAddr == "" {
		return nil, fmt.Errorf("%w: no listen address", ErrTURNConfig)
	}
	if cfg.TLSAddr != "" && cfg.TLSConfig == nil {
		return nil, fmt.Errorf("%w: TURN over TLS needs a certificate", ErrTURNConfig)
	}
	if cfg.RelayIP == "" {
		cfg.RelayIP = "127.0.0.1"
	}
	if cfg.RelayBind == "" {
		cfg.RelayBind = cfg.RelayIP
	}
	if cfg.Realm == "" {
		cfg.Realm = "sotto"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ip := net.ParseIP(cfg.RelayIP)
	if ip == nil {
		return nil, fmt.Errorf("%w: relay IP %q", ErrTURNConfig, cfg.RelayIP)
	}
	secret := append([]byte(nil), cfg.Secret...)
	log := cfg.Logger
	auth := func(ra *turn.RequestAttributes) (string, []byte, bool) {
		exp, _, ok := strings.Cut(ra.Username, ":")
		if !ok {
			return "", nil, false
		}
		t, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || t < cfg.Now().Unix() {
			log.Debug("turn: expired or malformed credential", "src", ra.SrcAddr.String())
			return "", nil, false
		}
		return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, turnPassword(secret, ra.Username)), true
	}
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: ip, Address: cfg.RelayBind}
	}
	ts := &TURNServer{}
	sc := turn.ServerConfig{Realm: cfg.Realm, AuthHandler: auth}
	if f := cfg.OnAllocate; f != nil {
		sc.EventHandler.OnAllocationCreated = func(net.Addr, net.Addr, string, string, string, net.Addr, int) { f() }
	}
	var lc net.ListenConfig
	if cfg.UDPAddr != "" {
		pcs, err := listenTURNUDP(ctx, cfg.UDPAddr)
		if err != nil {
			return nil, fmt.Errorf("relay: turn: %w", err)
		}
		ts.udp = pcs
		for _, pc := range pcs {
			sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: gen()})
		}
	}
	if cfg.TCPAddr != "" {
		l, err := lc.Listen(ctx, "tcp4", cfg.TCPAddr)
		if err != nil {
			ts.closeListeners()
			return nil, fmt.Errorf("relay: turn: %w", err)
		}
		ts.tcp = l
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: l, RelayAddressGenerator: gen()})
	}
	if cfg.TLSAddr != "" {
		l, err := lc.Listen(ctx, "tcp4", cfg.TLSAddr)
		if err != nil {
			ts.closeListeners()
			return nil, fmt.Errorf("relay: turn: %w", err)
		}
		ts.tls = tls.NewListener(l, cfg.TLSConfig)
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: ts.tls, RelayAddressGenerator: gen()})
	}
	srv, err := turn.NewServer(sc)
	if err != nil {
		ts.closeListeners()
		return nil, fmt.Errorf("relay: turn: %w", err)
	}
	ts.srv = srv
	return ts, nil
}

func (t *TURNServer) closeListeners() {
	for _, pc := range t.udp {
		pc.Close()
	}
	if t.tcp != nil {
		t.tcp.Close()
	}
	if t.tls != nil {
		t.tls.Close()
	}
}

// UDPAddr is the UDP listen address ("" when off).
func (t *TURNServer) UDPAddr() string {
	if len(t.udp) == 0 {
		return ""
	}
	return t.udp[0].LocalAddr().String()
}

// TCPAddr is the TCP listen address ("" when off).
func (t *TURNServer) TCPAddr() string {
	if t.tcp == nil {
		return ""
	}
	return t.tcp.Addr().String()
}

// TLSAddr is the TURN over TLS listen address ("" when off).
func (t *TURNServer) TLSAddr() string {
	if t.tls == nil {
		return ""
	}
	return t.tls.Addr().String()
}

// URLs are the turn: (and turns:) URIs of the listeners, for
// TURNCredentials.URLs. host replaces the listen host when not empty (the
// public name; for turns: the name the relay's certificate holds).
func (t *TURNServer) URLs(host string) []string {
	var out []string
	add := func(scheme, addr, proto string) {
		if addr == "" {
			return
		}
		h, p, _ := net.SplitHostPort(addr)
		if host != "" {
			h = host
		}
		out = append(out, scheme+":"+net.JoinHostPort(h, p)+"?transport="+proto)
	}
	add("turn", t.UDPAddr(), "udp")
	add("turn", t.TCPAddr(), "tcp")
	add("turns", t.TLSAddr(), "tcp")
	return out
}

// AllocationCount is the number of live allocations.
func (t *TURNServer) AllocationCount() int { return t.srv.AllocationCount() }

// Close stops the server and closes its listeners.
func (t *TURNServer) Close() error { return t.srv.Close() }
