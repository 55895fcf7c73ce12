package client

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// FuzzLinkCodeName: a name a code carries comes back as it went in, and
// any other input is refused with ErrBadLinkCode or read without a name.
func FuzzLinkCodeName(f *testing.F) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	l := &Linking{priv: priv, address: "i95RwCE2JpyqwcUkqnqxPg"}
	seeds := []string{l.NamedCode("work laptop"), l.NamedCode("téléphone"), l.Code(), l.Code() + ".", l.Code() + ".AA", l.Code() + ".G0VzYw"}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		name, err := LinkCodeName(code)
		if err != nil {
			if !errors.Is(err, ErrBadLinkCode) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(name) > maxLinkName {
			t.Fatalf("name of %d bytes", len(name))
		}
		if _, _, err := parseLinkCode(code); err != nil {
			t.Fatalf("a named code LinkCodeName took is refused by parseLinkCode: %v", err)
		}
		if name != "" {
			if got, err := LinkCodeName(l.NamedCode(name)); err != nil || got != name {
				t.Fatalf("round trip of %q: %q %v", name, got, err)
			}
		}
	})
}

func TestLinkCodeName(t *testing.T) {
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	l := &Linking{priv: priv, address: "addr"}
	for code, want := range map[string]string{l.NamedCode("work laptop"): "work laptop", l.Code(): ""} {
		if got, err := LinkCodeName(code); err != nil || got != want {
			t.Errorf("LinkCodeName(%q) = %q, %v; want %q", code, got, err, want)
		}
	}
	for _, bad := range []string{l.NamedCode("a\x1b[31mb"), l.NamedCode(strings.Repeat("x", 65)), l.Code() + ".!!", "sotto-link:x"} {
		if _, err := LinkCodeName(bad); !errors.Is(err, ErrBadLinkCode) {
			t.Errorf("LinkCodeName(%q): %v, want ErrBadLinkCode", bad, err)
		}
	}
	if a, _, err := parseLinkCode(l.NamedCode("phone")); err != nil || a != "addr" {
		t.Errorf("a named code does not parse: %q %v", a, err)
	}
}
