package main

import (
	"slices"
	"testing"
)

func TestACMEConfig(t *testing.T) {
	cfg := validConfig()
	cfg.DataDir = t.TempDir()
	cfg.ACMEDomain = "relay.example.org"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := acmeTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tc.GetCertificate == nil || !slices.Contains(tc.NextProtos, "acme-tls/1") {
		t.Fatalf("not an ACME TLS-ALPN config: %+v", tc.NextProtos)
	}
	cfg.TLSCert, cfg.TLSKey = "c.pem", "k.pem"
	if cfg.Validate() == nil {
		t.Fatal("-acme-domain with -tls-cert accepted")
	}
}
