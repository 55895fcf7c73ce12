package mls

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// Negative tests for defects found in another Go MLS library; each would
// fail on the defective behaviour.

// twoMembers returns alice and bob in a fresh group, and carol's key
// package and keys (not yet added).
func twoMembers(t *testing.T) (alice, bob, carol *client) {
	t.Helper()
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	ag, err := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	if err != nil {
		t.Fatal(err)
	}
	alice = &client{name: "alice", g: ag}
	bob, carol = newClient(t, cs, "bob"), newClient(t, cs, "carol")
	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	if bob.g, err = Join(p.Welcome, bob.kp, bob.keys, nil); err != nil {
		t.Fatal(err)
	}
	return alice, bob, carol
}

// rewriteWelcome re-encrypts a Welcome's GroupInfo after mutate changed
// it, and the joiner's GroupSecrets for the new ciphertext, as an
// attacker holding the welcome secret could.
func rewriteWelcome(t *testing.T, welcomeMsg, welcomeSecret []byte, joiner *client, mutate func(*groupInfo)) []byte {
	t.Helper()
	var m mlsMessage
	if err := unmarshal(welcomeMsg, &m); err != nil {
		t.Fatal(err)
	}
	w := m.welcome
	s, _ := CipherSuite(w.cipherSuite).suite()
	key, nonce, err := s.welcomeKeyNonce(welcomeSecret)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := s.open(key, nonce, nil, w.encryptedGroupInfo)
	if err != nil {
		t.Fatal(err)
	}
	var gi groupInfo
	if err := unmarshal(pt, &gi); err != nil {
		t.Fatal(err)
	}
	mutate(&gi)
	giBytes, err := marshal(&gi)
	if err != nil {
		t.Fatal(err)
	}
	oldCT := w.encryptedGroupInfo
	if w.encryptedGroupInfo, err = s.seal(key, nonce, nil, giBytes); err != nil {
		t.Fatal(err)
	}
	initKey, err := s.hpkePrivate(joiner.keys.Init)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.secrets {
		c := &w.secrets[i].secrets
		gs, err := s.decryptWithLabel(initKey, "Welcome", oldCT, c.kemOutput, c.ciphertext)
		if err != nil {
			continue
		}
		if c.kemOutput, c.ciphertext, err = s.encryptWithLabel(initKey.PublicKey().Bytes(), "Welcome", w.encryptedGroupInfo, gs); err != nil {
			t.Fatal(err)
		}
	}
	out, err := marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// (a) A Welcome whose tree comes out of band must still have its
// GroupInfo signature verified.
func TestWelcomeWithoutTreeRequiresGroupInfoSignature(t *testing.T) {
	alice, _, carol := twoMembers(t)
	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}, OmitRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	welcomeSecret := bytes.Clone(p.next.epoch.welcomeSecret)
	alice.g.Apply(p)
	tree, _ := alice.g.RatchetTree()
	opts := &JoinOptions{RatchetTree: tree}

	// Sanity: the re-encryption alone keeps the Welcome valid.
	same := rewriteWelcome(t, p.Welcome, welcomeSecret, carol, func(*groupInfo) {})
	if _, err := Join(same, carol.kp, carol.keys, opts); err != nil {
		t.Fatalf("re-encrypted but unchanged welcome: %v", err)
	}
	flipped := rewriteWelcome(t, p.Welcome, welcomeSecret, carol, func(gi *groupInfo) { gi.signature[0] ^= 1 })
	if _, err := Join(flipped, carol.kp, carol.keys, opts); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("welcome with a corrupted group info signature: %v", err)
	}
	malSig, _ := GenerateSignatureKey(alice.g.CipherSuite())
	forged := rewriteWelcome(t, p.Welcome, welcomeSecret, carol, func(gi *groupInfo) {
		s, _ := alice.g.CipherSuite().suite()
		tbs, _ := gi.tbs()
		gi.signature, _ = s.signWithLabel(malSig, "GroupInfoTBS", tbs)
	})
	if _, err := Join(forged, carol.kp, carol.keys, opts); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("welcome signed by a non-member: %v", err)
	}
}

// (b) The application's credential check runs on incoming commits.
func TestCredentialCheckedOnIncomingCommits(t *testing.T) {
	alice, bob, carol := twoMembers(t)
	v := newCounter("carol")
	bob.g.SetCredentialValidator(v)
	// A commit by alice that only refreshes her path: her leaf is checked.
	p, _ := alice.g.Commit(CommitOptions{})
	alice.g.Apply(p)
	if _, err := bob.g.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if v.calls["alice"] != 1 {
		t.Fatalf("path leaf of an incoming commit validated %d times", v.calls["alice"])
	}
	// A commit adding a rejected credential is refused.
	p, _ = alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}})
	before := stateBytes(t, bob.g)
	if _, err := bob.g.Handle(p.Commit); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("incoming commit adding a rejected credential: %v", err)
	}
	if v.calls["carol"] != 1 || !bytes.Equal(before, stateBytes(t, bob.g)) {
		t.Fatal("rejected commit was not checked once or changed the state")
	}
}

// (c) An external commit may remove only the joiner's own old leaf.
func TestExternalCommitCannotRemoveOtherMember(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	gi, _ := alice.g.GroupInfo()
	eveSig, _ := GenerateSignatureKey(alice.g.CipherSuite())
	_, commitMsg, err := joinExternal(gi, []byte("eve"), eveSig, &ExternalJoinOptions{}, []uint32{bob.g.LeafIndex()})
	if err != nil {
		t.Fatal(err)
	}
	before := stateBytes(t, alice.g)
	if _, err := alice.g.Handle(commitMsg); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("external commit removing bob: %v", err)
	}
	if !bytes.Equal(before, stateBytes(t, alice.g)) {
		t.Fatal("rejected external commit changed the state")
	}
	// Bob resyncing (same credential, new keys) may replace his own leaf.
	bobSig, _ := GenerateSignatureKey(alice.g.CipherSuite())
	nb, resync, err := JoinExternalWithOptions(gi, []byte("bob"), bobSig, &ExternalJoinOptions{Resync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Handle(resync); err != nil {
		t.Fatalf("resync external commit: %v", err)
	}
	sameEpoch(t, alice, &client{name: "new bob", g: nb})
	if n := len(alice.g.Members()); n != 2 {
		t.Fatalf("%d members after resync, want 2", n)
	}
}

// (d) A commit with a bad confirmation tag changes nothing, and the real
// commit is still accepted afterwards.
func TestBadConfirmationTagLeavesStateUnchanged(t *testing.T) {
	for _, private := range []bool{false, true} {
		alice, bob, carol := twoMembers(t)
		st := alice.g.st
		p, err := alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}, Private: private})
		if err != nil {
			t.Fatal(err)
		}
		var m mlsMessage
		if err := unmarshal(bytes.Clone(p.Commit), &m); err != nil {
			t.Fatal(err)
		}
		var bad []byte
		if private {
			// Re-encrypt the content with the tag altered, at the next
			// handshake generation of a copy of alice's secret tree.
			ac, err := st.s.unprotectPrivate(bob.g.st.keys.clone(), st.epoch.senderDataSecret, m.private)
			if err != nil {
				t.Fatal(err)
			}
			ac.auth.confirmationTag[0] ^= 1
			pm, err := st.s.protectPrivate(st.keys, st.epoch.senderDataSecret, ac, 0)
			if err != nil {
				t.Fatal(err)
			}
			bad, _ = marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatPrivateMessage, private: pm})
		} else {
			m.public.auth.confirmationTag[0] ^= 1
			ac := &authenticatedContent{wireFormat: wireFormatPublicMessage, content: m.public.content, auth: m.public.auth}
			if m.public.membershipTag, err = ac.membershipTag(st.s, st.epoch.membershipKey, &st.ctx); err != nil {
				t.Fatal(err)
			}
			bad, _ = marshal(&m)
		}
		before := stateBytes(t, bob.g)
		if _, err := bob.g.Handle(bad); !errors.Is(err, ErrInvalidMAC) {
			t.Fatalf("private=%v: commit with a bad confirmation tag: %v", private, err)
		}
		if !bytes.Equal(before, stateBytes(t, bob.g)) {
			t.Fatalf("private=%v: rejected commit changed the state", private)
		}
		alice.g.Apply(p)
		if _, err := bob.g.Handle(p.Commit); err != nil {
			t.Fatalf("private=%v: genuine commit after the forged one: %v", private, err)
		}
		sameEpoch(t, alice, bob)
	}
}

// (e) A KeyPackage with an unknown credential type is rejected with an
// error everywhere, never a panic.
func TestUnknownCredentialTypeKeyPackage(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	cs := alice.g.CipherSuite()
	sig, _ := GenerateSignatureKey(cs)
	kp, keys, _ := NewKeyPackage(cs, []byte("zed-unknown"), sig)
	pattern := append([]byte{0, 1, byte(len("zed-unknown"))}, "zed-unknown"...)
	i := bytes.Index(kp, pattern)
	if i < 0 {
		t.Fatal("credential not found in key package")
	}
	bad := bytes.Clone(kp)
	bad[i], bad[i+1] = 0x7f, 0x31
	if _, err := alice.g.Commit(CommitOptions{Add: [][]byte{bad}}); !errors.Is(err, ErrDecode) {
		t.Fatalf("commit: %v", err)
	}
	if _, err := alice.g.ProposeAdd(bad); !errors.Is(err, ErrDecode) {
		t.Fatalf("propose: %v", err)
	}
	if _, err := NewMemberAddProposal(alice.g.GroupID(), alice.g.Epoch(), bad, sig); !errors.Is(err, ErrDecode) {
		t.Fatalf("new member proposal: %v", err)
	}
	if _, err := Peek(bad); !errors.Is(err, ErrDecode) {
		t.Fatalf("peek: %v", err)
	}
	// Join with it, and receive a proposal carrying it.
	p, _ := alice.g.Commit(CommitOptions{Add: [][]byte{kp}})
	if _, err := Join(p.Welcome, bad, keys, nil); !errors.Is(err, ErrDecode) {
		t.Fatalf("join: %v", err)
	}
	prop, err := alice.g.ProposeAdd(kp)
	if err != nil {
		t.Fatal(err)
	}
	j := bytes.Index(prop, pattern)
	badProp := bytes.Clone(prop)
	badProp[j], badProp[j+1] = 0x7f, 0x31
	if _, err := bob.g.Handle(badProp); !errors.Is(err, ErrDecode) {
		t.Fatalf("handle: %v", err)
	}
}

// (f) A secret-tree ratchet never jumps further than the bound, by
// default too, and a huge generation fails at once.
func TestSecretTreeRatchetBounded(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	var far []byte
	for range DefaultMaxGenerationJump + 2 {
		var err error
		if far, err = alice.g.Seal([]byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	before := stateBytes(t, bob.g)
	if _, err := bob.g.Handle(far); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("generation %d with the default bound: %v", DefaultMaxGenerationJump+1, err)
	}
	if !bytes.Equal(before, stateBytes(t, bob.g)) {
		t.Fatal("refused message changed the state")
	}
	// Push alice's application ratchet near the end of the generation
	// space and send: bob must refuse without ratcheting.
	r, err := alice.g.st.keys.chain(alice.g.LeafIndex(), ratchetApplication)
	if err != nil {
		t.Fatal(err)
	}
	r.next = 0xfffffff0
	huge, err := alice.g.Seal([]byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := bob.g.Handle(huge); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrGenerationTooFar) {
			t.Fatalf("huge generation: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("huge generation is being ratcheted to")
	}
}

// A damaged application message that is a sender's first of the epoch is
// refused and leaves the saved state exactly as it was, like a refused
// commit: whether its ciphertext was altered on the way, or another
// member (who can derive every sender's keys) encrypted it in alice's
// name with a signature that does not hold. alice's real message at that
// generation is read afterwards.
func TestDamagedFirstApplicationMessageLeavesStateUnchanged(t *testing.T) {
	for _, damage := range []string{"ciphertext", "forged signature"} {
		alice, bob, carol := twoMembers(t)
		p, err := alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}})
		if err != nil {
			t.Fatal(err)
		}
		alice.g.Apply(p)
		bob.g.Handle(p.Commit)
		if carol.g, err = Join(p.Welcome, carol.kp, carol.keys, nil); err != nil {
			t.Fatal(err)
		}
		real, err := alice.g.Seal([]byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		var bad []byte
		switch damage {
		case "ciphertext":
			bad = bytes.Clone(real)
			bad[len(bad)-1] ^= 1
		case "forged signature":
			st := carol.g.st
			ac := &authenticatedContent{wireFormat: wireFormatPrivateMessage, content: framedContent{
				groupID: st.ctx.groupID, epoch: st.ctx.epoch, sender: sender{typ: senderMember, index: alice.g.LeafIndex()},
				authenticatedData: []byte{}, contentType: contentApplication, applicationData: []byte("transfer the funds"),
			}}
			ac.auth.signature = make([]byte, 64)
			pm, err := st.s.protectPrivate(st.keys.clone(), st.epoch.senderDataSecret, ac, 0)
			if err != nil {
				t.Fatal(err)
			}
			bad, _ = marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatPrivateMessage, private: pm})
		}
		before := stateBytes(t, bob.g)
		if _, err := bob.g.Handle(bad); err == nil {
			t.Fatalf("%s: damaged message accepted", damage)
		}
		if !bytes.Equal(before, stateBytes(t, bob.g)) {
			t.Fatalf("%s: a refused first application message changed the saved state", damage)
		}
		r, err := bob.g.Handle(real)
		if err != nil || string(r.Data) != "hello" {
			t.Fatalf("%s: alice's real message after the damaged one: %v", damage, err)
		}
	}
}
