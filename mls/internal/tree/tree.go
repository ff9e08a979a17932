// Package tree is the MLS ratchet tree and TreeKEM (RFC 9420 §4, §7): the
// public tree of leaf and parent nodes with its tree hashes and parent
// hashes, the §12.4.3.1 validation a joiner runs, the leaf node validation of
// §7.3, and UpdatePath generation, merging and decryption (§7.4–§7.6).
//
// The tree is built for large groups. Node tree hashes and resolution sizes
// are cached per node and only the direct path of a changed node is
// invalidated, so a commit with a path re-hashes O(log N) nodes. Encryption
// and signature keys are indexed for the uniqueness checks. Node values
// (*wire.LeafNode, *wire.ParentNode) are immutable once in a tree, and nodes
// are stored in chunks shared copy-on-write between clones, so Clone is
// cheap: a caller can try a commit on a clone and drop it on failure, or
// keep the previous epoch's tree.
//
// A Tree is not safe for concurrent use, even for reads (reads fill caches);
// clones are independent of each other.
//
// How a group uses it:
//
//   - Joining (§12.4.3.1): Decode (or Import) the ratchet_tree, Validate with
//     the GroupInfo's GroupContext (tree hash, every leaf, every chain),
//     FindLeaf for the own KeyPackage leaf, NewPrivate with its HPKE key, and
//     InstallPathSecret at the common ancestor with the committer when
//     GroupSecrets carries a path secret.
//   - Proposals (§12.1, §12.3): ValidateLeafNode (source key_package for
//     Add, update for Update) against the tree as it stands, then AddLeaf,
//     UpdateLeaf, RemoveLeaf in the RFC's order.
//   - Committing (§12.4.1): on the tree after the proposals,
//     GenerateUpdatePath, TreeHash for the provisional GroupContext,
//     PathSecrets.Encrypt excluding the leaves just added; CommitSecret,
//     PathSecretFor (Welcome) and Private (the new private state).
//   - Processing a commit (§12.4.2): ValidateLeafNode (source commit) on the
//     path's leaf, MergeUpdatePath, TreeHash for the provisional
//     GroupContext, Private.DecryptPath for the commit_secret.
//   - External commits: AllocateLeaf gives the committer's leaf on both
//     sides.
//
// Clone the tree (and Private) before a commit so that a failure, or a
// later decision to keep the previous epoch, leaves the old state intact.
package tree

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// LeafIndex numbers the leaves from 0 on the left (RFC 9420 §4.1.1).
type LeafIndex = treemath.LeafIndex

// NodeIndex is a node's position in the array representation
// (RFC 9420 Appendix C): leaf i is node 2i, parents are odd.
type NodeIndex = treemath.NodeIndex

// Tree is the public state of a ratchet tree (RFC 9420 §4, §7). It is always
// full: its leaf count is zero or a power of two (§7.7).
type Tree struct {
	suite *ciphersuite.Suite

	// id owns the chunks this tree may write in place (store.go).
	id uint64
	// n is the number of leaves: zero or a power of two.
	n uint32
	// chunks hold the 2n-1 nodes with their cached tree hashes and
	// resolution sizes. Node values are never modified once stored;
	// changing a node invalidates its caches and those of its direct path.
	chunks []*chunk

	encKeys keyIndex // HPKE encryption key -> node index
	sigKeys keyIndex // signature key -> leaf index
	creds   credStats

	// freeHint is a leaf index below which every leaf is non-blank.
	freeHint uint32

	// scratch is this tree's hashing buffer; clones get their own.
	scratch *hasher
}

// New returns an empty tree (no leaves) for suite; add the creator with
// AddLeaf (RFC 9420 §11).
func New(suite *ciphersuite.Suite) *Tree {
	return &Tree{suite: suite, id: newTreeID(), creds: newCredStats()}
}

// Suite is the cipher suite the tree hashes and encrypts with.
func (t *Tree) Suite() *ciphersuite.Suite { return t.suite }

// LeafCount is the number of leaf slots, blank or not: zero or a power of
// two.
func (t *Tree) LeafCount() uint32 { return t.n }

// MemberCount is the number of non-blank leaves.
func (t *Tree) MemberCount() int { return t.creds.members }

// width is the number of nodes, 2n-1 (0 for an empty tree).
func (t *Tree) width() uint32 {
	if t.n == 0 {
		return 0
	}
	return 2*t.n - 1
}

// root is the root node index; the tree must not be empty.
func (t *Tree) root() NodeIndex { return NodeIndex(t.n - 1) }

// Clone returns an independent copy of t. Node values and node chunks are
// shared; from now on each tree copies a chunk before its first write to
// it. The cost is a copy of the chunk table (one pointer per 64 nodes) and
// of the small per-tree indexes. Clone updates t's chunk ownership, so it
// counts as a write to t.
func (t *Tree) Clone() *Tree {
	t.id = newTreeID() // t no longer owns the chunks it shares
	return &Tree{
		suite:    t.suite,
		id:       newTreeID(),
		n:        t.n,
		chunks:   slices.Clone(t.chunks),
		encKeys:  t.encKeys.clone(),
		sigKeys:  t.sigKeys.clone(),
		creds:    t.creds.clone(),
		freeHint: t.freeHint,
	}
}

// Leaf returns leaf i, or nil when it is blank or outside the tree. The
// value is shared and must not be modified.
func (t *Tree) Leaf(i LeafIndex) *wire.LeafNode {
	if uint64(i) >= uint64(t.n) {
		return nil
	}
	return t.leafAt(i)
}

// Parent returns parent node x, or nil when it is blank, a leaf or outside
// the tree. The value is shared and must not be modified.
func (t *Tree) Parent(x NodeIndex) *wire.ParentNode {
	if x&1 == 0 || uint64(x) >= uint64(t.width()) {
		return nil
	}
	return t.parentAt(x)
}

// inTree reports whether node x exists.
func (t *Tree) inTree(x NodeIndex) bool { return uint64(x) < uint64(t.width()) }

// IsBlank reports whether node x is blank; nodes outside the tree count as
// blank.
func (t *Tree) IsBlank(x NodeIndex) bool {
	if !t.inTree(x) {
		return true
	}
	s := t.at(x)
	return s.leaf == nil && s.parent == nil
}

// EncryptionKey is the HPKE public key of node x, or nil when it is blank.
func (t *Tree) EncryptionKey(x NodeIndex) []byte {
	if !t.inTree(x) {
		return nil
	}
	s := t.at(x)
	if s.leaf != nil {
		return s.leaf.EncryptionKey
	}
	if s.parent != nil {
		return s.parent.EncryptionKey
	}
	return nil
}

// checkLeaf reports an error unless leaf i is inside the tree.
func (t *Tree) checkLeaf(i LeafIndex) error {
	if uint64(i) >= uint64(t.n) {
		return fmt.Errorf("leaf %d of a %d-leaf tree: %w", i, t.n, ErrIndexOutOfRange)
	}
	return nil
}

// parentOf is the parent of x in this full tree; x must not be the root.
func (t *Tree) parentOf(x NodeIndex) NodeIndex {
	p, _ := treemath.Parent(x, treemath.LeafCount(t.n))
	return p
}

// children returns the children of parent node x.
func children(x NodeIndex) (left, right NodeIndex) {
	k := treemath.Level(x)
	return x ^ (1 << (k - 1)), x ^ (3 << (k - 1))
}

// leafSpan is the range [lo, hi] of leaf indices under node x.
func leafSpan(x NodeIndex) (lo, hi uint32) {
	k := treemath.Level(x)
	lo = uint32((uint64(x) - (1<<k - 1)) / 2)
	hi = lo + uint32(1<<k) - 1
	return lo, hi
}

// isUnder reports whether leaf l lies in the subtree headed by x.
func isUnder(l LeafIndex, x NodeIndex) bool {
	lo, hi := leafSpan(x)
	return uint32(l) >= lo && uint32(l) <= hi
}

// invalidate forgets the cached hash and resolution size of x and of every
// node on its direct path.
func (t *Tree) invalidate(x NodeIndex) {
	root := t.root()
	for {
		if s := t.at(x); s.hash != nil || s.res != -1 {
			s = t.mut(x)
			s.hash = nil
			s.res = -1
		}
		if x == root {
			return
		}
		x = t.parentOf(x)
	}
}

// setLeaf stores leaf (nil blanks it) at i, keeping indexes and caches in
// step.
func (t *Tree) setLeaf(i LeafIndex, leaf *wire.LeafNode) {
	old := t.leafAt(i)
	if old != nil {
		t.creds.remove(old)
	}
	t.mut(NodeIndex(2 * i)).leaf = leaf
	if leaf != nil {
		t.creds.add(leaf)
		t.encKeys.insert(leaf.EncryptionKey, uint32(2*i))
		t.sigKeys.insert(leaf.SignatureKey, uint32(i))
	} else if uint32(i) < t.freeHint {
		t.freeHint = uint32(i)
	}
	t.invalidate(NodeIndex(2 * i))
	t.maybeCompactIndexes()
}

// setParent stores p (nil blanks it) at parent node x.
func (t *Tree) setParent(x NodeIndex, p *wire.ParentNode) {
	t.mut(x).parent = p
	if p != nil {
		t.encKeys.insert(p.EncryptionKey, uint32(x))
	}
	t.invalidate(x)
	t.maybeCompactIndexes()
}

// blankDirectPath blanks every parent node above leaf i (RFC 9420 §7.5,
// §12.1.2, §12.1.3).
func (t *Tree) blankDirectPath(i LeafIndex) {
	x := NodeIndex(2 * i)
	root := t.root()
	for x != root {
		x = t.parentOf(x)
		if t.parentAt(x) != nil {
			t.mut(x).parent = nil
		}
	}
	t.invalidate(NodeIndex(2 * i))
}

// grow doubles the tree (or makes a one-leaf tree from an empty one): the
// old tree becomes the left subtree of a new blank root whose right subtree
// is all blank (RFC 9420 §7.7). Node indices of existing nodes do not change.
func (t *Tree) grow() {
	n := t.n
	newN := 2 * n
	if n == 0 {
		newN = 1
	}
	t.resize(2*newN - 1)
	t.n = newN
	if n > 0 {
		t.invalidate(NodeIndex(n - 1)) // the old root; the new root is its parent
	}
}

// truncate removes the right half of the tree while it is entirely blank
// (RFC 9420 §7.7, §12.1.3).
func (t *Tree) truncate() {
	for t.n > 1 {
		_, right := children(t.root())
		if t.resolutionSize(right) != 0 {
			return
		}
		n := t.n / 2
		t.resize(2*n - 1)
		t.n = n
		t.freeHint = min(t.freeHint, n)
	}
}

// FreeLeaf is the leaf a new member would occupy: the leftmost blank leaf,
// or LeafCount() when the tree is full and would have to grow
// (RFC 9420 §12.1.1).
func (t *Tree) FreeLeaf() LeafIndex {
	i := t.freeHint
	for i < t.n && t.leafAt(LeafIndex(i)) != nil {
		i++
	}
	t.freeHint = i
	return LeafIndex(i)
}

// AllocateLeaf returns the leftmost blank leaf, growing the tree when there
// is none, without filling it. An external committer's leaf is placed this
// way before its UpdatePath is generated or merged (RFC 9420 §12.4.2).
func (t *Tree) AllocateLeaf() LeafIndex {
	i := t.FreeLeaf()
	if uint32(i) == t.n {
		t.grow()
	}
	return i
}

// AddLeaf places leaf in the leftmost blank leaf, growing the tree when
// there is none, and adds the new leaf to the unmerged_leaves of every
// non-blank parent on its direct path (RFC 9420 §12.1.1). It returns the
// leaf's index. The caller has validated leaf (ValidateLeafNode with
// source key_package) and must not modify it afterwards.
func (t *Tree) AddLeaf(leaf *wire.LeafNode) (LeafIndex, error) {
	if leaf == nil {
		return 0, fmt.Errorf("add leaf: nil leaf node")
	}
	if t.n >= uint32(treemath.MaxLeafCount) && uint32(t.FreeLeaf()) == t.n {
		return 0, fmt.Errorf("add leaf: tree is full: %w", ErrIndexOutOfRange)
	}
	i := t.AllocateLeaf()
	x := NodeIndex(2 * i)
	root := t.root()
	for x != root {
		x = t.parentOf(x)
		p := t.parentAt(x)
		if p == nil {
			continue
		}
		np := *p
		np.UnmergedLeaves = insertSorted(p.UnmergedLeaves, uint32(i))
		t.mut(x).parent = &np
	}
	t.setLeaf(i, leaf)
	return i, nil
}

// insertSorted returns a new sorted slice holding list and v.
func insertSorted(list []uint32, v uint32) []uint32 {
	pos, found := slices.BinarySearch(list, v)
	if found {
		return slices.Clone(list)
	}
	out := make([]uint32, 0, len(list)+1)
	out = append(out, list[:pos]...)
	out = append(out, v)
	return append(out, list[pos:]...)
}

// UpdateLeaf replaces the LeafNode of member i and blanks its direct path
// (RFC 9420 §12.1.2). The caller has validated leaf (source update).
func (t *Tree) UpdateLeaf(i LeafIndex, leaf *wire.LeafNode) error {
	if err := t.checkLeaf(i); err != nil {
		return fmt.Errorf("update leaf: %w", err)
	}
	if t.leafAt(i) == nil {
		return fmt.Errorf("update leaf %d: %w", i, ErrBlankLeaf)
	}
	if leaf == nil {
		return fmt.Errorf("update leaf %d: nil leaf node", i)
	}
	t.blankDirectPath(i)
	t.setLeaf(i, leaf)
	return nil
}

// RemoveLeaf blanks member i and its direct path, then truncates the tree
// while its right half is blank (RFC 9420 §12.1.3, §7.7).
func (t *Tree) RemoveLeaf(i LeafIndex) error {
	if err := t.checkLeaf(i); err != nil {
		return fmt.Errorf("remove leaf: %w", err)
	}
	if t.leafAt(i) == nil {
		return fmt.Errorf("remove leaf %d: %w", i, ErrBlankLeaf)
	}
	t.blankDirectPath(i)
	t.setLeaf(i, nil)
	t.truncate()
	return nil
}

// FindSignatureKey returns the member whose leaf carries signature key pub.
func (t *Tree) FindSignatureKey(pub []byte) (LeafIndex, bool) {
	t.ensureIndexes()
	at, ok := t.sigKeys.find(pub, func(at uint32) bool {
		l := t.Leaf(LeafIndex(at))
		return l != nil && bytes.Equal(l.SignatureKey, pub)
	})
	return LeafIndex(at), ok
}

// HasEncryptionKey reports whether some node of the tree holds the HPKE
// public key pub, and which.
func (t *Tree) HasEncryptionKey(pub []byte) (NodeIndex, bool) {
	t.ensureIndexes()
	at, ok := t.encKeys.find(pub, func(at uint32) bool {
		return bytes.Equal(t.EncryptionKey(NodeIndex(at)), pub)
	})
	return NodeIndex(at), ok
}

// FindLeaf returns the index of a leaf equal to leaf (same encoding), as a
// joiner looks for its own KeyPackage leaf (RFC 9420 §12.4.3.1).
func (t *Tree) FindLeaf(leaf *wire.LeafNode) (LeafIndex, bool) {
	at, ok := t.HasEncryptionKey(leaf.EncryptionKey)
	if !ok || at&1 != 0 {
		return 0, false
	}
	want, err1 := wire.Marshal(leaf)
	got, err2 := wire.Marshal(t.leafAt(LeafIndex(at >> 1)))
	if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
		return 0, false
	}
	return LeafIndex(at >> 1), true
}

// credStats counts credential types for the §7.3 rule that every
// credential type in use is supported by every member.
type credStats struct {
	members int
	inUse   map[wire.CredentialType]int // leaves using each type
	support map[wire.CredentialType]int // leaves listing each type
}

func newCredStats() credStats {
	return credStats{inUse: map[wire.CredentialType]int{}, support: map[wire.CredentialType]int{}}
}

func (c credStats) clone() credStats {
	return credStats{members: c.members, inUse: maps.Clone(c.inUse), support: maps.Clone(c.support)}
}

func (c *credStats) add(l *wire.LeafNode)    { c.update(l, 1) }
func (c *credStats) remove(l *wire.LeafNode) { c.update(l, -1) }

func (c *credStats) update(l *wire.LeafNode, d int) {
	c.members += d
	c.inUse[l.Credential.CredentialType] += d
	if c.inUse[l.Credential.CredentialType] == 0 {
		delete(c.inUse, l.Credential.CredentialType)
	}
	forEachDistinct(l.Capabilities.Credentials, func(ct wire.CredentialType) {
		c.support[ct] += d
		if c.support[ct] == 0 {
			delete(c.support, ct)
		}
	})
}

// forEachDistinct calls f once for each distinct value of list.
func forEachDistinct[T comparable](list []T, f func(T)) {
	for i, v := range list {
		if !slices.Contains(list[:i], v) {
			f(v)
		}
	}
}
