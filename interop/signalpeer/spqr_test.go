package signalpeer_test

import (
	"fmt"
	"math/rand/v2"

	"sotto/interop/signalpeer"
)

// pqEpoch returns the SPQR epoch named by a SignalMessage's pq_ratchet field
// (version byte 1, then the epoch as a varint), or 0 when there is none.
func pqEpoch(e *env, m signalpeer.Message) uint64 {
	e.t.Helper()
	if pqRatchetLen(e.t, m) <= 1 {
		return 0
	}
	v := lastPQField(m)
	ep, _ := uvarint(v[1:])
	return ep
}

// lastPQField returns the pq_ratchet field (5) of a SignalMessage.
func lastPQField(m signalpeer.Message) []byte {
	b := m.Ciphertext[1 : len(m.Ciphertext)-8]
	var v []byte
	for len(b) > 0 {
		tag, k := uvarint(b)
		b = b[k:]
		switch tag & 7 {
		case 0:
			_, k = uvarint(b)
			b = b[k:]
		case 2:
			l, k := uvarint(b)
			if tag>>3 == 5 {
				v = b[k : k+int(l)]
			}
			b = b[k+int(l):]
		default:
			return v
		}
	}
	return v
}

func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, len(b)
}

// scenarioSPQRNegotiation: every session runs the post-quantum ratchet
// (SPQR) in every pairing: each SignalMessage carries a pq_ratchet field.
// (libsignal 0.90 offers SPQR with minimum version 0; Sotto offers it with
// minimum version 1, and both end up running it.)
func scenarioSPQRNegotiation(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	for i := range 3 {
		for _, m := range []signalpeer.Message{
			e.send(e.a, alice, e.b, bob, fmt.Sprintf("a%d", i)),
			e.send(e.b, bob, e.a, alice, fmt.Sprintf("b%d", i)),
		} {
			if n := pqRatchetLen(e.t, m); n <= 0 {
				e.t.Fatalf("SignalMessage without SPQR data (pq_ratchet length %d)", n)
			}
		}
	}
}

// scenarioSPQREpochs: a long conversation through several SPQR epochs
// (each needs some 45 messages each way to carry an ML-KEM-768 key and
// ciphertext in 32-byte chunks). Each turn sends a burst; a share of the
// messages is lost for good (their chunks never arrive), the rest arrive in
// random order, some held back over later turns, across epoch boundaries;
// every delivered message is then replayed and refused as a duplicate.
func scenarioSPQREpochs(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	rng := rand.New(rand.NewPCG(11, 12))
	type pending struct {
		m    signalpeer.Message
		text string
		due  int
	}
	sides := []struct {
		p        *signalpeer.Peer
		self     signalpeer.Address
		peer     *signalpeer.Peer
		peerAddr signalpeer.Address
		queue    []pending
	}{{p: e.a, self: alice, peer: e.b, peerAddr: bob}, {p: e.b, self: bob, peer: e.a, peerAddr: alice}}
	var maxEpoch uint64
	const turns = 130
	for turn := 0; turn <= turns+4; turn++ {
		for s := range sides {
			sd := &sides[s]
			if turn < turns {
				for k := range 1 + rng.IntN(2) {
					text := fmt.Sprintf("%s turn %d msg %d", sd.self.Name, turn, k)
					m := e.encrypt(sd.p, sd.self, sd.peerAddr, []byte(text))
					maxEpoch = max(maxEpoch, pqEpoch(e, m))
					if rng.IntN(8) == 0 {
						continue // lost
					}
					sd.queue = append(sd.queue, pending{m, text, turn + rng.IntN(3)})
				}
			}
			rng.Shuffle(len(sd.queue), func(i, j int) { sd.queue[i], sd.queue[j] = sd.queue[j], sd.queue[i] })
			var keep []pending
			for _, q := range sd.queue {
				if q.due > turn && turn < turns {
					keep = append(keep, q)
					continue
				}
				e.decrypt(sd.peer, sd.peerAddr, sd.self, q.m, []byte(q.text))
				if rng.IntN(10) == 0 {
					_, err := sd.peer.Decrypt(e.ctx, sd.peerAddr, sd.self, q.m)
					e.wantKind(err, signalpeer.KindDuplicateMessage, "a replayed message")
				}
			}
			sd.queue = keep
		}
	}
	if maxEpoch < 3 {
		e.t.Fatalf("the conversation reached SPQR epoch %d, want at least 3", maxEpoch)
	}
}
