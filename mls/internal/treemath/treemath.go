// Package treemath is the index arithmetic of the array-based trees of
// RFC 9420 Appendix C: leaves sit at the even node indices (leaf i is node
// 2i), parents at the odd ones, and every relation between nodes is computed
// from their indices.
//
// RFC 9420 §4.1 and §7.7 keep the ratchet tree full (its leaf count is a
// power of two), and for such trees every function here gives exactly the
// Appendix C result. For other leaf counts the functions describe the
// left-balanced tree of that many leaves (the tree shape of the MLS drafts
// before RFC 9420): a node's parent is its nearest Appendix C ancestor that
// lies inside the tree, and a right child that would fall outside the tree is
// replaced by its leftmost descendant inside it. Callers that need the RFC 9420
// shape for a group whose member count is not a power of two round up with
// FullLeafCount first.
//
// Indices are uint32 and the largest tree has MaxLeafCount leaves
// (2^32 - 1 nodes). All arithmetic is done in 64 bits, so nothing wraps: an
// index or leaf count outside the representable range yields ok == false.
// Apart from the slices DirectPath and Copath return, nothing allocates.
package treemath

import "math/bits"

// LeafIndex numbers the leaves of a tree from 0 on the left (RFC 9420 §4.1.1).
type LeafIndex uint32

// NodeIndex is a position in the array representation of a tree
// (RFC 9420 Appendix C): leaf i is node 2i, parents are the odd indices.
type NodeIndex uint32

// LeafCount is the number of leaves of a tree.
type LeafCount uint32

// MaxLeafCount is the largest number of leaves whose tree still fits uint32
// node indices: 2^31 leaves take 2^32 - 1 nodes.
const MaxLeafCount LeafCount = 1 << 31

// width is the number of nodes of a tree of n leaves, in 64 bits; the caller
// has checked n <= MaxLeafCount.
func width(n LeafCount) uint64 {
	if n == 0 {
		return 0
	}
	return 2*uint64(n) - 1
}

// log2 is floor(log2(x)) for x > 0, and 0 for x == 0 (Appendix C log2).
func log2(x uint64) uint {
	if x == 0 {
		return 0
	}
	return uint(bits.Len64(x)) - 1
}

// NodeWidth is the number of nodes of a tree of n leaves, 2(n-1)+1, and 0
// for an empty tree (Appendix C node_width). ok is false when n exceeds
// MaxLeafCount.
func NodeWidth(n LeafCount) (w uint32, ok bool) {
	if n > MaxLeafCount {
		return 0, false
	}
	return uint32(width(n)), true
}

// LeafCountForWidth is the inverse of NodeWidth: the leaf count of a tree of
// w nodes. ok is false when w is even and non-zero, since no tree has that
// many nodes.
func LeafCountForWidth(w uint32) (n LeafCount, ok bool) {
	if w == 0 {
		return 0, true
	}
	if w%2 == 0 {
		return 0, false
	}
	return LeafCount((uint64(w) + 1) / 2), true
}

// FullLeafCount is the leaf count of the smallest full tree (a power of two,
// RFC 9420 §7.7) holding n leaves; 0 stays 0. ok is false when n exceeds
// MaxLeafCount.
func FullLeafCount(n LeafCount) (full LeafCount, ok bool) {
	if n > MaxLeafCount {
		return 0, false
	}
	if n <= 1 {
		return n, true
	}
	return LeafCount(uint64(1) << bits.Len64(uint64(n)-1)), true
}

// Root is the index of the root node of a tree of n leaves (Appendix C root).
// ok is false for an empty tree or when n exceeds MaxLeafCount.
func Root(n LeafCount) (NodeIndex, bool) {
	if n == 0 || n > MaxLeafCount {
		return 0, false
	}
	return NodeIndex(uint64(1)<<log2(width(n)) - 1), true
}

// Level is the height of node x above the leaves: 0 for a leaf, and for a
// parent one more than its children (Appendix C level). It is the number of
// trailing one bits of x.
func Level(x NodeIndex) uint {
	return uint(bits.TrailingZeros32(^uint32(x)))
}

// IsLeaf reports whether x is a leaf node (an even index).
func IsLeaf(x NodeIndex) bool { return x&1 == 0 }

// IsInTree reports whether node x exists in a tree of n leaves.
func IsInTree(x NodeIndex, n LeafCount) bool {
	return n <= MaxLeafCount && uint64(x) < width(n)
}

// LeafToNode is the node index of leaf l, 2l. ok is false when l is too
// large for any tree (l >= MaxLeafCount).
func LeafToNode(l LeafIndex) (NodeIndex, bool) {
	if LeafCount(l) >= MaxLeafCount {
		return 0, false
	}
	return NodeIndex(2 * uint64(l)), true
}

// NodeToLeaf is the leaf index of node x, x/2. ok is false when x is a parent.
func NodeToLeaf(x NodeIndex) (LeafIndex, bool) {
	if !IsLeaf(x) {
		return 0, false
	}
	return LeafIndex(x / 2), true
}

// leftStep is the left child in the unbounded tree; k = level(x) > 0.
func leftStep(x uint64, k uint) uint64 { return x ^ (1 << (k - 1)) }

// parentStep is the parent in the unbounded tree (Appendix C parent without
// the root check).
func parentStep(x uint64) uint64 {
	k := uint(bits.TrailingZeros64(^x))
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ (b << (k + 1))
}

// Left is the left child of parent node x in a tree of n leaves
// (Appendix C left). ok is false when x is a leaf or not in the tree.
func Left(x NodeIndex, n LeafCount) (NodeIndex, bool) {
	k := Level(x)
	if k == 0 || !IsInTree(x, n) {
		return 0, false
	}
	// The left child is smaller than x, so it is inside the tree too.
	return NodeIndex(leftStep(uint64(x), k)), true
}

// Right is the right child of parent node x in a tree of n leaves
// (Appendix C right). In a tree that is not full, a right child beyond the
// last node is replaced by its leftmost descendant inside the tree. ok is
// false when x is a leaf or not in the tree.
func Right(x NodeIndex, n LeafCount) (NodeIndex, bool) {
	k := Level(x)
	if k == 0 || !IsInTree(x, n) {
		return 0, false
	}
	w := width(n)
	r := uint64(x) ^ (3 << (k - 1))
	// Node x+1 is the leftmost leaf below r and x+1 < w (x is odd and
	// w is odd), so descending left ends inside the tree.
	for r >= w {
		r = leftStep(r, uint(bits.TrailingZeros64(^r)))
	}
	return NodeIndex(r), true
}

// Parent is the parent of node x in a tree of n leaves (Appendix C parent).
// ok is false for the root and for nodes not in the tree.
func Parent(x NodeIndex, n LeafCount) (NodeIndex, bool) {
	root, ok := Root(n)
	if !ok || !IsInTree(x, n) || x == root {
		return 0, false
	}
	return NodeIndex(parentInTree(uint64(x), width(n))), true
}

// parentInTree climbs from x to its nearest unbounded-tree ancestor below w.
// The root of the tree is such an ancestor, so the loop ends within 32 steps.
func parentInTree(x, w uint64) uint64 {
	p := parentStep(x)
	for p >= w {
		p = parentStep(p)
	}
	return p
}

// Sibling is the other child of x's parent in a tree of n leaves
// (Appendix C sibling). ok is false for the root and for nodes not in the tree.
func Sibling(x NodeIndex, n LeafCount) (NodeIndex, bool) {
	p, ok := Parent(x, n)
	if !ok {
		return 0, false
	}
	if x < p {
		return Right(p, n)
	}
	return Left(p, n)
}

// DirectPath is the direct path of node x in a tree of n leaves, ordered
// from x's parent up to the root; the root's direct path is empty
// (RFC 9420 §4.1.2, Appendix C direct_path). ok is false when x is not in
// the tree.
func DirectPath(x NodeIndex, n LeafCount) ([]NodeIndex, bool) {
	return AppendDirectPath(nil, x, n)
}

// AppendDirectPath appends the direct path of x to dst, as DirectPath, so a
// caller can reuse a buffer. On failure dst is returned unchanged.
func AppendDirectPath(dst []NodeIndex, x NodeIndex, n LeafCount) ([]NodeIndex, bool) {
	root, ok := Root(n)
	if !ok || !IsInTree(x, n) {
		return dst, false
	}
	if x == root {
		return dst, true
	}
	w := width(n)
	if dst == nil {
		dst = make([]NodeIndex, 0, Level(root)-Level(x))
	}
	for p := uint64(x); p != uint64(root); {
		p = parentInTree(p, w)
		dst = append(dst, NodeIndex(p))
	}
	return dst, true
}

// Copath is the copath of node x in a tree of n leaves: the sibling of x and
// of every node of its direct path except the root, ordered from x up
// (RFC 9420 §4.1.2, Appendix C copath). ok is false when x is not in the tree.
func Copath(x NodeIndex, n LeafCount) ([]NodeIndex, bool) {
	return AppendCopath(nil, x, n)
}

// AppendCopath appends the copath of x to dst, as Copath. On failure dst is
// returned unchanged.
func AppendCopath(dst []NodeIndex, x NodeIndex, n LeafCount) ([]NodeIndex, bool) {
	root, ok := Root(n)
	if !ok || !IsInTree(x, n) {
		return dst, false
	}
	if x == root {
		return dst, true
	}
	w := width(n)
	if dst == nil {
		dst = make([]NodeIndex, 0, Level(root)-Level(x))
	}
	for c := uint64(x); c != uint64(root); {
		p := parentInTree(c, w)
		var s NodeIndex
		if c < p {
			s, _ = Right(NodeIndex(p), n)
		} else {
			s, _ = Left(NodeIndex(p), n)
		}
		dst = append(dst, s)
		c = p
	}
	return dst, true
}

// CommonAncestor is the lowest node that is x or y or an ancestor of both, in
// a tree of n leaves (Appendix C common_ancestor_direct). ok is false when
// either node is not in the tree.
func CommonAncestor(x, y NodeIndex, n LeafCount) (NodeIndex, bool) {
	if !IsInTree(x, n) || !IsInTree(y, n) {
		return 0, false
	}
	a := commonAncestorUnbounded(uint64(x), uint64(y))
	// The ancestors of a node in the tree are exactly its unbounded-tree
	// ancestors inside the tree, so climb past any that lie outside.
	w := width(n)
	for a >= w {
		a = parentStep(a)
	}
	return NodeIndex(a), true
}

// commonAncestorUnbounded is the lowest common ancestor in the unbounded
// tree: the node whose index keeps the bits x and y share above their first
// difference.
func commonAncestorUnbounded(x, y uint64) uint64 {
	lx := uint(bits.TrailingZeros64(^x)) + 1
	ly := uint(bits.TrailingZeros64(^y)) + 1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	k := uint(bits.Len64(x ^ y))
	return (x>>k)<<k + (1 << (k - 1)) - 1
}

// LeafSpan is the range of leaves below node x (x itself for a leaf) in a
// tree of n leaves: count leaves starting at first. ok is false when x is
// not in the tree.
func LeafSpan(x NodeIndex, n LeafCount) (first LeafIndex, count LeafCount, ok bool) {
	if !IsInTree(x, n) {
		return 0, 0, false
	}
	k := Level(x)
	lo := (uint64(x) - (uint64(1)<<k - 1)) / 2
	hi := lo + uint64(1)<<k
	if hi > uint64(n) {
		hi = uint64(n)
	}
	return LeafIndex(lo), LeafCount(hi - lo), true
}
