package groups

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"sotto/internal/orgtest"
	"sotto/mls"
	"sotto/signal/keys"
)

// certifiedSelf is alice's device 2, certified by org.
func certifiedSelf(t *testing.T, org *orgtest.Org, name string) *Self {
	t.Helper()
	ik, err := keys.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := org.Certificate(name, ik.PublicKey().Serialize(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &Self{Username: name, DeviceID: 2, Identity: ik, Certificate: cert, OrgKey: org.Public()}
}

func basic(id []byte) mls.Credential { return mls.Credential{Type: mls.CredentialBasic, Identity: id} }

// A leaf identity holds only under the org key that certified it, for the
// signature key its identity key bound, and for the device it names.
func TestVerifyIdentity(t *testing.T) {
	org := orgtest.New("Org")
	self := certifiedSelf(t, org, "alice")
	sig, _, _ := ed25519.GenerateKey(rand.Reader)
	id, err := newIdentity(self, sig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := verifyIdentity(org.Public(), basic(id), sig)
	if err != nil || got.Username != "alice" || got.DeviceID != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	other := orgtest.New("Other org")
	otherSig, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := verifyIdentity(other.Public(), basic(id), sig); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("another org's key: %v", err)
	}
	if _, err := verifyIdentity(org.Public(), basic(id), otherSig); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("a signature key the identity key did not bind: %v", err)
	}
	parsed, _ := ParseIdentity(id)
	parsed.DeviceID = 3
	moved, _ := encodeIdentity(parsed)
	if _, err := verifyIdentity(org.Public(), basic(moved), sig); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("the binding moved to another device: %v", err)
	}
	parsed.DeviceID, parsed.Username = 2, "mallory"
	renamed, _ := encodeIdentity(parsed)
	if _, err := verifyIdentity(org.Public(), basic(renamed), sig); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("alice's certificate under mallory's name: %v", err)
	}
	if _, err := verifyIdentity(org.Public(), mls.Credential{Type: mls.CredentialX509}, sig); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("an X.509 credential: %v", err)
	}
	// The validator also refuses a replacement leaf of another device.
	v := &validator{orgKey: org.Public()}
	prev := basic(moved)
	if err := v.ValidateCredential(&prev, basic(id), sig); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("leaf changing hands: %v", err)
	}
	if err := v.ValidateCredential(nil, basic(id), sig); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseIdentity(f *testing.F) {
	org := orgtest.New("Org")
	ik, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	cert, _ := org.Certificate("alice", ik.PublicKey().Serialize(), time.Now())
	id, _ := encodeIdentity(&Identity{Username: "alice", DeviceID: 1, IdentityKey: ik.PublicKey().Serialize(), Certificate: cert, Binding: make([]byte, 64)})
	f.Add(id)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseIdentity(b)
		if err != nil {
			return
		}
		again, err := encodeIdentity(id)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x -> %x (%v)", b, again, err)
		}
		_, _ = verifyIdentity(org.Public(), basic(b), make([]byte, 32))
	})
}
