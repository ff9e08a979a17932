package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// privState is this member's private view of the ratchet tree (RFC 9420
// §4.2): the HPKE private key of its leaf and the path secrets of the parent
// nodes above it that it knows, each with the public key it derives, so
// that a key is used only while the tree still holds that public key.
//
// It keeps path secrets, not just private keys, so that it can be persisted
// and rebuilt exactly (Group.MarshalBinary). A privState is never modified
// once a Group holds it: every change works on a copy.
type privState struct {
	cs       *ciphersuite.Suite
	leaf     treemath.LeafIndex
	leafPriv []byte
	leafPub  []byte
	nodes    map[treemath.NodeIndex]nodeKey
}

// nodeKey is the path secret of a parent node and the key pair it derives.
type nodeKey struct {
	secret, priv, pub []byte
}

// errPathKeyMismatch reports a key derived from a path secret that differs
// from the key the tree or UpdatePath holds (RFC 9420 §7.5, §12.4.3.1).
var errPathKeyMismatch = errors.New("derived public key does not match the tree")

func newPrivState(cs *ciphersuite.Suite, leaf treemath.LeafIndex, leafPriv []byte) (*privState, error) {
	pub, err := cs.HPKEPublicKey(leafPriv)
	if err != nil {
		return nil, fmt.Errorf("leaf private key: %w", err)
	}
	return &privState{cs: cs, leaf: leaf, leafPriv: bytes.Clone(leafPriv), leafPub: pub, nodes: map[treemath.NodeIndex]nodeKey{}}, nil
}

// clone returns a copy that can be changed independently; the byte slices
// are never modified, so they are shared.
func (p *privState) clone() *privState {
	c := *p
	c.nodes = maps.Clone(p.nodes)
	return &c
}

// deriveNodeKey is RFC 9420 §7.4: node_priv, node_pub =
// DeriveKeyPair(DeriveSecret(path_secret, "node")).
func deriveNodeKey(cs *ciphersuite.Suite, pathSecret []byte) (priv, pub []byte, err error) {
	nodeSecret, err := cs.DeriveSecret(pathSecret, "node")
	if err != nil {
		return nil, nil, err
	}
	defer clear(nodeSecret)
	return cs.DeriveKeyPair(nodeSecret)
}

// key returns the private key of node x if this member holds the one
// matching the public key x has in t.
func (p *privState) key(t *tree.Tree, x treemath.NodeIndex) ([]byte, bool) {
	pub := t.EncryptionKey(x)
	if pub == nil {
		return nil, false
	}
	if treemath.IsLeaf(x) {
		if l, _ := treemath.NodeToLeaf(x); l == p.leaf && bytes.Equal(pub, p.leafPub) {
			return p.leafPriv, true
		}
		return nil, false
	}
	k, ok := p.nodes[x]
	if !ok || !bytes.Equal(k.pub, pub) {
		return nil, false
	}
	return k.priv, true
}

// prune drops the keys of nodes whose public key in t has changed.
func (p *privState) prune(t *tree.Tree) {
	maps.DeleteFunc(p.nodes, func(x treemath.NodeIndex, k nodeKey) bool {
		return !bytes.Equal(t.EncryptionKey(x), k.pub)
	})
}

// setChain stores the path secrets of nodes, the first being secret and
// each next one DeriveSecret(previous, "path"), checking every derived
// public key against want (or t when want is nil). It returns the secret
// one step past the last node.
func (p *privState) setChain(t *tree.Tree, nodes []treemath.NodeIndex, want [][]byte, secret []byte) ([]byte, error) {
	keys := make([]nodeKey, len(nodes))
	for i, x := range nodes {
		if i > 0 {
			var err error
			if secret, err = p.cs.DeriveSecret(secret, "path"); err != nil {
				return nil, err
			}
		}
		priv, pub, err := deriveNodeKey(p.cs, secret)
		if err != nil {
			return nil, err
		}
		expected := t.EncryptionKey(x)
		if want != nil {
			expected = want[i]
		}
		if !bytes.Equal(pub, expected) {
			return nil, fmt.Errorf("node %d: %w", x, errPathKeyMismatch)
		}
		keys[i] = nodeKey{secret: secret, priv: priv, pub: pub}
	}
	next, err := p.cs.DeriveSecret(secret, "path")
	if err != nil {
		return nil, err
	}
	for i, x := range nodes {
		p.nodes[x] = keys[i]
	}
	return next, nil
}

// installJoinerSecret is the joiner's step of RFC 9420 §12.4.3.1: the path
// secret of node x (the lowest common ancestor with the committer) gives the
// keys of x and of every non-blank node above it.
func (p *privState) installJoinerSecret(t *tree.Tree, x treemath.NodeIndex, secret []byte) error {
	n := treemath.LeafCount(t.LeafCount())
	var nodes []treemath.NodeIndex
	root, _ := treemath.Root(n)
	for y := x; ; {
		if !t.IsBlank(y) {
			nodes = append(nodes, y)
		}
		if y == root {
			break
		}
		var ok bool
		if y, ok = treemath.Parent(y, n); !ok {
			return fmt.Errorf("node %d has no parent: %w", y, ErrInvalidTree)
		}
	}
	if len(nodes) == 0 || nodes[0] != x {
		return fmt.Errorf("path secret for blank node %d: %w", x, ErrInvalidGroupInfo)
	}
	if _, err := p.setChain(t, nodes, nil, secret); err != nil {
		return fmt.Errorf("%w: path secret: %w", ErrInvalidGroupInfo, err)
	}
	p.prune(t)
	return nil
}

// underNode reports whether leaf l lies in the subtree of node x.
func underNode(l treemath.LeafIndex, x treemath.NodeIndex, n treemath.LeafCount) bool {
	first, count, ok := treemath.LeafSpan(x, n)
	return ok && l >= first && uint64(l) < uint64(first)+uint64(count)
}

// copathChildren returns the filtered direct path of leaf sender in t and,
// for each of its nodes, the child on the copath (RFC 9420 §4.1.2).
func copathChildren(t *tree.Tree, sender treemath.LeafIndex) ([]treemath.NodeIndex, []treemath.NodeIndex, error) {
	path, err := t.FilteredDirectPath(sender)
	if err != nil {
		return nil, nil, err
	}
	n := treemath.LeafCount(t.LeafCount())
	copath := make([]treemath.NodeIndex, len(path))
	for i, x := range path {
		l, okL := treemath.Left(x, n)
		r, okR := treemath.Right(x, n)
		if !okL || !okR {
			return nil, nil, fmt.Errorf("node %d has no children: %w", x, ErrInvalidTree)
		}
		if underNode(sender, l, n) {
			copath[i] = r
		} else {
			copath[i] = l
		}
	}
	return path, copath, nil
}

// decryptPath is the receiver's side of RFC 9420 §7.5 for an UpdatePath of
// leaf sender that t has already merged: decrypt the path secret of the
// lowest path node above this member with a key of the copath child's
// resolution (without the leaves in excluded), derive the rest of the path,
// check the keys, and return the commit_secret. p is updated only on
// success.
func (p *privState) decryptPath(t *tree.Tree, sender treemath.LeafIndex, up *wire.UpdatePath, excluded []treemath.LeafIndex, provisional []byte) ([]byte, error) {
	path, copath, err := copathChildren(t, sender)
	if err != nil {
		return nil, err
	}
	if len(up.Nodes) != len(path) {
		return nil, fmt.Errorf("%d path nodes for a filtered direct path of %d: %w", len(up.Nodes), len(path), ErrInvalidCommit)
	}
	n := treemath.LeafCount(t.LeafCount())
	first := slices.IndexFunc(copath, func(c treemath.NodeIndex) bool { return underNode(p.leaf, c, n) })
	if first < 0 {
		return nil, fmt.Errorf("%w: leaf %d is below no copath node of leaf %d", ErrInvalidCommit, p.leaf, sender)
	}
	res, err := t.Resolution(copath[first])
	if err != nil {
		return nil, err
	}
	res = slices.DeleteFunc(res, func(x treemath.NodeIndex) bool {
		l, isLeaf := treemath.NodeToLeaf(x)
		return isLeaf && slices.Contains(excluded, l)
	})
	cts := up.Nodes[first].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, fmt.Errorf("%w: %d ciphertexts for a resolution of %d", ErrInvalidCommit, len(cts), len(res))
	}
	j := slices.IndexFunc(res, func(x treemath.NodeIndex) bool { _, ok := p.key(t, x); return ok })
	if j < 0 {
		return nil, fmt.Errorf("%w: no private key for the resolution of node %d", ErrInvalidCommit, copath[first])
	}
	priv, _ := p.key(t, res[j])
	secret, err := p.cs.DecryptWithLabel(priv, labelUpdatePathNode, provisional, cts[j].KEMOutput, cts[j].Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: path secret: %w", ErrDecrypt, err)
	}
	want := make([][]byte, len(path)-first)
	for i := range want {
		want[i] = up.Nodes[first+i].EncryptionKey
	}
	commitSecret, err := p.setChain(t, path[first:], want, secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	p.prune(t)
	return commitSecret, nil
}

// recordingReader passes reads through to r and keeps a copy of every byte
// handed out.
type recordingReader struct {
	r   io.Reader
	buf []byte
}

// Read implements io.Reader.
func (rr *recordingReader) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	rr.buf = append(rr.buf, b[:n]...)
	return n, err
}

// generatePath runs tree.GenerateUpdatePath for leaf in t and returns, with
// the PathSecrets, this member's private state after the update. The tree
// layer keeps the new leaf key and path secrets to itself; they are
// recovered by replaying the randomness it consumed (the leaf key pair,
// then path_secret[0], RFC 9420 §7.4), and every derived key is checked
// against the tree and the commit secret against the tree layer's, so a
// different consumption order is an error, never a wrong state.
func generatePath(cs *ciphersuite.Suite, t *tree.Tree, leaf treemath.LeafIndex, template *wire.LeafNode, signer *ciphersuite.SigningKey, groupID []byte, rand io.Reader) (*tree.PathSecrets, *privState, error) {
	rec := &recordingReader{r: rand}
	ps, err := t.GenerateUpdatePath(leaf, template, signer, groupID, rec)
	if err != nil {
		return nil, nil, mapTreeError(err)
	}
	defer clear(rec.buf)
	replay := bytes.NewReader(rec.buf)
	leafPriv, leafPub, err := cs.GenerateHPKEKey(replay)
	if err != nil || !bytes.Equal(leafPub, ps.Leaf().EncryptionKey) {
		ps.Zero()
		return nil, nil, errors.New("recover the new leaf key: replayed key does not match")
	}
	p, err := newPrivState(cs, leaf, leafPriv)
	clear(leafPriv)
	if err != nil {
		ps.Zero()
		return nil, nil, err
	}
	path, err := t.FilteredDirectPath(leaf)
	if err != nil {
		ps.Zero()
		return nil, nil, err
	}
	commitSecret := make([]byte, cs.HashSize())
	if _, err := io.ReadFull(replay, commitSecret); err != nil {
		ps.Zero()
		return nil, nil, errors.New("recover the path secrets: short replay")
	}
	if commitSecret, err = p.setChain(t, path, nil, commitSecret); err != nil {
		ps.Zero()
		return nil, nil, fmt.Errorf("recover the path secrets: %w", err)
	}
	if !bytes.Equal(commitSecret, ps.CommitSecret()) {
		ps.Zero()
		return nil, nil, errors.New("recover the path secrets: commit secret does not match")
	}
	return ps, p, nil
}

// encode appends the private state (persisted layout: leaf index, leaf
// private key, then each node index and path secret in node order).
func (p *privState) encode(b *cryptobyte.Builder) {
	b.AddUint32(uint32(p.leaf))
	codec.AddOpaque(b, p.leafPriv)
	xs := slices.Sorted(maps.Keys(p.nodes))
	codec.AddVector(b, func(b *cryptobyte.Builder) {
		for _, x := range xs {
			b.AddUint32(uint32(x))
			codec.AddOpaque(b, p.nodes[x].secret)
		}
	})
}

// decodePrivState reads a private state and re-derives its keys.
func decodePrivState(cs *ciphersuite.Suite, s *cryptobyte.String) (*privState, bool) {
	var leaf uint32
	var leafPriv []byte
	if !s.ReadUint32(&leaf) || !codec.ReadOpaque(s, &leafPriv) {
		return nil, false
	}
	p, err := newPrivState(cs, treemath.LeafIndex(leaf), leafPriv)
	clear(leafPriv)
	if err != nil {
		return nil, false
	}
	ok := codec.ReadList(s, func(s *cryptobyte.String) bool {
		var x uint32
		var secret []byte
		if !s.ReadUint32(&x) || !codec.ReadOpaque(s, &secret) || len(secret) != cs.HashSize() || x&1 == 0 {
			return false
		}
		if _, dup := p.nodes[treemath.NodeIndex(x)]; dup {
			return false
		}
		priv, pub, err := deriveNodeKey(cs, secret)
		if err != nil {
			return false
		}
		p.nodes[treemath.NodeIndex(x)] = nodeKey{secret: secret, priv: priv, pub: pub}
		return true
	})
	return p, ok
}
