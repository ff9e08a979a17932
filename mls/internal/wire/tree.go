package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// ParentNode is the content of a non-blank intermediate node of the ratchet
// tree (RFC 9420 §7.1).
type ParentNode struct {
	EncryptionKey []byte // HPKEPublicKey encryption_key
	ParentHash    []byte

	// UnmergedLeaves are leaf indices; §7.1 requires them sorted in
	// increasing order, so Decode rejects a list that is not strictly
	// increasing and Encode refuses to produce one.
	UnmergedLeaves []uint32
}

func (x *ParentNode) unmergedSorted() bool {
	for i := 1; i < len(x.UnmergedLeaves); i++ {
		if x.UnmergedLeaves[i-1] >= x.UnmergedLeaves[i] {
			return false
		}
	}
	return true
}

// Encode implements Encoder.
func (x *ParentNode) Encode(b *cryptobyte.Builder) {
	if !x.unmergedSorted() {
		invalid(b, "unmerged_leaves not strictly increasing")
		return
	}
	codec.AddOpaque(b, x.EncryptionKey)
	codec.AddOpaque(b, x.ParentHash)
	addUint32List(b, x.UnmergedLeaves)
}

// Decode implements Decoder.
func (x *ParentNode) Decode(s *cryptobyte.String) bool {
	*x = ParentNode{}
	if !readAlias(s, &x.EncryptionKey) ||
		!readAlias(s, &x.ParentHash) ||
		!readUint32List(s, &x.UnmergedLeaves) ||
		!x.unmergedSorted() {
		return false
	}
	own(&x.EncryptionKey, &x.ParentHash)
	return true
}

// Node is a non-blank node of a ratchet tree as the ratchet_tree extension
// encodes it (RFC 9420 §12.4.3.3): Leaf is set when NodeType is leaf, Parent
// when it is parent.
type Node struct {
	NodeType NodeType
	Leaf     *LeafNode
	Parent   *ParentNode
}

// Encode implements Encoder.
func (x *Node) Encode(b *cryptobyte.Builder) {
	b.AddUint8(uint8(x.NodeType))
	switch {
	case x.NodeType == NodeTypeLeaf && x.Leaf != nil:
		x.Leaf.Encode(b)
	case x.NodeType == NodeTypeParent && x.Parent != nil:
		x.Parent.Encode(b)
	default:
		invalid(b, "node of type %v without its body", x.NodeType)
	}
}

// Decode implements Decoder.
func (x *Node) Decode(s *cryptobyte.String) bool {
	*x = Node{}
	if !s.ReadUint8((*uint8)(&x.NodeType)) {
		return false
	}
	switch x.NodeType {
	case NodeTypeLeaf:
		x.Leaf = new(LeafNode)
		return x.Leaf.Decode(s)
	case NodeTypeParent:
		x.Parent = new(ParentNode)
		return x.Parent.Decode(s)
	}
	return false
}

// RatchetTree is the public ratchet tree as carried by the ratchet_tree
// extension, optional<Node> ratchet_tree<V> (RFC 9420 §12.4.3.3): nodes in
// array order (leaf L at index 2L, parents at odd indices), nil for a blank
// node. The encoding stops at the last non-blank node; the receiver extends
// the array with blanks to the next size 2^(d+1)-1.
//
// Decode rejects an empty tree, a tree whose last entry is blank, and a leaf
// at an odd index or a parent at an even one. Encode refuses to produce
// any of them, so callers must trim trailing blanks first.
type RatchetTree []*Node

// ExtensionType implements ExtensionPayload.
func (*RatchetTree) ExtensionType() ExtensionType { return ExtensionTypeRatchetTree }

// checkShape reports the first structural fault of the tree for Encode.
func (x RatchetTree) checkShape(b *cryptobyte.Builder) bool {
	if len(x) == 0 {
		invalid(b, "empty ratchet tree")
		return false
	}
	if x[len(x)-1] == nil {
		invalid(b, "ratchet tree ends with a blank node")
		return false
	}
	for i, n := range x {
		if n != nil && (n.NodeType == NodeTypeLeaf) != (i%2 == 0) {
			invalid(b, "ratchet tree node %d has type %v", i, n.NodeType)
			return false
		}
	}
	return true
}

// Encode implements Encoder.
func (x *RatchetTree) Encode(b *cryptobyte.Builder) {
	if !x.checkShape(b) {
		return
	}
	codec.AddVector(b, func(b *cryptobyte.Builder) {
		for _, n := range *x {
			codec.AddOptional(b, n != nil, func(b *cryptobyte.Builder) { n.Encode(b) })
		}
	})
}

// Decode implements Decoder. Nodes are carved out of chunked slabs (see
// slab), so a tree costs a few allocations per node for its byte fields and
// lists, not one more per struct, and never copies a decoded node.
func (x *RatchetTree) Decode(s *cryptobyte.String) bool {
	*x = nil
	var (
		tree    RatchetTree
		nodes   slab[Node]
		leaves  slab[LeafNode]
		parents slab[ParentNode]
	)
	ok := codec.ReadList(s, func(s *cryptobyte.String) bool {
		var present bool
		var node *Node
		if !codec.ReadOptional(s, &present, func(s *cryptobyte.String) bool {
			var kind NodeType
			if !s.ReadUint8((*uint8)(&kind)) {
				return false
			}
			// Leaves sit at even positions, parents at odd ones (§12.4.3.3).
			leafPosition := len(tree)%2 == 0
			switch {
			case kind == NodeTypeLeaf && leafPosition:
				leaf := leaves.next()
				node = nodes.next()
				*node = Node{NodeType: kind, Leaf: leaf}
				return leaf.Decode(s)
			case kind == NodeTypeParent && !leafPosition:
				parent := parents.next()
				node = nodes.next()
				*node = Node{NodeType: kind, Parent: parent}
				return parent.Decode(s)
			}
			return false
		}) {
			return false
		}
		tree = append(tree, node)
		return true
	})
	// The last entry must be non-blank; an empty tree is malformed too.
	if !ok || len(tree) == 0 || tree[len(tree)-1] == nil {
		return false
	}
	*x = tree
	return true
}

// slab hands out zeroed values from chunks that grow from 4 to 256 entries,
// so many small structures cost few allocations. Chunks never move, so the
// pointers stay valid.
type slab[T any] struct {
	chunk []T
}

func (a *slab[T]) next() *T {
	if len(a.chunk) == cap(a.chunk) {
		size := min(max(2*cap(a.chunk), 4), 256)
		a.chunk = make([]T, 0, size)
	}
	a.chunk = a.chunk[:len(a.chunk)+1]
	return &a.chunk[len(a.chunk)-1]
}

// LeafCount is the number of leaves of the full tree the encoding stands
// for: the smallest power of two that covers every encoded node.
func (x RatchetTree) LeafCount() uint32 {
	width := uint64(1)
	for 2*width-1 < uint64(len(x)) {
		width *= 2
	}
	return uint32(width)
}

// HPKECiphertext is an HPKE encapsulation and ciphertext (RFC 9420 §7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

// Encode implements Encoder.
func (x *HPKECiphertext) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.KEMOutput)
	codec.AddOpaque(b, x.Ciphertext)
}

// Decode implements Decoder.
func (x *HPKECiphertext) Decode(s *cryptobyte.String) bool {
	*x = HPKECiphertext{}
	if !readAlias(s, &x.KEMOutput) || !readAlias(s, &x.Ciphertext) {
		return false
	}
	own(&x.KEMOutput, &x.Ciphertext)
	return true
}

// UpdatePathNode is the new public key of one node on the committer's
// filtered direct path and the path secret encrypted to each node of the
// copath node's resolution (RFC 9420 §7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte // HPKEPublicKey encryption_key
	EncryptedPathSecret []HPKECiphertext
}

// Encode implements Encoder.
func (x *UpdatePathNode) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.EncryptionKey)
	addList(b, x.EncryptedPathSecret)
}

// Decode implements Decoder.
func (x *UpdatePathNode) Decode(s *cryptobyte.String) bool {
	*x = UpdatePathNode{}
	return codec.ReadOpaque(s, &x.EncryptionKey) && readList(s, &x.EncryptedPathSecret)
}

// UpdatePath is the committer's new leaf and the new keys along its
// filtered direct path (RFC 9420 §7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// Encode implements Encoder.
func (x *UpdatePath) Encode(b *cryptobyte.Builder) {
	x.LeafNode.Encode(b)
	addList(b, x.Nodes)
}

// Decode implements Decoder.
func (x *UpdatePath) Decode(s *cryptobyte.String) bool {
	*x = UpdatePath{}
	return x.LeafNode.Decode(s) && readList(s, &x.Nodes)
}

// TreeHashInput is what one node's tree hash is computed over
// (RFC 9420 §7.8). Leaf is set when NodeType is leaf, Parent when it is
// parent; build it with LeafTreeHashInput or ParentTreeHashInput.
type TreeHashInput struct {
	NodeType NodeType
	Leaf     *LeafNodeHashInput
	Parent   *ParentNodeHashInput
}

// LeafTreeHashInput is the TreeHashInput of leaf leafIndex; leaf is nil for
// a blank leaf.
func LeafTreeHashInput(leafIndex uint32, leaf *LeafNode) *TreeHashInput {
	return &TreeHashInput{NodeType: NodeTypeLeaf, Leaf: &LeafNodeHashInput{LeafIndex: leafIndex, LeafNode: leaf}}
}

// ParentTreeHashInput is the TreeHashInput of a parent node given its
// children's tree hashes; parent is nil for a blank node.
func ParentTreeHashInput(parent *ParentNode, leftHash, rightHash []byte) *TreeHashInput {
	return &TreeHashInput{NodeType: NodeTypeParent, Parent: &ParentNodeHashInput{ParentNode: parent, LeftHash: leftHash, RightHash: rightHash}}
}

// Encode implements Encoder.
func (x *TreeHashInput) Encode(b *cryptobyte.Builder) {
	b.AddUint8(uint8(x.NodeType))
	switch {
	case x.NodeType == NodeTypeLeaf && x.Leaf != nil:
		x.Leaf.Encode(b)
	case x.NodeType == NodeTypeParent && x.Parent != nil:
		x.Parent.Encode(b)
	default:
		invalid(b, "tree hash input of type %v without its body", x.NodeType)
	}
}

// Decode implements Decoder.
func (x *TreeHashInput) Decode(s *cryptobyte.String) bool {
	*x = TreeHashInput{}
	if !s.ReadUint8((*uint8)(&x.NodeType)) {
		return false
	}
	switch x.NodeType {
	case NodeTypeLeaf:
		x.Leaf = new(LeafNodeHashInput)
		return x.Leaf.Decode(s)
	case NodeTypeParent:
		x.Parent = new(ParentNodeHashInput)
		return x.Parent.Decode(s)
	}
	return false
}

// LeafNodeHashInput is the leaf part of a TreeHashInput (RFC 9420 §7.8);
// LeafNode is nil for a blank leaf.
type LeafNodeHashInput struct {
	LeafIndex uint32
	LeafNode  *LeafNode
}

// Encode implements Encoder.
func (x *LeafNodeHashInput) Encode(b *cryptobyte.Builder) {
	b.AddUint32(x.LeafIndex)
	codec.AddOptional(b, x.LeafNode != nil, func(b *cryptobyte.Builder) { x.LeafNode.Encode(b) })
}

// Decode implements Decoder.
func (x *LeafNodeHashInput) Decode(s *cryptobyte.String) bool {
	*x = LeafNodeHashInput{}
	var present bool
	return s.ReadUint32(&x.LeafIndex) && codec.ReadOptional(s, &present, func(s *cryptobyte.String) bool {
		x.LeafNode = new(LeafNode)
		return x.LeafNode.Decode(s)
	})
}

// ParentNodeHashInput is the parent part of a TreeHashInput
// (RFC 9420 §7.8); ParentNode is nil for a blank node.
type ParentNodeHashInput struct {
	ParentNode *ParentNode
	LeftHash   []byte
	RightHash  []byte
}

// Encode implements Encoder.
func (x *ParentNodeHashInput) Encode(b *cryptobyte.Builder) {
	codec.AddOptional(b, x.ParentNode != nil, func(b *cryptobyte.Builder) { x.ParentNode.Encode(b) })
	codec.AddOpaque(b, x.LeftHash)
	codec.AddOpaque(b, x.RightHash)
}

// Decode implements Decoder.
func (x *ParentNodeHashInput) Decode(s *cryptobyte.String) bool {
	*x = ParentNodeHashInput{}
	var present bool
	return codec.ReadOptional(s, &present, func(s *cryptobyte.String) bool {
		x.ParentNode = new(ParentNode)
		return x.ParentNode.Decode(s)
	}) && codec.ReadOpaque(s, &x.LeftHash) && codec.ReadOpaque(s, &x.RightHash)
}

// ParentHashInput is what a parent hash is computed over (RFC 9420 §7.9):
// the node's key, its own parent's parent hash (empty at the root) and the
// tree hash of its copath child before the update.
type ParentHashInput struct {
	EncryptionKey           []byte
	ParentHash              []byte
	OriginalSiblingTreeHash []byte
}

// Encode implements Encoder.
func (x *ParentHashInput) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.EncryptionKey)
	codec.AddOpaque(b, x.ParentHash)
	codec.AddOpaque(b, x.OriginalSiblingTreeHash)
}

// Decode implements Decoder.
func (x *ParentHashInput) Decode(s *cryptobyte.String) bool {
	*x = ParentHashInput{}
	return codec.ReadOpaque(s, &x.EncryptionKey) &&
		codec.ReadOpaque(s, &x.ParentHash) &&
		codec.ReadOpaque(s, &x.OriginalSiblingTreeHash)
}
