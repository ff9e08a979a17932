package treemath

import (
	"testing"

	"github.com/meshchat/meshchat/mls/internal/vectors"
)

// TestTreeMathVectors checks every relation of every node against
// tree-math.json (RFC 9420 Appendix C; full trees of 1 to 512 leaves).
func TestTreeMathVectors(t *testing.T) {
	var cases []struct {
		NLeaves LeafCount    `json:"n_leaves"`
		NNodes  uint32       `json:"n_nodes"`
		Root    NodeIndex    `json:"root"`
		Left    []*NodeIndex `json:"left"`
		Right   []*NodeIndex `json:"right"`
		Parent  []*NodeIndex `json:"parent"`
		Sibling []*NodeIndex `json:"sibling"`
	}
	vectors.Load(t, "tree-math.json", &cases)
	tl := vectors.NewTally(t, "tree-math.json")
	for i, c := range cases {
		tl.Run(t, vectors.Name("case", i, "n_leaves", c.NLeaves), func(t *testing.T) {
			w, ok := NodeWidth(c.NLeaves)
			if !ok || w != c.NNodes {
				t.Fatalf("NodeWidth(%d) = %d, %v; want %d", c.NLeaves, w, ok, c.NNodes)
			}
			if r, ok := Root(c.NLeaves); !ok || r != c.Root {
				t.Errorf("Root(%d) = %d, %v; want %d", c.NLeaves, r, ok, c.Root)
			}
			for _, rel := range []struct {
				name string
				want []*NodeIndex
				f    func(NodeIndex, LeafCount) (NodeIndex, bool)
			}{
				{"left", c.Left, Left},
				{"right", c.Right, Right},
				{"parent", c.Parent, Parent},
				{"sibling", c.Sibling, Sibling},
			} {
				if len(rel.want) != int(c.NNodes) {
					t.Fatalf("%s: vector has %d entries for %d nodes", rel.name, len(rel.want), c.NNodes)
				}
				for x, want := range rel.want {
					got, ok := rel.f(NodeIndex(x), c.NLeaves)
					switch {
					case want == nil && ok:
						t.Errorf("%s(%d) = %d, want none", rel.name, x, got)
					case want != nil && !ok:
						t.Errorf("%s(%d) = none, want %d", rel.name, x, *want)
					case want != nil && got != *want:
						t.Errorf("%s(%d) = %d, want %d", rel.name, x, got, *want)
					}
				}
				// The first node past the tree has no relations.
				if got, ok := rel.f(NodeIndex(c.NNodes), c.NLeaves); ok {
					t.Errorf("%s(%d) outside the tree = %d, want none", rel.name, c.NNodes, got)
				}
			}
		})
	}
}
