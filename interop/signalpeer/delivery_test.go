package signalpeer_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"sotto/interop/signalpeer"
)

// seed returns the RNG seed for randomized scenarios: SIGNAL_PEER_SEED, or the clock.
func seed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("SIGNAL_PEER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SIGNAL_PEER_SEED: %v", err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// inflight is a message on its way, with the number of messages its sender had
// received when sending it (its sender's ratchet can only have stepped that often).
type inflight struct {
	msg   signalpeer.Message
	text  []byte
	epoch int
}

// link is one direction of traffic.
type link struct {
	pf, pt   *signalpeer.Peer
	from, to signalpeer.Address
	pending  []inflight
	sent     int
	maxEpoch int // highest epoch delivered so far
	received int // messages delivered over this link
}

// Delivery may reorder the oldest window messages, but never lets a message fall more
// than maxEpochLag sender ratchet steps behind, so that it stays within the receiver's
// bound of kept chains (libsignal keeps 5) and skipped keys (2000 per chain).
const (
	window      = 16
	maxEpochLag = 3
)

func (e *env) deliverOne(l *link, rng *rand.Rand) {
	e.t.Helper()
	m := l.pick(rng)
	e.decrypt(l.pt, l.to, l.from, m.msg, m.text)
	l.maxEpoch = max(l.maxEpoch, m.epoch)
	l.received++
}

// pick takes the next message to deliver off l.pending.
func (l *link) pick(rng *rand.Rand) inflight {
	i := 0
	if e0 := l.pending[0].epoch; l.maxEpoch-e0 < maxEpochLag {
		n := 0
		for n < len(l.pending) && n < window && l.pending[n].epoch-e0 <= maxEpochLag {
			n++
		}
		i = rng.IntN(n)
	}
	m := l.pending[i]
	l.pending = append(l.pending[:i], l.pending[i+1:]...)
	return m
}

func scenarioRandomInterleaving(e *env) {
	const each = 1000
	s := seed(e.t)
	e.t.Logf("seed %d (rerun with SIGNAL_PEER_SEED=%d)", s, s)
	rng := rand.New(rand.NewPCG(s, s^0x5eed))
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	ab := &link{pf: e.a, pt: e.b, from: alice, to: bob}
	ba := &link{pf: e.b, pt: e.a, from: bob, to: alice}
	for ab.sent < each || ba.sent < each || len(ab.pending) > 0 || len(ba.pending) > 0 {
		var l, back *link
		if rng.IntN(2) == 0 {
			l, back = ab, ba
		} else {
			l, back = ba, ab
		}
		switch {
		case l.sent < each && (len(l.pending) == 0 || rng.IntN(3) > 0):
			text := fmt.Appendf(nil, "%s #%d %x", l.from.Name, l.sent, rng.Uint64())
			m := e.encrypt(l.pf, l.from, l.to, text)
			l.pending = append(l.pending, inflight{msg: m, text: text, epoch: back.received})
			l.sent++
		case len(l.pending) > 0:
			e.deliverOne(l, rng)
		}
	}
}

// scenarioChaos is RandomInterleaving over a hostile relay: some messages are lost,
// some arrive tampered (one bit flipped anywhere) before the genuine copy, some are
// replayed after delivery. Every forgery and replay is refused, and every genuine
// message that arrives decrypts.
func scenarioChaos(e *env) {
	const each = 300
	s := seed(e.t)
	e.t.Logf("seed %d (rerun with SIGNAL_PEER_SEED=%d)", s, s)
	rng := rand.New(rand.NewPCG(s, s^0xc4a05))
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	ab := &link{pf: e.a, pt: e.b, from: alice, to: bob}
	ba := &link{pf: e.b, pt: e.a, from: bob, to: alice}
	var lost, forged, replayed int
	for ab.sent < each || ba.sent < each || len(ab.pending) > 0 || len(ba.pending) > 0 {
		l, back := ab, ba
		if rng.IntN(2) == 0 {
			l, back = ba, ab
		}
		if l.sent < each && (len(l.pending) == 0 || rng.IntN(3) > 0) {
			text := fmt.Appendf(nil, "%s #%d", l.from.Name, l.sent)
			m := e.encrypt(l.pf, l.from, l.to, text)
			l.pending = append(l.pending, inflight{msg: m, text: text, epoch: back.received})
			l.sent++
			continue
		}
		if len(l.pending) == 0 {
			continue
		}
		m := l.pick(rng)
		switch r := rng.IntN(100); {
		case r < 5:
			lost++
			continue
		case r < 12:
			forged++
			bad := m.msg
			bad.Ciphertext = bytes.Clone(bad.Ciphertext)
			bit := rng.IntN(8 * len(bad.Ciphertext))
			bad.Ciphertext[bit/8] ^= 1 << (bit % 8)
			_, err := l.pt.Decrypt(e.ctx, l.to, l.from, bad)
			// A flipped counter can name a used key: refused as a duplicate before
			// the MAC is checked.
			if k := signalpeer.KindOf(err); k != signalpeer.KindInvalidMessage && k != signalpeer.KindDuplicateMessage {
				e.t.Fatalf("%s -> %s, bit %d flipped: got %v, want invalid_message or duplicate_message", l.from, l.to, bit, err)
			}
		}
		e.decrypt(l.pt, l.to, l.from, m.msg, m.text)
		l.maxEpoch = max(l.maxEpoch, m.epoch)
		l.received++
		if rng.IntN(100) < 5 {
			replayed++
			_, err := l.pt.Decrypt(e.ctx, l.to, l.from, m.msg)
			e.wantKind(err, signalpeer.KindDuplicateMessage, "a replayed message")
		}
	}
	e.t.Logf("%d messages lost, %d forged, %d replayed", lost, forged, replayed)
	e.send(e.a, alice, e.b, bob, "after the storm")
	e.send(e.b, bob, e.a, alice, "calm again")
}

func scenarioLongGap(e *env) {
	const gap = 1500
	s := seed(e.t)
	e.t.Logf("seed %d (rerun with SIGNAL_PEER_SEED=%d)", s, s)
	rng := rand.New(rand.NewPCG(s, s^0x9a9))
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	msgs := make([]signalpeer.Message, gap+1)
	for i := range msgs {
		msgs[i] = e.encrypt(e.a, alice, bob, fmt.Appendf(nil, "m%d", i))
	}
	// The last one first: bob skips 1500 message keys and keeps them.
	e.decrypt(e.b, bob, alice, msgs[gap], fmt.Appendf(nil, "m%d", gap))
	e.send(e.b, bob, e.a, alice, "got the last one")
	// The skipped ones in random order, after a ratchet step on bob's side.
	for _, i := range rng.Perm(gap) {
		e.decrypt(e.b, bob, alice, msgs[i], fmt.Appendf(nil, "m%d", i))
	}
	_, err := e.b.Decrypt(e.ctx, bob, alice, msgs[gap/2])
	e.wantKind(err, signalpeer.KindDuplicateMessage, "a skipped message delivered twice")
	e.send(e.a, alice, e.b, bob, "still here")
	e.send(e.b, bob, e.a, alice, "me too")
}

// scenarioSkippedKeyEviction checks the bound on skipped message keys kept per chain
// (libsignal: 2000, the oldest evicted first): a message whose key was evicted fails
// as a duplicate, the others decrypt.
func scenarioSkippedKeyEviction(e *env) {
	const (
		kept    = 2000
		evicted = 100
		n       = kept + evicted + 1
	)
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	// After bob's reply alice sends on a fresh chain: message i has counter i.
	msgs := make([]signalpeer.Message, n)
	for i := range msgs {
		msgs[i] = e.encrypt(e.a, alice, bob, fmt.Appendf(nil, "m%d", i))
	}
	e.decrypt(e.b, bob, alice, msgs[n-1], fmt.Appendf(nil, "m%d", n-1))
	for _, i := range []int{0, evicted - 1} {
		_, err := e.b.Decrypt(e.ctx, bob, alice, msgs[i])
		e.wantKind(err, signalpeer.KindDuplicateMessage, fmt.Sprintf("message %d whose skipped key was evicted", i))
	}
	for _, i := range []int{evicted, n / 2, n - 2} {
		e.decrypt(e.b, bob, alice, msgs[i], fmt.Appendf(nil, "m%d", i))
	}
	e.send(e.b, bob, e.a, alice, "reply")
	e.send(e.a, alice, e.b, bob, "bye")
}

// scenarioOldChainEviction checks the bound on receiving chains kept (libsignal: 5):
// a late message from a recent chain decrypts, one from a chain dropped after many
// ratchet steps is rejected, and the session goes on.
func scenarioOldChainEviction(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	for _, c := range []struct {
		steps int
		ok    bool
	}{{2, true}, {8, false}} {
		late := e.encrypt(e.a, alice, bob, []byte("late"))
		e.send(e.a, alice, e.b, bob, "on time")
		for i := range c.steps {
			e.send(e.b, bob, e.a, alice, fmt.Sprintf("ping %d", i))
			e.send(e.a, alice, e.b, bob, fmt.Sprintf("pong %d", i))
		}
		if c.ok {
			e.decrypt(e.b, bob, alice, late, []byte("late"))
			continue
		}
		_, err := e.b.Decrypt(e.ctx, bob, alice, late)
		e.wantKind(err, signalpeer.KindInvalidMessage, fmt.Sprintf("message from a chain %d ratchet steps old", c.steps))
	}
	e.send(e.b, bob, e.a, alice, "still here")
	e.send(e.a, alice, e.b, bob, "me too")
}

// scenarioForwardJumpBound sends a message 25,001 keys ahead (libsignal's bound is
// 25,000): it is rejected, while one exactly 25,000 ahead decrypts. The bound that
// binds first is SPQR's: its message index runs on across the Double Ratchet's
// chains within an epoch, and here it counts alice's first message too, so the
// message of Double Ratchet counter 24,999 is already 25,000 SPQR keys ahead
// (libsignal and Sotto agree on this). It needs 25,001 encryptions, so it runs
// only when A is the Go peer.
func scenarioForwardJumpBound(e *env) {
	const jump = 25000
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	var atBound, beyond signalpeer.Message
	for i := 0; i <= jump; i++ {
		m := e.encrypt(e.a, alice, bob, fmt.Appendf(nil, "m%d", i))
		switch i {
		case jump - 1:
			atBound = m
		case jump:
			beyond = m
		}
	}
	_, err := e.b.Decrypt(e.ctx, bob, alice, beyond)
	e.wantKind(err, signalpeer.KindInvalidMessage, "a message 25,001 keys ahead")
	e.decrypt(e.b, bob, alice, atBound, fmt.Appendf(nil, "m%d", jump-1))
	e.decrypt(e.b, bob, alice, beyond, fmt.Appendf(nil, "m%d", jump))
	e.send(e.b, bob, e.a, alice, "caught up")
}
