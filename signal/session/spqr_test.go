package session

import (
	"context"
	"errors"
	"testing"
)

// stripPQ makes p's session with q a classical one, as a peer that does not
// run SPQR (or an attacker stripping it) would send.
func stripPQ(t *testing.T, p, q *party) {
	t.Helper()
	ctx := context.Background()
	r, err := p.store.LoadSession(ctx, q.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.current.pqState = nil
	must(t, p.store.StoreSession(ctx, q.addr, r))
}

// TestPeerWithoutSPQRRefused: messages without pq_ratchet data are refused
// with ErrNoPQRatchet, first message or later, and the session is unchanged
// (the genuine message still decrypts).
func TestPeerWithoutSPQRRefused(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, true, 7))
	stripPQ(t, alice, bob)
	m := alice.send(t, bob, "hello")
	if _, err := bob.open(alice, m); !errors.Is(err, ErrNoPQRatchet) || !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("first message without SPQR: %v, want ErrNoPQRatchet", err)
	}

	alice, bob = newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, true, 7))
	bob.mustOpen(t, alice, alice.send(t, bob, "one"), "one")
	alice.mustOpen(t, bob, bob.send(t, alice, "two"), "two")
	genuine := bob.send(t, alice, "three")
	stripPQ(t, bob, alice)
	stripped := bob.send(t, alice, "four")
	if _, err := alice.open(bob, stripped); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("later message without SPQR: %v, want ErrInvalidMessage", err)
	}
	alice.mustOpen(t, bob, genuine, "three")
}
