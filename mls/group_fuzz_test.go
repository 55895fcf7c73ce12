package mls

import (
	"bytes"
	"testing"

	"sotto/mls/internal/vectortest"
)

// snapshot returns an independent copy of g for one fuzz iteration.
func snapshot(g *Group) *Group {
	st := g.st.clone()
	st.keys = g.st.keys.clone()
	e := *g.st.epoch
	for _, b := range []*[]byte{&e.joinerSecret, &e.welcomeSecret, &e.epochSecret, &e.senderDataSecret,
		&e.encryptionSecret, &e.exporterSecret, &e.epochAuthenticator, &e.externalSecret,
		&e.confirmationKey, &e.membershipKey, &e.resumptionPSK, &e.initSecret} {
		*b = append([]byte(nil), (*b)...)
	}
	st.epoch = &e
	st.proposals = map[string]cachedProposal{}
	for k, v := range g.st.proposals {
		st.proposals[k] = v
	}
	return &Group{st: st}
}

// FuzzHandle feeds arbitrary messages to a two-member group: no input may
// panic, and a rejected message must leave the epoch unchanged.
func FuzzHandle(f *testing.F) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	aliceSig, err := GenerateSignatureKey(cs)
	if err != nil {
		f.Fatal(err)
	}
	alice, err := NewGroup(cs, []byte("fuzz"), []byte("alice"), aliceSig)
	if err != nil {
		f.Fatal(err)
	}
	bobSig, _ := GenerateSignatureKey(cs)
	kp, keys, err := NewKeyPackage(cs, []byte("bob"), bobSig)
	if err != nil {
		f.Fatal(err)
	}
	p, err := alice.Commit(CommitOptions{Add: [][]byte{kp}})
	if err != nil {
		f.Fatal(err)
	}
	if err := alice.Apply(p); err != nil {
		f.Fatal(err)
	}
	bob, err := Join(p.Welcome, kp, keys, nil)
	if err != nil {
		f.Fatal(err)
	}
	app, err := alice.Seal([]byte("seed"))
	if err != nil {
		f.Fatal(err)
	}
	upd, err := alice.Commit(CommitOptions{})
	if err != nil {
		f.Fatal(err)
	}
	priv, err := alice.Commit(CommitOptions{Private: true})
	if err != nil {
		f.Fatal(err)
	}
	prop, err := alice.ProposeUpdate()
	if err != nil {
		f.Fatal(err)
	}
	carolSig, _ := GenerateSignatureKey(cs)
	carolKP, _, _ := NewKeyPackage(cs, []byte("carol"), carolSig)
	joinProp, err := NewMemberAddProposal(alice.GroupID(), alice.Epoch(), carolKP, carolSig)
	if err != nil {
		f.Fatal(err)
	}
	extRemove, err := ExternalRemoveProposal(cs, alice.GroupID(), alice.Epoch(), 0, 1, carolSig)
	if err != nil {
		f.Fatal(err)
	}
	gi, err := alice.GroupInfo()
	if err != nil {
		f.Fatal(err)
	}
	_, extCommit, err := JoinExternal(gi, []byte("dave"), carolSig, nil)
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{app, upd.Commit, priv.Commit, prop, joinProp, extRemove, extCommit}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		g := snapshot(bob)
		epoch, auth := g.Epoch(), g.EpochAuthenticator()
		if _, err := g.Handle(in); err != nil {
			if g.Epoch() != epoch || !bytes.Equal(g.EpochAuthenticator(), auth) {
				t.Fatalf("rejected message changed the epoch: %v", err)
			}
		}
	})
}

// FuzzJoin feeds mutated Welcomes (and external ratchet trees) to Join
// for a client whose KeyPackage a generated group added: no input may
// panic, and an accepted Welcome yields a usable group.
func FuzzJoin(f *testing.F) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	aliceSig, _ := GenerateSignatureKey(cs)
	alice, err := NewGroup(cs, []byte("fuzz"), []byte("alice"), aliceSig)
	if err != nil {
		f.Fatal(err)
	}
	bobSig, _ := GenerateSignatureKey(cs)
	kp, keys, err := NewKeyPackage(cs, []byte("bob"), bobSig)
	if err != nil {
		f.Fatal(err)
	}
	p, err := alice.Commit(CommitOptions{Add: [][]byte{kp}})
	if err != nil {
		f.Fatal(err)
	}
	tree, err := p.next.tree.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.Welcome, tree)
	f.Add(p.Welcome, []byte(nil))
	f.Fuzz(func(t *testing.T, welcome, tree []byte) {
		g, err := Join(welcome, kp, keys, &JoinOptions{RatchetTree: tree})
		if err == nil {
			if _, err := g.Seal([]byte("x")); err != nil {
				t.Fatalf("joined group cannot seal: %v", err)
			}
		}
	})
}

// FuzzJoinVectors is FuzzJoin seeded from a passive-client vector. Inputs
// are large; run with a short -fuzzminimizetime.
func FuzzJoinVectors(f *testing.F) {
	var vs []passiveClientVector
	vectortest.Load(f, "passive-client-welcome.json", &vs)
	var v *passiveClientVector
	for i := range vs {
		if vs[i].CipherSuite == uint16(X25519_AES128GCM_SHA256_Ed25519) && vs[i].RatchetTree != nil {
			v = &vs[i]
			break
		}
	}
	if v == nil {
		f.Fatal("no suite-1 passive-client-welcome case with an external ratchet tree to seed from")
	}
	f.Add([]byte(v.Welcome), []byte(v.RatchetTree))
	keys := PrivateKeys{Init: v.InitPriv, Encryption: v.EncryptionPriv, Signature: v.SignaturePriv}
	f.Fuzz(func(t *testing.T, welcome, tree []byte) {
		g, err := Join(welcome, v.KeyPackage, keys, &JoinOptions{RatchetTree: tree})
		if err == nil && g.Epoch() != 0 && len(g.Members()) == 0 {
			t.Fatal("joined a group without members")
		}
	})
}
