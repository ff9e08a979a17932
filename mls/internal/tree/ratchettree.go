package tree

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Decode parses the body of a ratchet_tree extension (RFC 9420 §12.4.3.3)
// into a tree. Malformed bytes, a trailing blank node and a node of the
// wrong kind for its position all yield ErrMalformedTree. The tree is not
// validated; a joiner calls Validate next.
func Decode(suite *ciphersuite.Suite, data []byte) (*Tree, error) {
	var rt wire.RatchetTree
	if err := wire.Unmarshal(data, &rt); err != nil {
		return nil, fmt.Errorf("ratchet tree: %w: %w", ErrMalformedTree, err)
	}
	return Import(suite, rt)
}

// Import builds a tree from the decoded nodes of a ratchet_tree extension,
// padding it with blanks to a full tree (RFC 9420 §12.4.3.3). It checks the
// shape (non-empty, last node non-blank, leaves at even and parents at odd
// positions, at most 2^31 leaves) and that unmerged_leaves are strictly
// increasing indices of leaves inside the tree, so that nothing later can
// index outside it. Everything else is for Validate. The tree keeps the
// node values, which the caller must not modify afterwards.
func Import(suite *ciphersuite.Suite, nodes wire.RatchetTree) (*Tree, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("ratchet tree: no nodes: %w", ErrMalformedTree)
	}
	if nodes[len(nodes)-1] == nil {
		return nil, fmt.Errorf("ratchet tree: trailing blank node %d: %w", len(nodes)-1, ErrMalformedTree)
	}
	if uint64(len(nodes)) > 2*uint64(treemath.MaxLeafCount)-1 {
		return nil, fmt.Errorf("ratchet tree: %d nodes: %w", len(nodes), ErrMalformedTree)
	}
	n := 1
	for 2*n-1 < len(nodes) {
		n *= 2
	}
	t := &Tree{suite: suite, id: newTreeID(), creds: newCredStats()}
	t.resize(uint32(2*n - 1))
	t.n = uint32(n)
	for x, node := range nodes {
		if node == nil {
			continue
		}
		switch {
		case x%2 == 0 && node.NodeType == wire.NodeTypeLeaf && node.Leaf != nil:
			t.mut(NodeIndex(x)).leaf = node.Leaf
			t.creds.add(node.Leaf)
		case x%2 == 1 && node.NodeType == wire.NodeTypeParent && node.Parent != nil:
			if err := checkUnmerged(NodeIndex(x), node.Parent.UnmergedLeaves, uint32(n)); err != nil {
				return nil, fmt.Errorf("ratchet tree: %w", err)
			}
			t.mut(NodeIndex(x)).parent = node.Parent
		default:
			return nil, fmt.Errorf("ratchet tree: node %d of type %v: %w", x, node.NodeType, ErrMalformedTree)
		}
	}
	return t, nil
}

// checkUnmerged checks that an unmerged_leaves list is strictly increasing
// (RFC 9420 §7.1) and names leaves of the tree.
func checkUnmerged(x NodeIndex, list []uint32, leafCount uint32) error {
	for i, u := range list {
		if u >= leafCount {
			return fmt.Errorf("parent %d lists unmerged leaf %d of a %d-leaf tree: %w", x, u, leafCount, ErrUnmergedLeafInvalid)
		}
		if i > 0 && list[i-1] >= u {
			return fmt.Errorf("parent %d: unmerged leaves not strictly increasing at %d: %w", x, u, ErrUnmergedLeafInvalid)
		}
	}
	return nil
}

// Export returns the tree as the ratchet_tree extension carries it
// (RFC 9420 §12.4.3.3): nodes in array order, nil for blank nodes, with the
// trailing blank nodes left out. The node values are shared with the tree.
func (t *Tree) Export() wire.RatchetTree {
	last := -1
	for x := int(t.width()) - 1; x >= 0; x-- {
		if !t.IsBlank(NodeIndex(x)) {
			last = x
			break
		}
	}
	out := make(wire.RatchetTree, last+1)
	slab := make([]wire.Node, 0, last+1)
	for x := 0; x <= last; x++ {
		var node wire.Node
		s := t.at(NodeIndex(x))
		switch {
		case s.leaf != nil:
			node = wire.Node{NodeType: wire.NodeTypeLeaf, Leaf: s.leaf}
		case s.parent != nil:
			node = wire.Node{NodeType: wire.NodeTypeParent, Parent: s.parent}
		default:
			continue
		}
		slab = append(slab, node)
		out[x] = &slab[len(slab)-1]
	}
	return out
}

// Extension returns the ratchet_tree extension carrying the tree, for a
// GroupInfo (RFC 9420 §12.4.3.3).
func (t *Tree) Extension() (wire.Extension, error) {
	rt := t.Export()
	ext, err := wire.MakeExtension(&rt)
	if err != nil {
		return wire.Extension{}, fmt.Errorf("ratchet_tree extension: %w", err)
	}
	return ext, nil
}

// Encode returns the ratchet_tree extension body for the tree.
func (t *Tree) Encode() ([]byte, error) {
	rt := t.Export()
	return wire.Marshal(&rt)
}
