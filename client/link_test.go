package client

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"
)

func FuzzParseLinkCode(f *testing.F) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		encodeLinkCode("i95RwCE2JpyqwcUkqnqxPg", priv.PublicKey()),
		encodeLinkCode("a", priv.PublicKey()),
		"sotto-link:",
		"sotto-link:YQ.",
	}
	if len(seeds) == 0 {
		f.Fatal("client: empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		addr, pub, err := parseLinkCode(code)
		if err != nil {
			if !errors.Is(err, ErrBadLinkCode) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		addr2, pub2, err := parseLinkCode(encodeLinkCode(addr, pub))
		if err != nil || addr2 != addr || !pub2.Equal(pub) {
			t.Fatalf("round trip: %q %v", addr2, err)
		}
	})
}
