package mls

import (
	"errors"
	"testing"
	"time"

	"sotto/mls/internal/vectortest"
)

func TestCommitRejectsDuplicateMembers(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	g, err := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	if err != nil {
		t.Fatal(err)
	}
	bob := newClient(t, cs, "bob")
	if _, err := g.Commit(CommitOptions{Add: [][]byte{bob.kp, bob.kp}}); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("same key package twice: got %v", err)
	}
	// A second KeyPackage reusing Alice's signature key is the same client.
	kp, _, err := NewKeyPackage(cs, []byte("alice again"), sig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Commit(CommitOptions{Add: [][]byte{kp}}); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("existing member's signature key: got %v", err)
	}
	if _, err := g.Commit(CommitOptions{Remove: []uint32{0}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("self remove: got %v", err)
	}
	if _, err := g.Commit(CommitOptions{Remove: []uint32{5}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("remove of a blank leaf: got %v", err)
	}
}

func TestLeafPolicy(t *testing.T) {
	s, _ := X25519_AES128GCM_SHA256_Ed25519.suite()
	sig, _ := GenerateSignatureKey(s.id)
	l, err := newLeafNode(s, []byte("a"), make([]byte, 32), sig, testTime, nil)
	if err != nil {
		t.Fatal(err)
	}
	none := &requiredCapabilities{}
	if err := validateLeafPolicy(s, l, none); err != nil {
		t.Fatal(err)
	}
	if err := validateLeafPolicy(s, l, &requiredCapabilities{credentials: []uint16{credentialX509}}); err == nil {
		t.Error("missing required credential accepted")
	}
	if err := validateLeafPolicy(s, l, &requiredCapabilities{extensions: []uint16{extRatchetTree}}); err != nil {
		t.Errorf("default extension required: %v", err)
	}
	l.extensions = []extension{{typ: 0xff00}}
	if err := validateLeafPolicy(s, l, none); err == nil {
		t.Error("unlisted leaf extension accepted")
	}
	l.extensions = nil
	l.capabilities.cipherSuites = []uint16{2}
	if err := validateLeafPolicy(s, l, none); err == nil {
		t.Error("leaf without the group's suite accepted")
	}
}

func TestTreeValidationRejectsTampering(t *testing.T) {
	var vs []treeValidationVector
	vectortest.Load(t, "tree-validation.json", &vs)
	var c vectortest.Counter
	checked := 0
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			tree, err := parseRatchetTree(s, v.Tree)
			if err != nil {
				t.Fatal(err)
			}
			for x := 1; x < len(tree.nodes); x += 2 {
				if p := tree.parentAt(uint32(x)); p != nil {
					p.encryptionKey = append([]byte{}, p.encryptionKey...)
					p.encryptionKey[0] ^= 1
					tree.touched(uint32(x))
					if err := tree.verifyParentHashes(); !errors.Is(err, ErrInvalidTree) {
						t.Fatalf("tampered parent key accepted: %v", err)
					}
					checked++
					return
				}
			}
			t.Log("no parent node to tamper with")
		})
	}
	c.Summary(t, "tree-validation.json (tampered)")
	if checked == 0 {
		t.Fatal("no tree with a parent node")
	}
}

var testTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestKeyPackageLifetime(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	g, err := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	if err != nil {
		t.Fatal(err)
	}
	bob := newClient(t, cs, "bob")
	g.SetClock(func() time.Time { return time.Now().Add(keyPackageLifetime + time.Hour) })
	if _, err := g.Commit(CommitOptions{Add: [][]byte{bob.kp}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("expired key package: got %v", err)
	}
	if _, err := g.ProposeAdd(bob.kp); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("expired key package proposal: got %v", err)
	}
	g.SetClock(nil)
	if _, err := g.Commit(CommitOptions{Add: [][]byte{bob.kp}}); err != nil {
		t.Fatalf("valid key package: %v", err)
	}
}

func TestMaxGenerationJump(t *testing.T) {
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
	bg.SetMaxGenerationJump(2)
	var last []byte
	for range 4 {
		if last, err = ag.Seal([]byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bg.Handle(last); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("generation 3 with bound 2: got %v", err)
	}
}

func TestReInitClosesGroup(t *testing.T) {
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
	prop, err := bg.propose(proposal{typ: proposalReInit, reInit: reInit{groupID: []byte("g2"), version: 1, cipherSuite: uint16(cs)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Handle(prop); err != nil {
		t.Fatal(err)
	}
	// A ReInit cannot share a commit with other proposals.
	carol := newClient(t, cs, "carol")
	if _, err := ag.Commit(CommitOptions{Add: [][]byte{carol.kp}}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("reinit with an add: %v", err)
	}
	p, err = ag.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ag.Apply(p)
	r, err := bg.Handle(p.Commit)
	if err != nil || !r.ReInit {
		t.Fatalf("handle reinit commit: %+v %v", r, err)
	}
	for _, g := range []*Group{ag, bg} {
		if _, err := g.Seal([]byte("x")); !errors.Is(err, ErrReInit) {
			t.Fatalf("seal after reinit: %v", err)
		}
	}
}

// The incremental check after a commit catches what the full one does.
func TestValidateChangedMatchesFull(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	g, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	var kps [][]byte
	for _, name := range []string{"b", "c", "d", "e"} {
		kps = append(kps, newClient(t, cs, name).kp)
	}
	p, err := g.Commit(CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	g.Apply(p)
	st := g.st
	_, freshPub, _ := st.s.generateHPKE()
	cases := []struct {
		name   string
		change func(tr *ratchetTree)
		bad    bool
	}{
		{"new leaf key", func(tr *ratchetTree) {
			l := *tr.leaf(1)
			l.encryptionKey = freshPub
			tr.setNode(2, &node{leaf: &l})
		}, false},
		{"duplicate signature key", func(tr *ratchetTree) {
			l := *tr.leaf(1)
			l.signatureKey = tr.leaf(2).signatureKey
			tr.setNode(2, &node{leaf: &l})
		}, true},
		{"duplicate encryption key", func(tr *ratchetTree) {
			tr.setNode(5, &node{parent: &parentNode{encryptionKey: tr.leaf(3).encryptionKey}})
		}, true},
		{"unsupported credential type", func(tr *ratchetTree) {
			l := *tr.leaf(1)
			l.credential = credential{typ: credentialX509, certificates: [][]byte{{1}}}
			l.capabilities.credentials = []uint16{credentialBasic, credentialX509}
			tr.setNode(2, &node{leaf: &l})
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := st.tree.clone()
			c.change(tr)
			inc, full := tr.validateChanged(&st.ctx), tr.validatePolicy(&st.ctx)
			if (inc != nil) != c.bad || (full != nil) != c.bad {
				t.Errorf("incremental %v, full %v, want failure %v", inc, full, c.bad)
			}
		})
	}
}
