package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"sotto/relay"
)

// turnSecretFile holds the secret TURN credentials are derived from; it
// lives in the data directory so that every process serving it agrees.
const turnSecretFile = "turn.secret"

// startTURN starts the TURN server of cfg (none when TURNListen is empty),
// over TLS with tlsConf too when TURNSListen is set, and makes rcfg issue
// credentials for it.
func startTURN(ctx context.Context, cfg Config, rcfg *relay.Config, tlsConf *tls.Config, log *slog.Logger) (*relay.TURNServer, error) {
	if cfg.TURNListen == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(cfg.TURNListen)
	if err != nil {
		return nil, fmt.Errorf("sottod: -turn-listen %q: %w", cfg.TURNListen, err)
	}
	public := cfg.TURNPublicIP
	if public == "" {
		public = host
	}
	secret, err := loadTURNSecret(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	tc := relay.TURNServerConfig{
		Secret: secret, UDPAddr: cfg.TURNListen, TCPAddr: cfg.TURNListen,
		RelayIP: public, RelayBind: host, Logger: log,
	}
	if cfg.TURNSListen != "" {
		tc.TLSAddr, tc.TLSConfig = cfg.TURNSListen, tlsConf
	}
	ts, err := relay.StartTURN(ctx, tc)
	if err != nil && cfg.TURNListen == DefaultConfig().TURNListen {
		// The default port is taken (another relay on this machine):
		// serve without TURN rather than not at all.
		log.Warn("turn server not started", "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	urls, err := turnURLs(cfg, ts, public)
	if err != nil {
		ts.Close()
		return nil, err
	}
	rcfg.TURN = &relay.TURNCredentials{Secret: secret, URLs: urls, TTL: relay.DefaultTURNTTL}
	log.Info("turn server listening", "udp", ts.UDPAddr(), "tcp", ts.TCPAddr(), "tls", ts.TLSAddr(), "public", public)
	return ts, nil
}

// turnURLs are the URLs handed out with credentials: turn: at the public
// address, turns: at the name the relay's certificate holds.
func turnURLs(cfg Config, ts *relay.TURNServer, public string) ([]string, error) {
	var urls []string
	for _, u := range ts.URLs(public) {
		if !strings.HasPrefix(u, "turns:") {
			urls = append(urls, u)
		}
	}
	if ts.TLSAddr() == "" {
		return urls, nil
	}
	name := cfg.TURNSName
	if name == "" {
		name = cfg.ACMEDomain
	}
	if name == "" {
		h, _, err := net.SplitHostPort(cfg.TURNSListen)
		if err != nil {
			return nil, fmt.Errorf("sottod: -turns-listen %q: %w", cfg.TURNSListen, err)
		}
		name = h
	}
	_, port, _ := net.SplitHostPort(ts.TLSAddr())
	return append(urls, "turns:"+net.JoinHostPort(name, port)+"?transport=tcp"), nil
}

func loadTURNSecret(dir string) ([]byte, error) {
	p := filepath.Join(dir, turnSecretFile)
	b, err := os.ReadFile(p)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sottod: turn secret: %w", err)
	}
	b = make([]byte, 32)
	rand.Read(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sottod: turn secret: %w", err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, fmt.Errorf("sottod: turn secret: %w", err)
	}
	return b, nil
}
