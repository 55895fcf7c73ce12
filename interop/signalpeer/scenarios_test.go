package signalpeer_test

import (
	"bytes"
	"crypto/mlkem"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/interop/signalpeer"
)

// A scenario runs with A on one implementation and B on another; every pairing runs it
// both ways round, so "A initiates" covers "libsignal initiates" too.
type scenario struct {
	name string
	run  func(e *env)
	// goSenderOnly marks scenarios too slow with the Node peer as A.
	goSenderOnly bool
	// long marks scenarios of thousands of messages, skipped with -short.
	long bool
}

var scenarios = []scenario{
	{name: "AInitiates", run: scenarioInitiate},
	{name: "SimultaneousInitiation", run: scenarioSimultaneous},
	{name: "RandomInterleaving", run: scenarioRandomInterleaving, long: true},
	{name: "LongGap", run: scenarioLongGap, long: true},
	{name: "SkippedKeyEviction", run: scenarioSkippedKeyEviction, long: true},
	{name: "OldChainEviction", run: scenarioOldChainEviction},
	{name: "ForwardJumpBound", run: scenarioForwardJumpBound, goSenderOnly: true, long: true},
	{name: "SessionReset", run: scenarioSessionReset},
	{name: "SimultaneousBursts", run: scenarioSimultaneousBursts},
	{name: "LastResortKyberNoOneTimePreKey", run: scenarioLastResort},
	{name: "RejectedCiphertexts", run: scenarioRejected},
	{name: "RejectedFirstMessage", run: scenarioRejectedFirstMessage},
	{name: "IdentityChange", run: scenarioIdentityChange},
	{name: "SafetyNumbers", run: scenarioSafetyNumbers},
	{name: "PostQuantumRatchetNegotiation", run: scenarioSPQRNegotiation},
	{name: "TwoDevices", run: scenarioTwoDevices},
	{name: "ManySessions", run: scenarioManySessions},
	{name: "BundleExhaustion", run: scenarioBundleExhaustion},
	{name: "UsedPreKey", run: scenarioUsedPreKey},
	{name: "BadBundles", run: scenarioBadBundles},
	{name: "UnknownPreKeyIDs", run: scenarioUnknownPreKeyIDs},
	{name: "NoSession", run: scenarioNoSession},
}

// TestPairing runs every scenario for every ordered pair of implementations, e.g.
//
//	go test ./interop/signalpeer -run 'TestPairing/go-node/'
//
// With -short the scenarios of thousands of messages are skipped.
func TestPairing(t *testing.T) {
	impls := []implementation{nodeImpl, goImpl}
	for _, a := range impls {
		for _, b := range impls {
			t.Run(a.name+"-"+b.name, func(t *testing.T) {
				if a.name == nodeImpl.name || b.name == nodeImpl.name {
					nodePeerScript(t) // skips or fails the whole pairing at once
				}
				for _, s := range scenarios {
					t.Run(s.name, func(t *testing.T) {
						if s.long && testing.Short() {
							t.Skip("thousands of messages: skipped with -short")
						}
						if s.goSenderOnly && a.name != goImpl.name {
							t.Skip("needs 25,002 encryptions from A: runs with the Go peer as A")
						}
						s.run(newEnv(t, a, b))
					})
				}
			})
		}
	}
}

func scenarioInitiate(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	if e.hasSession(e.a, alice, bob) {
		e.t.Fatal("alice has a session with bob before any bundle")
	}
	e.process(e.a, alice, bob, e.bundle(e.b, bob, true))
	if !e.hasSession(e.a, alice, bob) {
		e.t.Fatal("alice has no session with bob after processing his bundle")
	}
	// Until bob answers, every message of alice carries the prekey header.
	for i := range 3 {
		m := e.send(e.a, alice, e.b, bob, fmt.Sprintf("a%d", i))
		if m.Type != signalpeer.TypePreKey {
			e.t.Fatalf("message %d before any reply has type %d, want 3", i, m.Type)
		}
	}
	if !e.hasSession(e.b, bob, alice) {
		e.t.Fatal("bob has no session with alice after her messages")
	}
	for i := range 3 {
		if m := e.send(e.b, bob, e.a, alice, fmt.Sprintf("b%d", i)); m.Type != signalpeer.TypeSignal {
			e.t.Fatalf("bob's reply has type %d, want 2", m.Type)
		}
	}
	// After the reply the session is acknowledged; ping-pong runs DH ratchet steps.
	for i := range 10 {
		if m := e.send(e.a, alice, e.b, bob, fmt.Sprintf("ping %d", i)); m.Type != signalpeer.TypeSignal {
			e.t.Fatalf("acknowledged message has type %d, want 2", m.Type)
		}
		e.send(e.b, bob, e.a, alice, fmt.Sprintf("pong %d", i))
	}
	// Empty and large plaintexts.
	e.send(e.a, alice, e.b, bob, "")
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	m := e.encrypt(e.b, bob, alice, big)
	e.decrypt(e.a, alice, bob, m, big)
}

func scenarioSimultaneous(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.process(e.a, alice, bob, e.bundle(e.b, bob, true))
	e.process(e.b, bob, alice, e.bundle(e.a, alice, true))
	ma := e.encrypt(e.a, alice, bob, []byte("from alice"))
	mb := e.encrypt(e.b, bob, alice, []byte("from bob"))
	if ma.Type != signalpeer.TypePreKey || mb.Type != signalpeer.TypePreKey {
		e.t.Fatalf("simultaneous first messages have types %d and %d, want 3 and 3", ma.Type, mb.Type)
	}
	e.decrypt(e.b, bob, alice, ma, []byte("from alice"))
	e.decrypt(e.a, alice, bob, mb, []byte("from bob"))
	// The conversation continues and converges on one session: both sides end up
	// sending plain SignalMessages that the other decrypts.
	var lastA, lastB int
	for i := range 6 {
		lastA = e.send(e.a, alice, e.b, bob, fmt.Sprintf("a%d", i)).Type
		lastB = e.send(e.b, bob, e.a, alice, fmt.Sprintf("b%d", i)).Type
	}
	if lastA != signalpeer.TypeSignal || lastB != signalpeer.TypeSignal {
		e.t.Fatalf("after simultaneous initiation the sessions did not converge: last types %d, %d", lastA, lastB)
	}
	// Bursts in both directions without replies in between.
	for round := range 3 {
		var ms []signalpeer.Message
		for i := range 5 {
			ms = append(ms, e.encrypt(e.a, alice, bob, fmt.Appendf(nil, "burst %d.%d", round, i)))
		}
		for i, m := range ms {
			e.decrypt(e.b, bob, alice, m, fmt.Appendf(nil, "burst %d.%d", round, i))
		}
		e.send(e.b, bob, e.a, alice, "ack")
	}
}

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
	e.decrypt(l.pt, l.to, l.from, m.msg, m.text)
	l.maxEpoch = max(l.maxEpoch, m.epoch)
	l.received++
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
// 25,000): it is rejected, while one exactly 25,000 ahead decrypts. It needs 25,002
// encryptions, so it runs only when A is the Go peer.
func scenarioForwardJumpBound(e *env) {
	const jump = 25000
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	var atBound, beyond signalpeer.Message
	for i := 0; i <= jump+1; i++ {
		m := e.encrypt(e.a, alice, bob, fmt.Appendf(nil, "m%d", i))
		switch i {
		case jump:
			atBound = m
		case jump + 1:
			beyond = m
		}
	}
	_, err := e.b.Decrypt(e.ctx, bob, alice, beyond)
	e.wantKind(err, signalpeer.KindInvalidMessage, "a message 25,001 keys ahead")
	e.decrypt(e.b, bob, alice, atBound, fmt.Appendf(nil, "m%d", jump))
	e.decrypt(e.b, bob, alice, beyond, fmt.Appendf(nil, "m%d", jump+1))
	e.send(e.b, bob, e.a, alice, "caught up")
}

// scenarioSessionReset: alice starts a second session with bob while messages of the
// first are in flight both ways; all of them decrypt, and the sides converge.
func scenarioSessionReset(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	oldA := e.encrypt(e.a, alice, bob, []byte("old session, from alice"))
	oldB := e.encrypt(e.b, bob, alice, []byte("old session, from bob"))
	e.process(e.a, alice, bob, e.bundle(e.b, bob, true))
	newA := e.encrypt(e.a, alice, bob, []byte("new session"))
	if newA.Type != signalpeer.TypePreKey {
		e.t.Fatalf("first message of the new session has type %d, want 3", newA.Type)
	}
	e.decrypt(e.a, alice, bob, oldB, []byte("old session, from bob"))
	e.decrypt(e.b, bob, alice, newA, []byte("new session"))
	e.decrypt(e.b, bob, alice, oldA, []byte("old session, from alice"))
	var lastA, lastB int
	for i := range 4 {
		lastA = e.send(e.a, alice, e.b, bob, fmt.Sprintf("a%d", i)).Type
		lastB = e.send(e.b, bob, e.a, alice, fmt.Sprintf("b%d", i)).Type
	}
	if lastA != signalpeer.TypeSignal || lastB != signalpeer.TypeSignal {
		e.t.Fatalf("after a session reset the sides did not converge: last types %d, %d", lastA, lastB)
	}
}

// scenarioSimultaneousBursts: both sides start a session and send several messages
// before anything arrives; the bursts cross and are delivered out of order.
func scenarioSimultaneousBursts(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.process(e.a, alice, bob, e.bundle(e.b, bob, true))
	e.process(e.b, bob, alice, e.bundle(e.a, alice, true))
	var fromA, fromB []signalpeer.Message
	for i := range 4 {
		fromA = append(fromA, e.encrypt(e.a, alice, bob, fmt.Appendf(nil, "a%d", i)))
		fromB = append(fromB, e.encrypt(e.b, bob, alice, fmt.Appendf(nil, "b%d", i)))
	}
	for _, i := range []int{2, 0, 3, 1} {
		e.decrypt(e.b, bob, alice, fromA[i], fmt.Appendf(nil, "a%d", i))
		e.decrypt(e.a, alice, bob, fromB[3-i], fmt.Appendf(nil, "b%d", 3-i))
	}
	var lastA, lastB int
	for i := range 4 {
		lastB = e.send(e.b, bob, e.a, alice, fmt.Sprintf("B%d", i)).Type
		lastA = e.send(e.a, alice, e.b, bob, fmt.Sprintf("A%d", i)).Type
	}
	if lastA != signalpeer.TypeSignal || lastB != signalpeer.TypeSignal {
		e.t.Fatalf("after crossing bursts the sides did not converge: last types %d, %d", lastA, lastB)
	}
}

func scenarioLastResort(e *env) {
	alice, carol, bob := addr("alice"), addr("carol"), addr("bob")
	e.create(e.a, alice, 0)
	e.create(e.a, carol, 0)
	e.create(e.b, bob, 0)
	b1 := e.bundle(e.b, bob, false)
	b2 := e.bundle(e.b, bob, false)
	if b1.PreKeyID != nil || b1.PreKey != nil {
		e.t.Fatalf("bundle without one-time prekeys carries prekey %v", *b1.PreKeyID)
	}
	if b1.KyberPreKeyID != b2.KyberPreKeyID || !bytes.Equal(b1.KyberPreKey, b2.KyberPreKey) {
		e.t.Fatal("two last-resort bundles carry different Kyber prekeys")
	}
	if len(b1.KyberPreKey) != 1569 || b1.KyberPreKey[0] != 8 {
		e.t.Fatalf("Kyber prekey is %d bytes with type %d, want 1569 bytes of type 8", len(b1.KyberPreKey), b1.KyberPreKey[0])
	}
	// Two parties use the same last-resort Kyber prekey: it is not deleted after use.
	e.process(e.a, alice, bob, b1)
	e.process(e.a, carol, bob, b2)
	m := e.send(e.a, alice, e.b, bob, "alice via last resort")
	if m.Type != signalpeer.TypePreKey {
		e.t.Fatalf("first message has type %d, want 3", m.Type)
	}
	e.send(e.a, carol, e.b, bob, "carol via last resort")
	e.send(e.b, bob, e.a, alice, "hi alice")
	e.send(e.b, bob, e.a, carol, "hi carol")
	e.send(e.a, alice, e.b, bob, "bye")
}

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

func scenarioRejected(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.process(e.a, alice, bob, e.bundle(e.b, bob, true))
	first := e.send(e.a, alice, e.b, bob, "first")
	// A replayed PreKeySignalMessage matches the session by base key: duplicate.
	_, err := e.b.Decrypt(e.ctx, bob, alice, first)
	e.wantKind(err, signalpeer.KindDuplicateMessage, "replayed PreKeySignalMessage")
	e.send(e.b, bob, e.a, alice, "reply")

	attempts := []struct {
		what string
		m    func(signalpeer.Message) signalpeer.Message
		kind signalpeer.Kind
	}{
		{"truncated to 10 bytes", func(m signalpeer.Message) signalpeer.Message {
			m.Ciphertext = m.Ciphertext[:10]
			return m
		}, signalpeer.KindInvalidMessage},
		{"MAC cut off", func(m signalpeer.Message) signalpeer.Message {
			m.Ciphertext = m.Ciphertext[:len(m.Ciphertext)-8]
			return m
		}, signalpeer.KindInvalidMessage},
		{"body bit flipped", func(m signalpeer.Message) signalpeer.Message {
			m.Ciphertext = mutate(m.Ciphertext, func(b []byte) []byte { b[len(b)-12] ^= 0x10; return b })
			return m
		}, signalpeer.KindInvalidMessage},
		{"MAC bit flipped", func(m signalpeer.Message) signalpeer.Message {
			m.Ciphertext = mutate(m.Ciphertext, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
			return m
		}, signalpeer.KindInvalidMessage},
		{"version byte changed", func(m signalpeer.Message) signalpeer.Message {
			m.Ciphertext = mutate(m.Ciphertext, func(b []byte) []byte { b[0] = 0x22; return b })
			return m
		}, signalpeer.KindInvalidMessage},
		{"empty", func(m signalpeer.Message) signalpeer.Message {
			m.Ciphertext = []byte{}
			return m
		}, signalpeer.KindInvalidMessage},
		{"declared as PreKeySignalMessage", func(m signalpeer.Message) signalpeer.Message {
			m.Type = signalpeer.TypePreKey
			return m
		}, signalpeer.KindInvalidMessage},
	}
	for i, at := range attempts {
		for _, dir := range []struct {
			pf, pt   *signalpeer.Peer
			from, to signalpeer.Address
		}{{e.a, e.b, alice, bob}, {e.b, e.a, bob, alice}} {
			text := fmt.Appendf(nil, "genuine %d from %s", i, dir.from.Name)
			m := e.encrypt(dir.pf, dir.from, dir.to, text)
			_, err := dir.pt.Decrypt(e.ctx, dir.to, dir.from, at.m(m))
			e.wantKind(err, at.kind, fmt.Sprintf("%s from %s", at.what, dir.from.Name))
			// The failure left the session intact: the genuine message decrypts.
			e.decrypt(dir.pt, dir.to, dir.from, m, text)
			_, err = dir.pt.Decrypt(e.ctx, dir.to, dir.from, m)
			e.wantKind(err, signalpeer.KindDuplicateMessage, "replayed SignalMessage")
		}
	}
	e.send(e.a, alice, e.b, bob, "still fine")
	e.send(e.b, bob, e.a, alice, "me too")
}

func scenarioRejectedFirstMessage(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.process(e.a, alice, bob, e.bundle(e.b, bob, true))
	m := e.encrypt(e.a, alice, bob, []byte("first"))
	for _, bad := range []signalpeer.Message{
		{Type: m.Type, Ciphertext: m.Ciphertext[:len(m.Ciphertext)/2]},
		{Type: m.Type, Ciphertext: mutate(m.Ciphertext, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{Type: m.Type, Ciphertext: mutate(m.Ciphertext, func(b []byte) []byte { b[len(b)-12] ^= 4; return b })},
		{Type: signalpeer.TypeSignal, Ciphertext: m.Ciphertext},
		// Version 3 (X3DH, without Kyber) is no longer accepted.
		{Type: m.Type, Ciphertext: mutate(m.Ciphertext, func(b []byte) []byte { b[0] = 0x33; return b })},
		{Type: m.Type, Ciphertext: m.Ciphertext[:1]},
	} {
		_, err := e.b.Decrypt(e.ctx, bob, alice, bad)
		e.wantKind(err, signalpeer.KindInvalidMessage, "damaged first message")
	}
	if e.hasSession(e.b, bob, alice) {
		e.t.Fatal("a rejected first message left bob with a session")
	}
	e.decrypt(e.b, bob, alice, m, []byte("first"))
	e.send(e.b, bob, e.a, alice, "reply")
}

func scenarioIdentityChange(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	oldKey := e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	fp1, err := e.a.FingerprintOf(e.ctx, alice, bob, []byte("alice"), []byte("bob"))
	if err != nil {
		e.t.Fatal(err)
	}

	// Bob reinstalls (a new process, a new identity key) and writes first.
	b2 := e.implB.start(e.t)
	newKey := e.create(b2, bob, 5)
	if bytes.Equal(oldKey, newKey) {
		e.t.Fatal("reinstalled bob has the old identity key")
	}
	e.process(b2, bob, alice, e.bundle(e.a, alice, true))
	m := e.encrypt(b2, bob, alice, []byte("new phone"))
	_, err = e.a.Decrypt(e.ctx, alice, bob, m)
	e.wantKind(err, signalpeer.KindUntrustedIdentity, "message from bob's new identity")
	fp, err := e.a.FingerprintOf(e.ctx, alice, bob, []byte("alice"), []byte("bob"))
	if err != nil || fp.Displayable != fp1.Displayable {
		e.t.Fatalf("safety number changed before trust: %v", err)
	}
	if err := e.a.Trust(e.ctx, alice, bob); err != nil {
		e.t.Fatal(err)
	}
	e.decrypt(e.a, alice, bob, m, []byte("new phone"))
	e.send(e.a, alice, b2, bob, "welcome back")
	fp2, err := e.a.FingerprintOf(e.ctx, alice, bob, []byte("alice"), []byte("bob"))
	if err != nil {
		e.t.Fatal(err)
	}
	if fp2.Displayable == fp1.Displayable {
		e.t.Fatal("safety number unchanged after bob's identity key changed")
	}

	// Bob reinstalls again; this time alice starts from his bundle.
	b3 := e.implB.start(e.t)
	e.create(b3, bob, 5)
	nb := e.bundle(b3, bob, true)
	err = e.a.ProcessBundle(e.ctx, alice, bob, nb)
	e.wantKind(err, signalpeer.KindUntrustedIdentity, "bundle with bob's new identity")
	// The refused bundle did not replace the working session.
	e.send(e.a, alice, b2, bob, "still talking to the second install")
	if err := e.a.Trust(e.ctx, alice, bob); err != nil {
		e.t.Fatal(err)
	}
	e.process(e.a, alice, bob, nb)
	e.send(e.a, alice, b3, bob, "hello third install")
	e.send(b3, bob, e.a, alice, "hello alice")
}

// scannableParts splits libsignal's scannable fingerprint (CombinedFingerprints
// protobuf: version 1 (the fingerprint version), local 2 and remote 3, each a LogicalFingerprint with content 1).
func scannableParts(t *testing.T, b []byte) (version uint64, local, remote []byte) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("scannable fingerprint: bad tag")
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				t.Fatal("scannable fingerprint: bad version")
			}
			version, b = v, b[m:]
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				t.Fatal("scannable fingerprint: bad field")
			}
			b = b[m:]
			cn, ct, k := protowire.ConsumeTag(v)
			if k < 0 || cn != 1 || ct != protowire.BytesType {
				t.Fatal("scannable fingerprint: bad logical fingerprint")
			}
			c, _ := protowire.ConsumeBytes(v[k:])
			if num == 2 {
				local = c
			} else {
				remote = c
			}
		default:
			t.Fatalf("scannable fingerprint: unexpected field %d", num)
		}
	}
	return version, local, remote
}

// pqRatchetLen returns the length of the pq_ratchet field (5) of a SignalMessage
// (version byte, protobuf, 8-byte MAC), or -1 when absent.
func pqRatchetLen(t *testing.T, m signalpeer.Message) int {
	t.Helper()
	if m.Type != signalpeer.TypeSignal || len(m.Ciphertext) < 9 {
		t.Fatalf("not a SignalMessage: type %d, %d bytes", m.Type, len(m.Ciphertext))
	}
	b := m.Ciphertext[1 : len(m.Ciphertext)-8]
	n := -1
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			t.Fatal("SignalMessage: bad tag")
		}
		b = b[k:]
		l := protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			t.Fatal("SignalMessage: bad field")
		}
		if num == 5 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			n = len(v)
		}
		b = b[l:]
	}
	return n
}

// scenarioSPQRNegotiation records how the post-quantum ratchet (SPQR) is negotiated:
// two libsignal 0.90 peers turn it on (every SignalMessage carries a pq_ratchet
// field), while with Sotto's Go code, which does not run SPQR, libsignal falls back
// to sessions without it and neither side sends the field.
func scenarioSPQRNegotiation(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	e.connect(e.a, alice, e.b, bob)
	both := e.implA.name == nodeImpl.name && e.implB.name == nodeImpl.name
	for i := range 3 {
		for _, m := range []signalpeer.Message{
			e.send(e.a, alice, e.b, bob, fmt.Sprintf("a%d", i)),
			e.send(e.b, bob, e.a, alice, fmt.Sprintf("b%d", i)),
		} {
			n := pqRatchetLen(e.t, m)
			if both && n <= 0 {
				e.t.Fatalf("libsignal to libsignal: SignalMessage without SPQR data (pq_ratchet length %d)", n)
			}
			if !both && n > 0 {
				e.t.Fatalf("a session with the Go peer carries %d bytes of SPQR data", n)
			}
		}
	}
}

var sixtyDigits = regexp.MustCompile(`^[0-9]{60}$`)

func scenarioSafetyNumbers(e *env) {
	alice, bob := addr("alice"), addr("bob")
	_, err := e.a.FingerprintOf(e.ctx, alice, bob, []byte("a"), []byte("b"))
	e.wantKind(err, signalpeer.KindInvalidArgument, "fingerprint of an unknown local party")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	_, err = e.a.FingerprintOf(e.ctx, alice, bob, []byte("a"), []byte("b"))
	e.wantKind(err, signalpeer.KindNoSession, "fingerprint before bob's key is known")
	e.connect(e.a, alice, e.b, bob)
	aliceID, bobID := []byte("+14155550100"), []byte("+14155550101")
	fa, err := e.a.FingerprintOf(e.ctx, alice, bob, aliceID, bobID)
	if err != nil {
		e.t.Fatal(err)
	}
	fb, err := e.b.FingerprintOf(e.ctx, bob, alice, bobID, aliceID)
	if err != nil {
		e.t.Fatal(err)
	}
	if !sixtyDigits.MatchString(fa.Displayable) {
		e.t.Fatalf("displayable %q is not 60 digits", fa.Displayable)
	}
	if fa.Displayable != fb.Displayable {
		e.t.Fatalf("safety numbers differ: %s says %s, %s says %s", e.a.Label(), fa.Displayable, e.b.Label(), fb.Displayable)
	}
	va, la, ra := scannableParts(e.t, fa.Scannable)
	vb, lb, rb := scannableParts(e.t, fb.Scannable)
	if va != 2 || vb != 2 || len(la) != 32 || len(ra) != 32 {
		e.t.Fatalf("scannable fingerprints: versions %d, %d, lengths %d, %d", va, vb, len(la), len(ra))
	}
	if !bytes.Equal(la, rb) || !bytes.Equal(ra, lb) {
		e.t.Fatalf("scannable fingerprints do not match:\n%s: %s\n%s: %s", e.a.Label(),
			base64.StdEncoding.EncodeToString(fa.Scannable), e.b.Label(), base64.StdEncoding.EncodeToString(fb.Scannable))
	}
	// Different identifiers give a different number.
	fc, err := e.a.FingerprintOf(e.ctx, alice, bob, aliceID, []byte("+14155550102"))
	if err != nil {
		e.t.Fatal(err)
	}
	if fc.Displayable == fa.Displayable {
		e.t.Fatal("safety number ignores the remote identifier")
	}
}

func scenarioTwoDevices(e *env) {
	alice := addr("alice")
	bob1 := signalpeer.Address{Name: "bob", DeviceID: 1}
	bob2 := signalpeer.Address{Name: "bob", DeviceID: 2}
	e.create(e.a, alice, 5)
	k1 := e.create(e.b, bob1, 5)
	k2 := e.create(e.b, bob2, 5)
	if !bytes.Equal(k1, k2) {
		e.t.Fatal("two devices of one user have different identity keys")
	}
	b1, b2 := e.bundle(e.b, bob1, true), e.bundle(e.b, bob2, true)
	if b1.DeviceID != 1 || b2.DeviceID != 2 {
		e.t.Fatalf("bundles name devices %d and %d, want 1 and 2", b1.DeviceID, b2.DeviceID)
	}
	e.process(e.a, alice, bob1, b1)
	e.process(e.a, alice, bob2, b2)
	// The same text to each device, as a client sends to every device of a user.
	m1 := e.send(e.a, alice, e.b, bob1, "to all of bob")
	m2 := e.send(e.a, alice, e.b, bob2, "to all of bob")
	if bytes.Equal(m1.Ciphertext, m2.Ciphertext) {
		e.t.Fatal("two devices got the same ciphertext")
	}
	// A message for one device does not decrypt on the other.
	m := e.encrypt(e.a, alice, bob1, []byte("only device 1"))
	if _, err := e.b.Decrypt(e.ctx, bob2, alice, m); err == nil {
		e.t.Fatal("device 2 decrypted a message for device 1")
	}
	e.decrypt(e.b, bob1, alice, m, []byte("only device 1"))
	e.send(e.b, bob2, e.a, alice, "from device 2")
	e.send(e.b, bob1, e.a, alice, "from device 1")
	for i := range 3 {
		e.send(e.a, alice, e.b, bob2, fmt.Sprintf("d2 %d", i))
		e.send(e.a, alice, e.b, bob1, fmt.Sprintf("d1 %d", i))
	}
	if !e.hasSession(e.a, alice, bob1) || !e.hasSession(e.a, alice, bob2) {
		e.t.Fatal("alice lacks a session with one of bob's devices")
	}
}

func scenarioManySessions(e *env) {
	const n = 50
	alice := addr("alice")
	e.create(e.a, alice, n)
	parties := make([]signalpeer.Address, n)
	for i := range parties {
		parties[i] = addr(fmt.Sprintf("user%02d", i))
		e.create(e.b, parties[i], 1)
	}
	// Half start from alice's bundles, half are started by alice.
	pending := make([]signalpeer.Message, n)
	for i, p := range parties {
		if i%2 == 0 {
			e.process(e.b, p, alice, e.bundle(e.a, alice, true))
			pending[i] = e.encrypt(e.b, p, alice, fmt.Appendf(nil, "hi from %s", p.Name))
		} else {
			e.process(e.a, alice, p, e.bundle(e.b, p, true))
			pending[i] = e.encrypt(e.a, alice, p, fmt.Appendf(nil, "hi %s", p.Name))
		}
	}
	// Delivered in reverse order, all sessions open at once.
	for i := n - 1; i >= 0; i-- {
		p := parties[i]
		if i%2 == 0 {
			e.decrypt(e.a, alice, p, pending[i], fmt.Appendf(nil, "hi from %s", p.Name))
		} else {
			e.decrypt(e.b, p, alice, pending[i], fmt.Appendf(nil, "hi %s", p.Name))
		}
	}
	for round := range 2 {
		for _, p := range parties {
			e.send(e.a, alice, e.b, p, fmt.Sprintf("round %d to %s", round, p.Name))
		}
		for _, p := range parties {
			e.send(e.b, p, e.a, alice, fmt.Sprintf("round %d from %s", round, p.Name))
		}
	}
}

func scenarioBundleExhaustion(e *env) {
	bob := addr("bob")
	e.create(e.b, bob, 2)
	seen := map[uint32]bool{}
	for range 2 {
		b := e.bundle(e.b, bob, true)
		if b.PreKeyID == nil || len(b.PreKey) != 33 {
			e.t.Fatal("one-time bundle without an EC prekey")
		}
		if seen[*b.PreKeyID] {
			e.t.Fatalf("prekey %d handed out twice", *b.PreKeyID)
		}
		seen[*b.PreKeyID] = true
	}
	_, err := e.b.Bundle(e.ctx, bob, true)
	e.wantKind(err, signalpeer.KindInvalidArgument, "third bundle of a party with 2 prekeys")
	// The last-resort bundle is still available.
	alice := addr("alice")
	e.create(e.a, alice, 1)
	e.process(e.a, alice, bob, e.bundle(e.b, bob, false))
	e.send(e.a, alice, e.b, bob, "via last resort")
	e.send(e.b, bob, e.a, alice, "ok")
}

func scenarioUsedPreKey(e *env) {
	alice, carol, bob := addr("alice"), addr("carol"), addr("bob")
	e.create(e.a, alice, 1)
	e.create(e.a, carol, 1)
	e.create(e.b, bob, 3)
	// Two parties get hold of the same one-time bundle; the first use consumes it.
	b := e.bundle(e.b, bob, true)
	e.process(e.a, alice, bob, b)
	e.process(e.a, carol, bob, b)
	e.send(e.a, alice, e.b, bob, "first use")
	m := e.encrypt(e.a, carol, bob, []byte("second use"))
	_, err := e.b.Decrypt(e.ctx, bob, carol, m)
	e.wantKind(err, signalpeer.KindInvalidKeyID, "message to a used one-time prekey")
	if e.hasSession(e.b, bob, carol) {
		e.t.Fatal("a message to a used prekey left a session")
	}
	e.send(e.b, bob, e.a, alice, "alice is unaffected")
}

// mlkem1024Key returns a serialized ML-KEM-1024 public key as libsignal would type it.
func mlkem1024Key(t *testing.T) []byte {
	t.Helper()
	k, err := mlkem.GenerateKey1024()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0x0a}, k.EncapsulationKey().Bytes()...)
}

// scenarioBadBundles: A refuses bundles of B whose signatures or keys were altered,
// and is left without a session.
func scenarioBadBundles(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 1)
	e.create(e.b, bob, 2)
	good := e.bundle(e.b, bob, true)
	flip := func(b []byte, i int) []byte { return mutate(b, func(c []byte) []byte { c[i] ^= 1; return c }) }
	for _, c := range []struct {
		what string
		edit func(b *signalpeer.Bundle)
	}{
		{"signed prekey signature flipped", func(b *signalpeer.Bundle) { b.SignedPreKeySignature = flip(b.SignedPreKeySignature, 10) }},
		{"signed prekey flipped", func(b *signalpeer.Bundle) { b.SignedPreKey = flip(b.SignedPreKey, 5) }},
		{"Kyber prekey signature flipped", func(b *signalpeer.Bundle) { b.KyberPreKeySignature = flip(b.KyberPreKeySignature, 63) }},
		{"Kyber prekey flipped", func(b *signalpeer.Bundle) { b.KyberPreKey = flip(b.KyberPreKey, 700) }},
		{"Kyber prekey truncated", func(b *signalpeer.Bundle) { b.KyberPreKey = b.KyberPreKey[:1000] }},
		{"signatures swapped", func(b *signalpeer.Bundle) {
			b.SignedPreKeySignature, b.KyberPreKeySignature = b.KyberPreKeySignature, b.SignedPreKeySignature
		}},
		{"identity key of someone else", func(b *signalpeer.Bundle) { b.IdentityKey = e.bundle(e.b, bob, true).SignedPreKey }},
		// libsignal-client 0.90 is built without ML-KEM-1024 (type 0x0A).
		{"an ML-KEM-1024 prekey", func(b *signalpeer.Bundle) { b.KyberPreKey = mlkem1024Key(e.t) }},
		{"identity key with a wrong type byte", func(b *signalpeer.Bundle) {
			b.IdentityKey = mutate(b.IdentityKey, func(c []byte) []byte { c[0] = 0x06; return c })
		}},
	} {
		b := *good
		c.edit(&b)
		err := e.a.ProcessBundle(e.ctx, alice, bob, &b)
		e.wantKind(err, signalpeer.KindInvalidArgument, "bundle with "+c.what)
		if e.hasSession(e.a, alice, bob) {
			e.t.Fatalf("a refused bundle (%s) left a session", c.what)
		}
	}
	e.process(e.a, alice, bob, good)
	e.send(e.a, alice, e.b, bob, "the genuine bundle works")
	e.send(e.b, bob, e.a, alice, "it does")
}

// scenarioUnknownPreKeyIDs: a bundle whose (unsigned) prekey ids were changed sets up a
// session on A's side, but B cannot find the keys: invalid_key_id, and no session.
func scenarioUnknownPreKeyIDs(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 1)
	e.create(e.b, bob, 5)
	for _, c := range []struct {
		what string
		edit func(b *signalpeer.Bundle)
	}{
		{"one-time prekey id", func(b *signalpeer.Bundle) { id := uint32(4242); b.PreKeyID = &id }},
		{"signed prekey id", func(b *signalpeer.Bundle) { b.SignedPreKeyID += 77 }},
		{"Kyber prekey id", func(b *signalpeer.Bundle) { b.KyberPreKeyID += 77 }},
	} {
		b := e.bundle(e.b, bob, true)
		c.edit(b)
		e.process(e.a, alice, bob, b)
		m := e.encrypt(e.a, alice, bob, []byte("hello"))
		_, err := e.b.Decrypt(e.ctx, bob, alice, m)
		e.wantKind(err, signalpeer.KindInvalidKeyID, "message to an unknown "+c.what)
		if e.hasSession(e.b, bob, alice) {
			e.t.Fatalf("a message to an unknown %s left a session", c.what)
		}
	}
	e.connect(e.a, alice, e.b, bob)
}

func scenarioNoSession(e *env) {
	alice, bob := addr("alice"), addr("bob")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	_, err := e.a.Encrypt(e.ctx, alice, bob, []byte("x"))
	e.wantKind(err, signalpeer.KindNoSession, "encrypt without a session")
	e.connect(e.a, alice, e.b, bob)
	m := e.encrypt(e.a, alice, bob, []byte("to bob"))
	// Another party of B's peer has no session with alice.
	carol := addr("carol")
	e.create(e.b, carol, 1)
	_, err = e.b.Decrypt(e.ctx, carol, alice, m)
	e.wantKind(err, signalpeer.KindNoSession, "SignalMessage without a session")
	_, err = e.b.Encrypt(e.ctx, signalpeer.Address{Name: "nobody"}, alice, []byte("x"))
	e.wantKind(err, signalpeer.KindInvalidArgument, "encrypt from an unknown party")
	e.decrypt(e.b, bob, alice, m, []byte("to bob"))
	if err := e.b.Call(e.ctx, "frobnicate", nil, nil); signalpeer.KindOf(err) != signalpeer.KindInvalidArgument {
		e.t.Fatalf("unknown op: got %v, want invalid_argument", err)
	}
	if err := e.b.Call(e.ctx, "encrypt", map[string]any{"name": "bob", "peer": "alice", "plaintext": "not base64!"}, nil); signalpeer.KindOf(err) != signalpeer.KindInvalidArgument {
		e.t.Fatalf("bad base64: got %v, want invalid_argument", err)
	}
	_, err = e.b.Create(e.ctx, addr("dave"), 0, 1)
	e.wantKind(err, signalpeer.KindInvalidArgument, "registration id 0")
	_, err = e.b.Create(e.ctx, bob, 99, 1)
	e.wantKind(err, signalpeer.KindInvalidArgument, "create an existing party")
	e.send(e.a, alice, e.b, bob, "all good")
}
