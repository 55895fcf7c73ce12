package mls

import (
	"errors"
	"testing"

	"sotto/mls/internal/vectortest"
)

type welcomeVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	InitPriv    hexb   `json:"init_priv"`
	KeyPackage  hexb   `json:"key_package"`
	SignerPub   hexb   `json:"signer_pub"`
	Welcome     hexb   `json:"welcome"`
}

func TestWelcomeVectors(t *testing.T) {
	var vs []welcomeVector
	vectortest.Load(t, "welcome.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			var kpMsg, wMsg mlsMessage
			if err := unmarshal(v.KeyPackage, &kpMsg); err != nil || kpMsg.keyPackage == nil {
				t.Fatalf("key package: %v", err)
			}
			if err := unmarshal(v.Welcome, &wMsg); err != nil || wMsg.welcome == nil {
				t.Fatalf("welcome: %v", err)
			}
			if err := kpMsg.keyPackage.verify(s); err != nil {
				t.Fatalf("key package signature: %v", err)
			}
			initPriv, err := s.hpkePrivate(v.InitPriv)
			if err != nil {
				t.Fatal(err)
			}
			j, err := s.openWelcome(wMsg.welcome, kpMsg.keyPackage, initPriv, nil)
			if err != nil {
				t.Fatalf("suite %d: open welcome: %v", v.CipherSuite, err)
			}
			if err := s.verifyGroupInfo(&j.info, v.SignerPub); err != nil {
				t.Fatalf("suite %d: group info signature: %v", v.CipherSuite, err)
			}
			// A tampered GroupInfo signature is rejected.
			j.info.signature[len(j.info.signature)/2] ^= 1
			if err := s.verifyGroupInfo(&j.info, v.SignerPub); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("tampered group info signature: got %v", err)
			}
			// A Welcome for someone else is refused.
			other := *wMsg.welcome
			other.secrets = nil
			if _, err := s.openWelcome(&other, kpMsg.keyPackage, initPriv, nil); !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("welcome without our secrets: got %v", err)
			}
		})
	}
	c.Summary(t, "welcome.json")
}
