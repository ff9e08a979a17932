package tree

import (
	"fmt"
	"slices"
)

// Resolution is the resolution of node x (RFC 9420 §4.1.1): the non-blank
// nodes that together cover every non-blank node below x, each non-blank
// node followed by its unmerged leaves, left to right.
func (t *Tree) Resolution(x NodeIndex) ([]NodeIndex, error) {
	if !t.inTree(x) {
		return nil, fmt.Errorf("resolution of node %d of a %d-node tree: %w", x, t.width(), ErrIndexOutOfRange)
	}
	return t.appendResolution(nil, x), nil
}

// appendResolution appends the resolution of x to dst. Subtrees whose
// cached resolution is empty are skipped, so the cost is proportional to
// the result times the depth, not to the size of blank regions.
func (t *Tree) appendResolution(dst []NodeIndex, x NodeIndex) []NodeIndex {
	s := t.at(x)
	if s.leaf != nil {
		return append(dst, x)
	}
	if p := s.parent; p != nil {
		dst = append(dst, x)
		for _, u := range p.UnmergedLeaves {
			dst = append(dst, NodeIndex(2*u))
		}
		return dst
	}
	if x&1 == 0 || t.resolutionSize(x) == 0 {
		return dst
	}
	l, r := children(x)
	dst = t.appendResolution(dst, l)
	return t.appendResolution(dst, r)
}

// resolutionSize is the length of the resolution of x, cached per node.
func (t *Tree) resolutionSize(x NodeIndex) int {
	sl := t.at(x)
	if sl.res >= 0 {
		return int(sl.res)
	}
	var s int
	switch {
	case sl.leaf != nil:
		s = 1
	case sl.parent != nil:
		s = 1 + len(sl.parent.UnmergedLeaves)
	case x&1 == 1:
		l, r := children(x)
		s = t.resolutionSize(l) + t.resolutionSize(r)
	}
	t.mut(x).res = int32(s)
	return s
}

// FilteredDirectPath is the filtered direct path of leaf i
// (RFC 9420 §4.1.2): its direct path without the nodes whose child on the
// copath of i has an empty resolution, ordered from the leaf up.
func (t *Tree) FilteredDirectPath(i LeafIndex) ([]NodeIndex, error) {
	if err := t.checkLeaf(i); err != nil {
		return nil, fmt.Errorf("filtered direct path: %w", err)
	}
	path, _ := t.filteredDirectPath(i)
	return path, nil
}

// filteredDirectPath returns the filtered direct path of leaf i (which
// must be in the tree) and, for each of its nodes, the copath child.
func (t *Tree) filteredDirectPath(i LeafIndex) (path, copath []NodeIndex) {
	x := NodeIndex(2 * i)
	root := t.root()
	for x != root {
		p := t.parentOf(x)
		l, r := children(p)
		sib := l
		if sib == x {
			sib = r
		}
		if t.resolutionSize(sib) > 0 {
			path = append(path, p)
			copath = append(copath, sib)
		}
		x = p
	}
	return path, copath
}

// leafSet is a set of leaf indices, as the new members a commit adds and
// whose leaves an UpdatePath leaves out of every resolution
// (RFC 9420 §7.6).
type leafSet []uint32

func newLeafSet(leaves []LeafIndex) leafSet {
	s := make(leafSet, len(leaves))
	for i, l := range leaves {
		s[i] = uint32(l)
	}
	slices.Sort(s)
	return s
}

// has reports whether node x is a leaf in the set.
func (s leafSet) has(x NodeIndex) bool {
	if x&1 != 0 || len(s) == 0 {
		return false
	}
	_, ok := slices.BinarySearch(s, uint32(x>>1))
	return ok
}

// filter removes the set's leaves from a resolution in place.
func (s leafSet) filter(res []NodeIndex) []NodeIndex {
	if len(s) == 0 {
		return res
	}
	return slices.DeleteFunc(res, s.has)
}
