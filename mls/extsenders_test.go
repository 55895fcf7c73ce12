package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// externalSigner is a party outside the group with a signature key.
type externalSigner struct {
	sig []byte
	es  ExternalSender
}

func newExternalSigner(t *testing.T, cs CipherSuite, name string) *externalSigner {
	t.Helper()
	sig, err := GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewExternalSender(cs, []byte(name), sig)
	if err != nil {
		t.Fatal(err)
	}
	return &externalSigner{sig: sig, es: es}
}

// addExternalSigner is the runner's addExternalSigner: the ExternalSender
// travels encoded, alice proposes it, and alice commits for everyone.
func addExternalSigner(t *testing.T, ds *externalSigner, alice *client, others ...*client) {
	t.Helper()
	enc, err := ds.es.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	es, err := UnmarshalExternalSender(enc)
	if err != nil {
		t.Fatal(err)
	}
	prop, err := alice.g.ProposeExternalSender(es)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		if _, err := o.g.Handle(prop); err != nil {
			t.Fatalf("%s: external signer proposal: %v", o.name, err)
		}
	}
	commitAll(t, alice, CommitOptions{}, others...)
}

// proposer builds an ExternalProposer from alice's current GroupInfo.
func proposer(t *testing.T, ds *externalSigner, member *client) *ExternalProposer {
	t.Helper()
	gi, err := member.g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewExternalProposer(gi, nil, ds.sig)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// handleAll feeds a proposal to every client.
func handleAll(t *testing.T, prop []byte, cs ...*client) {
	t.Helper()
	for _, c := range cs {
		r, err := c.g.Handle(prop)
		if err != nil || r.Kind != ProposalContent || r.SenderType != SenderExternal {
			t.Fatalf("%s: external proposal: %+v %v", c.name, r, err)
		}
	}
}

// Every proposal type an external sender may send (RFC 9420 §12.1.8),
// from two external senders added one after the other, as the runner's
// external_proposals scripts do.
func TestExternalSenderProposals(t *testing.T) {
	alice, bob, carol := twoMembers(t)
	cs := alice.g.CipherSuite()
	ds1, ds2 := newExternalSigner(t, cs, "ds1"), newExternalSigner(t, cs, "ds2")
	addExternalSigner(t, ds1, alice, bob)
	addExternalSigner(t, ds2, bob, alice)
	senders, err := alice.g.ExternalSenders()
	if err != nil || len(senders) != 2 || string(senders[1].Identity) != "ds2" {
		t.Fatalf("external senders %+v %v", senders, err)
	}
	if _, err := alice.g.ProposeExternalSender(ds1.es); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("adding a listed sender again: %v", err)
	}

	// Add.
	p1 := proposer(t, ds1, alice)
	if p1.SenderIndex() != 0 || proposer(t, ds2, bob).SenderIndex() != 1 {
		t.Fatal("wrong sender indices")
	}
	add, err := p1.Add(carol.kp)
	if err != nil {
		t.Fatal(err)
	}
	handleAll(t, add, alice, bob)
	p, err := alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	bob.g.Handle(p.Commit)
	if carol.g, err = Join(p.Welcome, carol.kp, carol.keys, nil); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, alice, bob, carol)

	// Two external PSKs from one sender, committed together.
	for _, c := range []*client{alice, bob, carol} {
		c.g.AddExternalPSK([]byte("psk1"), []byte("one"))
		c.g.AddExternalPSK([]byte("psk2"), []byte("two"))
	}
	p2 := proposer(t, ds2, carol)
	for _, id := range []string{"psk1", "psk2"} {
		prop, err := p2.PSK([]byte(id))
		if err != nil {
			t.Fatal(err)
		}
		handleAll(t, prop, alice, bob, carol)
	}
	commitAll(t, bob, CommitOptions{}, alice, carol)
	sameEpoch(t, alice, bob, carol)

	// A resumption PSK of the previous epoch.
	p1 = proposer(t, ds1, bob)
	prop, err := p1.ResumptionPSK(p1.Epoch() - 1)
	if err != nil {
		t.Fatal(err)
	}
	handleAll(t, prop, alice, bob, carol)
	commitAll(t, alice, CommitOptions{}, bob, carol)
	sameEpoch(t, alice, bob, carol)

	// Group context extensions (keeping the external senders).
	exts := append(alice.g.Extensions(), Extension{Type: extRequiredCaps, Data: []byte{0, 0, 0}})
	prop, err = proposer(t, ds2, alice).GroupContextExtensions(exts)
	if err != nil {
		t.Fatal(err)
	}
	handleAll(t, prop, alice, bob, carol)
	commitAll(t, carol, CommitOptions{}, alice, bob)
	if len(bob.g.Extensions()) != 2 {
		t.Fatalf("extensions after the external proposal: %+v", bob.g.Extensions())
	}

	// Remove, found by identity.
	p1 = proposer(t, ds1, alice)
	var leaf uint32
	for _, m := range p1.Members() {
		if string(m.Identity) == "bob" {
			leaf = m.Index
		}
	}
	rm, err := p1.Remove(leaf)
	if err != nil {
		t.Fatal(err)
	}
	handleAll(t, rm, alice, bob, carol)
	p, err = alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	carol.g.Handle(p.Commit)
	if r, err := bob.g.Handle(p.Commit); err != nil || !r.Removed {
		t.Fatalf("bob after the external remove: %+v %v", r, err)
	}
	sameEpoch(t, alice, carol)

	// ReInit, then completed by alice.
	next := X25519_CHACHA20POLY1305_SHA256_Ed25519
	ri, err := proposer(t, ds2, carol).ReInit([]byte("g2"), next, nil)
	if err != nil {
		t.Fatal(err)
	}
	handleAll(t, ri, alice, carol)
	p, err = alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	if r, err := carol.g.Handle(p.Commit); err != nil || !r.ReInit {
		t.Fatalf("carol: external reinit commit: %+v %v", r, err)
	}
	nc := newClient(t, next, "carol")
	asig, _ := GenerateSignatureKey(next)
	ng, pc, err := alice.g.ReInit([]byte("alice"), asig, [][]byte{nc.kp})
	if err != nil {
		t.Fatal(err)
	}
	ng.Apply(pc)
	if nc.g, err = Join(pc.Welcome, nc.kp, nc.keys, &JoinOptions{ReInitFrom: carol.g}); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, &client{name: "alice", g: ng}, nc)
}

// External proposals that must be refused on receipt: an unknown sender
// index, a sender signing with another key, tampered signatures,
// forbidden proposal and content types, a stale epoch; and GroupInfos
// an ExternalProposer must refuse.
func TestExternalSenderRejections(t *testing.T) {
	alice, bob, carol := twoMembers(t)
	cs := alice.g.CipherSuite()
	ds, outsider := newExternalSigner(t, cs, "ds"), newExternalSigner(t, cs, "outsider")
	addExternalSigner(t, ds, alice, bob)
	gi, err := alice.g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExternalProposer(gi, nil, outsider.sig); !errors.Is(err, ErrNotExternalSender) {
		t.Fatalf("proposer with an unlisted key: %v", err)
	}
	tampered := bytes.Clone(gi)
	tampered[len(tampered)-1] ^= 1
	if _, err := NewExternalProposer(tampered, nil, ds.sig); err == nil {
		t.Fatal("group info with a tampered signature accepted")
	}
	p := proposer(t, ds, alice)
	before := mustState(t, bob.g)

	reject := func(name string, msg []byte, want error) {
		t.Helper()
		if _, err := bob.g.Handle(msg); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	// Unknown sender index.
	p.index = 7
	msg, _ := p.Remove(alice.g.LeafIndex())
	reject("unknown sender index", msg, ErrInvalidMessage)
	p.index = 0
	// Signed with a key that is not the listed one.
	forged := *p
	forged.sigPriv = outsider.sig
	msg, _ = forged.Remove(alice.g.LeafIndex())
	reject("wrong signer", msg, ErrInvalidSignature)
	// Tampered signature and tampered content.
	msg, _ = p.Remove(alice.g.LeafIndex())
	bad := bytes.Clone(msg)
	bad[len(bad)-1] ^= 1
	reject("tampered signature", bad, ErrInvalidSignature)
	add, _ := p.Add(carol.kp)
	bad = bytes.Clone(add)
	bad[40] ^= 1
	if _, err := bob.g.Handle(bad); err == nil {
		t.Error("tampered external add accepted")
	}
	// Forbidden proposal types.
	leaf := *alice.g.st.tree.leaf(0)
	leaf.source = sourceUpdate
	for name, pr := range map[string]proposal{
		"update":        {typ: proposalUpdate, leafNode: leaf},
		"external init": {typ: proposalExternalInit, kemOutput: []byte{1, 2, 3}},
	} {
		msg, err := p.sign(pr)
		if err != nil {
			t.Fatal(err)
		}
		reject(name, msg, ErrInvalidMessage)
	}
	// A commit from an external sender.
	ac := &authenticatedContent{wireFormat: wireFormatPublicMessage, content: framedContent{
		groupID: alice.g.GroupID(), epoch: alice.g.Epoch(), sender: sender{typ: senderExternal},
		authenticatedData: []byte{}, contentType: contentCommit,
	}}
	if err := ac.sign(p.s, ds.sig, nil); err != nil {
		t.Fatal(err)
	}
	ac.auth.confirmationTag = make([]byte, p.s.hashLen())
	pm, err := p.s.protectPublic(ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err = marshal(&mlsMessage{version: protocolVersion10, wireFormat: wireFormatPublicMessage, public: pm})
	if err != nil {
		t.Fatal(err)
	}
	reject("external commit content", msg, ErrInvalidMessage)
	// Invalid contents of allowed types.
	msg, _ = p.sign(proposal{typ: proposalRemove, removed: 9})
	reject("remove of a blank leaf", msg, ErrInvalidMessage)
	msg, _ = p.PSK([]byte("unknown"))
	reject("unknown external psk", msg, ErrInvalidMessage)
	msg, _ = p.ResumptionPSK(0)
	reject("resumption psk of an epoch bob never had", msg, ErrInvalidMessage)
	msg, _ = p.sign(proposal{typ: proposalReInit, reInit: reInit{groupID: []byte("x"), version: 0, cipherSuite: uint16(cs), extensions: []extension{}}})
	reject("reinit lowering the version", msg, ErrInvalidMessage)
	msg, _ = p.sign(proposal{typ: proposalReInit, reInit: reInit{groupID: []byte("x"), version: protocolVersion10, cipherSuite: 4, extensions: []extension{}}})
	reject("reinit to an unsupported suite", msg, ErrUnsupportedCipherSuite)
	if !bytes.Equal(before, mustState(t, bob.g)) {
		t.Fatal("rejected external proposals changed bob's state")
	}
	// A proposal for the next epoch is stale once... and one for a
	// past epoch is refused.
	msg, _ = p.Remove(alice.g.LeafIndex())
	commitAll(t, alice, CommitOptions{}, bob)
	reject("proposal of a past epoch", msg, ErrInvalidMessage)
	// A future epoch too.
	if _, err := p.ResumptionPSK(p.Epoch() + 1); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("resumption psk of a future epoch: %v", err)
	}
}

// The application's credential check runs on external senders when the
// external_senders extension is set or changed.
func TestExternalSenderCredentialCheck(t *testing.T) {
	alice, bob, _ := twoMembers(t)
	cs := alice.g.CipherSuite()
	evil := newExternalSigner(t, cs, "evil")
	refuse := CredentialValidatorFunc(func(_ *Credential, c Credential, _ []byte) error {
		if string(c.Identity) == "evil" {
			return fmt.Errorf("not trusted")
		}
		return nil
	})
	alice.g.SetCredentialValidator(refuse)
	if _, err := alice.g.ProposeExternalSender(evil.es); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("proposing a refused external sender: %v", err)
	}
	exts, err := alice.g.ExtensionsWithExternalSender(evil.es)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Commit(CommitOptions{Extensions: exts}); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("committing a refused external sender: %v", err)
	}
	// Bob refuses what alice accepts: the proposal and the commit.
	alice.g.SetCredentialValidator(nil)
	bob.g.SetCredentialValidator(refuse)
	prop, err := alice.g.ProposeExternalSender(evil.es)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Handle(prop); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("bob handling a refused external sender proposal: %v", err)
	}
	alice.g.st.proposals, alice.g.st.proposalRefs = map[string]cachedProposal{}, nil
	p, err := alice.g.Commit(CommitOptions{Extensions: exts})
	if err != nil {
		t.Fatal(err)
	}
	before := mustState(t, bob.g)
	if _, err := bob.g.Handle(p.Commit); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("bob handling a commit with a refused external sender: %v", err)
	}
	if !bytes.Equal(before, mustState(t, bob.g)) {
		t.Fatal("rejected commit changed bob's state")
	}
	// ExternalSender encodings: only basic credentials, no trailing bytes.
	enc, _ := evil.es.MarshalBinary()
	if _, err := UnmarshalExternalSender(append(enc, 0)); err == nil {
		t.Fatal("external sender with trailing bytes accepted")
	}
	x509 := externalSender{signatureKey: evil.es.SignatureKey, credential: credential{typ: credentialX509, certificates: [][]byte{{1}}}}
	b, _ := marshal(&x509)
	if _, err := UnmarshalExternalSender(b); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("x509 external sender: %v", err)
	}
}
