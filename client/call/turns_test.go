package call

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"

	"sotto/client/transport"
	"sotto/internal/testca"
	"sotto/relay"
)

// startTURNSRelay starts a relay whose TURN server also listens for TURN
// over TLS with a certificate of a private CA.
func startTURNSRelay(t *testing.T) (*testRelay, *testca.CA) {
	t.Helper()
	ca, err := testca.New()
	if err != nil {
		t.Fatal(err)
	}
	r := startRelayTURN(t, nil, func(c *relay.TURNServerConfig) {
		c.TLSAddr, c.TLSConfig = "127.0.0.1:0", ca.ServerConfig()
	})
	return r, ca
}

// TestCallOverTURNS: a relayed call whose media goes through TURN over
// TLS only (turns:), to a relay whose certificate a private CA issued:
// the devices check it with their own TLS settings (its CA, and its pin),
// not the system's roots that pion's ICE agent alone would use.
func TestCallOverTURNS(t *testing.T) {
	r, ca := startTURNSRelay(t)
	leaf, err := x509.ParseCertificate(ca.Server.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pin := transport.PinOf(leaf)
	relayedCall(t, r, Options{RelayOnly: true, TURNTransport: "tls", TLS: transport.Options{RootCAs: ca.Pool, Pin: pin}})
}

// TestTURNSDialerChecksTheRelay: the dialer pion uses for turns: refuses a
// server the device's TLS settings do not trust (the system's roots, or a
// pin of another key) before a TURN request (and its username) is sent,
// and leaves turn: servers over TCP in the clear, as pion would.
func TestTURNSDialerChecksTheRelay(t *testing.T) {
	r, ca := startTURNSRelay(t)
	addr := r.turn.TLSAddr()
	urls := r.turn.URLs("")
	for _, tc := range []struct {
		name string
		opts transport.Options
		ok   bool
	}{
		{"private CA", transport.Options{RootCAs: ca.Pool}, true},
		{"system roots", transport.Options{}, false},
		{"wrong pin", transport.Options{RootCAs: ca.Pool, Pin: make([]byte, 32)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newTURNSDialer(urls, tc.opts.TLSConfig())
			if err != nil || d == nil {
				t.Fatalf("dialer: %v %v", d, err)
			}
			c, err := d.Dial("tcp4", addr)
			if (err == nil) != tc.ok {
				t.Fatalf("dial %s: %v", addr, err)
			}
			if err != nil {
				if tc.name == "wrong pin" && !errors.Is(err, transport.ErrPinMismatch) {
					t.Fatalf("wrong pin: %v", err)
				}
				return
			}
			defer c.Close()
			if _, ok := c.(*tls.Conn); !ok {
				t.Fatalf("turns: connection is a %T", c)
			}
			if _, ok := c.LocalAddr().(*net.TCPAddr); !ok {
				t.Fatalf("local address %T: pion needs a *net.TCPAddr", c.LocalAddr())
			}
			plain, err := d.Dial("tcp4", r.turn.TCPAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			if _, ok := plain.(*tls.Conn); ok {
				t.Fatal("a turn: server over TCP was dialed with TLS")
			}
		})
	}
	if d, err := newTURNSDialer([]string{"turn:127.0.0.1:3478?transport=udp"}, nil); d != nil || err != nil {
		t.Fatalf("no turns: URL: %v %v", d, err)
	}
}
