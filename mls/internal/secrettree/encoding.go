package secrettree

import (
	"fmt"
	"slices"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"golang.org/x/crypto/cryptobyte"
)

// stateVersion is the version of the encoding written by MarshalBinary.
const stateVersion = 1

// MarshalBinary encodes the whole state of the tree, so that group state can
// be persisted and a consumed key stays consumed after a restore. The
// encoding holds secrets and must be stored as such. Its layout, in the TLS
// presentation language of RFC 9420 §2.1:
//
//	struct {
//	    uint8 version = 1;
//	    uint16 cipher_suite;
//	    uint32 leaf_count;
//	    struct { uint32 node; opaque secret<V>; } nodes<V>;   /* ascending node */
//	    struct {
//	        uint32 leaf;
//	        Ratchet handshake;
//	        Ratchet application;
//	    } leaves<V>;                                           /* ascending leaf */
//	    struct {
//	        uint32 leaf; uint8 ratchet; uint32 generation;
//	        opaque key<V>; opaque nonce<V>;
//	    } retained<V>;                                         /* oldest first */
//	} SecretTreeState;
//
//	struct { uint64 next_generation; opaque secret<V>; } Ratchet;
//
// where next_generation is 2^32 and secret empty for an exhausted ratchet.
// The Config is not part of the state.
func (t *Tree) MarshalBinary() ([]byte, error) {
	if t.retired() {
		return nil, fmt.Errorf("encode secret tree: %w", ErrRetired)
	}
	nodes := make([]treemath.NodeIndex, 0, len(t.nodes))
	for x := range t.nodes {
		nodes = append(nodes, x)
	}
	slices.Sort(nodes)
	leaves := make([]treemath.LeafIndex, 0, len(t.leaves))
	for l := range t.leaves {
		leaves = append(leaves, l)
	}
	slices.Sort(leaves)
	out, err := codec.Marshal(func(b *cryptobyte.Builder) {
		b.AddUint8(stateVersion)
		b.AddUint16(uint16(t.suite.ID()))
		b.AddUint32(uint32(t.leafCount))
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for _, x := range nodes {
				b.AddUint32(uint32(x))
				codec.AddOpaque(b, t.nodes[x])
			}
		})
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for _, l := range leaves {
				b.AddUint32(uint32(l))
				for _, r := range t.leaves[l] {
					b.AddUint64(r.next)
					codec.AddOpaque(b, r.secret)
				}
			}
		})
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for e := t.oldest; e != nil; e = e.next {
				b.AddUint32(uint32(e.id.leaf))
				b.AddUint8(uint8(e.id.typ))
				b.AddUint32(e.id.gen)
				codec.AddOpaque(b, e.key)
				codec.AddOpaque(b, e.nonce)
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("encode secret tree: %w", err)
	}
	return out, nil
}

// decodedState is SecretTreeState as read, before validation.
type decodedState struct {
	version   uint8
	suite     uint16
	leafCount uint32
	nodes     []nodeSecret
	leaves    []decodedLeaf
	retained  []decodedRetained
}

type decodedLeaf struct {
	leaf     uint32
	ratchets [2]struct {
		next   uint64
		secret []byte
	}
}

type decodedRetained struct {
	leaf       uint32
	typ        uint8
	gen        uint32
	key, nonce []byte
}

func (d *decodedState) read(s *cryptobyte.String) bool {
	if !s.ReadUint8(&d.version) || d.version != stateVersion ||
		!s.ReadUint16(&d.suite) || !s.ReadUint32(&d.leafCount) {
		return false
	}
	return codec.ReadList(s, func(s *cryptobyte.String) bool {
		var n nodeSecret
		if !s.ReadUint32((*uint32)(&n.node)) || !codec.ReadOpaque(s, &n.secret) {
			return false
		}
		d.nodes = append(d.nodes, n)
		return true
	}) && codec.ReadList(s, func(s *cryptobyte.String) bool {
		var l decodedLeaf
		if !s.ReadUint32(&l.leaf) {
			return false
		}
		for i := range l.ratchets {
			if !s.ReadUint64(&l.ratchets[i].next) || !codec.ReadOpaque(s, &l.ratchets[i].secret) {
				return false
			}
		}
		d.leaves = append(d.leaves, l)
		return true
	}) && codec.ReadList(s, func(s *cryptobyte.String) bool {
		var r decodedRetained
		if !s.ReadUint32(&r.leaf) || !s.ReadUint8(&r.typ) || !s.ReadUint32(&r.gen) ||
			!codec.ReadOpaque(s, &r.key) || !codec.ReadOpaque(s, &r.nonce) {
			return false
		}
		d.retained = append(d.retained, r)
		return true
	})
}

// zero overwrites every secret read, for a state that is rejected.
func (d *decodedState) zero() {
	for _, n := range d.nodes {
		clear(n.secret)
	}
	for _, l := range d.leaves {
		for _, r := range l.ratchets {
			clear(r.secret)
		}
	}
	for _, r := range d.retained {
		clear(r.key)
		clear(r.nonce)
	}
}

// Unmarshal restores a tree encoded by MarshalBinary, applying cfg. The
// encoding is checked strictly: an unknown version or suite, trailing bytes,
// secrets of the wrong length, unsorted or duplicate entries, a node secret
// that overlaps another or a derived leaf (which would let a consumed key be
// derived again), leaves not covered exactly once, and retained keys at or
// past their ratchet are all errors wrapping codec.ErrMalformed. Retained
// keys beyond cfg's bounds are dropped, oldest first.
func Unmarshal(data []byte, cfg Config) (*Tree, error) {
	var d decodedState
	if err := codec.Unmarshal(data, "secret tree state", d.read); err != nil {
		d.zero()
		return nil, err
	}
	t, err := d.build(cfg)
	if err != nil {
		d.zero()
		return nil, fmt.Errorf("decode secret tree state: %w: %w", codec.ErrMalformed, err)
	}
	return t, nil
}

// build validates d and turns it into a Tree that owns d's secrets.
func (d *decodedState) build(cfg Config) (*Tree, error) {
	suite, err := ciphersuite.Lookup(ciphersuite.ID(d.suite))
	if err != nil {
		return nil, err
	}
	leafCount := treemath.LeafCount(d.leafCount)
	if leafCount == 0 || leafCount > treemath.MaxLeafCount {
		return nil, fmt.Errorf("leaf count %d", d.leafCount)
	}
	t, err := newEmpty(suite, leafCount, cfg)
	if err != nil {
		return nil, err
	}
	nh := suite.HashSize()

	var covered uint64
	for i, n := range d.nodes {
		if i > 0 && n.node <= d.nodes[i-1].node {
			return nil, fmt.Errorf("node secrets not in ascending order at node %d", n.node)
		}
		first, count, ok := treemath.LeafSpan(n.node, t.shape)
		if !ok || treemath.LeafCount(first) >= leafCount {
			return nil, fmt.Errorf("node %d outside the tree", n.node)
		}
		if len(n.secret) != nh {
			return nil, fmt.Errorf("node %d secret of %d bytes", n.node, len(n.secret))
		}
		covered += uint64(min(count, leafCount-treemath.LeafCount(first)))
		t.nodes[n.node] = n.secret
	}
	for x := range t.nodes {
		if a, ok := t.coveringAncestor(x); ok {
			return nil, fmt.Errorf("node %d secret below node %d secret", x, a)
		}
	}

	for i, l := range d.leaves {
		if i > 0 && l.leaf <= d.leaves[i-1].leaf {
			return nil, fmt.Errorf("leaves not in ascending order at leaf %d", l.leaf)
		}
		if treemath.LeafCount(l.leaf) >= leafCount {
			return nil, fmt.Errorf("leaf %d of %d", l.leaf, leafCount)
		}
		x, _ := treemath.LeafToNode(treemath.LeafIndex(l.leaf))
		if t.nodes[x] != nil {
			return nil, fmt.Errorf("leaf %d has both a secret and ratchets", l.leaf)
		}
		if a, ok := t.coveringAncestor(x); ok {
			return nil, fmt.Errorf("leaf %d has ratchets but node %d can derive it again", l.leaf, a)
		}
		lr := new(leafRatchets)
		for typ, r := range l.ratchets {
			want := nh
			if r.next == exhausted {
				want = 0
			}
			if r.next > exhausted || len(r.secret) != want {
				return nil, fmt.Errorf("leaf %d %s ratchet at %d with a %d-byte secret", l.leaf, RatchetType(typ), r.next, len(r.secret))
			}
			lr[typ].next = r.next
			if want > 0 {
				lr[typ].secret = r.secret
			}
		}
		t.leaves[treemath.LeafIndex(l.leaf)] = lr
		covered++
	}
	if covered != uint64(leafCount) {
		return nil, fmt.Errorf("secrets cover %d of %d leaves", covered, leafCount)
	}

	for _, r := range d.retained {
		lr := t.leaves[treemath.LeafIndex(r.leaf)]
		typ := RatchetType(r.typ)
		if lr == nil || (typ != Handshake && typ != Application) {
			return nil, fmt.Errorf("retained key for leaf %d ratchet %d without ratchets", r.leaf, r.typ)
		}
		rt := &lr[typ]
		if uint64(r.gen) >= rt.next || (rt.newest != nil && r.gen <= rt.newest.id.gen) {
			return nil, fmt.Errorf("retained key for leaf %d %s generation %d out of order", r.leaf, typ, r.gen)
		}
		if len(r.key) != suite.AEADKeySize() || len(r.nonce) != suite.AEADNonceSize() {
			return nil, fmt.Errorf("retained key for leaf %d %s generation %d has wrong sizes", r.leaf, typ, r.gen)
		}
		t.retain(treemath.LeafIndex(r.leaf), typ, KeyNonce{Generation: r.gen, Key: r.key, Nonce: r.nonce})
	}
	// Apply cfg's bounds, dropping the oldest keys of each ratchet and then
	// of the tree, as if the keys had been retained under cfg.
	leaves := make([]treemath.LeafIndex, 0, len(t.leaves))
	for l := range t.leaves {
		leaves = append(leaves, l)
	}
	slices.Sort(leaves)
	for _, l := range leaves {
		for typ := range t.leaves[l] {
			r := &t.leaves[l][typ]
			for r.retained > t.cfg.MaxRetainedPerRatchet {
				t.dropRetained(r.oldest)
			}
		}
	}
	for t.retainedCount > t.cfg.MaxRetainedTotal {
		t.dropRetained(t.oldest)
	}
	return t, nil
}

// coveringAncestor reports a proper ancestor of x that holds a node secret.
func (t *Tree) coveringAncestor(x treemath.NodeIndex) (treemath.NodeIndex, bool) {
	for {
		p, ok := treemath.Parent(x, t.shape)
		if !ok {
			return 0, false
		}
		if t.nodes[p] != nil {
			return p, true
		}
		x = p
	}
}
