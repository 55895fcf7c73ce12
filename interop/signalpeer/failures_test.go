package signalpeer_test

import (
	"bytes"
	"crypto/mlkem"
	"fmt"
	"testing"

	"sotto/interop/signalpeer"
)

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
	_, err = e.b.Create(e.ctx, signalpeer.Address{Name: "eve", DeviceID: 128}, 98, 1)
	e.wantKind(err, signalpeer.KindInvalidArgument, "device id 128")
	_, err = e.b.HasSession(e.ctx, bob, signalpeer.Address{Name: "alice", DeviceID: 200})
	e.wantKind(err, signalpeer.KindInvalidArgument, "peer device id 200")
	e.send(e.a, alice, e.b, bob, "all good")
}
