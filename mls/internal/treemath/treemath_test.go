package treemath

import (
	"fmt"
	"testing"

	"sotto/mls/internal/vectortest"
)

type treeMathVector struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func check(t *testing.T, what string, i uint32, got uint32, ok bool, want *uint32) {
	t.Helper()
	if want == nil {
		if ok {
			t.Errorf("%s(%d) = %d, want none", what, i, got)
		}
		return
	}
	if !ok || got != *want {
		t.Errorf("%s(%d) = %d,%v want %d", what, i, got, ok, *want)
	}
}

func TestTreeMathVectors(t *testing.T) {
	var vs []treeMathVector
	vectortest.Load(t, "tree-math.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, fmt.Sprintf("case=%d/n_leaves=%d", i, v.NLeaves), 0, func(t *testing.T) {
			if NodeWidth(v.NLeaves) != v.NNodes || Root(v.NLeaves) != v.Root {
				t.Fatalf("n=%d: width %d root %d", v.NLeaves, NodeWidth(v.NLeaves), Root(v.NLeaves))
			}
			for i := uint32(0); i < v.NNodes; i++ {
				l, ok := Left(i)
				check(t, "left", i, l, ok, v.Left[i])
				r, ok := Right(i)
				check(t, "right", i, r, ok, v.Right[i])
				p, ok := Parent(i, v.NLeaves)
				check(t, "parent", i, p, ok, v.Parent[i])
				s, ok := Sibling(i, v.NLeaves)
				check(t, "sibling", i, s, ok, v.Sibling[i])
			}
		})
	}
	c.Summary(t, "tree-math.json")
}

func TestCommonAncestor(t *testing.T) {
	cases := [][3]uint32{{0, 2, 1}, {0, 4, 3}, {2, 4, 3}, {0, 14, 7}, {8, 10, 9}, {4, 6, 5}, {6, 8, 7}}
	for _, c := range cases {
		if got := CommonAncestor(c[0], c[1]); got != c[2] {
			t.Errorf("CommonAncestor(%d,%d)=%d want %d", c[0], c[1], got, c[2])
		}
	}
}

func TestEdgeCases(t *testing.T) {
	if Root(0) != 0 || NodeWidth(0) != 0 {
		t.Fatal("empty tree")
	}
	if _, ok := Parent(0, 0); ok {
		t.Fatal("parent in an empty tree")
	}
	if len(DirectPath(0, 1)) != 0 || len(Copath(0, 1)) != 0 {
		t.Fatal("one-leaf tree has no path")
	}
	// Nodes outside the tree have no relatives.
	if _, ok := Sibling(100, 4); ok {
		t.Fatal("sibling outside the tree")
	}
	if got := Copath(2, 4); len(got) != 2 || got[0] != 0 || got[1] != 5 {
		t.Fatalf("copath(2, 4) = %v", got)
	}
}
