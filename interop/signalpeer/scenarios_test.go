package signalpeer_test

import (
	"bytes"
	"fmt"
	"testing"

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
	{name: "Chaos", run: scenarioChaos, long: true},
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
	{name: "PostQuantumRatchetEpochs", run: scenarioSPQREpochs},
	{name: "TwoDevices", run: scenarioTwoDevices},
	{name: "ManySessions", run: scenarioManySessions},
	{name: "BundleExhaustion", run: scenarioBundleExhaustion},
	{name: "UsedPreKey", run: scenarioUsedPreKey},
	{name: "BadBundles", run: scenarioBadBundles},
	{name: "UnknownPreKeyIDs", run: scenarioUnknownPreKeyIDs},
	{name: "NoSession", run: scenarioNoSession},
}

// TestPairing runs every scenario for every ordered pair of the Go peer and the
// pinned libsignal, and for the Go peer with the newest libsignal both ways, e.g.
//
//	go test ./interop/signalpeer -run 'TestPairing/go-node-latest/'
//
// With -short the scenarios of thousands of messages are skipped.
func TestPairing(t *testing.T) {
	for _, pair := range pairings() {
		a, b := pair[0], pair[1]
		t.Run(a.name+"-"+b.name, func(t *testing.T) {
			t.Parallel()       // each pairing has its own peer processes
			needPeers(t, a, b) // skips or fails the whole pairing at once
			for _, s := range scenarios {
				t.Run(s.name, func(t *testing.T) {
					if s.long && testing.Short() {
						t.Skip("thousands of messages: skipped with -short")
					}
					if s.goSenderOnly && a.name != goImpl.name {
						t.Skip("needs 25,001 encryptions from A: runs with the Go peer as A")
					}
					s.run(newEnv(t, a, b))
				})
			}
		})
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
