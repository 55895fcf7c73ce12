package mls

import (
	"bytes"
	"testing"
)

// externalFixture is a two-member group with one external sender, its
// GroupInfo, and a proposal of every type the sender may send.
type externalFixture struct {
	state     []byte // bob's encoded state
	sig       []byte // the external sender's signature key
	groupInfo []byte
	senders   []byte // the external_senders extension value
	proposals [][]byte
}

func newExternalFixture(tb testing.TB) *externalFixture {
	tb.Helper()
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, err := GenerateSignatureKey(cs)
	if err != nil {
		tb.Fatal(err)
	}
	es, err := NewExternalSender(cs, []byte("ds"), sig)
	if err != nil {
		tb.Fatal(err)
	}
	asig, _ := GenerateSignatureKey(cs)
	alice, err := NewGroup(cs, []byte("fuzz"), []byte("alice"), asig)
	if err != nil {
		tb.Fatal(err)
	}
	bob, carol := newClient(tb, cs, "bob"), newClient(tb, cs, "carol")
	exts, err := alice.ExtensionsWithExternalSender(es)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := alice.Commit(CommitOptions{Add: [][]byte{bob.kp}, Extensions: exts})
	if err != nil {
		tb.Fatal(err)
	}
	alice.Apply(p)
	if bob.g, err = Join(p.Welcome, bob.kp, bob.keys, nil); err != nil {
		tb.Fatal(err)
	}
	bob.g.AddExternalPSK([]byte("psk"), []byte("value"))
	fx := &externalFixture{sig: sig, senders: exts[0].Data}
	if fx.groupInfo, err = alice.GroupInfo(); err != nil {
		tb.Fatal(err)
	}
	ep, err := NewExternalProposer(fx.groupInfo, nil, sig)
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range []func() ([]byte, error){
		func() ([]byte, error) { return ep.Add(carol.kp) },
		func() ([]byte, error) { return ep.Remove(1) },
		func() ([]byte, error) { return ep.PSK([]byte("psk")) },
		func() ([]byte, error) { return ep.ResumptionPSK(1) },
		func() ([]byte, error) { return ep.ReInit([]byte("next"), cs, nil) },
		func() ([]byte, error) { return ep.GroupContextExtensions(exts) },
	} {
		msg, err := f()
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := bob.g.Handle(msg); err != nil {
			tb.Fatalf("seed proposal refused: %v", err)
		}
		fx.proposals = append(fx.proposals, msg)
	}
	bob.g.st.proposals, bob.g.st.proposalRefs = map[string]cachedProposal{}, nil
	if fx.state, err = bob.g.MarshalBinary(); err != nil {
		tb.Fatal(err)
	}
	return fx
}

// FuzzExternalSenders decodes ExternalSender structs and external_senders
// extension values: no panic, and what decodes re-encodes identically.
func FuzzExternalSenders(f *testing.F) {
	fx := newExternalFixture(f)
	one, err := ExternalSender{SignatureKey: []byte{1, 2, 3}, Identity: []byte("x")}.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{fx.senders, one, {0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if es, err := UnmarshalExternalSender(in); err == nil {
			out, err := es.MarshalBinary()
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("external sender re-encodes differently: %v", err)
			}
		}
		if senders, err := parseExternalSenders(in); err == nil {
			out, err := encodeExternalSenders(senders)
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("external senders re-encode differently: %v", err)
			}
		}
	})
}

// FuzzExternalProposer reads GroupInfos as an external sender: no panic,
// and a proposer built from mutated bytes still signs proposals.
func FuzzExternalProposer(f *testing.F) {
	fx := newExternalFixture(f)
	f.Add(fx.groupInfo)
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := NewExternalProposer(in, nil, fx.sig)
		if err != nil {
			return
		}
		_, _ = p.Remove(0)
		_, _ = p.ResumptionPSK(p.Epoch())
		_ = p.Members()
	})
}

// FuzzHandleExternal feeds a member mutated external proposals: no
// panic, and a refused one leaves the state unchanged.
func FuzzHandleExternal(f *testing.F) {
	fx := newExternalFixture(f)
	for _, p := range fx.proposals {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		g, err := UnmarshalGroup(fx.state)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Handle(in); err != nil {
			after, merr := g.MarshalBinary()
			if merr != nil || !bytes.Equal(after, fx.state) {
				t.Fatalf("refused message changed the state: %v", err)
			}
		}
	})
}
