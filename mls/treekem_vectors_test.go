package mls

import (
	"bytes"
	"crypto/rand"
	"testing"

	"sotto/mls/internal/treemath"
	"sotto/mls/internal/vectortest"
)

type treeKEMVector struct {
	CipherSuite             uint16 `json:"cipher_suite"`
	GroupID                 hexb   `json:"group_id"`
	Epoch                   uint64 `json:"epoch"`
	ConfirmedTranscriptHash hexb   `json:"confirmed_transcript_hash"`
	RatchetTree             hexb   `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32 `json:"index"`
		EncryptionPriv hexb   `json:"encryption_priv"`
		SignaturePriv  hexb   `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32 `json:"node"`
			PathSecret hexb   `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32 `json:"sender"`
		UpdatePath    hexb   `json:"update_path"`
		PathSecrets   []hexb `json:"path_secrets"`
		CommitSecret  hexb   `json:"commit_secret"`
		TreeHashAfter hexb   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

func TestTreeKEMVectors(t *testing.T) {
	var vs []treeKEMVector
	vectortest.Load(t, "treekem.json", &vs)
	var c vectortest.Counter
	for vi := range vs {
		v := &vs[vi]
		c.Case(t, vectortest.Name(v.CipherSuite, vi), v.CipherSuite, func(t *testing.T) {
			testTreeKEM(t, suiteFor(t, v.CipherSuite), v)
		})
	}
	c.Summary(t, "treekem.json")
}

func testTreeKEM(t *testing.T, s *suite, v *treeKEMVector) {
	tree, err := parseRatchetTree(s, v.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.verifyParentHashes(); err != nil {
		t.Fatal(err)
	}
	if err := tree.verifyLeaves(v.GroupID); err != nil {
		t.Fatal(err)
	}
	privs := map[uint32]*treePrivate{}
	sigs := map[uint32][]byte{}
	for _, lp := range v.LeavesPrivate {
		key, err := s.hpkePrivate(lp.EncryptionPriv)
		if err != nil {
			t.Fatal(err)
		}
		p := newTreePrivate(lp.Index, key)
		for _, e := range lp.PathSecrets {
			pub, err := p.setPathSecret(s, e.Node, e.PathSecret)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pub, tree.publicKey(e.Node)) {
				t.Fatalf("leaf %d: path secret for node %d does not match the tree", lp.Index, e.Node)
			}
		}
		privs[lp.Index] = p
		sigs[lp.Index] = lp.SignaturePriv
	}
	ctxFor := func(tr *ratchetTree) []byte {
		h, err := tr.rootHash()
		if err != nil {
			t.Fatal(err)
		}
		b, err := marshal(&groupContext{version: protocolVersion10, cipherSuite: v.CipherSuite, groupID: v.GroupID,
			epoch: v.Epoch, treeHash: h, confirmedTranscriptHash: v.ConfirmedTranscriptHash})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, u := range v.UpdatePaths {
		var up updatePath
		if err := unmarshal(u.UpdatePath, &up); err != nil {
			t.Fatal(err)
		}
		after := tree.clone()
		if err := after.mergeUpdatePath(u.Sender, &up, v.GroupID); err != nil {
			t.Fatalf("sender %d: merge: %v", u.Sender, err)
		}
		h, err := after.rootHash()
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "tree_hash_after", h, u.TreeHashAfter)
		if err := after.verifyParentHashes(); err != nil {
			t.Errorf("sender %d: tree after merge: %v", u.Sender, err)
		}
		ctx := ctxFor(after)
		for to := uint32(0); to < after.size(); to++ {
			if to == u.Sender || after.leaf(to) == nil {
				continue
			}
			priv := privs[to].clone()
			commitSecret, err := after.decryptPath(priv, u.Sender, &up, ctx, nil)
			if err != nil {
				t.Fatalf("sender %d to %d: %v", u.Sender, to, err)
			}
			eq(t, "commit_secret", commitSecret, u.CommitSecret)
			lca := treemath.CommonAncestor(treemath.LeafNode(to), treemath.LeafNode(u.Sender))
			eq(t, "shared path secret", priv.pathSecrets[lca], u.PathSecrets[to])
		}

		// Our own UpdatePath from the same sender decrypts for everyone
		// and merges into a fresh copy to the same tree.
		enc := tree.clone()
		leafSecret := make([]byte, s.hashLen())
		rand.Read(leafSecret)
		_, secrets, commitSecret, err := enc.applyOwnPath(u.Sender, leafSecret, tree.leaf(u.Sender), sigs[u.Sender], v.GroupID)
		if err != nil {
			t.Fatal(err)
		}
		ctx = ctxFor(enc)
		own, err := enc.encryptPath(u.Sender, secrets, ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := marshal(own)
		if err != nil {
			t.Fatal(err)
		}
		var decoded updatePath
		if err := unmarshal(wire, &decoded); err != nil {
			t.Fatal(err)
		}
		recv := tree.clone()
		if err := recv.mergeUpdatePath(u.Sender, &decoded, v.GroupID); err != nil {
			t.Fatalf("merge own path: %v", err)
		}
		rh, _ := recv.rootHash()
		eh, _ := enc.rootHash()
		eq(t, "own path tree hash", rh, eh)
		for to := uint32(0); to < recv.size(); to++ {
			if to == u.Sender || recv.leaf(to) == nil {
				continue
			}
			got, err := recv.decryptPath(privs[to].clone(), u.Sender, &decoded, ctx, nil)
			if err != nil {
				t.Fatalf("own path to %d: %v", to, err)
			}
			eq(t, "own commit secret", got, commitSecret)
		}
	}
}
