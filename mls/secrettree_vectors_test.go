package mls

import (
	"errors"
	"testing"

	"sotto/mls/internal/vectortest"
)

type secretTreeVector struct {
	CipherSuite      uint16 `json:"cipher_suite"`
	EncryptionSecret hexb   `json:"encryption_secret"`
	SenderData       struct {
		SenderDataSecret hexb `json:"sender_data_secret"`
		Ciphertext       hexb `json:"ciphertext"`
		Key              hexb `json:"key"`
		Nonce            hexb `json:"nonce"`
	} `json:"sender_data"`
	Leaves [][]struct {
		Generation       uint32 `json:"generation"`
		ApplicationKey   hexb   `json:"application_key"`
		ApplicationNonce hexb   `json:"application_nonce"`
		HandshakeKey     hexb   `json:"handshake_key"`
		HandshakeNonce   hexb   `json:"handshake_nonce"`
	} `json:"leaves"`
}

func TestSecretTreeVectors(t *testing.T) {
	var vs []secretTreeVector
	vectortest.Load(t, "secret-tree.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			sd, err := s.senderDataKeyNonce(v.SenderData.SenderDataSecret, v.SenderData.Ciphertext)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "sender data key", sd.key, v.SenderData.Key)
			eq(t, "sender data nonce", sd.nonce, v.SenderData.Nonce)
			tree := newSecretTree(s, v.EncryptionSecret, uint32(len(v.Leaves)))
			for leaf, gens := range v.Leaves {
				for _, g := range gens {
					hs, err := takeKey(tree, uint32(leaf), ratchetHandshake, g.Generation)
					if err != nil {
						t.Fatalf("leaf %d gen %d: %v", leaf, g.Generation, err)
					}
					eq(t, "handshake key", hs.key, g.HandshakeKey)
					eq(t, "handshake nonce", hs.nonce, g.HandshakeNonce)
					as, err := takeKey(tree, uint32(leaf), ratchetApplication, g.Generation)
					if err != nil {
						t.Fatalf("leaf %d gen %d: %v", leaf, g.Generation, err)
					}
					eq(t, "application key", as.key, g.ApplicationKey)
					eq(t, "application nonce", as.nonce, g.ApplicationNonce)
					if _, err := takeKey(tree, uint32(leaf), ratchetApplication, g.Generation); !errors.Is(err, ErrGenerationUsed) {
						t.Errorf("reused generation: got %v, want ErrGenerationUsed", err)
					}
				}
			}
		})
	}
	c.Summary(t, "secret-tree.json")
}

func TestSecretTreeBounds(t *testing.T) {
	s, err := X25519_AES128GCM_SHA256_Ed25519.suite()
	if err != nil {
		t.Fatal(err)
	}
	tree := newSecretTree(s, make([]byte, 32), 4)
	tree.maxJump = 10
	if _, err := takeKey(tree, 1, ratchetApplication, 11); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("jump 11: got %v, want ErrGenerationTooFar", err)
	}
	if _, err := takeKey(tree, 1, ratchetApplication, 10); err != nil {
		t.Fatalf("jump 10: %v", err)
	}
	// Skipped generations stay available exactly once.
	if _, err := takeKey(tree, 1, ratchetApplication, 3); err != nil {
		t.Fatalf("skipped 3: %v", err)
	}
	if _, err := takeKey(tree, 1, ratchetApplication, 3); !errors.Is(err, ErrGenerationUsed) {
		t.Fatalf("skipped 3 again: got %v", err)
	}
	if _, err := takeKey(tree, 4, ratchetApplication, 0); err == nil {
		t.Fatal("leaf out of range accepted")
	}
	// A sender's ratchet and a receiver's agree.
	other := newSecretTree(s, make([]byte, 32), 4)
	g, kn, err := other.nextKey(2, ratchetHandshake)
	if err != nil || g != 0 {
		t.Fatalf("nextKey: %d %v", g, err)
	}
	got, err := takeKey(tree, 2, ratchetHandshake, 0)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "sender/receiver key", got.key, kn.key)
}

// takeKey gets a received generation's key and consumes it.
func takeKey(tree *secretTree, leaf uint32, typ ratchetType, generation uint32) (keyNonce, error) {
	kn, consume, err := tree.keyFor(leaf, typ, generation)
	if err != nil {
		return keyNonce{}, err
	}
	consume(true)
	return kn, nil
}
