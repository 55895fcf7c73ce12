package mls

import (
	"bytes"
	"errors"
	"testing"
)

// A committed ReInit is completed: the successor group, in another
// cipher suite, is joined from a Welcome bound to the old group's last
// epoch by a reinit resumption PSK.
func TestReInitCompletion(t *testing.T) {
	// The successor's suite decides the reinit PSK nonce's length
	// (RFC 9420 §8.4): SHA-256 to SHA-256, and SHA-256 to SHA-512.
	for _, next := range []CipherSuite{X25519_CHACHA20POLY1305_SHA256_Ed25519, P521_AES256GCM_SHA512_P521} {
		t.Run(next.String(), func(t *testing.T) { testReInitCompletion(t, next) })
	}
}

func testReInitCompletion(t *testing.T, next CipherSuite) {
	alice, bob, carol := twoMembers(t)
	p, _ := alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}})
	alice.g.Apply(p)
	bob.g.Handle(p.Commit)
	var err error
	if carol.g, err = Join(p.Welcome, carol.kp, carol.keys, nil); err != nil {
		t.Fatal(err)
	}
	prop, err := bob.g.ProposeReInit([]byte("g-next"), next, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, carol} {
		if _, err := c.g.Handle(prop); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := alice.g.ReInit([]byte("alice"), nil, nil); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("reinit before the commit: %v", err)
	}
	p, err = alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	for _, c := range []*client{bob, carol} {
		if r, err := c.g.Handle(p.Commit); err != nil || !r.ReInit {
			t.Fatalf("%s: reinit commit: %+v %v", c.name, r, err)
		}
	}
	bob.g = restore(t, bob.g)
	params, ok := bob.g.ReInitParams()
	if !ok || params.CipherSuite != next || !bytes.Equal(params.GroupID, []byte("g-next")) {
		t.Fatalf("reinit params after restore: %+v %v", params, ok)
	}

	nb, nc := newClient(t, next, "bob"), newClient(t, next, "carol")
	aliceSig, _ := GenerateSignatureKey(next)
	ng, pc, err := alice.g.ReInit([]byte("alice"), aliceSig, [][]byte{nb.kp, nc.kp})
	if err != nil {
		t.Fatal(err)
	}
	if err := ng.Apply(pc); err != nil {
		t.Fatal(err)
	}
	if ng.CipherSuite() != next || !bytes.Equal(ng.GroupID(), []byte("g-next")) {
		t.Fatal("successor does not have the proposed parameters")
	}
	if _, err := Join(pc.Welcome, nb.kp, nb.keys, nil); err == nil {
		t.Fatal("joined a reinit successor without the old group")
	}
	other, _, _ := twoMembers(t)
	if _, err := Join(pc.Welcome, nb.kp, nb.keys, &JoinOptions{ReInitFrom: other.g}); err == nil {
		t.Fatal("joined a reinit successor with an unrelated group")
	}
	if nb.g, err = Join(pc.Welcome, nb.kp, nb.keys, &JoinOptions{ReInitFrom: bob.g}); err != nil {
		t.Fatal(err)
	}
	if nc.g, err = Join(pc.Welcome, nc.kp, nc.keys, &JoinOptions{ReInitFrom: carol.g}); err != nil {
		t.Fatal(err)
	}
	na := &client{name: "alice", g: ng}
	sameEpoch(t, na, nb, nc)
	msg, _ := nc.g.Seal([]byte("new group"))
	if r, err := nb.g.Handle(msg); err != nil || string(r.Data) != "new group" {
		t.Fatalf("message in the successor: %v", err)
	}
}

// Members refuse a commit injecting a reinit-usage resumption PSK: that
// usage belongs only in a ReInit successor's Welcome.
func TestCommitWithReInitPSKRefused(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	st := alice.g.st
	id := preSharedKeyID{pskType: pskResumption, usage: resumptionReInit, pskGroupID: st.ctx.groupID,
		pskEpoch: st.ctx.epoch, pskNonce: make([]byte, st.s.hashLen())}
	st.priorPSKs = map[string][]byte{resumptionKey(&id): st.resumption[st.ctx.epoch]}
	p, err := alice.g.Commit(CommitOptions{resumption: []preSharedKeyID{id}})
	if err != nil {
		t.Fatal(err)
	}
	before := stateBytes(t, bob.g)
	if _, err := bob.g.Handle(p.Commit); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit with a reinit psk: %v", err)
	}
	if !bytes.Equal(before, stateBytes(t, bob.g)) {
		t.Fatal("refused commit changed the state")
	}
}
