package treemath

import (
	"slices"
	"testing"
)

// leafCountsToCheck are the sizes whose every node the structural tests
// walk: all sizes up to 70 (every shape of right edge up to 128 leaves) and
// a few larger full and non-full sizes.
func leafCountsToCheck() []LeafCount {
	var ns []LeafCount
	for n := LeafCount(1); n <= 70; n++ {
		ns = append(ns, n)
	}
	return append(ns, 100, 127, 128, 129, 255, 256, 257, 1000, 1023, 1024, 1025, 10000)
}

// TestTreeStructure checks, for every node of many trees, that the
// relations describe one binary tree: walking Left/Right from the root visits
// every node once, Parent inverts Left and Right, levels grow towards the
// root, and each parent's leaves are its children's leaves together.
func TestTreeStructure(t *testing.T) {
	for _, n := range leafCountsToCheck() {
		w, _ := NodeWidth(n)
		root, ok := Root(n)
		if !ok {
			t.Fatalf("n=%d: no root", n)
		}
		if _, ok := Parent(root, n); ok {
			t.Errorf("n=%d: root %d has a parent", n, root)
		}
		if first, count, _ := LeafSpan(root, n); first != 0 || count != n {
			t.Errorf("n=%d: root spans leaves %d+%d", n, first, count)
		}
		seen := make([]bool, w)
		stack := []NodeIndex{root}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if !IsInTree(x, n) || seen[x] {
				t.Fatalf("n=%d: node %d reached twice or outside the tree", n, x)
			}
			seen[x] = true
			if IsLeaf(x) {
				if _, ok := Left(x, n); ok {
					t.Errorf("n=%d: leaf %d has a left child", n, x)
				}
				if _, ok := Right(x, n); ok {
					t.Errorf("n=%d: leaf %d has a right child", n, x)
				}
				continue
			}
			l, okl := Left(x, n)
			r, okr := Right(x, n)
			if !okl || !okr || !(l < x && x < r) {
				t.Fatalf("n=%d: children of %d: %d,%v %d,%v", n, x, l, okl, r, okr)
			}
			for _, c := range []NodeIndex{l, r} {
				if p, ok := Parent(c, n); !ok || p != x {
					t.Errorf("n=%d: Parent(%d) = %d,%v; want %d", n, c, p, ok, x)
				}
				if Level(c) >= Level(x) {
					t.Errorf("n=%d: child %d not below %d", n, c, x)
				}
			}
			if s, ok := Sibling(l, n); !ok || s != r {
				t.Errorf("n=%d: Sibling(%d) = %d,%v; want %d", n, l, s, ok, r)
			}
			if s, ok := Sibling(r, n); !ok || s != l {
				t.Errorf("n=%d: Sibling(%d) = %d,%v; want %d", n, r, s, ok, l)
			}
			pf, pc, _ := LeafSpan(x, n)
			lf, lc, _ := LeafSpan(l, n)
			rf, rc, _ := LeafSpan(r, n)
			if lf != pf || LeafCount(rf) != LeafCount(lf)+lc || lc+rc != pc || rc == 0 {
				t.Errorf("n=%d: spans of %d (%d+%d) and children (%d+%d, %d+%d) disagree", n, x, pf, pc, lf, lc, rf, rc)
			}
			stack = append(stack, l, r)
		}
		for x, ok := range seen {
			if !ok {
				t.Errorf("n=%d: node %d unreachable from the root", n, x)
			}
		}
	}
}

// TestPaths checks DirectPath and Copath against their definitions
// (RFC 9420 §4.1.2) on every node: the direct path climbs parent by parent
// and ends at the root, and the copath is the siblings of the node and of its
// direct path below the root.
func TestPaths(t *testing.T) {
	for _, n := range leafCountsToCheck() {
		w, _ := NodeWidth(n)
		root, _ := Root(n)
		for x := NodeIndex(0); uint32(x) < w; x++ {
			dp, ok := DirectPath(x, n)
			if !ok {
				t.Fatalf("n=%d: DirectPath(%d) failed", n, x)
			}
			cp, ok := Copath(x, n)
			if !ok {
				t.Fatalf("n=%d: Copath(%d) failed", n, x)
			}
			if x == root {
				if len(dp) != 0 || len(cp) != 0 {
					t.Errorf("n=%d: root paths %v %v", n, dp, cp)
				}
				continue
			}
			if dp[len(dp)-1] != root {
				t.Errorf("n=%d: DirectPath(%d) = %v does not end at root %d", n, x, dp, root)
			}
			if len(cp) != len(dp) {
				t.Fatalf("n=%d: copath %v and direct path %v of %d differ in length", n, cp, dp, x)
			}
			below := x
			for i, p := range dp {
				if want, _ := Parent(below, n); p != want {
					t.Errorf("n=%d: DirectPath(%d)[%d] = %d, want %d", n, x, i, p, want)
				}
				if want, _ := Sibling(below, n); cp[i] != want {
					t.Errorf("n=%d: Copath(%d)[%d] = %d, want %d", n, x, i, cp[i], want)
				}
				below = p
			}
			if got, _ := AppendDirectPath(make([]NodeIndex, 0, 64), x, n); !slices.Equal(got, dp) {
				t.Errorf("n=%d: AppendDirectPath(%d) = %v, want %v", n, x, got, dp)
			}
		}
	}
}

// TestCommonAncestor compares the direct computation with the definition
// (Appendix C common_ancestor_semantic): the lowest node among x, y and their
// direct paths that both share.
func TestCommonAncestor(t *testing.T) {
	for _, n := range leafCountsToCheck() {
		if n > 130 {
			continue // quadratic in the node count
		}
		w, _ := NodeWidth(n)
		for x := NodeIndex(0); uint32(x) < w; x++ {
			dx, _ := DirectPath(x, n)
			dx = append(dx, x)
			for y := NodeIndex(0); uint32(y) < w; y++ {
				dy, _ := DirectPath(y, n)
				dy = append(dy, y)
				want, found := NodeIndex(0), false
				for _, a := range dx {
					if slices.Contains(dy, a) && (!found || Level(a) < Level(want)) {
						want, found = a, true
					}
				}
				got, ok := CommonAncestor(x, y, n)
				if !ok || !found || got != want {
					t.Fatalf("n=%d: CommonAncestor(%d, %d) = %d,%v; want %d", n, x, y, got, ok, want)
				}
			}
		}
	}
}

// Appendix C as printed, for full trees: the reference the shortcuts must
// match.
func refRoot(n uint64) uint64 { return 1<<log2(2*(n-1)+1) - 1 }
func refParent(x uint64) uint64 {
	k := uint(0)
	for (x>>k)&1 == 1 {
		k++
	}
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ (b << (k + 1))
}

// TestFullTreesMatchAppendixC checks full trees beyond the vectors (up to
// 2^14 leaves) against the literal Appendix C code, and that FullLeafCount
// rounds up to them.
func TestFullTreesMatchAppendixC(t *testing.T) {
	for d := uint(0); d <= 14; d++ {
		n := LeafCount(1) << d
		if r, _ := Root(n); uint64(r) != refRoot(uint64(n)) {
			t.Errorf("Root(%d) = %d, want %d", n, r, refRoot(uint64(n)))
		}
		w, _ := NodeWidth(n)
		for x := NodeIndex(0); uint32(x) < w; x++ {
			if r, _ := Root(n); x == r {
				continue
			}
			if p, _ := Parent(x, n); uint64(p) != refParent(uint64(x)) {
				t.Fatalf("n=%d: Parent(%d) = %d, want %d", n, x, p, refParent(uint64(x)))
			}
		}
	}
	for _, c := range []struct{ in, want LeafCount }{
		{0, 0}, {1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {10000, 16384}, {1<<30 + 1, 1 << 31}, {MaxLeafCount, MaxLeafCount},
	} {
		if got, ok := FullLeafCount(c.in); !ok || got != c.want {
			t.Errorf("FullLeafCount(%d) = %d,%v; want %d", c.in, got, ok, c.want)
		}
	}
}

// TestLargestTrees exercises trees next to the 2^31-leaf limit, where a
// 32-bit computation of the parent or the width would wrap.
func TestLargestTrees(t *testing.T) {
	for _, n := range []LeafCount{MaxLeafCount, MaxLeafCount - 1, 1<<30 + 1, 1<<30 + 12345} {
		w, ok := NodeWidth(n)
		if !ok || uint64(w) != 2*uint64(n)-1 {
			t.Fatalf("NodeWidth(%d) = %d,%v", n, w, ok)
		}
		root, _ := Root(n)
		if root != 1<<31-1 {
			t.Errorf("Root(%d) = %d, want %d", n, root, 1<<31-1)
		}
		last := NodeIndex(w - 1)
		for _, x := range []NodeIndex{0, 1, last, last - 1, last - 2, root - 1, root + 1, root + 2} {
			if x == root || !IsInTree(x, n) {
				continue
			}
			dp, ok := DirectPath(x, n)
			if !ok || len(dp) == 0 || dp[len(dp)-1] != root {
				t.Fatalf("n=%d: DirectPath(%d) = %v,%v", n, x, dp, ok)
			}
			for i, p := range dp {
				if !IsInTree(p, n) || (i > 0 && Level(p) <= Level(dp[i-1])) {
					t.Fatalf("n=%d: DirectPath(%d) = %v leaves the tree or does not climb", n, x, dp)
				}
			}
			cp, _ := Copath(x, n)
			for _, s := range cp {
				if !IsInTree(s, n) {
					t.Fatalf("n=%d: Copath(%d) = %v leaves the tree", n, x, cp)
				}
			}
		}
		if r, ok := Right(root, n); !ok || !IsInTree(r, n) {
			t.Errorf("n=%d: Right(root) = %d,%v", n, r, ok)
		}
		if a, ok := CommonAncestor(0, last, n); !ok || a != root {
			t.Errorf("n=%d: CommonAncestor(0, last) = %d,%v", n, a, ok)
		}
		if _, ok := Parent(last+2, n); ok && n != MaxLeafCount {
			t.Errorf("n=%d: node past the end has a parent", n)
		}
	}
	if first, count, ok := LeafSpan(1<<31-1, MaxLeafCount); !ok || first != 0 || count != MaxLeafCount {
		t.Errorf("LeafSpan(root of max tree) = %d+%d,%v", first, count, ok)
	}
}

// TestOutOfRange checks that every function refuses inputs that have no
// answer instead of wrapping or panicking.
func TestOutOfRange(t *testing.T) {
	const tooMany = MaxLeafCount + 1
	if _, ok := NodeWidth(tooMany); ok {
		t.Error("NodeWidth accepts 2^31+1 leaves")
	}
	if _, ok := NodeWidth(^LeafCount(0)); ok {
		t.Error("NodeWidth accepts 2^32-1 leaves")
	}
	if _, ok := Root(0); ok {
		t.Error("empty tree has a root")
	}
	if _, ok := Root(tooMany); ok {
		t.Error("Root accepts 2^31+1 leaves")
	}
	if _, ok := FullLeafCount(tooMany); ok {
		t.Error("FullLeafCount accepts 2^31+1 leaves")
	}
	if _, ok := LeafToNode(LeafIndex(MaxLeafCount)); ok {
		t.Error("LeafToNode(2^31) succeeds")
	}
	if x, ok := LeafToNode(LeafIndex(MaxLeafCount - 1)); !ok || x != 1<<32-2 {
		t.Errorf("LeafToNode(2^31-1) = %d,%v", x, ok)
	}
	if _, ok := NodeToLeaf(7); ok {
		t.Error("NodeToLeaf(7) succeeds on a parent")
	}
	if l, ok := NodeToLeaf(8); !ok || l != 4 {
		t.Errorf("NodeToLeaf(8) = %d,%v", l, ok)
	}
	if _, ok := LeafCountForWidth(6); ok {
		t.Error("LeafCountForWidth(6) succeeds")
	}
	if n, ok := LeafCountForWidth(^uint32(0)); !ok || n != MaxLeafCount {
		t.Errorf("LeafCountForWidth(2^32-1) = %d,%v", n, ok)
	}
	if Level(^NodeIndex(0)) != 32 {
		t.Errorf("Level(2^32-1) = %d", Level(^NodeIndex(0)))
	}
	for _, n := range []LeafCount{0, 1, 5, 8, tooMany} {
		w, _ := NodeWidth(n)
		outside := []NodeIndex{NodeIndex(w), NodeIndex(w) + 1, ^NodeIndex(0)}
		for _, x := range outside {
			if IsInTree(x, n) {
				t.Errorf("n=%d: IsInTree(%d)", n, x)
			}
			if _, ok := Parent(x, n); ok {
				t.Errorf("n=%d: Parent(%d) succeeds", n, x)
			}
			if _, ok := Sibling(x, n); ok {
				t.Errorf("n=%d: Sibling(%d) succeeds", n, x)
			}
			if _, ok := Left(x, n); ok {
				t.Errorf("n=%d: Left(%d) succeeds", n, x)
			}
			if _, ok := Right(x, n); ok {
				t.Errorf("n=%d: Right(%d) succeeds", n, x)
			}
			if _, ok := DirectPath(x, n); ok {
				t.Errorf("n=%d: DirectPath(%d) succeeds", n, x)
			}
			if _, ok := Copath(x, n); ok {
				t.Errorf("n=%d: Copath(%d) succeeds", n, x)
			}
			if _, ok := CommonAncestor(0, x, n); ok {
				t.Errorf("n=%d: CommonAncestor(0, %d) succeeds", n, x)
			}
			if _, _, ok := LeafSpan(x, n); ok {
				t.Errorf("n=%d: LeafSpan(%d) succeeds", n, x)
			}
		}
	}
	if _, ok := Sibling(0, 1); ok {
		t.Error("single leaf has a sibling")
	}
}

var sinkNode NodeIndex
var sinkPath []NodeIndex

func BenchmarkParent(b *testing.B) {
	const n = 10000
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p, _ := Parent(NodeIndex(2*(i%n)), n)
		sinkNode = p
	}
}

func BenchmarkSibling(b *testing.B) {
	const n = 10000
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s, _ := Sibling(NodeIndex(2*(i%n)), n)
		sinkNode = s
	}
}

func BenchmarkCommonAncestor(b *testing.B) {
	const n = 10000
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a, _ := CommonAncestor(NodeIndex(2*(i%n)), NodeIndex(2*((i*7919)%n)), n)
		sinkNode = a
	}
}

func BenchmarkDirectPath(b *testing.B) {
	const n = 10000
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkPath, _ = DirectPath(NodeIndex(2*(i%n)), n)
	}
}

func BenchmarkAppendDirectPath(b *testing.B) {
	const n = 10000
	buf := make([]NodeIndex, 0, 32)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkPath, _ = AppendDirectPath(buf[:0], NodeIndex(2*(i%n)), n)
	}
}
