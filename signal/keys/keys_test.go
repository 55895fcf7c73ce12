package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A signature made by libsignal (from its curve25519 tests): the public key,
// message and signature are libsignal's, so this checks that we verify what
// libsignal signs, including the sign bit it keeps in the last byte.
func TestVerifyLibsignalSignature(t *testing.T) {
	priv, err := ParsePrivateKey(unhex(t, "c097248412e58bf05df487968205132794178e367637f5818f81e0e6ce73e865"))
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey()
	if got := hex.EncodeToString(pub.Bytes()); got != "ab7e717d4a163b7d9a1d8071dfe9dcf8cdcd1cea3339b6356be84d887e322c64" {
		t.Fatalf("public key = %s", got)
	}
	msg := unhex(t, "05edce9d9c415ca78cb7252e72c2c4a554d3eb29485a0e1d503118d1a82d99fb4a")
	sig := unhex(t, "5de88ca9a89b4a115da79109c67c9c7464a3e4180274f1cb8c63c2984e286dfbede82deb9dcd9fae0bfbb821569b3d9001bd8130cd11d486cef047bd60b86e88")
	if !pub.Verify(sig, msg) {
		t.Fatal("libsignal signature rejected")
	}
	for i := range sig {
		bad := bytes.Clone(sig)
		bad[i] ^= 1
		if pub.Verify(bad, msg) {
			t.Fatalf("signature with byte %d flipped accepted", i)
		}
	}
}

func TestAgreementVector(t *testing.T) {
	a, _ := ParsePrivateKey(unhex(t, "c806439dc9d2c476ffed8f2580c0888d58ab406bf7ae3698879021b96bb4bf59"))
	b, _ := ParsePrivateKey(unhex(t, "b03b34c33a1c44f225b662d2bf4859b8135411fa7b0386d45fb75dc5b91b4466"))
	s1, err := a.Agree(b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := b.Agree(a.PublicKey())
	if hex.EncodeToString(s1) != "325f239328941ced6e673b86ba41017448e99b649a9c3806c1dd7ca4c477e629" || !bytes.Equal(s1, s2) {
		t.Fatalf("agreement = %x / %x", s1, s2)
	}
}

func TestSignVerifyBothSignBits(t *testing.T) {
	seen := map[byte]bool{}
	for i := 0; i < 64; i++ {
		kp, err := GenerateKeyPair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte(fmt.Sprintf("message %d", i))
		sig, err := kp.Private.Sign(rand.Reader, msg[:3], msg[3:])
		if err != nil {
			t.Fatal(err)
		}
		seen[sig[63]>>7] = true
		if !kp.Public.Verify(sig, msg) {
			t.Fatalf("own signature %d rejected", i)
		}
		if kp.Public.Verify(sig, append(msg, 0)) {
			t.Fatal("signature over other message accepted")
		}
		if kp.Public.Verify(sig[:63], msg) {
			t.Fatal("short signature accepted")
		}
	}
	if !seen[0] || !seen[1] {
		t.Fatalf("sign bits seen: %v (both expected over 64 keys)", seen)
	}
}

func TestPublicKeyParsing(t *testing.T) {
	kp, _ := GenerateKeyPair(rand.Reader)
	ser := kp.Public.Serialize()
	if len(ser) != 33 || ser[0] != 0x05 {
		t.Fatalf("serialized = %x", ser)
	}
	back, err := ParsePublicKey(ser)
	if err != nil || !back.Equal(kp.Public) {
		t.Fatal("round trip failed")
	}
	for _, bad := range [][]byte{nil, {0x05}, ser[:32], append([]byte{0x06}, ser[1:]...)} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
	if !kp.Public.IsCanonical() {
		t.Error("generated key not canonical")
	}
	var small [32]byte // u = 0 is a point of small order
	if PublicKey(PublicKey{b: small}).IsCanonical() {
		t.Error("small-order point reported canonical")
	}
}

func TestNoSecretsPrinted(t *testing.T) {
	kp, _ := GenerateKeyPair(rand.Reader)
	id, _ := GenerateIdentityKeyPair(rand.Reader)
	kem, _ := GenerateKEMKeyPair(rand.Reader)
	privHex := hex.EncodeToString(kp.Private.Bytes())
	idHex := hex.EncodeToString(id.PrivateKey().Bytes())
	for _, v := range []any{kp, kp.Private, &kp, id, *id, kem.Private} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q"} {
			out := fmt.Sprintf(f, v)
			if strings.Contains(out, privHex) || strings.Contains(out, idHex) || strings.Contains(strings.ToLower(out), privHex[:16]) {
				t.Fatalf("%s of %T leaks the private key: %s", f, v, out)
			}
		}
	}
}

func TestIdentityKeyPairRoundTrip(t *testing.T) {
	id, _ := GenerateIdentityKeyPair(rand.Reader)
	back, err := ParseIdentityKeyPair(id.Serialize())
	if err != nil || !back.PublicKey().Equal(id.PublicKey()) || !bytes.Equal(back.PrivateKey().Bytes(), id.PrivateKey().Bytes()) {
		t.Fatalf("round trip: %v", err)
	}
	other, _ := GenerateIdentityKeyPair(rand.Reader)
	mixed := append([]byte{0x0a, 33}, other.PublicKey().Serialize()...)
	mixed = append(mixed, 0x12, 32)
	mixed = append(mixed, id.PrivateKey().Bytes()...)
	if _, err := ParseIdentityKeyPair(mixed); err == nil {
		t.Fatal("mismatched pair accepted")
	}
}

func TestKEM(t *testing.T) {
	kp, err := GenerateKEMKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := kp.Public.Serialize()
	if len(pub) != 1569 || pub[0] != 0x08 {
		t.Fatalf("public key: len %d type %#x", len(pub), pub[0])
	}
	pk, err := ParseKEMPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	ct, ss, err := pk.Encapsulate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != 1569 || ct[0] != 0x08 {
		t.Fatalf("ciphertext: len %d", len(ct))
	}
	sk, err := ParseKEMPrivateKey(kp.Private.Serialize())
	if err != nil {
		t.Fatal(err)
	}
	ss2, err := sk.Decapsulate(ct)
	if err != nil || !bytes.Equal(ss, ss2) {
		t.Fatal("decapsulation mismatch")
	}
	if _, err := sk.Decapsulate(ct[:100]); err == nil {
		t.Fatal("short ciphertext accepted")
	}
	if _, err := ParseKEMPublicKey(append([]byte{0x0a}, pub[1:]...)); err == nil {
		t.Fatal("ML-KEM type byte accepted")
	}
}

func FuzzParseKeys(f *testing.F) {
	kp, _ := GenerateKeyPair(rand.Reader)
	id, _ := GenerateIdentityKeyPair(rand.Reader)
	kem, _ := GenerateKEMKeyPair(rand.Reader)
	seeds := [][]byte{kp.Public.Serialize(), id.Serialize(), kem.Public.Serialize(), {0x05}}
	for _, s := range seeds {
		f.Add(s)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePublicKey(b); err == nil {
			if !bytes.Equal(k.Serialize(), b[:33]) {
				t.Fatal("public key round trip")
			}
			_ = k.IsCanonical()
			_ = k.Verify(make([]byte, 64), b)
		}
		if p, err := ParseIdentityKeyPair(b); err == nil {
			if _, err := ParseIdentityKeyPair(p.Serialize()); err != nil {
				t.Fatal("identity round trip")
			}
		}
		if k, err := ParseKEMPublicKey(b); err == nil && !bytes.Equal(k.Serialize(), b) {
			t.Fatal("kem round trip")
		}
	})
}
