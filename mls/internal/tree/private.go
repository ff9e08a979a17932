package tree

import (
	"bytes"
	"fmt"
	"maps"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Private is the private part of one member's view of the tree
// (RFC 9420 §4.2): its leaf and the HPKE private keys it knows, for its own
// leaf and some nodes of its direct path. Each key is stored with its public
// key and used only while the tree still holds that public key at the node,
// so keys of nodes that have since been blanked or replaced are never used
// (and are wiped when next noticed).
type Private struct {
	suite *ciphersuite.Suite
	leaf  LeafIndex
	keys  map[NodeIndex]keyPair
}

type keyPair struct{ priv, pub []byte }

// NewPrivate starts the private state of the member at leaf with its leaf
// HPKE private key (the encryption key of its KeyPackage or leaf node).
func NewPrivate(suite *ciphersuite.Suite, leaf LeafIndex, leafPriv []byte) (*Private, error) {
	if uint64(leaf) >= uint64(treemath.MaxLeafCount) {
		return nil, fmt.Errorf("private tree state: leaf %d: %w", leaf, ErrIndexOutOfRange)
	}
	pub, err := suite.HPKEPublicKey(leafPriv)
	if err != nil {
		return nil, fmt.Errorf("private tree state: leaf key: %w", err)
	}
	p := &Private{suite: suite, leaf: leaf, keys: map[NodeIndex]keyPair{}}
	p.keys[NodeIndex(2*leaf)] = keyPair{priv: bytes.Clone(leafPriv), pub: pub}
	return p, nil
}

// Leaf is the member's leaf index.
func (p *Private) Leaf() LeafIndex { return p.leaf }

// Clone returns an independent copy; the private keys are copied so that
// wiping one copy leaves the other intact.
func (p *Private) Clone() *Private {
	c := &Private{suite: p.suite, leaf: p.leaf, keys: make(map[NodeIndex]keyPair, len(p.keys))}
	for x, k := range p.keys {
		c.keys[x] = keyPair{priv: bytes.Clone(k.priv), pub: k.pub}
	}
	return c
}

// Zero wipes every private key.
func (p *Private) Zero() {
	for x, k := range p.keys {
		clear(k.priv)
		delete(p.keys, x)
	}
}

// HasKey reports whether the member holds the private key matching the
// public key node x has in t.
func (p *Private) HasKey(t *Tree, x NodeIndex) bool {
	_, ok := p.key(t, x)
	return ok
}

// key returns the private key for node x if it matches t's public key.
func (p *Private) key(t *Tree, x NodeIndex) ([]byte, bool) {
	k, ok := p.keys[x]
	if !ok {
		return nil, false
	}
	pub := t.EncryptionKey(x)
	if pub == nil || !bytes.Equal(pub, k.pub) {
		return nil, false
	}
	return k.priv, true
}

// prune wipes and drops keys whose node in t no longer has their public key.
func (p *Private) prune(t *Tree) {
	maps.DeleteFunc(p.keys, func(x NodeIndex, k keyPair) bool {
		if pub := t.EncryptionKey(x); pub != nil && bytes.Equal(pub, k.pub) {
			return false
		}
		clear(k.priv)
		return true
	})
}

// SetPathSecret derives the key pair of node x from its path secret and
// stores it, after checking that the public key matches the one x has in t
// (ErrPathKeyMismatch). It loads saved state such as treekem.json's
// leaves_private.
func (p *Private) SetPathSecret(t *Tree, x NodeIndex, pathSecret []byte) error {
	if !t.inTree(x) {
		return fmt.Errorf("path secret for node %d: %w", x, ErrIndexOutOfRange)
	}
	pub := t.EncryptionKey(x)
	if pub == nil {
		return fmt.Errorf("path secret for node %d: node is blank: %w", x, ErrPathKeyMismatch)
	}
	priv, derived, err := deriveNodeKey(p.suite, pathSecret)
	if err != nil {
		return fmt.Errorf("path secret for node %d: %w", x, err)
	}
	if !bytes.Equal(derived, pub) {
		clear(priv)
		return fmt.Errorf("path secret for node %d: %w", x, ErrPathKeyMismatch)
	}
	p.store(x, priv, pub)
	return nil
}

func (p *Private) store(x NodeIndex, priv, pub []byte) {
	if old, ok := p.keys[x]; ok {
		clear(old.priv)
	}
	p.keys[x] = keyPair{priv: priv, pub: pub}
}

// InstallPathSecret is the joiner's step of RFC 9420 §12.4.3.1: given the
// path secret of node x (the lowest common ancestor of the joiner and the
// committer, from GroupSecrets), derive the key of x and of every non-blank
// node above it, following the path-secret chain of the committer's
// filtered direct path, and check each against t (ErrPathKeyMismatch).
// Nothing is stored unless every key matches.
func (p *Private) InstallPathSecret(t *Tree, x NodeIndex, pathSecret []byte) error {
	if !t.inTree(x) || x&1 == 0 || !isUnder(p.leaf, x) {
		return fmt.Errorf("install path secret at node %d: not a parent above leaf %d: %w", x, p.leaf, ErrIndexOutOfRange)
	}
	var nodes []NodeIndex
	for y := x; ; y = t.parentOf(y) {
		if !t.IsBlank(y) {
			nodes = append(nodes, y)
		}
		if y == t.root() {
			break
		}
	}
	if len(nodes) == 0 || nodes[0] != x {
		return fmt.Errorf("install path secret at node %d: node is blank: %w", x, ErrPathKeyMismatch)
	}
	privs, _, err := p.deriveChain(t, nodes, nil, pathSecret)
	if err != nil {
		return fmt.Errorf("install path secret: %w", err)
	}
	for i, y := range nodes {
		p.store(y, privs[i], t.EncryptionKey(y))
	}
	p.prune(t)
	return nil
}

// deriveChain derives the key pairs of nodes from the path secret of the
// first, each next secret being DeriveSecret(previous, "path"), and checks
// each public key against want[i] (or the tree when want is nil). It
// returns the private keys and the secret one step past the last node.
func (p *Private) deriveChain(t *Tree, nodes []NodeIndex, want [][]byte, first []byte) (privs [][]byte, next []byte, err error) {
	s := p.suite
	privs = make([][]byte, len(nodes))
	secret := first
	// Secrets derived here (not first, which the caller owns) are wiped
	// once the next one exists.
	wipe := func() {
		if &secret[0] != &first[0] {
			clear(secret)
		}
	}
	fail := func(e error) ([][]byte, []byte, error) {
		for _, k := range privs {
			clear(k)
		}
		if len(secret) > 0 {
			wipe()
		}
		return nil, nil, e
	}
	if len(first) == 0 {
		return fail(fmt.Errorf("empty path secret: %w", ErrPathKeyMismatch))
	}
	for i, y := range nodes {
		if i > 0 {
			derived, err := s.DeriveSecret(secret, "path")
			if err != nil {
				return fail(err)
			}
			wipe()
			secret = derived
		}
		priv, pub, err := deriveNodeKey(s, secret)
		if err != nil {
			return fail(err)
		}
		privs[i] = priv
		expected := t.EncryptionKey(y)
		if want != nil {
			expected = want[i]
		}
		if !bytes.Equal(pub, expected) {
			return fail(fmt.Errorf("node %d: %w", y, ErrPathKeyMismatch))
		}
	}
	if next, err = s.DeriveSecret(secret, "path"); err != nil {
		return fail(err)
	}
	wipe()
	return privs, next, nil
}

// DecryptPath decrypts the UpdatePath of leaf sender, which t has already
// merged (MergeUpdatePath), as RFC 9420 §7.5 describes: find the node of
// the sender's filtered direct path whose copath child holds this member,
// decrypt its path secret with a private key for a node of that child's
// resolution (without the leaves in excluded), derive the secrets and key
// pairs of the rest of the path, check every derived public key against the
// UpdatePath (ErrPathKeyMismatch), and return the commit_secret.
// groupContext is the encoded provisional GroupContext. The new keys replace
// those of the sender's direct path only when everything succeeded.
func (p *Private) DecryptPath(t *Tree, sender LeafIndex, path *wire.UpdatePath, excluded []LeafIndex, groupContext []byte) (commitSecret []byte, err error) {
	pathSecret, commitSecret, err := p.decryptPath(t, sender, path, excluded, groupContext)
	clear(pathSecret)
	return commitSecret, err
}

// decryptPath is DecryptPath, also returning the decrypted path secret.
func (p *Private) decryptPath(t *Tree, sender LeafIndex, path *wire.UpdatePath, excluded []LeafIndex, groupContext []byte) (pathSecret, commitSecret []byte, err error) {
	if err := t.checkLeaf(sender); err != nil {
		return nil, nil, fmt.Errorf("decrypt update path: %w", err)
	}
	if sender == p.leaf {
		return nil, nil, fmt.Errorf("decrypt update path: own path: %w", ErrNoDecryptionKey)
	}
	nodes, copath := t.filteredDirectPath(sender)
	if len(path.Nodes) != len(nodes) {
		return nil, nil, fmt.Errorf("decrypt update path: %d nodes for a filtered direct path of %d: %w", len(path.Nodes), len(nodes), ErrUpdatePathShape)
	}
	for i, x := range nodes {
		if !bytes.Equal(t.EncryptionKey(x), path.Nodes[i].EncryptionKey) {
			return nil, nil, fmt.Errorf("decrypt update path: node %d does not hold the path's key; merge the path first: %w", x, ErrPathKeyMismatch)
		}
	}
	first := -1
	for i, c := range copath {
		if isUnder(p.leaf, c) {
			first = i
			break
		}
	}
	if first < 0 {
		return nil, nil, fmt.Errorf("decrypt update path: leaf %d is under no copath node of leaf %d: %w", p.leaf, sender, ErrNoDecryptionKey)
	}
	res := newLeafSet(excluded).filter(t.appendResolution(nil, copath[first]))
	cts := path.Nodes[first].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, nil, fmt.Errorf("decrypt update path: %d ciphertexts for a resolution of %d: %w", len(cts), len(res), ErrUpdatePathShape)
	}
	var priv []byte
	j := -1
	for k, y := range res {
		if key, ok := p.key(t, y); ok {
			priv, j = key, k
			break
		}
	}
	if j < 0 {
		return nil, nil, fmt.Errorf("decrypt update path: resolution of node %d: %w", copath[first], ErrNoDecryptionKey)
	}
	secret, err := p.suite.DecryptWithLabel(priv, updatePathNodeLabel, groupContext, cts[j].KEMOutput, cts[j].Ciphertext)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt update path: node %d: %w", nodes[first], err)
	}
	want := make([][]byte, len(nodes)-first)
	for i := range want {
		want[i] = path.Nodes[first+i].EncryptionKey
	}
	privs, commitSecret, err := p.deriveChain(t, nodes[first:], want, secret)
	if err != nil {
		clear(secret)
		return nil, nil, fmt.Errorf("decrypt update path: %w", err)
	}
	for i, y := range nodes[first:] {
		p.store(y, privs[i], want[i])
	}
	p.prune(t)
	return secret, commitSecret, nil
}
