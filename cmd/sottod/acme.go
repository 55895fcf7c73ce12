package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/acme/autocert"
)

// acmeTLS returns a TLS configuration that obtains and renews a Let's
// Encrypt certificate for cfg.ACMEDomain with the TLS-ALPN-01 challenge
// (so the relay must be reachable on port 443). Certificates and the ACME
// account key are cached in <data>/acme.
func acmeTLS(cfg Config) (*tls.Config, error) {
	cache := filepath.Join(cfg.DataDir, "acme")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return nil, fmt.Errorf("sottod: acme cache: %w", err)
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(cfg.ACMEDomain),
		Cache:      autocert.DirCache(cache),
	}
	t := m.TLSConfig()
	t.MinVersion = tls.VersionTLS12
	return t, nil
}
