package tree

import (
	"sync/atomic"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// The nodes of a tree and their caches live in fixed-size chunks that are
// shared copy-on-write between clones. Clone copies only the table of chunk
// pointers (a few kilobytes for 10,000 members); the first write to a chunk
// after a Clone copies that chunk alone. A path update touches O(log N)
// chunks, so trying a commit on a clone costs O(N / chunkSize + log N)
// instead of copying every node.

const (
	chunkShift = 6
	chunkSize  = 1 << chunkShift
)

// slot is one node of the tree: its value (leaf or parent, nil when blank)
// and its cached tree hash and resolution size.
type slot struct {
	leaf   *wire.LeafNode   // even node indices
	parent *wire.ParentNode // odd node indices
	hash   []byte           // tree hash; nil when unknown
	res    int32            // resolution length; -1 when unknown
}

// chunk holds chunkSize consecutive nodes. owner is the id of the only tree
// allowed to write it in place; any other tree copies it first.
type chunk struct {
	owner uint64
	slots [chunkSize]slot
}

// treeIDs hands out tree ids for chunk ownership. Zero is never used.
var treeIDs atomic.Uint64

func newTreeID() uint64 { return treeIDs.Add(1) }

// at returns node x for reading. x must be inside the tree.
func (t *Tree) at(x NodeIndex) *slot {
	return &t.chunks[x>>chunkShift].slots[x&(chunkSize-1)]
}

// mut returns node x for writing, first copying its chunk if another tree
// may share it.
func (t *Tree) mut(x NodeIndex) *slot {
	c := t.chunks[x>>chunkShift]
	if c.owner != t.id {
		cp := *c
		cp.owner = t.id
		c = &cp
		t.chunks[x>>chunkShift] = c
	}
	return &c.slots[x&(chunkSize-1)]
}

// leafAt is leaf i (nil when blank); i must be inside the tree.
func (t *Tree) leafAt(i LeafIndex) *wire.LeafNode { return t.at(NodeIndex(2 * i)).leaf }

// parentAt is parent node x (nil when blank); x must be an odd index inside
// the tree.
func (t *Tree) parentAt(x NodeIndex) *wire.ParentNode { return t.at(x).parent }

// resize makes room for width nodes. New nodes are blank with no cached
// values; nodes past width are cleared so that growing again later starts
// from blanks.
func (t *Tree) resize(width uint32) {
	old := uint32(0)
	if t.n > 0 {
		old = 2*t.n - 1
	}
	need := int((width + chunkSize - 1) >> chunkShift)
	for len(t.chunks) < need {
		c := &chunk{owner: t.id}
		for i := range c.slots {
			c.slots[i].res = -1
		}
		t.chunks = append(t.chunks, c)
	}
	if width < old {
		clear(t.chunks[need:])
		t.chunks = t.chunks[:need]
		// Clear the tail of the last chunk so it reads as blank.
		for x := width; x < uint32(need)<<chunkShift; x++ {
			if s := t.at(NodeIndex(x)); s.leaf != nil || s.parent != nil || s.hash != nil || s.res != -1 {
				*t.mut(NodeIndex(x)) = slot{res: -1}
			}
		}
		return
	}
	for x := old; x < width; x++ {
		if s := t.at(NodeIndex(x)); s.leaf != nil || s.parent != nil || s.hash != nil || s.res != -1 {
			*t.mut(NodeIndex(x)) = slot{res: -1}
		}
	}
}
