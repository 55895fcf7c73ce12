package mls

import (
	"bytes"
	"testing"

	"sotto/mls/internal/vectortest"
)

type passiveClientVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexb `json:"psk_id"`
		PSK   hexb `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexb `json:"key_package"`
	SignaturePriv             hexb `json:"signature_priv"`
	EncryptionPriv            hexb `json:"encryption_priv"`
	InitPriv                  hexb `json:"init_priv"`
	Welcome                   hexb `json:"welcome"`
	RatchetTree               hexb `json:"ratchet_tree"`
	InitialEpochAuthenticator hexb `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexb `json:"proposals"`
		Commit             hexb   `json:"commit"`
		EpochAuthenticator hexb   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func runPassiveClient(t *testing.T, name string) {
	var vs []passiveClientVector
	vectortest.Load(t, name, &vs)
	var c vectortest.Counter
	for i := range vs {
		v := &vs[i]
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			suiteFor(t, v.CipherSuite)
			if err := passiveClient(v); err != nil {
				t.Errorf("%s case %d (suite %d): %v", name, i, v.CipherSuite, err)
			}
		})
	}
	c.Summary(t, name)
}

type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }

func passiveClient(v *passiveClientVector) error {
	opts := &JoinOptions{RatchetTree: v.RatchetTree, ExternalPSKs: map[string][]byte{}}
	for _, p := range v.ExternalPSKs {
		opts.ExternalPSKs[string(p.PSKID)] = p.PSK
	}
	g, err := Join(v.Welcome, v.KeyPackage, PrivateKeys{Init: v.InitPriv, Encryption: v.EncryptionPriv, Signature: v.SignaturePriv}, opts)
	if err != nil {
		return &stepError{"join", err}
	}
	if !bytes.Equal(g.EpochAuthenticator(), v.InitialEpochAuthenticator) {
		return &stepError{"join", ErrInvalidMAC}
	}
	for n, e := range v.Epochs {
		for _, p := range e.Proposals {
			if _, err := g.Handle(p); err != nil {
				return &stepError{"epoch " + itoa(n) + " proposal", err}
			}
		}
		if _, err := g.Handle(e.Commit); err != nil {
			return &stepError{"epoch " + itoa(n) + " commit", err}
		}
		if !bytes.Equal(g.EpochAuthenticator(), e.EpochAuthenticator) {
			return &stepError{"epoch " + itoa(n) + " authenticator", ErrInvalidMAC}
		}
	}
	return nil
}

func itoa(n int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

func TestPassiveClientWelcomeVectors(t *testing.T) {
	runPassiveClient(t, "passive-client-welcome.json")
}

func TestPassiveClientHandlingCommitVectors(t *testing.T) {
	runPassiveClient(t, "passive-client-handling-commit.json")
}

func TestPassiveClientRandomVectors(t *testing.T) {
	runPassiveClient(t, "passive-client-random.json")
}
