package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"sotto/internal/testca"
)

// TestTURNSListen: with -turns-listen the TURN server also serves TURN
// over TLS with the relay's certificate, and the credentials name it as
// turns: at the -turns-name host; without the relay's certificate the
// flag is refused.
func TestTURNSListen(t *testing.T) {
	ca, err := testca.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.BlobDir = t.TempDir(), "127.0.0.1:0", "off"
	cfg.TURNListen, cfg.TURNSListen, cfg.TURNSName = "127.0.0.1:0", "127.0.0.1:0", "localhost"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-turns-listen needs the relay's certificate") {
		t.Fatalf("-turns-listen without a certificate: %v", err)
	}
	if cfg.TLSCert, cfg.TLSKey, err = ca.WriteServer(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := d.turn.TLSAddr()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TURN over TLS at %s: %v", addr, err)
	}
	c.Close()
	urls, err := turnURLs(cfg, d.turn, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	if want := "turns:localhost:" + port + "?transport=tcp"; urls[len(urls)-1] != want || len(urls) != 3 {
		t.Fatalf("URLs %v, want turn: udp and tcp, then %s", urls, want)
	}
}
