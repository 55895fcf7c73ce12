package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sotto/client/transport"
)

// testCA is an internal CA and a relay certificate it issued for
// 127.0.0.1 and localhost.
type testCA struct {
	caPEM []byte
	leaf  tls.Certificate
	pin   []byte // of the leaf
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sotto test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "relay"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return &testCA{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key, Leaf: leaf},
		pin:   transport.PinOf(leaf),
	}
}

// startTLSRelay starts a relay (startRelay) and serves it over TLS with
// cert too; it returns the relay's https:// URL.
func startTLSRelay(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	r := startRelay(t, nil)
	hs := httptest.NewUnstartedServer(r.srv.Handler())
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	t.Cleanup(hs.Close) // before the relay's own cleanup
	return hs.URL
}

func wssURL(u string) string { return strings.Replace(u, "https://", "wss://", 1) }

// A relay whose certificate an internal CA issued is reached with that CA
// as RootCAs, and refused without it.
func TestTLSInternalCA(t *testing.T) {
	ca := newTestCA(t)
	url := startTLSRelay(t, ca.leaf)
	ctx := context.Background()

	if c, err := transport.Dial(ctx, wssURL(url), transport.Options{}); err == nil {
		c.Close()
		t.Fatal("a certificate of an unknown CA was accepted")
	} else if !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Fatalf("without the CA: %v, want an unknown-authority error", err)
	}

	o, err := transport.NewOptions(ca.caPEM, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := transport.Dial(ctx, wssURL(url), o)
	if err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	c.Close()

	// The same CA also passes the HTTP requests to the relay.
	resp, err := o.Client().Get(url + "/healthz")
	if err != nil {
		t.Fatalf("HTTP with the CA: %v", err)
	}
	resp.Body.Close()
	if _, err := (transport.Options{}).Client().Get(url + "/healthz"); err == nil {
		t.Fatal("HTTP without the CA accepted the relay")
	}
}

// A pinned public key must match: a relay certificate from the right CA
// but with another key is refused with ErrPinMismatch; the right pin
// passes, over the WebSocket and over HTTP.
func TestTLSPin(t *testing.T) {
	ca := newTestCA(t)
	url := startTLSRelay(t, ca.leaf)
	ctx := context.Background()

	o, err := transport.NewOptions(ca.caPEM, ca.pin, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := transport.Dial(ctx, wssURL(url), o)
	if err != nil {
		t.Fatalf("right pin: %v", err)
	}
	c.Close()

	wrong := append([]byte(nil), ca.pin...)
	wrong[0] ^= 1
	bad, err := transport.NewOptions(ca.caPEM, wrong, false)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := transport.Dial(ctx, wssURL(url), bad); !errors.Is(err, transport.ErrPinMismatch) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("wrong pin: %v, want ErrPinMismatch", err)
	}
	if _, err := bad.Client().Get(url + "/healthz"); !errors.Is(err, transport.ErrPinMismatch) {
		t.Fatalf("wrong pin over HTTP: %v, want ErrPinMismatch", err)
	}
	if _, err := transport.NewOptions(nil, []byte{1, 2, 3}, false); err == nil {
		t.Fatal("a short pin was accepted")
	}
	if _, err := transport.Dial(ctx, wssURL(url), transport.Options{HTTPClient: http.DefaultClient, Pin: ca.pin}); err == nil {
		t.Fatal("a pin beside a caller's own HTTP client (which would not check it) was accepted")
	}
	h := strings.ToUpper(hex.EncodeToString(ca.pin))
	if p, err := transport.ParsePin(h[:2] + ":" + h[2:]); err != nil || string(p) != string(ca.pin) {
		t.Fatalf("ParsePin: %x %v", p, err)
	}
	if p, err := transport.PinOfPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.leaf.Certificate[0]})); err != nil || string(p) != string(ca.pin) {
		t.Fatalf("PinOfPEM: %x %v", p, err)
	}
}

// Plaintext goes only to loopback unless Insecure: refused before any
// connection is attempted, for the WebSocket and for HTTP URLs.
func TestPlaintextOnlyOnLoopback(t *testing.T) {
	var o transport.Options
	for _, u := range []string{"ws://relay.example.org", "ws://10.0.0.1:8080", "http://relay.example.org/v1/blobs", "ws://127.0.0.1.example.org", "ws://[::2]:80"} {
		if err := o.CheckURL(u); !errors.Is(err, transport.ErrPlaintext) {
			t.Errorf("%s: %v, want ErrPlaintext", u, err)
		}
	}
	for _, u := range []string{"ws://127.0.0.1:1", "ws://127.8.9.10", "ws://localhost:80", "ws://LOCALHOST", "ws://[::1]:443", "http://127.0.0.1/x", "wss://relay.example.org", "https://relay.example.org"} {
		if err := o.CheckURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}

	// Dial refuses before dialing: the HTTP client would fail the test.
	r := startRelay(t, nil)
	addr := strings.TrimPrefix(r.url, "http://")
	dialed := 0
	toRelay := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		dialed++
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	ctx := context.Background()
	if _, err := transport.Dial(ctx, "ws://relay.example.org", transport.Options{HTTPClient: toRelay}); !errors.Is(err, transport.ErrPlaintext) {
		t.Fatalf("ws:// to a remote name: %v, want ErrPlaintext", err)
	}
	if dialed != 0 {
		t.Fatal("a connection was attempted before the plaintext rule refused it")
	}
	// With Insecure it goes through (the client's dialer takes it to the
	// relay on loopback: no traffic leaves the machine).
	c, err := transport.Dial(ctx, "ws://relay.example.org", transport.Options{HTTPClient: toRelay, Insecure: true})
	if err != nil {
		t.Fatalf("ws:// with Insecure: %v", err)
	}
	c.Close()
	if dialed != 1 {
		t.Fatalf("%d dials, want 1", dialed)
	}
}
