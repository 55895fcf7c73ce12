package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"sotto/client/transport"
)

// tlsrelay: restart the script's relay with TLS, under a certificate for
// 127.0.0.1 issued by a fresh internal CA. It writes $WORK/tls/ca.pem and
// sets $TLSRELAY (wss://127.0.0.1:PORT), $PIN (the certificate's public
// key pin, hex) and $BADPIN (another key's).
func cmdTLSRelay(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: tlsrelay")
	}
	dir := ts.MkAbs("tls")
	ts.Check(os.MkdirAll(dir, 0o700))
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sotto test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ts.Check(err)
	ca, err := x509.ParseCertificate(caDER)
	ts.Check(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "relay"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	ts.Check(err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	ts.Check(err)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		ts.Check(os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	write("ca.pem", "CERTIFICATE", caDER)
	cert := write("cert.pem", "CERTIFICATE", leafDER)
	keyFile := write("key.pem", "EC PRIVATE KEY", keyDER)
	leaf, err := x509.ParseCertificate(leafDER)
	ts.Check(err)
	other, err := x509.ParseCertificate(caDER)
	ts.Check(err)

	r := ts.Value(relayKey{}).(*relayProc)
	r.stop()
	r.tlsArgs = []string{"-tls-cert", cert, "-tls-key", keyFile}
	ts.Check(r.start())
	ts.Setenv("TLSRELAY", "wss://"+r.addr)
	ts.Setenv("PIN", hex.EncodeToString(transport.PinOf(leaf)))
	ts.Setenv("BADPIN", hex.EncodeToString(transport.PinOf(other)))
}
