package mls

import (
	"errors"
	"testing"
)

// rejoin gives c a fresh KeyPackage with its identity and signature key.
func rejoin(t *testing.T, c *client) *client {
	t.Helper()
	kp, keys, err := NewKeyPackage(c.g.CipherSuite(), []byte(c.name), c.keys.Signature)
	if err != nil {
		t.Fatal(err)
	}
	return &client{name: c.name, kp: kp, keys: keys}
}

// A subgroup is branched from the group, with extensions, with and
// without the ratchet tree in the Welcome, as the runner's branch
// scripts do; the old group keeps working.
func TestBranch(t *testing.T) {
	for _, omit := range []bool{false, true} {
		alice, bob, carol := threeMembers(t)
		nb, nc := rejoin(t, bob), rejoin(t, carol)
		exts := []Extension{{Type: extRequiredCaps, Data: []byte{0, 0, 0}}, {Type: ExtensionExternalSenders, Data: []byte{0}}}
		ng, pc, err := alice.g.Branch([]byte("sub"), [][]byte{nb.kp, nc.kp}, BranchOptions{Extensions: exts, OmitRatchetTree: omit})
		if err != nil {
			t.Fatal(err)
		}
		if err := ng.Apply(pc); err != nil {
			t.Fatal(err)
		}
		var tree []byte
		if omit {
			if tree, err = ng.RatchetTree(); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct{ joiner, old *client }{{nb, bob}, {nc, carol}} {
			if c.joiner.g, err = Join(pc.Welcome, c.joiner.kp, c.joiner.keys, &JoinOptions{BranchFrom: c.old.g, RatchetTree: tree}); err != nil {
				t.Fatalf("%s joins the branch: %v", c.joiner.name, err)
			}
		}
		na := &client{name: "alice", g: ng}
		sameEpoch(t, na, nb, nc)
		if ng.Epoch() != 1 || string(ng.GroupID()) != "sub" || len(nb.g.Extensions()) != 2 {
			t.Fatalf("subgroup epoch %d id %q extensions %+v", ng.Epoch(), ng.GroupID(), nb.g.Extensions())
		}
		msg, _ := nb.g.Seal([]byte("in the branch"))
		if r, err := nc.g.Handle(msg); err != nil || string(r.Data) != "in the branch" {
			t.Fatalf("branch message: %v", err)
		}
		commitAll(t, alice, CommitOptions{}, bob, carol)
		sameEpoch(t, alice, bob, carol)
	}
}

// Branch Welcomes that must be refused, and branches that must not be
// created.
func TestBranchRejections(t *testing.T) {
	alice, bob, carol := threeMembers(t)
	dave := newClient(t, alice.g.CipherSuite(), "dave")
	if _, _, err := alice.g.Branch([]byte("sub"), [][]byte{dave.kp}, BranchOptions{}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("branch taking an outsider: %v", err)
	}
	if _, _, err := alice.g.Branch(alice.g.GroupID(), nil, BranchOptions{}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("branch keeping the group id: %v", err)
	}
	nb := rejoin(t, bob)
	_, pc, err := alice.g.Branch([]byte("sub"), [][]byte{nb.kp}, BranchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Without the old group the branch PSK is unknown; with another
	// group, or as a ReInit, it is refused.
	other, _, _ := twoMembers(t)
	for name, opts := range map[string]*JoinOptions{
		"no old group":      nil,
		"wrong old group":   {BranchFrom: other.g},
		"as a reinit":       {ReInitFrom: bob.g},
		"branch and reinit": {BranchFrom: bob.g, ReInitFrom: bob.g},
	} {
		if _, err := Join(pc.Welcome, nb.kp, nb.keys, opts); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A normal Welcome is not a branch.
	eve := newClient(t, alice.g.CipherSuite(), "eve")
	p, err := alice.g.Commit(CommitOptions{Add: [][]byte{eve.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Join(p.Welcome, eve.kp, eve.keys, &JoinOptions{BranchFrom: carol.g}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("normal welcome joined as a branch: %v", err)
	}
	p.Discard()

	// The checks of §11.3 and §12.4.3.1 on their own.
	opts := &JoinOptions{BranchFrom: bob.g}
	ctx := pc.next.ctx
	branchPSK := preSharedKeyID{pskType: pskResumption, usage: resumptionBranch, pskGroupID: bob.g.GroupID(), pskEpoch: bob.g.Epoch()}
	if err := opts.checkResumptionWelcome([]preSharedKeyID{branchPSK}, &ctx, pc.next.tree); err != nil {
		t.Fatalf("valid branch: %v", err)
	}
	if err := opts.checkResumptionWelcome([]preSharedKeyID{branchPSK, branchPSK}, &ctx, pc.next.tree); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("two branch psks: %v", err)
	}
	reinitPSK := branchPSK
	reinitPSK.usage = resumptionReInit
	if err := opts.checkResumptionWelcome([]preSharedKeyID{branchPSK, reinitPSK}, &ctx, pc.next.tree); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("branch and reinit psks: %v", err)
	}
	if err := (&JoinOptions{}).checkResumptionWelcome([]preSharedKeyID{branchPSK}, &ctx, pc.next.tree); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("branch psk without the old group: %v", err)
	}
	later := ctx
	later.epoch = 2
	if err := opts.checkResumptionWelcome([]preSharedKeyID{branchPSK}, &later, pc.next.tree); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("branch welcome at epoch 2: %v", err)
	}
	suite := ctx
	suite.cipherSuite = uint16(P256_AES128GCM_SHA256_P256)
	if err := opts.checkResumptionWelcome([]preSharedKeyID{branchPSK}, &suite, pc.next.tree); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("branch changing the suite: %v", err)
	}
	// Every subgroup leaf must be a member of the old group (by
	// credential): zed's group has neither alice nor bob.
	zsig, _ := GenerateSignatureKey(alice.g.CipherSuite())
	zed, err := NewGroup(alice.g.CipherSuite(), []byte("z"), []byte("zed"), zsig)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&JoinOptions{BranchFrom: zed}).checkResumptionWelcome([]preSharedKeyID{branchPSK}, &ctx, pc.next.tree); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("branch with leaves outside the old group: %v", err)
	}
	// Old epochs beyond the resumption window no longer resolve.
	bob.g.SetResumptionEpochs(-1)
	commitAll(t, alice, CommitOptions{}, bob, carol)
	if _, err := Join(pc.Welcome, nb.kp, nb.keys, &JoinOptions{BranchFrom: bob.g}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("branch of an epoch no longer kept: %v", err)
	}
}
