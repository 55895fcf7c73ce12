package linktransfer

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
		EncodeCode("i95RwCE2JpyqwcUkqnqxPg", priv.PublicKey()),
		EncodeCode("a", priv.PublicKey()),
		"sotto-link:",
		"sotto-link:YQ.",
	}
	if len(seeds) == 0 {
		f.Fatal("linktransfer: empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		addr, pub, err := ParseCode(code)
		if err != nil {
			if !errors.Is(err, ErrBadCode) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		addr2, pub2, err := ParseCode(EncodeCode(addr, pub))
		if err != nil || addr2 != addr || !pub2.Equal(pub) {
			t.Fatalf("round trip: %q %v", addr2, err)
		}
	})
}

// TestSealOpen: a message sealed to a device's key and address opens with
// them only.
func TestSealOpen(t *testing.T) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(priv.PublicKey(), "addr", []byte("approval"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := Open(priv, "addr", sealed); err != nil || string(pt) != "approval" {
		t.Fatalf("open: %q %v", pt, err)
	}
	for name, open := range map[string]func() ([]byte, error){
		"another address": func() ([]byte, error) { return Open(priv, "addr2", sealed) },
		"another key":     func() ([]byte, error) { return Open(other, "addr", sealed) },
		"altered": func() ([]byte, error) {
			b := append([]byte(nil), sealed...)
			b[len(b)-1] ^= 1
			return Open(priv, "addr", b)
		},
		"cut": func() ([]byte, error) { return Open(priv, "addr", sealed[:20]) },
	} {
		if _, err := open(); !errors.Is(err, ErrNotOpened) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
