package spqr

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
)

// katDigest runs a long lossy, reordered conversation with all randomness
// from one seeded ChaCha8 stream and hashes every message, message key and
// the final states.
func katDigest(t *testing.T) string {
	var seed [32]byte
	copy(seed[:], "sotto spqr known-answer test")
	h := sha256.New()
	a, b := conversation(t, rand.NewChaCha8(seed), 300, 0.15, func(from string, m sent) {
		fmt.Fprintf(h, "%s:%d:%x:%d:%x;", from, len(m.msg), m.msg, len(m.key), m.key)
	})
	fmt.Fprintf(h, "a:%x;b:%x", a.state, b.state)
	return hex.EncodeToString(h.Sum(nil))
}

// TestKnownAnswer pins the Braid, the erasure code, the key chain, the
// message and the state formats: any change to them changes the digest.
func TestKnownAnswer(t *testing.T) {
	const want = "93c941462b48f85df6faab04eef99e557b0f9f0fca93b5c371716823bdfe6f37"
	got := katDigest(t)
	if again := katDigest(t); again != got {
		t.Fatalf("not deterministic: %s then %s", got, again)
	}
	if got != want {
		t.Fatalf("known-answer digest = %s, want %s", got, want)
	}
}
