package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestConversationBothDirections(t *testing.T) {
	for _, oneTime := range []bool{true, false} {
		t.Run(fmt.Sprintf("oneTimePreKey=%v", oneTime), func(t *testing.T) {
			alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
			b := bob.bundle(t, oneTime, 7)
			alice.startWith(t, bob, b)
			if ok, _ := HasSession(context.Background(), alice.store.Stores(), bob.addr); !ok {
				t.Fatal("no session after bundle")
			}
			m1 := alice.send(t, bob, "hello bob")
			m2 := alice.send(t, bob, "still there?")
			if m1.typ != MessageTypePreKey || m2.typ != MessageTypePreKey {
				t.Fatalf("types %d %d, want prekey messages until a reply", m1.typ, m2.typ)
			}
			if m1.ct[0] != 0x44 {
				t.Fatalf("version byte %#x", m1.ct[0])
			}
			bob.mustOpen(t, alice, m1, "hello bob")
			bob.mustOpen(t, alice, m2, "still there?")
			ctx := context.Background()
			if _, err := bob.store.LoadKyberPreKey(ctx, b.KyberPreKeyID); !errors.Is(err, ErrInvalidKeyID) {
				t.Errorf("one-time kyber prekey kept: %v", err)
			}
			if oneTime {
				if _, err := bob.store.LoadPreKey(ctx, b.PreKeyID); !errors.Is(err, ErrInvalidKeyID) {
					t.Errorf("one-time prekey kept: %v", err)
				}
			}
			r := bob.send(t, alice, "hi alice")
			if r.typ != MessageTypeSignal {
				t.Fatalf("reply type %d", r.typ)
			}
			alice.mustOpen(t, bob, r, "hi alice")
			if m := alice.send(t, bob, "after reply"); m.typ != MessageTypeSignal {
				t.Fatalf("after reply type %d, want signal message", m.typ)
			} else {
				bob.mustOpen(t, alice, m, "after reply")
			}
			// Many round trips with several messages per turn.
			for round := 0; round < 10; round++ {
				from, to := alice, bob
				if round%2 == 1 {
					from, to = bob, alice
				}
				for i := 0; i < 3; i++ {
					msg := fmt.Sprintf("round %d message %d", round, i)
					to.mustOpen(t, from, from.send(t, to, msg), msg)
				}
			}
		})
	}
}

func TestOutOfOrderWithinBound(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, true, 1))
	bob.mustOpen(t, alice, alice.send(t, bob, "first"), "first")
	alice.mustOpen(t, bob, bob.send(t, alice, "ack"), "ack")

	var msgs []sealed
	for i := 0; i < 50; i++ {
		msgs = append(msgs, alice.send(t, bob, fmt.Sprint("m", i)))
	}
	// Deliver in reverse, then with a new chain interleaved.
	for i := 49; i >= 25; i-- {
		bob.mustOpen(t, alice, msgs[i], fmt.Sprint("m", i))
	}
	reply := bob.send(t, alice, "new chain")
	alice.mustOpen(t, bob, reply, "new chain")
	next := alice.send(t, bob, "on the next chain")
	bob.mustOpen(t, alice, next, "on the next chain")
	for i := 0; i < 25; i++ {
		bob.mustOpen(t, alice, msgs[i], fmt.Sprint("m", i))
	}
	for _, i := range []int{0, 30, 49} {
		if _, err := bob.open(alice, msgs[i]); !errors.Is(err, ErrDuplicateMessage) {
			t.Fatalf("replay of m%d: %v, want ErrDuplicateMessage", i, err)
		}
	}
}

func TestSkippedKeysBounded(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, false, 1))
	bob.mustOpen(t, alice, alice.send(t, bob, "first"), "first")
	alice.mustOpen(t, bob, bob.send(t, alice, "ack"), "ack")

	n := maxMessageKeys + 10
	msgs := make([]sealed, n+1)
	for i := range msgs {
		msgs[i] = alice.send(t, bob, fmt.Sprint("m", i))
	}
	bob.mustOpen(t, alice, msgs[n], fmt.Sprint("m", n))
	// The oldest skipped keys were dropped, the newest 2000 kept.
	for i := 0; i < n-maxMessageKeys; i++ {
		if _, err := bob.open(alice, msgs[i]); !errors.Is(err, ErrDuplicateMessage) {
			t.Fatalf("m%d beyond the kept keys: %v", i, err)
		}
	}
	bob.mustOpen(t, alice, msgs[n-maxMessageKeys], fmt.Sprint("m", n-maxMessageKeys))
	bob.mustOpen(t, alice, msgs[n-1], fmt.Sprint("m", n-1))
}

func TestJumpBeyondBoundRejected(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, false, 1))
	bob.mustOpen(t, alice, alice.send(t, bob, "first"), "first")
	// Advance Alice's sending chain without Bob seeing the messages.
	ctx := context.Background()
	skip := func(n int) {
		r, _ := alice.store.LoadSession(ctx, bob.addr)
		sc := r.current.sender
		for i := 0; i < n; i++ {
			_, sc.key = chainStep(&sc.key)
			sc.index++
		}
		must(t, alice.store.StoreSession(ctx, bob.addr, r))
	}
	skip(maxForwardJumps + 1)
	far := alice.send(t, bob, "too far")
	before := bob.snapshot(t, alice)
	if _, err := bob.open(alice, far); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("jump beyond bound: %v, want ErrInvalidMessage", err)
	}
	if !bytes.Equal(before, bob.snapshot(t, alice)) {
		t.Fatal("failed decrypt changed the session")
	}
	// A jump of exactly the bound is accepted: Bob's chain is at 1, Alice
	// sent index 25002; skip to 1+25000 on a fresh session instead.
	alice2, bob2 := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice2.startWith(t, bob2, bob2.bundle(t, false, 1))
	bob2.mustOpen(t, alice2, alice2.send(t, bob2, "first"), "first")
	alice, bob = alice2, bob2
	skip(maxForwardJumps)
	bob.mustOpen(t, alice, alice.send(t, bob, "at the bound"), "at the bound")
}

func TestTamperedAndTruncatedLeaveStateUnchanged(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, true, 1))
	first := alice.send(t, bob, "first")
	// Tampered prekey message: nothing stored, prekeys kept.
	for _, i := range []int{0, 5, len(first.ct) / 2, len(first.ct) - 1} {
		bad := bytes.Clone(first.ct)
		bad[i] ^= 0x40
		if _, err := bob.open(alice, sealed{first.typ, bad}); err == nil {
			t.Fatalf("tampered prekey message (byte %d) accepted", i)
		}
	}
	if bob.snapshot(t, alice) != nil {
		t.Fatal("failed prekey decrypt stored a session")
	}
	bob.mustOpen(t, alice, first, "first")
	alice.mustOpen(t, bob, bob.send(t, alice, "ack"), "ack")

	m := alice.send(t, bob, "payload")
	before := bob.snapshot(t, alice)
	for i := range m.ct {
		bad := bytes.Clone(m.ct)
		bad[i] ^= 0x01
		if _, err := bob.open(alice, sealed{m.typ, bad}); err == nil {
			t.Fatalf("message with byte %d flipped accepted", i)
		}
	}
	for _, n := range []int{0, 1, 8, 9, len(m.ct) - 8, len(m.ct) - 1} {
		if _, err := bob.open(alice, sealed{m.typ, m.ct[:n]}); !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := bob.open(alice, sealed{99, m.ct}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("unknown type: %v", err)
	}
	if !bytes.Equal(before, bob.snapshot(t, alice)) {
		t.Fatal("failed decrypts changed the session")
	}
	bob.mustOpen(t, alice, m, "payload")
}

func TestDuplicatePreKeyMessage(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, true, 1))
	m := alice.send(t, bob, "once")
	bob.mustOpen(t, alice, m, "once")
	// The one-time prekey is gone, yet the replay is matched to the session
	// by its base key and reported as a duplicate.
	if _, err := bob.open(alice, m); !errors.Is(err, ErrDuplicateMessage) {
		t.Fatalf("replayed prekey message: %v, want ErrDuplicateMessage", err)
	}
	// Also once the session has moved on.
	alice.mustOpen(t, bob, bob.send(t, alice, "reply"), "reply")
	bob.mustOpen(t, alice, alice.send(t, bob, "more"), "more")
	if _, err := bob.open(alice, m); !errors.Is(err, ErrDuplicateMessage) {
		t.Fatalf("late replayed prekey message: %v, want ErrDuplicateMessage", err)
	}
}

func TestSimultaneousInitiation(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	ab, bb := alice.bundle(t, true, 1), bob.bundle(t, true, 1)
	alice.startWith(t, bob, bb)
	bob.startWith(t, alice, ab)
	ma := alice.send(t, bob, "from alice")
	mb := bob.send(t, alice, "from bob")
	bob.mustOpen(t, alice, ma, "from alice")
	alice.mustOpen(t, bob, mb, "from bob")
	// Each side now has two states; conversation continues whichever wins.
	for i := 0; i < 4; i++ {
		x := alice.send(t, bob, fmt.Sprint("a", i))
		y := bob.send(t, alice, fmt.Sprint("b", i))
		bob.mustOpen(t, alice, x, fmt.Sprint("a", i))
		alice.mustOpen(t, bob, y, fmt.Sprint("b", i))
	}
	for i := 0; i < 3; i++ {
		bob.mustOpen(t, alice, alice.send(t, bob, "tail"), "tail")
		alice.mustOpen(t, bob, bob.send(t, alice, "tail back"), "tail back")
	}
}

func TestLateMessageFromOldSession(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, false, 1))
	bob.mustOpen(t, alice, alice.send(t, bob, "s1"), "s1")
	alice.mustOpen(t, bob, bob.send(t, alice, "ack"), "ack")
	late := alice.send(t, bob, "late from first session")
	// Alice starts over (e.g. reinstall of the session); Bob follows.
	alice.startWith(t, bob, bob.bundle(t, false, 2))
	bob.mustOpen(t, alice, alice.send(t, bob, "s2"), "s2")
	bob.mustOpen(t, alice, late, "late from first session")
	// The old state was promoted; the newer one still works too.
	alice.mustOpen(t, bob, bob.send(t, alice, "to whichever"), "to whichever")
}

func TestIdentityChangeRefusedUntilTrusted(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, true, 1))
	bob.mustOpen(t, alice, alice.send(t, bob, "hi"), "hi")

	// Bob reinstalls with a new identity.
	bob2 := newParty(t, "bob", nil)
	b2 := bob2.bundle(t, true, 5)
	err := ProcessPreKeyBundle(ctx, alice.rand, alice.store.Stores(), bob.addr, b2, testNow)
	if !errors.Is(err, ErrUntrustedIdentity) {
		t.Fatalf("new identity bundle: %v, want ErrUntrustedIdentity", err)
	}
	// Alice 2 (new identity) writes to Bob: refused until Bob trusts it.
	alice2 := newParty(t, "alice", nil)
	alice2.startWith(t, bob, bob.bundle(t, true, 9))
	m := alice2.send(t, bob, "new me")
	if _, err := bob.open(alice, m); !errors.Is(err, ErrUntrustedIdentity) {
		t.Fatalf("message from new identity: %v, want ErrUntrustedIdentity", err)
	}
	changed, err := bob.store.SaveIdentity(ctx, alice.addr, alice2.id.PublicKey().Serialize())
	if err != nil || !changed {
		t.Fatalf("SaveIdentity changed=%v err=%v", changed, err)
	}
	bob.mustOpen(t, alice2, m, "new me")
	_, err = alice.store.SaveIdentity(ctx, bob.addr, bob2.id.PublicKey().Serialize())
	must(t, err)
	must(t, ProcessPreKeyBundle(ctx, alice.rand, alice.store.Stores(), bob.addr, b2, testNow))
}

func TestBadBundleSignatures(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	b := bob.bundle(t, true, 1)
	for name, mutate := range map[string]func(*PreKeyBundle){
		"signed prekey signature": func(b *PreKeyBundle) { b.SignedPreKeySignature[3] ^= 1 },
		"kyber prekey signature":  func(b *PreKeyBundle) { b.KyberPreKeySignature[3] ^= 1 },
		"signed prekey":           func(b *PreKeyBundle) { b.SignedPreKey[4] ^= 1 },
		"kyber prekey":            func(b *PreKeyBundle) { b.KyberPreKey[40] ^= 1 },
	} {
		c := *b
		c.SignedPreKeySignature = bytes.Clone(b.SignedPreKeySignature)
		c.KyberPreKeySignature = bytes.Clone(b.KyberPreKeySignature)
		c.SignedPreKey = bytes.Clone(b.SignedPreKey)
		c.KyberPreKey = bytes.Clone(b.KyberPreKey)
		mutate(&c)
		if err := ProcessPreKeyBundle(ctx, alice.rand, alice.store.Stores(), bob.addr, &c, testNow); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if ok, _ := HasSession(ctx, alice.store.Stores(), bob.addr); ok {
		t.Fatal("session made from a bad bundle")
	}
}

func TestMissingPreKeys(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	b := bob.bundle(t, true, 1)
	alice.startWith(t, bob, b)
	m := alice.send(t, bob, "x")
	must(t, bob.store.RemovePreKey(ctx, b.PreKeyID))
	if _, err := bob.open(alice, m); !errors.Is(err, ErrInvalidKeyID) {
		t.Fatalf("missing one-time prekey: %v", err)
	}
	if _, err := bob.open(alice, sealed{MessageTypeSignal, m.ct}); err == nil {
		t.Fatal("prekey message accepted as signal message")
	}
	if _, _, err := Encrypt(ctx, bob.store.Stores(), alice.addr, []byte("x"), testNow); !errors.Is(err, ErrNoSession) {
		t.Fatalf("encrypt without session: %v", err)
	}
}

func TestLastResortKyberKeyKept(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newParty(t, "alice", nil), newParty(t, "bob", nil), newParty(t, "carol", nil)
	b := bob.bundle(t, false, 1)
	kpk, _ := bob.store.LoadKyberPreKey(ctx, b.KyberPreKeyID)
	must(t, bob.store.StoreKyberPreKey(ctx, kpk.ID(), kpk, true))
	alice.startWith(t, bob, b)
	carol.startWith(t, bob, b)
	bob.mustOpen(t, alice, alice.send(t, bob, "a"), "a")
	bob.mustOpen(t, carol, carol.send(t, bob, "c"), "c")
}

func TestRecordRoundTripMidConversation(t *testing.T) {
	ctx := context.Background()
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, true, 1))
	bob.mustOpen(t, alice, alice.send(t, bob, "1"), "1")
	alice.mustOpen(t, bob, bob.send(t, alice, "2"), "2")
	skipped := alice.send(t, bob, "skipped")
	bob.mustOpen(t, alice, alice.send(t, bob, "3"), "3")
	for _, p := range []*party{alice, bob} {
		other := bob
		if p == bob {
			other = alice
		}
		ser := p.snapshot(t, other)
		r, err := ParseRecord(ser)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Serialize(), ser) {
			t.Fatal("record round trip not stable")
		}
		must(t, p.store.StoreSession(ctx, other.addr, r))
	}
	bob.mustOpen(t, alice, skipped, "skipped")
	alice.mustOpen(t, bob, bob.send(t, alice, "4"), "4")
	if _, err := ParseRecord([]byte{0x0a, 0x05, 1, 2, 3}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("garbage record: %v", err)
	}
}

func TestPreKeyRecordsRoundTrip(t *testing.T) {
	p := newParty(t, "p", nil)
	pks, err := GeneratePreKeys(p.rand, 10, 3)
	if err != nil || len(pks) != 3 || pks[2].ID() != 12 {
		t.Fatalf("GeneratePreKeys: %v", err)
	}
	back, err := ParsePreKeyRecord(pks[1].Serialize())
	if err != nil || back.ID() != 11 || !bytes.Equal(back.PublicKey(), pks[1].PublicKey()) {
		t.Fatalf("prekey round trip: %v", err)
	}
	spk, _ := GenerateSignedPreKey(p.rand, p.id, 3, testNow)
	sb, err := ParseSignedPreKeyRecord(spk.Serialize())
	if err != nil || sb.ID() != 3 || !sb.Timestamp().Equal(testNow) || !bytes.Equal(sb.Signature(), spk.Signature()) {
		t.Fatalf("signed prekey round trip: %v", err)
	}
	if !p.id.PublicKey().Verify(spk.Signature(), spk.PublicKey()) {
		t.Fatal("signed prekey signature does not verify")
	}
	kpk, _ := GenerateKyberPreKey(p.rand, p.id, 4, testNow)
	kb, err := ParseKyberPreKeyRecord(kpk.Serialize())
	if err != nil || kb.ID() != 4 || !bytes.Equal(kb.PublicKey(), kpk.PublicKey()) {
		t.Fatalf("kyber prekey round trip: %v", err)
	}
	if !p.id.PublicKey().Verify(kpk.Signature(), kpk.PublicKey()) {
		t.Fatal("kyber prekey signature does not verify")
	}
	if s := fmt.Sprintf("%v %+v %#v", spk, kpk, pks[0]); bytes.Contains([]byte(s), []byte(fmt.Sprintf("%x", spk.KeyPair().Private.Bytes()))) {
		t.Fatal("record printing leaks a private key")
	}
}

func TestStaleUnacknowledgedSession(t *testing.T) {
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	alice.startWith(t, bob, bob.bundle(t, false, 1))
	late := testNow.AddDate(0, 0, 31)
	_, _, err := Encrypt(context.Background(), alice.store.Stores(), bob.addr, []byte("x"), late)
	if !errors.Is(err, ErrNoSession) || !errors.Is(err, ErrStaleSession) {
		t.Fatalf("encrypt on a 31-day-old unacknowledged session: %v", err)
	}
	// Once Bob has answered, age no longer matters.
	bob.mustOpen(t, alice, alice.send(t, bob, "x"), "x")
	alice.mustOpen(t, bob, bob.send(t, alice, "y"), "y")
	if _, _, err := Encrypt(context.Background(), alice.store.Stores(), bob.addr, []byte("z"), late); err != nil {
		t.Fatal(err)
	}
}
