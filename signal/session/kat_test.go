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

// katLongDigest runs a long conversation through several SPQR epochs (an
// epoch needs some 45 messages each way), in bursts of up to three messages
// each way, every other burst delivered in reverse, and hashes every message
// and both final records.
func katLongDigest(t *testing.T) string {
	var seed [32]byte
	copy(seed[:], "sotto triple ratchet known-answer")
	rnd := rand.NewChaCha8(seed)
	h := sha256.New()
	alice, bob := newParty(t, "alice", rnd), newParty(t, "bob", rnd)
	alice.startWith(t, bob, bob.bundle(t, true, 42))
	var maxEpoch uint64
	for round := range 120 {
		for _, d := range [][2]*party{{alice, bob}, {bob, alice}} {
			from, to := d[0], d[1]
			var ms []sealed
			var texts []string
			for i := range 1 + round%3 {
				text := fmt.Sprintf("%s %d.%d", from.addr.Name, round, i)
				m := from.send(t, to, text)
				fmt.Fprintf(h, "%d:%d:", m.typ, len(m.ct))
				h.Write(m.ct)
				if sm, err := parseSignalMessage(m.ct); err == nil && len(sm.pqRatchet) > 1 {
					maxEpoch = max(maxEpoch, uint64(sm.pqRatchet[1])) // epochs below 128: one varint byte
				}
				ms, texts = append(ms, m), append(texts, text)
			}
			for i := range ms {
				j := i
				if round%2 == 1 {
					j = len(ms) - 1 - i
				}
				to.mustOpen(t, from, ms[j], texts[j])
			}
		}
	}
	if maxEpoch < 3 {
		t.Fatalf("reached SPQR epoch %d, want at least 3", maxEpoch)
	}
	h.Write(alice.snapshot(t, bob))
	h.Write(bob.snapshot(t, alice))
	return hex.EncodeToString(h.Sum(nil))
}

// TestKnownAnswerLong pins the triple ratchet over many SPQR epochs: the
// Braid's key exchanges, the chunks in pq_ratchet, the mixing of SPQR keys
// into the message keys and the SPQR state in the records.
func TestKnownAnswerLong(t *testing.T) {
	const want = "551dfbd2365768a9701400148e97de1a14e5022411a58d1ab5d19eeed5cc065d"
	got := katLongDigest(t)
	if again := katLongDigest(t); again != got {
		t.Fatalf("not deterministic: %s then %s", got, again)
	}
	if got != want {
		t.Fatalf("known-answer digest = %s, want %s", got, want)
	}
}
