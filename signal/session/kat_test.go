package session

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"testing"
)

// katDigest drives two parties, all randomness drawn from one seeded
// ChaCha8 stream, through PQXDH and a conversation with out-of-order
// delivery and several DH ratchet steps, hashing every byte produced.
func katDigest(t *testing.T) string {
	var seed [32]byte
	copy(seed[:], "sotto signal known-answer test")
	rnd := rand.NewChaCha8(seed)
	h := sha256.New()
	alice, bob := newParty(t, "alice", rnd), newParty(t, "bob", rnd)
	b := bob.bundle(t, true, 42)
	alice.startWith(t, bob, b)
	record := func(h hash.Hash, label string, data []byte) {
		fmt.Fprintf(h, "%s:%d:", label, len(data))
		h.Write(data)
	}
	for _, f := range [][]byte{alice.id.Serialize(), bob.id.Serialize(), b.SignedPreKey, b.KyberPreKey, b.PreKey} {
		record(h, "setup", f)
	}
	exchange := func(from, to *party, n int, reverse bool) {
		var ms []sealed
		for i := 0; i < n; i++ {
			m := from.send(t, to, fmt.Sprintf("%s says %d", from.addr.Name, i))
			record(h, fmt.Sprint("type", m.typ), m.ct)
			ms = append(ms, m)
		}
		for i := range ms {
			j := i
			if reverse {
				j = len(ms) - 1 - i
			}
			to.mustOpen(t, from, ms[j], fmt.Sprintf("%s says %d", from.addr.Name, j))
		}
	}
	exchange(alice, bob, 3, true)
	for round := 0; round < 6; round++ {
		exchange(bob, alice, 1+round%3, round%2 == 0)
		exchange(alice, bob, 2, round%2 == 1)
	}
	record(h, "alice record", alice.snapshot(t, bob))
	record(h, "bob record", bob.snapshot(t, alice))
	return hex.EncodeToString(h.Sum(nil))
}

// TestKnownAnswer pins every key derivation and encoding: any change to
// PQXDH, the ratchet, the message or record formats changes the digest.
func TestKnownAnswer(t *testing.T) {
	const want = "2528731c1537b172368da0c24ef97611f380b71815a733cdc74d6d73c505548d"
	got := katDigest(t)
	if again := katDigest(t); again != got {
		t.Fatalf("not deterministic: %s then %s", got, again)
	}
	if got != want {
		t.Fatalf("known-answer digest = %s, want %s", got, want)
	}
}
