package sealed

import (
	"crypto/rand"
	"testing"
	"time"

	"sotto/signal/keys"
)

// BenchmarkSeal and BenchmarkUnseal measure the sealed layers alone (two
// X25519 agreements, two HKDFs, AES-CTR and HMAC over a 300-byte inner
// message plus the certificate), without the Signal session.
func benchSetup(b *testing.B) (alice, bob *keys.IdentityKeyPair, c *Content) {
	root, _ := keys.GenerateKeyPair(rand.Reader)
	srv, _ := keys.GenerateKeyPair(rand.Reader)
	sc, _ := NewServerCertificate(rand.Reader, 1, srv.Public, root.Private)
	alice, _ = keys.GenerateIdentityKeyPair(rand.Reader)
	bob, _ = keys.GenerateIdentityKeyPair(rand.Reader)
	cert, err := NewSenderCertificate(rand.Reader, "alice", "", alice.PublicKey(), 1, time.Now().Add(time.Hour), sc, srv.Private)
	if err != nil {
		b.Fatal(err)
	}
	c, err = NewContent(TypeSignal, cert, make([]byte, 300), HintDefault, nil)
	if err != nil {
		b.Fatal(err)
	}
	return alice, bob, c
}

func BenchmarkSeal(b *testing.B) {
	alice, bob, c := benchSetup(b)
	for b.Loop() {
		if _, err := Seal(rand.Reader, alice, bob.PublicKey(), c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal(b *testing.B) {
	alice, bob, c := benchSetup(b)
	msg, err := Seal(rand.Reader, alice, bob.PublicKey(), c)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Unseal(bob, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateCertificate(b *testing.B) {
	root, _ := keys.GenerateKeyPair(rand.Reader)
	srv, _ := keys.GenerateKeyPair(rand.Reader)
	sc, _ := NewServerCertificate(rand.Reader, 1, srv.Public, root.Private)
	id, _ := keys.GenerateKeyPair(rand.Reader)
	cert, _ := NewSenderCertificate(rand.Reader, "alice", "", id.Public, 1, time.Now().Add(time.Hour), sc, srv.Private)
	now := time.Now()
	for b.Loop() {
		if err := cert.Validate(root.Public, now); err != nil {
			b.Fatal(err)
		}
	}
}
