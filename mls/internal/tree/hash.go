package tree

import (
	"fmt"
	"hash"
	"slices"

	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// hasher is a reusable hash state and encoding buffer.
type hasher struct {
	h   hash.Hash
	buf []byte
}

func (t *Tree) hasher() *hasher {
	if t.scratch == nil {
		t.scratch = &hasher{h: t.suite.NewHash(), buf: make([]byte, 0, 1024)}
	}
	return t.scratch
}

// sum hashes the encoding of v into a fresh slice.
func (hs *hasher) sum(v wire.Encoder) ([]byte, error) {
	b := cryptobyte.NewBuilder(hs.buf[:0])
	v.Encode(b)
	data, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	if cap(data) > cap(hs.buf) {
		hs.buf = data[:0]
	}
	hs.h.Reset()
	hs.h.Write(data)
	return hs.h.Sum(nil), nil
}

// TreeHash is the tree hash of the root (RFC 9420 §7.8), the tree_hash of
// the GroupContext. Only nodes changed since the last call are re-hashed.
// An empty tree has no hash.
func (t *Tree) TreeHash() ([]byte, error) {
	if t.n == 0 {
		return nil, fmt.Errorf("tree hash of an empty tree: %w", ErrMalformedTree)
	}
	return t.nodeHash(t.root())
}

// NodeHash is the tree hash of the subtree headed by node x (RFC 9420 §7.8).
func (t *Tree) NodeHash(x NodeIndex) ([]byte, error) {
	if !t.inTree(x) {
		return nil, fmt.Errorf("node %d of a %d-node tree: %w", x, t.width(), ErrIndexOutOfRange)
	}
	return t.nodeHash(x)
}

// nodeHash returns the cached hash of x, computing what is missing below.
// A cached hash is always current: changing a node invalidates its whole
// direct path.
func (t *Tree) nodeHash(x NodeIndex) ([]byte, error) {
	s := t.at(x)
	if s.hash != nil {
		return s.hash, nil
	}
	var in *wire.TreeHashInput
	if x&1 == 0 {
		in = wire.LeafTreeHashInput(uint32(x>>1), s.leaf)
	} else {
		l, r := children(x)
		lh, err := t.nodeHash(l)
		if err != nil {
			return nil, err
		}
		rh, err := t.nodeHash(r)
		if err != nil {
			return nil, err
		}
		in = wire.ParentTreeHashInput(s.parent, lh, rh)
	}
	h, err := t.hasher().sum(in)
	if err != nil {
		return nil, fmt.Errorf("tree hash of node %d: %w", x, err)
	}
	t.mut(x).hash = h
	return h, nil
}

// parentHash is the parent hash of a node with key encryptionKey whose own
// parent_hash field is parentHash and whose copath child had tree hash
// siblingHash when the node was set (RFC 9420 §7.9).
func (t *Tree) parentHash(encryptionKey, parentHash, siblingHash []byte) ([]byte, error) {
	return t.hasher().sum(&wire.ParentHashInput{
		EncryptionKey:           encryptionKey,
		ParentHash:              parentHash,
		OriginalSiblingTreeHash: siblingHash,
	})
}

// originalHash is the tree hash of the subtree headed by x with the leaves
// in removed (sorted, all under x) blanked and deleted from the
// unmerged_leaves of every parent node: the original_sibling_tree_hash of
// RFC 9420 §7.9. Subtrees holding none of them use the cached hash, so the
// cost is one hash per node on the paths from the removed leaves to x.
func (t *Tree) originalHash(x NodeIndex, removed []uint32) ([]byte, error) {
	if len(removed) == 0 {
		return t.nodeHash(x)
	}
	if x&1 == 0 {
		// removed holds exactly this leaf.
		return t.hasher().sum(wire.LeafTreeHashInput(uint32(x>>1), nil))
	}
	l, r := children(x)
	_, lhi := leafSpan(l)
	split, _ := slices.BinarySearch(removed, lhi+1)
	lh, err := t.originalHash(l, removed[:split])
	if err != nil {
		return nil, err
	}
	rh, err := t.originalHash(r, removed[split:])
	if err != nil {
		return nil, err
	}
	p := t.parentAt(x)
	if p != nil && len(p.UnmergedLeaves) > 0 {
		kept := make([]uint32, 0, len(p.UnmergedLeaves))
		for _, u := range p.UnmergedLeaves {
			if _, gone := slices.BinarySearch(removed, u); !gone {
				kept = append(kept, u)
			}
		}
		if len(kept) != len(p.UnmergedLeaves) {
			np := *p
			np.UnmergedLeaves = kept
			p = &np
		}
	}
	return t.hasher().sum(wire.ParentTreeHashInput(p, lh, rh))
}
