package mls

import (
	"bytes"
	"errors"
	"testing"
)

// countingValidator records how often each identity is validated and
// rejects one identity.
type countingValidator struct {
	calls    map[string]int
	replaced map[string]int // calls that named the credential replaced
	keys     map[string][]byte
	reject   string
}

func newCounter(reject string) *countingValidator {
	return &countingValidator{calls: map[string]int{}, replaced: map[string]int{}, keys: map[string][]byte{}, reject: reject}
}

func (v *countingValidator) ValidateCredential(old *Credential, c Credential, key []byte) error {
	id := string(c.Identity)
	v.calls[id]++
	v.keys[id] = key
	if old != nil {
		if old.Type != c.Type || !bytes.Equal(old.Identity, c.Identity) {
			return errors.New("validator shown another member's old credential")
		}
		v.replaced[id]++
	}
	if c.Type != CredentialBasic || len(key) == 0 {
		return errors.New("unexpected credential")
	}
	if id == v.reject {
		return errors.New("identity not allowed")
	}
	return nil
}

func wantCalls(t *testing.T, who string, v *countingValidator, want map[string]int) {
	t.Helper()
	for id, n := range want {
		if v.calls[id] != n {
			t.Fatalf("%s: validator called %d times for %s, want %d (all: %v)", who, v.calls[id], id, n, v.calls)
		}
	}
	if len(v.calls) != len(want) {
		t.Fatalf("%s: validator calls %v, want %v", who, v.calls, want)
	}
}

func stateBytes(t *testing.T, g *Group) []byte {
	t.Helper()
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The credential hook runs, with the leaf's signature key, for every new
// or changed leaf: the creator's, each leaf of a joined tree, added
// KeyPackages, Update proposals, commit UpdatePaths and external commits.
func TestCredentialValidatorCalledForEveryLeaf(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	va, vb, vc := newCounter(""), newCounter(""), newCounter("")
	aliceSig, _ := GenerateSignatureKey(cs)
	ag, err := NewGroupWithOptions(cs, []byte("g"), []byte("alice"), aliceSig, &GroupOptions{CredentialValidator: va})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "alice after create", va, map[string]int{"alice": 1})
	alice := &client{name: "alice", g: ag}
	bob, carol := newClient(t, cs, "bob"), newClient(t, cs, "carol")
	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp, carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	wantCalls(t, "alice after adding", va, map[string]int{"alice": 1, "bob": 1, "carol": 1})
	if bob.g, err = Join(p.Welcome, bob.kp, bob.keys, &JoinOptions{CredentialValidator: vb}); err != nil {
		t.Fatal(err)
	}
	if carol.g, err = Join(p.Welcome, carol.kp, carol.keys, &JoinOptions{CredentialValidator: vc}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "bob after join", vb, map[string]int{"alice": 1, "bob": 1, "carol": 1})
	if m := bob.g.Members(); !bytes.Equal(vb.keys["alice"], m[0].SignatureKey) {
		t.Fatal("validator did not get alice's signature key")
	}

	// carol proposes an update; bob commits it with his own path.
	u, err := carol.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob} {
		if _, err := c.g.Handle(u); err != nil {
			t.Fatal(err)
		}
	}
	p, err = bob.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bob.g.Apply(p)
	wantCalls(t, "bob after committing carol's update", vb, map[string]int{"alice": 1, "bob": 1, "carol": 2})
	if vb.replaced["carol"] != 1 {
		t.Fatalf("bob's validator saw carol's old credential %d times for her update, want 1", vb.replaced["carol"])
	}
	for _, c := range []*client{alice, carol} {
		if _, err := c.g.Handle(p.Commit); err != nil {
			t.Fatal(err)
		}
	}
	wantCalls(t, "alice after bob's commit", va, map[string]int{"alice": 1, "bob": 2, "carol": 2})
	wantCalls(t, "carol after bob's commit", vc, map[string]int{"alice": 1, "bob": 2, "carol": 2})
	// The update and bob's UpdatePath replaced leaves: the hook was
	// shown what they replaced; the joins and adds were new leaves.
	if va.replaced["bob"] != 1 || va.replaced["carol"] != 1 || va.replaced["alice"] != 0 {
		t.Fatalf("alice's validator saw old credentials %v, want bob and carol once", va.replaced)
	}

	// dave joins by external commit.
	gi, err := alice.g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	vd := newCounter("")
	daveSig, _ := GenerateSignatureKey(cs)
	dg, ext, err := JoinExternalWithOptions(gi, []byte("dave"), daveSig, &ExternalJoinOptions{CredentialValidator: vd})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "dave after external join", vd, map[string]int{"alice": 1, "bob": 1, "carol": 1, "dave": 1})
	for _, c := range []*client{alice, bob, carol} {
		if _, err := c.g.Handle(ext); err != nil {
			t.Fatal(err)
		}
	}
	wantCalls(t, "alice after dave's external commit", va, map[string]int{"alice": 1, "bob": 2, "carol": 2, "dave": 1})
	sameEpoch(t, alice, bob, carol, &client{name: "dave", g: dg})
}

// A rejected credential aborts the operation and leaves the state as it
// was, wherever it is met.
func TestCredentialValidatorRejects(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	if _, err := NewGroupWithOptions(cs, []byte("g"), []byte("mallory"), sig, &GroupOptions{CredentialValidator: newCounter("mallory")}); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("create with a rejected own credential: %v", err)
	}
	ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	alice := &client{name: "alice", g: ag}
	bob, mallory := newClient(t, cs, "bob"), newClient(t, cs, "mallory")

	// Adding mallory is refused by a committer that rejects her, and so
	// is proposing it.
	alice.g.SetCredentialValidator(newCounter("mallory"))
	before := stateBytes(t, alice.g)
	if _, err := alice.g.ProposeAdd(mallory.kp); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("proposing to add a rejected credential: %v", err)
	}
	if _, err := alice.g.Commit(CommitOptions{Add: [][]byte{mallory.kp}}); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("commit adding a rejected credential: %v", err)
	}
	if !bytes.Equal(before, stateBytes(t, alice.g)) {
		t.Fatal("refused commit changed the state")
	}
	alice.g.SetCredentialValidator(nil)
	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp, mallory.kp}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.Apply(p)
	// A joiner that rejects any leaf of the tree does not join.
	if _, err := Join(p.Welcome, bob.kp, bob.keys, &JoinOptions{CredentialValidator: newCounter("mallory")}); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("join into a tree with a rejected leaf: %v", err)
	}
	if bob.g, err = Join(p.Welcome, bob.kp, bob.keys, nil); err != nil {
		t.Fatal(err)
	}

	// A receiver rejects a commit whose path leaf carries a rejected
	// credential, and stays in its epoch.
	mallory.g, err = Join(p.Welcome, mallory.kp, mallory.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := mallory.g.Commit(CommitOptions{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	bob.g.SetCredentialValidator(newCounter("mallory"))
	before = stateBytes(t, bob.g)
	if _, err := bob.g.Handle(pm.Commit); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("commit from a rejected credential: %v", err)
	}
	if !bytes.Equal(before, stateBytes(t, bob.g)) {
		t.Fatal("rejected commit changed the state")
	}
	bob.g.SetCredentialValidator(nil)
	if _, err := bob.g.Handle(pm.Commit); err != nil {
		t.Fatalf("the same commit once accepted: %v", err)
	}

	// An external joiner whose credential is rejected is refused.
	gi, _ := bob.g.GroupInfo()
	eveSig, _ := GenerateSignatureKey(cs)
	if _, _, err := JoinExternalWithOptions(gi, []byte("eve"), eveSig, &ExternalJoinOptions{CredentialValidator: newCounter("eve")}); !errors.Is(err, ErrCredentialRejected) {
		t.Fatalf("external join with a rejected own credential: %v", err)
	}
}

// A member that commits with an UpdatePath, or proposes an Update, under
// another identity (alice turning into mallory) is refused by every other
// member, with or without a validator, and the refusal leaves the state
// exactly as it was.
func TestIdentityChangeRefused(t *testing.T) {
	for _, private := range []bool{false, true} {
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
		// alice's client is hostile: its own leaf now names mallory.
		alice.g.st.tree.leaf(alice.g.LeafIndex()).credential.identity = []byte("mallory")
		evil, err := alice.g.Commit(CommitOptions{Private: private})
		if err != nil {
			t.Fatal(err)
		}
		carol.g.SetCredentialValidator(newCounter(""))
		for _, c := range []*client{bob, carol} {
			before := stateBytes(t, c.g)
			if _, err := c.g.Handle(evil.Commit); !errors.Is(err, ErrIdentityChanged) {
				t.Fatalf("private=%v: %s accepted alice's commit turning her into mallory: %v", private, c.name, err)
			}
			if !bytes.Equal(before, stateBytes(t, c.g)) {
				t.Fatalf("private=%v: %s: refused commit changed the state", private, c.name)
			}
			if got := string(c.g.Members()[alice.g.LeafIndex()].Identity); got != "alice" {
				t.Fatalf("leaf %d is %q", alice.g.LeafIndex(), got)
			}
		}
		u, err := alice.g.ProposeUpdate()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.g.Handle(u); !errors.Is(err, ErrIdentityChanged) {
			t.Fatalf("private=%v: update turning alice into mallory: %v", private, err)
		}
		// bob's honest commit still works for everyone but alice's
		// hostile client, which holds a tree the others do not.
		ok, err := bob.g.Commit(CommitOptions{})
		if err != nil {
			t.Fatalf("bob commits after refusing the update: %v", err)
		}
		bob.g.Apply(ok)
		if _, err := carol.g.Handle(ok.Commit); err != nil {
			t.Fatal(err)
		}
		sameEpoch(t, bob, carol)
	}
}

// A basic identity or a credential type may not change; an X.509 chain
// renewal is left to the validator, which sees both chains.
func TestSameIdentity(t *testing.T) {
	basic := func(id string) *credential { return &credential{typ: credentialBasic, identity: []byte(id)} }
	x509 := func(c string) *credential { return &credential{typ: credentialX509, certificates: [][]byte{[]byte(c)}} }
	for _, tc := range []struct {
		old, next *credential
		ok        bool
	}{
		{basic("alice"), basic("alice"), true},
		{basic("alice"), basic("mallory"), false},
		{basic("alice"), x509("alice"), false},
		{x509("a1"), x509("a2"), true},
	} {
		if err := sameIdentity(tc.old, tc.next); (err == nil) != tc.ok {
			t.Errorf("%v -> %v: %v", tc.old, tc.next, err)
		}
	}
}

// InspectKeyPackage returns a KeyPackage's credential once its signature
// holds, and refuses one altered after signing.
func TestInspectKeyPackage(t *testing.T) {
	bob := newClient(t, X25519_AES128GCM_SHA256_Ed25519, "bob")
	info, err := InspectKeyPackage(bob.kp)
	if err != nil || string(info.Credential.Identity) != "bob" || info.CipherSuite != X25519_AES128GCM_SHA256_Ed25519 {
		t.Fatalf("%+v %v", info, err)
	}
	bad := bytes.Clone(bob.kp)
	i := bytes.Index(bad, []byte("bob"))
	bad[i] = 'B'
	if _, err := InspectKeyPackage(bad); err == nil {
		t.Fatal("altered key package inspected")
	}
	if _, err := InspectKeyPackage([]byte{0, 1}); err == nil {
		t.Fatal("truncated message inspected")
	}
}
