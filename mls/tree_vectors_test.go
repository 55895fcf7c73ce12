package mls

import (
	"bytes"
	"slices"
	"testing"

	"sotto/mls/internal/vectortest"
)

type treeValidationVector struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        hexb       `json:"tree"`
	GroupID     hexb       `json:"group_id"`
	TreeHashes  []hexb     `json:"tree_hashes"`
	Resolutions [][]uint32 `json:"resolutions"`
}

func TestTreeValidationVectors(t *testing.T) {
	var vs []treeValidationVector
	vectortest.Load(t, "tree-validation.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			tree, err := parseRatchetTree(s, v.Tree)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if len(tree.nodes) != len(v.TreeHashes) {
				t.Fatalf("case %d: %d nodes, want %d", i, len(tree.nodes), len(v.TreeHashes))
			}
			for x := range tree.nodes {
				h, err := tree.treeHash(uint32(x), nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(h, v.TreeHashes[x]) {
					t.Errorf("case %d: tree hash of node %d differs", i, x)
				}
				if got := tree.resolution(uint32(x)); !slices.Equal(got, v.Resolutions[x]) && len(got)+len(v.Resolutions[x]) > 0 {
					t.Errorf("case %d: resolution of %d = %v, want %v", i, x, got, v.Resolutions[x])
				}
			}
			if err := tree.verifyParentHashes(); err != nil {
				t.Errorf("case %d: %v", i, err)
			}
			if err := tree.verifyLeaves(v.GroupID); err != nil {
				t.Errorf("case %d: %v", i, err)
			}
		})
	}
	c.Summary(t, "tree-validation.json")
}

type treeOperationsVector struct {
	CipherSuite    uint16 `json:"cipher_suite"`
	TreeBefore     hexb   `json:"tree_before"`
	Proposal       hexb   `json:"proposal"`
	ProposalSender uint32 `json:"proposal_sender"`
	TreeAfter      hexb   `json:"tree_after"`
	TreeHashBefore hexb   `json:"tree_hash_before"`
	TreeHashAfter  hexb   `json:"tree_hash_after"`
}

func TestTreeOperationsVectors(t *testing.T) {
	var vs []treeOperationsVector
	vectortest.Load(t, "tree-operations.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			tree, err := parseRatchetTree(s, v.TreeBefore)
			if err != nil {
				t.Fatal(err)
			}
			h, err := tree.rootHash()
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "tree_hash_before", h, v.TreeHashBefore)
			var p proposal
			if err := unmarshal(v.Proposal, &p); err != nil {
				t.Fatal(err)
			}
			switch p.typ {
			case proposalAdd:
				tree.addLeaf(&p.keyPackage.leafNode)
			case proposalUpdate:
				tree.updateLeaf(v.ProposalSender, &p.leafNode)
			case proposalRemove:
				tree.removeLeaf(p.removed)
			default:
				t.Fatalf("case %d: proposal type %d", i, p.typ)
			}
			after, err := tree.marshal()
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "tree_after", after, v.TreeAfter)
			h, err = tree.rootHash()
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "tree_hash_after", h, v.TreeHashAfter)
		})
	}
	c.Summary(t, "tree-operations.json")
}
