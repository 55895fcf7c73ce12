package sealed

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"sotto/signal/keys"
)

// fuzzSeeds builds a valid sealed message, its content and certificates.
func fuzzSeeds(t testing.TB) (recipient *keys.IdentityKeyPair, msg, content, sender, server []byte) {
	root, _ := keys.GenerateKeyPair(rand.Reader)
	srv, _ := keys.GenerateKeyPair(rand.Reader)
	sc, err := NewServerCertificate(rand.Reader, 1, srv.Public, root.Private)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	bob, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	cert, err := NewSenderCertificate(rand.Reader, "alice", "+1555", alice.PublicKey(), 1, time.Now().Add(time.Hour), sc, srv.Private)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewContent(TypePreKey, cert, []byte("inner"), HintResendable, []byte{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Seal(rand.Reader, alice, bob.PublicKey(), c)
	if err != nil {
		t.Fatal(err)
	}
	return bob, m, c.Serialize(), cert.Serialize(), sc.Serialize()
}

func FuzzParseCertificates(f *testing.F) {
	_, _, content, sender, server := fuzzSeeds(f)
	for _, s := range []string{knownServerCerts[0].cert, knownServerCerts[2].cert} {
		f.Add(mustHex(f, s))
	}
	f.Add(sender)
	f.Add(server)
	f.Add(content)
	f.Add([]byte{})
	if _, err := ParseSenderCertificate(sender); err != nil {
		f.Fatalf("seed does not load: %v", err)
	}
	if _, err := ParseServerCertificate(server); err != nil {
		f.Fatalf("seed does not load: %v", err)
	}
	if _, err := ParseContent(content); err != nil {
		f.Fatalf("seed does not load: %v", err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseServerCertificate(b); err == nil {
			if !bytes.Equal(c.Serialize(), b) {
				t.Fatal("server certificate bytes not kept")
			}
		}
		if c, err := ParseSenderCertificate(b); err == nil {
			if c.DeviceID < 1 || c.DeviceID > MaxDeviceID {
				t.Fatal("out of range device id accepted")
			}
		}
		if c, err := ParseContent(b); err == nil {
			if c.Sender == nil {
				t.Fatal("content without sender")
			}
		}
	})
}

func FuzzUnseal(f *testing.F) {
	bob, msg, _, _, _ := fuzzSeeds(f)
	if _, err := Unseal(bob, msg); err != nil {
		f.Fatalf("seed does not load: %v", err)
	}
	f.Add(msg)
	f.Add(append([]byte{0x22}, msg[1:]...))
	f.Add([]byte{0x11})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Unseal(bob, b)
		if err == nil && c.Sender == nil {
			t.Fatal("unsealed without a sender")
		}
	})
}
