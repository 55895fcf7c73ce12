package mls

import (
	"bytes"
	"errors"
	"testing"
)

var supportedSuites = []CipherSuite{
	X25519_AES128GCM_SHA256_Ed25519, P256_AES128GCM_SHA256_P256, X25519_CHACHA20POLY1305_SHA256_Ed25519,
	P521_AES256GCM_SHA512_P521, P384_AES256GCM_SHA384_P384,
}

type client struct {
	name string
	kp   []byte
	keys PrivateKeys
	g    *Group
}

func newClient(t testing.TB, cs CipherSuite, name string) *client {
	t.Helper()
	sig, err := GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	kp, keys, err := NewKeyPackage(cs, []byte(name), sig)
	if err != nil {
		t.Fatal(err)
	}
	return &client{name: name, kp: kp, keys: keys}
}

func sameEpoch(t *testing.T, cs ...*client) {
	t.Helper()
	for _, c := range cs[1:] {
		if c.g.Epoch() != cs[0].g.Epoch() || !bytes.Equal(c.g.EpochAuthenticator(), cs[0].g.EpochAuthenticator()) {
			t.Fatalf("%s and %s disagree on epoch %d", cs[0].name, c.name, cs[0].g.Epoch())
		}
		a, _ := c.g.Export("test", []byte("ctx"), 32)
		b, _ := cs[0].g.Export("test", []byte("ctx"), 32)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s and %s export different secrets", cs[0].name, c.name)
		}
	}
}

func TestGroupLifecycle(t *testing.T) {
	for _, cs := range supportedSuites {
		t.Run(cs.String(), func(t *testing.T) { testGroupLifecycle(t, cs) })
	}
}

func testGroupLifecycle(t *testing.T, cs CipherSuite) {
	aliceSig, err := GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := NewGroup(cs, []byte("group-1"), []byte("alice"), aliceSig)
	if err != nil {
		t.Fatal(err)
	}
	alice := &client{name: "alice", g: ag}
	bob, carol := newClient(t, cs, "bob"), newClient(t, cs, "carol")

	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp, carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Welcome == nil {
		t.Fatal("no welcome for added members")
	}
	if err := alice.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{bob, carol} {
		if c.g, err = Join(p.Welcome, c.kp, c.keys, nil); err != nil {
			t.Fatalf("%s join: %v", c.name, err)
		}
	}
	sameEpoch(t, alice, bob, carol)
	if n := len(alice.g.Members()); n != 3 {
		t.Fatalf("%d members, want 3", n)
	}

	msg, err := alice.g.Seal([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{bob, carol} {
		r, err := c.g.Handle(msg)
		if err != nil || r.Kind != ApplicationContent || string(r.Data) != "hello" || r.Sender != 0 {
			t.Fatalf("%s: %+v %v", c.name, r, err)
		}
	}
	if _, err := bob.g.Handle(msg); err == nil {
		t.Fatal("replayed application message accepted")
	}

	// Bob removes Carol. A tampered copy is rejected without changing
	// Alice's state.
	p, err = bob.g.Commit(CommitOptions{Remove: []uint32{carol.g.LeafIndex()}})
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), p.Commit...)
	bad[len(bad)-5] ^= 1
	before := alice.g.Epoch()
	if _, err := alice.g.Handle(bad); err == nil || alice.g.Epoch() != before {
		t.Fatalf("tampered commit: err %v, epoch %d", err, alice.g.Epoch())
	}
	if err := bob.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	if r, err := alice.g.Handle(p.Commit); err != nil || r.Kind != CommitContent {
		t.Fatalf("alice handle commit: %v", err)
	}
	r, err := carol.g.Handle(p.Commit)
	if err != nil || !r.Removed {
		t.Fatalf("carol: removed=%v err=%v", r != nil && r.Removed, err)
	}
	if _, err := carol.g.Seal([]byte("x")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed member sealed: %v", err)
	}
	sameEpoch(t, alice, bob)

	// An empty commit (a pure update) from Alice.
	p, err = alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if err := alice.g.Apply(p); err != nil {
		t.Fatal(err)
	}
	if err := alice.g.Apply(p); err == nil {
		t.Fatal("pending commit applied twice")
	}
	sameEpoch(t, alice, bob)
	msg, err = bob.g.Seal([]byte("still here"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := alice.g.Handle(msg); err != nil || string(r.Data) != "still here" {
		t.Fatalf("alice: %v", err)
	}
}

func TestUnsupportedSuites(t *testing.T) {
	for _, cs := range []CipherSuite{X448_AES256GCM_SHA512_Ed448, X448_CHACHA20POLY1305_SHA512_Ed448, 0, 0x0a0a} {
		if cs.Supported() {
			t.Errorf("%v reported supported", cs)
		}
		if _, err := GenerateSignatureKey(cs); !errors.Is(err, ErrUnsupportedCipherSuite) {
			t.Errorf("%v: got %v", cs, err)
		}
		if _, err := NewGroup(cs, []byte("g"), []byte("a"), make([]byte, 32)); !errors.Is(err, ErrUnsupportedCipherSuite) {
			t.Errorf("%v: got %v", cs, err)
		}
	}
}

// Proposals sent on their own are committed by reference, including an
// Update whose private key only its proposer holds, in a private commit.
func TestProposalsByReference(t *testing.T) {
	for _, cs := range supportedSuites {
		t.Run(cs.String(), func(t *testing.T) { testProposalsByReference(t, cs) })
	}
}

func testProposalsByReference(t *testing.T, cs CipherSuite) {
	sig, _ := GenerateSignatureKey(cs)
	ag, err := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	if err != nil {
		t.Fatal(err)
	}
	alice := &client{name: "alice", g: ag}
	bob, carol, dave := newClient(t, cs, "bob"), newClient(t, cs, "carol"), newClient(t, cs, "dave")
	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp, carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	for _, c := range []*client{bob, carol} {
		if c.g, err = Join(p.Welcome, c.kp, c.keys, nil); err != nil {
			t.Fatal(err)
		}
	}
	upd, err := bob.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	add, err := carol.g.ProposeAdd(dave.kp)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, carol} {
		if r, err := c.g.Handle(upd); err != nil || r.Kind != ProposalContent {
			t.Fatalf("%s: update proposal: %v", c.name, err)
		}
	}
	for _, c := range []*client{alice, bob} {
		if _, err := c.g.Handle(add); err != nil {
			t.Fatalf("%s: add proposal: %v", c.name, err)
		}
	}
	p, err = alice.g.Commit(CommitOptions{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Welcome == nil {
		t.Fatal("no welcome for the proposed add")
	}
	alice.g.Apply(p)
	for _, c := range []*client{bob, carol} {
		if _, err := c.g.Handle(p.Commit); err != nil {
			t.Fatalf("%s: commit: %v", c.name, err)
		}
	}
	if dave.g, err = Join(p.Welcome, dave.kp, dave.keys, nil); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, alice, bob, carol, dave)

	// Bob's new leaf key must work: Carol's next path is encrypted to it.
	p, err = carol.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	carol.g.Apply(p)
	for _, c := range []*client{alice, bob, dave} {
		if _, err := c.g.Handle(p.Commit); err != nil {
			t.Fatalf("%s: commit: %v", c.name, err)
		}
	}
	sameEpoch(t, alice, bob, carol, dave)
}

// A new client joins from a published GroupInfo with an external commit.
func TestExternalJoin(t *testing.T) {
	for _, cs := range supportedSuites {
		t.Run(cs.String(), func(t *testing.T) {
			sig, _ := GenerateSignatureKey(cs)
			ag, err := NewGroup(cs, []byte("g"), []byte("alice"), sig)
			if err != nil {
				t.Fatal(err)
			}
			alice := &client{name: "alice", g: ag}
			bob := newClient(t, cs, "bob")
			p, _ := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp}})
			alice.g.Apply(p)
			if bob.g, err = Join(p.Welcome, bob.kp, bob.keys, nil); err != nil {
				t.Fatal(err)
			}
			gi, err := bob.g.GroupInfo()
			if err != nil {
				t.Fatal(err)
			}
			eveSig, _ := GenerateSignatureKey(cs)
			eg, commitMsg, err := JoinExternal(gi, []byte("eve"), eveSig, nil)
			if err != nil {
				t.Fatal(err)
			}
			eve := &client{name: "eve", g: eg}
			for _, c := range []*client{alice, bob} {
				if _, err := c.g.Handle(commitMsg); err != nil {
					t.Fatalf("%s: external commit: %v", c.name, err)
				}
			}
			sameEpoch(t, alice, bob, eve)
			msg, err := eve.g.Seal([]byte("hi from eve"))
			if err != nil {
				t.Fatal(err)
			}
			if r, err := alice.g.Handle(msg); err != nil || string(r.Data) != "hi from eve" {
				t.Fatalf("alice: %v", err)
			}
		})
	}
}

// An external PSK injected by a commit must be known to every member and
// to joiners; without it, processing fails and the state is unchanged.
func TestExternalPSK(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	alice := &client{name: "alice", g: ag}
	bob, carol := newClient(t, cs, "bob"), newClient(t, cs, "carol")
	p, _ := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	alice.g.Apply(p)
	var err error
	if bob.g, err = Join(p.Welcome, bob.kp, bob.keys, nil); err != nil {
		t.Fatal(err)
	}
	id, psk := []byte("psk-1"), []byte("a shared secret")
	if _, err := alice.g.Commit(CommitOptions{PSKs: [][]byte{id}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("unregistered psk: %v", err)
	}
	alice.g.AddExternalPSK(id, psk)
	p, err = alice.g.Commit(CommitOptions{Add: [][]byte{carol.kp}, PSKs: [][]byte{id}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	epoch := bob.g.Epoch()
	if _, err := bob.g.Handle(p.Commit); err == nil || bob.g.Epoch() != epoch {
		t.Fatalf("commit with an unknown psk: %v", err)
	}
	bob.g.AddExternalPSK(id, psk)
	if _, err := bob.g.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if _, err := Join(p.Welcome, carol.kp, carol.keys, nil); err == nil {
		t.Fatal("joined without the psk")
	}
	if carol.g, err = Join(p.Welcome, carol.kp, carol.keys, &JoinOptions{ExternalPSKs: map[string][]byte{string(id): psk}}); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, alice, bob, carol)
}

func TestSealOptions(t *testing.T) {
	cs := X25519_CHACHA20POLY1305_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	bob := newClient(t, cs, "bob")
	p, _ := ag.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	ag.Apply(p)
	bg, err := Join(p.Welcome, bob.kp, bob.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	short, err := ag.SealWith([]byte("a"), SealOptions{PaddingBlock: 256, AuthenticatedData: []byte("hdr")})
	if err != nil {
		t.Fatal(err)
	}
	long, err := ag.SealWith(bytes.Repeat([]byte("b"), 100), SealOptions{PaddingBlock: 256, AuthenticatedData: []byte("hdr")})
	if err != nil {
		t.Fatal(err)
	}
	if len(short) != len(long) {
		t.Errorf("padded messages differ in length: %d vs %d", len(short), len(long))
	}
	for _, m := range [][]byte{short, long} {
		r, err := bg.Handle(m)
		if err != nil || string(r.AuthenticatedData) != "hdr" {
			t.Fatalf("handle: %v", err)
		}
	}
	// Authenticated data is bound to the ciphertext.
	tampered, _ := ag.SealWith([]byte("c"), SealOptions{AuthenticatedData: []byte("hdr")})
	i := bytes.Index(tampered, []byte("hdr"))
	tampered[i] = 'H'
	if _, err := bg.Handle(tampered); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered authenticated data: %v", err)
	}
}

func TestGroupContextExtensions(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	bob := newClient(t, cs, "bob")
	p, _ := ag.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	ag.Apply(p)
	bg, err := Join(p.Welcome, bob.kp, bob.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	appID := Extension{Type: 1, Data: []byte{4, 't', 'e', 'a', 'm'}}
	p, err = ag.Commit(CommitOptions{Extensions: []Extension{appID}})
	if err != nil {
		t.Fatal(err)
	}
	ag.Apply(p)
	if _, err := bg.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if got := bg.Extensions(); len(got) != 1 || got[0].Type != 1 || !bytes.Equal(got[0].Data, appID.Data) {
		t.Fatalf("extensions: %+v", got)
	}
	// A non-default extension no member supports is refused.
	if _, err := ag.Commit(CommitOptions{Extensions: []Extension{{Type: 0xff01}}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("unsupported extension: %v", err)
	}
	// Requiring a credential type nobody supports is refused.
	if _, err := ag.Commit(CommitOptions{Extensions: []Extension{{Type: 3, Data: []byte{0, 0, 2, 0, 2}}}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("unsupported required capability: %v", err)
	}
	// Clearing works, and a joiner sees the extensions through the Welcome.
	p, err = ag.Commit(CommitOptions{Extensions: []Extension{}})
	if err != nil {
		t.Fatal(err)
	}
	ag.Apply(p)
	if _, err := bg.Handle(p.Commit); err != nil || len(bg.Extensions()) != 0 {
		t.Fatalf("clear: %v %v", err, bg.Extensions())
	}
}

// Application messages sent just before a commit still decrypt after it,
// within the past-epoch window, and not beyond it.
func TestLateApplicationMessages(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	bob := newClient(t, cs, "bob")
	p, _ := ag.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	ag.Apply(p)
	bg, err := Join(p.Welcome, bob.kp, bob.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	late1, _ := ag.Seal([]byte("sent in epoch 1"))
	tooLate, _ := ag.Seal([]byte("also epoch 1"))
	p, _ = bg.Commit(CommitOptions{})
	bg.Apply(p)
	if _, err := ag.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	late2, _ := bg.Seal([]byte("sent in epoch 2"))
	// Bob moved to epoch 2 and still reads epoch 1.
	r, err := bg.Handle(late1)
	if err != nil || r.Epoch != 1 || string(r.Data) != "sent in epoch 1" {
		t.Fatalf("late message: %+v %v", r, err)
	}
	if _, err := bg.Handle(late1); err == nil {
		t.Fatal("late message replayed")
	}
	p, _ = ag.Commit(CommitOptions{})
	ag.Apply(p)
	if _, err := bg.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	// Alice is at epoch 3: epoch 2 is kept, epoch 1 is gone.
	if r, err := ag.Handle(late2); err != nil || string(r.Data) != "sent in epoch 2" {
		t.Fatalf("epoch-2 message at epoch 3: %v", err)
	}
	if _, err := bg.Handle(tooLate); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("epoch-1 message at epoch 3 with one past epoch kept: %v", err)
	}
	ag.SetPastEpochs(-1)
	late3, _ := bg.Seal([]byte("epoch 3"))
	p, _ = bg.Commit(CommitOptions{})
	bg.Apply(p)
	if _, err := ag.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Handle(late3); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("past epochs disabled: %v", err)
	}
}

func TestWelcomeWithoutTreeAndPSKProposal(t *testing.T) {
	cs := P384_AES256GCM_SHA384_P384
	sig, _ := GenerateSignatureKey(cs)
	ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	bob, carol := newClient(t, cs, "bob"), newClient(t, cs, "carol")
	p, err := ag.Commit(CommitOptions{Add: [][]byte{bob.kp}, OmitRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	ag.Apply(p)
	if _, err := Join(p.Welcome, bob.kp, bob.keys, nil); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("join without any tree: %v", err)
	}
	tree, _ := ag.RatchetTree()
	bg, err := Join(p.Welcome, bob.kp, bob.keys, &JoinOptions{RatchetTree: tree})
	if err != nil {
		t.Fatal(err)
	}
	id, psk := []byte("id"), []byte("psk")
	ag.AddExternalPSK(id, psk)
	bg.AddExternalPSK(id, psk)
	prop, err := bg.ProposePSK(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Handle(prop); err != nil {
		t.Fatal(err)
	}
	p, err = ag.Commit(CommitOptions{Add: [][]byte{carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	ag.Apply(p)
	if _, err := bg.Handle(p.Commit); err != nil {
		t.Fatal(err)
	}
	cg, err := Join(p.Welcome, carol.kp, carol.keys, &JoinOptions{ExternalPSKs: map[string][]byte{"id": psk}})
	if err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, &client{name: "alice", g: ag}, &client{name: "bob", g: bg}, &client{name: "carol", g: cg})
}
