package transport

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The rules for reaching the relay, for the WebSocket and for every HTTP
// request to the relay (attachment blobs):
//
//   - Plaintext (ws://, http://) only to a loopback address (127.0.0.0/8,
//     ::1, "localhost"), unless Options.Insecure says otherwise. The check
//     runs before anything is dialed.
//   - TLS verifies the relay's certificate against Options.RootCAs (an
//     organization's internal CA) or, when nil, the system's roots, and the
//     host name as usual.
//   - With Options.Pin, the relay's certificate must also carry the pinned
//     public key: the SHA-256 of its SubjectPublicKeyInfo, compared in
//     constant time in tls.Config.VerifyConnection. A relay with a
//     self-signed certificate is reached with that certificate as RootCAs
//     and its pin.

// Errors of the connection rules.
var (
	// ErrPlaintext refuses ws:// or http:// to a relay not on loopback.
	ErrPlaintext = errors.New("transport: refusing an unencrypted connection (ws:// or http://) to a relay that is not on this machine: use wss:// (or, knowingly, --insecure)")
	// ErrPinMismatch reports a relay certificate whose public key is not
	// the pinned one.
	ErrPinMismatch = errors.New("transport: the relay's certificate does not carry the pinned public key")
)

// PinSize is the length of a pin: a SHA-256.
const PinSize = sha256.Size

// NewOptions returns the Options for a device's relay settings, as an
// invitation carries them: caPEM, PEM certificates of the CA that issues
// the relay's certificate (nil: the system's roots); pin, the SHA-256 of
// the relay certificate's SubjectPublicKeyInfo (nil: none); insecure,
// whether plaintext to a relay not on loopback is allowed.
func NewOptions(caPEM, pin []byte, insecure bool) (Options, error) {
	o := Options{Insecure: insecure}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return Options{}, errors.New("transport: the relay CA holds no PEM certificate")
		}
		o.RootCAs = pool
	}
	if pin != nil {
		if len(pin) != PinSize {
			return Options{}, fmt.Errorf("transport: a pin is %d bytes (SHA-256), not %d", PinSize, len(pin))
		}
		o.Pin = append([]byte(nil), pin...)
	}
	return o, nil
}

// ParsePin reads a pin written as 64 hex digits (colons allowed).
func ParsePin(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(b) != PinSize {
		return nil, fmt.Errorf("transport: a pin is %d hex digits (the SHA-256 of the certificate's public key)", 2*PinSize)
	}
	return b, nil
}

// PinOf returns the pin of a certificate: the SHA-256 of its
// SubjectPublicKeyInfo.
func PinOf(cert *x509.Certificate) []byte {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return h[:]
}

// PinOfPEM returns the pin of the first certificate in certPEM.
func PinOfPEM(certPEM []byte) ([]byte, error) {
	for {
		var b *pem.Block
		b, certPEM = pem.Decode(certPEM)
		if b == nil {
			return nil, errors.New("transport: no PEM certificate")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("transport: certificate: %w", err)
		}
		return PinOf(c), nil
	}
}

// CheckURL applies the plaintext rule to a relay URL (ws, wss, http or
// https): ErrPlaintext for an unencrypted scheme to a host that is not on
// loopback, unless o.Insecure.
func (o Options) CheckURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("transport: relay url: %w", err)
	}
	switch u.Scheme {
	case "wss", "https":
		return nil
	case "ws", "http":
		if o.Insecure || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w (%s)", ErrPlaintext, u.Host)
	}
	return fmt.Errorf("transport: relay url: unsupported scheme %q", u.Scheme)
}

// isLoopback reports whether host names this machine: "localhost", or an
// address in 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TLSConfig returns the TLS configuration of o: its roots, and its pin
// checked in VerifyConnection after the usual verification.
func (o Options) TLSConfig() *tls.Config {
	c := &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
	if pin := o.Pin; len(pin) > 0 {
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrPinMismatch
			}
			if subtle.ConstantTimeCompare(PinOf(cs.PeerCertificates[0]), pin) != 1 {
				return ErrPinMismatch
			}
			return nil
		}
	}
	return c
}

// Client returns the HTTP client for requests to the relay under o: its
// own HTTPClient when set, else one whose transport uses TLSConfig.
func (o Options) Client() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = o.TLSConfig()
	return &http.Client{Transport: t}
}

func (o Options) validate() error {
	if o.HTTPClient != nil && (o.RootCAs != nil || len(o.Pin) > 0) {
		return errors.New("transport: HTTPClient and RootCAs or Pin are exclusive (give the client its own TLS configuration)")
	}
	if len(o.Pin) > 0 && len(o.Pin) != PinSize {
		return fmt.Errorf("transport: a pin is %d bytes (SHA-256)", PinSize)
	}
	return nil
}
