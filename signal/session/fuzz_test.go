package session

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
)

// fuzzFixture is a live conversation plus real serialized objects to seed
// the fuzzers with.
type fuzzFixture struct {
	alice, bob *party
	prekeyMsg  sealed // unopened PreKeySignalMessage from carol to bob
	carol      *party
	signalMsgs []sealed // unopened SignalMessages from alice to bob
	records    [][]byte
	keyRecords [][]byte
}

func newFuzzFixture(t testing.TB) *fuzzFixture {
	rnd := rand.NewChaCha8([32]byte{1})
	f := &fuzzFixture{}
	f.alice, f.bob, f.carol = newParty(t, "alice", rnd), newParty(t, "bob", rnd), newParty(t, "carol", rnd)
	f.alice.startWith(t, f.bob, f.bob.bundle(t, true, 1))
	f.bob.mustOpen(t, f.alice, f.alice.send(t, f.bob, "hello"), "hello")
	f.alice.mustOpen(t, f.bob, f.bob.send(t, f.alice, "hi"), "hi")
	for i := 0; i < 3; i++ {
		f.signalMsgs = append(f.signalMsgs, f.alice.send(t, f.bob, "pending message"))
	}
	f.carol.startWith(t, f.bob, f.bob.bundle(t, true, 2))
	f.prekeyMsg = f.carol.send(t, f.bob, "from carol")
	f.records = [][]byte{f.alice.snapshot(t, f.bob), f.bob.snapshot(t, f.alice), f.carol.snapshot(t, f.bob)}
	pks, _ := GeneratePreKeys(rnd, 5, 1)
	spk, _ := GenerateSignedPreKey(rnd, f.bob.id, 6, testNow)
	kpk, _ := GenerateKyberPreKey(rnd, f.bob.id, 7, testNow)
	f.keyRecords = [][]byte{pks[0].Serialize(), spk.Serialize(), kpk.Serialize()}
	return f
}

func FuzzDecryptSignalMessage(f *testing.F) {
	fx := newFuzzFixture(f)
	seeds := 0
	for _, m := range fx.signalMsgs {
		f.Add(m.ct)
		seeds++
	}
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	before := fx.bob.snapshot(f, fx.alice)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseSignalMessage(b)
		if err == nil && m.counter < 3 && !bytes.Equal(b, fx.signalMsgs[m.counter].ct) {
			// A forged message must never decrypt.
			if _, err := fx.bob.open(fx.alice, sealed{MessageTypeSignal, b}); err == nil {
				t.Fatalf("forged message decrypted")
			}
		}
		if err == nil {
			return
		}
		// Failing decrypts never change state.
		if _, err := fx.bob.open(fx.alice, sealed{MessageTypeSignal, b}); err == nil {
			t.Fatal("unparseable message decrypted")
		}
		if !bytes.Equal(before, fx.bob.snapshot(t, fx.alice)) {
			t.Fatal("failed decrypt changed the session")
		}
	})
}

func FuzzDecryptPreKeySignalMessage(f *testing.F) {
	fx := newFuzzFixture(f)
	seeds := [][]byte{fx.prekeyMsg.ct}
	for _, s := range seeds {
		f.Add(s)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parsePreKeySignalMessage(b)
		if err != nil {
			return
		}
		// Re-encoding what was parsed gives a message that parses the same.
		again, err := parsePreKeySignalMessage(m.encode(m.message.serialized))
		if err != nil || again.signedPreKeyID != m.signedPreKeyID || !again.baseKey.Equal(m.baseKey) {
			t.Fatalf("re-encoded message: %v", err)
		}
		if bytes.Equal(b, fx.prekeyMsg.ct) {
			return
		}
		// Decrypting on a scratch copy of bob's store never panics; a
		// forgery never decrypts.
		scratch := cloneStore(fx.bob.store)
		if pt, err := Decrypt(context.Background(), rand.NewChaCha8([32]byte{}), scratch.Stores(), fx.carol.addr, MessageTypePreKey, b); err == nil && string(pt) != "from carol" {
			t.Fatalf("forged prekey message decrypted to %q", pt)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, r := range fx.records {
		f.Add(r)
	}
	if len(fx.records) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		ser := r.Serialize()
		r2, err := ParseRecord(ser)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !bytes.Equal(r2.Serialize(), ser) {
			t.Fatal("serialization not stable")
		}
		_ = r.Clone()
	})
}

func FuzzParseKeyRecords(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, r := range fx.keyRecords {
		f.Add(r)
	}
	if len(fx.keyRecords) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParsePreKeyRecord(b); err == nil {
			if _, err := ParsePreKeyRecord(r.Serialize()); err != nil {
				t.Fatal(err)
			}
		}
		if r, err := ParseSignedPreKeyRecord(b); err == nil {
			if r2, err := ParseSignedPreKeyRecord(r.Serialize()); err != nil || !bytes.Equal(r2.Serialize(), r.Serialize()) {
				t.Fatal(err)
			}
		}
		if r, err := ParseKyberPreKeyRecord(b); err == nil {
			if _, err := ParseKyberPreKeyRecord(r.Serialize()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func cloneStore(s *MemoryStore) *MemoryStore {
	c := NewMemoryStore(s.identity, s.regID)
	for k, v := range s.identities {
		c.identities[k] = v
	}
	for k, v := range s.preKeys {
		c.preKeys[k] = v
	}
	for k, v := range s.signed {
		c.signed[k] = v
	}
	for k, v := range s.kyber {
		c.kyber[k] = v
	}
	for k, v := range s.sessions {
		c.sessions[k] = v.Clone()
	}
	return c
}
