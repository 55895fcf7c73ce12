package mls

import (
	"bytes"
	"testing"

	"sotto/mls/internal/vectortest"
)

type hexb = vectortest.Hex

// suiteFor returns the suite for a vector case, skipping the case for the
// suites this package rejects (vectortest.Counter.Case counts the skip
// against the suite).
func suiteFor(t *testing.T, id uint16) *suite {
	t.Helper()
	s, err := CipherSuite(id).suite()
	if err != nil {
		t.Skipf("suite %d: %v", id, err)
	}
	return s
}

type cryptoBasicsVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	RefHash     struct {
		Label string `json:"label"`
		Value hexb   `json:"value"`
		Out   hexb   `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexb   `json:"secret"`
		Label   string `json:"label"`
		Context hexb   `json:"context"`
		Length  int    `json:"length"`
		Out     hexb   `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexb   `json:"secret"`
		Label  string `json:"label"`
		Out    hexb   `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexb   `json:"secret"`
		Label      string `json:"label"`
		Generation uint32 `json:"generation"`
		Length     int    `json:"length"`
		Out        hexb   `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexb   `json:"priv"`
		Pub       hexb   `json:"pub"`
		Content   hexb   `json:"content"`
		Label     string `json:"label"`
		Signature hexb   `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexb   `json:"priv"`
		Pub        hexb   `json:"pub"`
		Label      string `json:"label"`
		Context    hexb   `json:"context"`
		Plaintext  hexb   `json:"plaintext"`
		KEMOutput  hexb   `json:"kem_output"`
		Ciphertext hexb   `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func eq(t *testing.T, what string, got, want []byte) bool {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %x, want %x", what, got, want)
		return false
	}
	return true
}

func TestCryptoBasicsVectors(t *testing.T) {
	var vs []cryptoBasicsVector
	vectortest.Load(t, "crypto-basics.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			eq(t, "ref_hash", s.refHash(v.RefHash.Label, v.RefHash.Value), v.RefHash.Out)
			e := v.ExpandWithLabel
			out, err := s.expandWithLabel(e.Secret, e.Label, e.Context, e.Length)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "expand_with_label", out, e.Out)
			out, err = s.deriveSecret(v.DeriveSecret.Secret, v.DeriveSecret.Label)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "derive_secret", out, v.DeriveSecret.Out)
			d := v.DeriveTreeSecret
			out, err = s.deriveTreeSecret(d.Secret, d.Label, d.Generation, d.Length)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "derive_tree_secret", out, d.Out)

			sw := v.SignWithLabel
			if err := s.verifyWithLabel(sw.Pub, sw.Label, sw.Content, sw.Signature); err != nil {
				t.Errorf("suite %d: verify vector signature: %v", v.CipherSuite, err)
			}
			sig, err := s.signWithLabel(sw.Priv, sw.Label, sw.Content)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.verifyWithLabel(sw.Pub, sw.Label, sw.Content, sig); err != nil {
				t.Errorf("suite %d: verify own signature: %v", v.CipherSuite, err)
			}
			if err := s.verifyWithLabel(sw.Pub, sw.Label+"x", sw.Content, sig); err == nil {
				t.Errorf("suite %d: signature verified under wrong label", v.CipherSuite)
			}
			pub, err := s.signaturePublicKey(sw.Priv)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "signature public key", pub, sw.Pub)

			ew := v.EncryptWithLabel
			priv, err := s.hpkePrivate(ew.Priv)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := s.decryptWithLabel(priv, ew.Label, ew.Context, ew.KEMOutput, ew.Ciphertext)
			if err != nil {
				t.Fatalf("suite %d: decrypt vector: %v", v.CipherSuite, err)
			}
			eq(t, "decrypt_with_label", pt, ew.Plaintext)
			kem, ct, err := s.encryptWithLabel(ew.Pub, ew.Label, ew.Context, ew.Plaintext)
			if err != nil {
				t.Fatal(err)
			}
			pt, err = s.decryptWithLabel(priv, ew.Label, ew.Context, kem, ct)
			if err != nil {
				t.Fatalf("suite %d: decrypt own: %v", v.CipherSuite, err)
			}
			eq(t, "encrypt/decrypt round trip", pt, ew.Plaintext)
			if _, err := s.decryptWithLabel(priv, ew.Label, append([]byte{1}, ew.Context...), kem, ct); err == nil {
				t.Errorf("suite %d: decrypted under wrong context", v.CipherSuite)
			}
		})
	}
	c.Summary(t, "crypto-basics.json")
}
