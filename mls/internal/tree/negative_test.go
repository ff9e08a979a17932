package tree

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// The negative tests take valid trees (from the vectors where the mutation
// needs no private key, else from treekem.json's leaves_private or from
// fixtures), break exactly one rule, and check that the rule's error comes
// back.

// vectorTree is a decoded case of tree-validation.json.
type vectorTree struct {
	name    string
	suite   *ciphersuite.Suite
	groupID []byte
	nodes   wire.RatchetTree
}

func loadVectorTrees(t *testing.T) []vectorTree {
	t.Helper()
	var cases []treeValidationCase
	vectors.Load(t, "tree-validation.json", &cases)
	var out []vectorTree
	for i, c := range cases {
		out = append(out, vectorTree{
			name:    fmt.Sprintf("case=%d/suite=%d", i, c.CipherSuite),
			suite:   suiteFor(t, c.CipherSuite),
			groupID: c.GroupID,
			nodes:   decodeNodes(t, c.Tree),
		})
	}
	return out
}

func decodeNodes(t *testing.T, data []byte) wire.RatchetTree {
	t.Helper()
	var rt wire.RatchetTree
	if err := wire.Unmarshal(data, &rt); err != nil {
		t.Fatal(err)
	}
	return rt
}

// fresh returns a deep enough copy of the nodes to mutate one node.
func (v vectorTree) fresh() wire.RatchetTree { return slices.Clone(v.nodes) }

func (v vectorTree) params() *Params {
	return &Params{GroupContext: &wire.GroupContext{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: wire.CipherSuite(v.suite.ID()),
		GroupID:     v.groupID,
		Extensions:  wire.Extensions{},
	}}
}

// validateNodes imports and validates nodes; the error of whichever step
// fails.
func validateNodes(suite *ciphersuite.Suite, nodes wire.RatchetTree, p *Params) error {
	tr, err := Import(suite, nodes)
	if err != nil {
		return err
	}
	return tr.Validate(p)
}

// copyLeaf replaces node x of nodes with a copy of its leaf and returns it.
func copyLeaf(nodes wire.RatchetTree, x int) *wire.LeafNode {
	l := *nodes[x].Leaf
	l.Signature = bytes.Clone(l.Signature)
	l.ParentHash = bytes.Clone(l.ParentHash)
	l.Extensions = slices.Clone(l.Extensions)
	l.Capabilities.Credentials = slices.Clone(l.Capabilities.Credentials)
	nodes[x] = &wire.Node{NodeType: wire.NodeTypeLeaf, Leaf: &l}
	return &l
}

// copyParent replaces node x of nodes with a copy of its parent and
// returns it.
func copyParent(nodes wire.RatchetTree, x int) *wire.ParentNode {
	p := *nodes[x].Parent
	p.ParentHash = bytes.Clone(p.ParentHash)
	p.UnmergedLeaves = slices.Clone(p.UnmergedLeaves)
	nodes[x] = &wire.Node{NodeType: wire.NodeTypeParent, Parent: &p}
	return &p
}

func expectErr(t *testing.T, err error, want error, wantNot ...error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	for _, not := range wantNot {
		if errors.Is(err, not) {
			t.Fatalf("got %v, which also wraps %v", err, not)
		}
	}
}

func firstLeaf(nodes wire.RatchetTree) int {
	for x := 0; x < len(nodes); x += 2 {
		if nodes[x] != nil {
			return x
		}
	}
	return -1
}

func TestNegativeFlippedSignature(t *testing.T) {
	for _, v := range loadVectorTrees(t) {
		t.Run(v.name, func(t *testing.T) {
			nodes := v.fresh()
			l := copyLeaf(nodes, firstLeaf(nodes))
			l.Signature[len(l.Signature)/2] ^= 0x01
			expectErr(t, validateNodes(v.suite, nodes, v.params()), ErrLeafSignatureInvalid)
		})
	}
}

// unmergedAnywhere lists the leaves named in some unmerged_leaves.
func unmergedAnywhere(nodes wire.RatchetTree) map[uint32]bool {
	out := map[uint32]bool{}
	for _, n := range nodes {
		if n != nil && n.Parent != nil {
			for _, u := range n.Parent.UnmergedLeaves {
				out[u] = true
			}
		}
	}
	return out
}

func TestNegativeLeafMoved(t *testing.T) {
	tested := 0
	for _, v := range loadVectorTrees(t) {
		nodes := v.fresh()
		unmerged := unmergedAnywhere(nodes)
		// Two leaves not listed as unmerged anywhere, the first bound to
		// its index by its signature (source update or commit).
		a, b := -1, -1
		for x := 0; x < len(nodes); x += 2 {
			if nodes[x] == nil || unmerged[uint32(x/2)] {
				continue
			}
			if a < 0 && nodes[x].Leaf.LeafNodeSource != wire.LeafNodeSourceKeyPackage {
				a = x
			} else if a >= 0 && b < 0 {
				b = x
			}
		}
		if a < 0 || b < 0 {
			continue
		}
		tested++
		t.Run(v.name, func(t *testing.T) {
			nodes[a], nodes[b] = nodes[b], nodes[a]
			expectErr(t, validateNodes(v.suite, nodes, v.params()), ErrLeafSignatureInvalid)
		})
	}
	if tested == 0 {
		t.Fatal("no vector tree has two movable leaves")
	}
}

func TestNegativeWrongParentHash(t *testing.T) {
	for _, v := range loadVectorTrees(t) {
		nodes := v.fresh()
		x := -1
		for y := 1; y < len(nodes); y += 2 {
			if nodes[y] != nil {
				x = y
				break
			}
		}
		if x < 0 {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			p := copyParent(nodes, x)
			if len(p.ParentHash) == 0 {
				p.ParentHash = []byte{0}
			} else {
				p.ParentHash[0] ^= 0x80
			}
			err := validateNodes(v.suite, nodes, v.params())
			expectErr(t, err, ErrParentHashInvalid)
			expectErr(t, err, ErrParentNotCovered)
		})
	}
}

// level is the level of node x in the array tree.
func level(x int) int {
	k := 0
	for x&1 == 1 {
		x >>= 1
		k++
	}
	return k
}

func nodeAt(nodes wire.RatchetTree, x int) *wire.Node {
	if x < len(nodes) {
		return nodes[x]
	}
	return nil
}

func isParentNode(nodes wire.RatchetTree, x int) bool {
	n := nodeAt(nodes, x)
	return n != nil && n.Parent != nil
}

// TestNegativeParentNotCovered blanks both children of a non-blank parent
// whose four grandchildren are non-blank parents: each side's resolution
// then holds two parent nodes, so no chain can reach the parent, while the
// rest of the tree's structure is untouched.
func TestNegativeParentNotCovered(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 32, func(int) bool { return true })
	type candidate struct {
		name    string
		suite   *ciphersuite.Suite
		nodes   wire.RatchetTree
		params  *Params
		fixture bool
	}
	cands := []candidate{{"fixture-32", suite, f.tree.Export(), f.params(t), true}}
	cands[0].params.GroupContext.TreeHash = nil
	for _, v := range loadVectorTrees(t) {
		cands = append(cands, candidate{v.name, v.suite, v.fresh(), v.params(), false})
	}
	tested := 0
	for _, c := range cands {
		target := -1
		for x := 1; x < len(c.nodes) && target < 0; x += 2 {
			k := level(x)
			if k < 2 || !isParentNode(c.nodes, x) {
				continue
			}
			l, r := NodeIndex(x)^(1<<(k-1)), NodeIndex(x)^(3<<(k-1))
			ok := isParentNode(c.nodes, int(l)) && isParentNode(c.nodes, int(r))
			for _, ch := range []NodeIndex{l, r} {
				gl, gr := children(ch)
				ok = ok && isParentNode(c.nodes, int(gl)) && isParentNode(c.nodes, int(gr))
			}
			if ok {
				target = x
			}
		}
		if target < 0 {
			continue
		}
		tested++
		t.Run(c.name, func(t *testing.T) {
			k := level(target)
			c.nodes[target^(1<<(k-1))] = nil
			c.nodes[target^(3<<(k-1))] = nil
			expectErr(t, validateNodes(c.suite, c.nodes, c.params), ErrParentNotCovered, ErrParentHashInvalid)
		})
	}
	if tested < 2 {
		t.Fatalf("only %d trees tested", tested)
	}
}

// TestNegativeParentOverUnchainedLeaves sets a parent node above two leaves
// that carry no parent hash (sources update): nothing can chain to it.
func TestNegativeParentOverUnchainedLeaves(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 8, func(int) bool { return true })
	for _, i := range []LeafIndex{0, 1} {
		_, pub, err := suite.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf := *f.tree.Leaf(i)
		leaf.EncryptionKey = pub
		leaf.LeafNodeSource = wire.LeafNodeSourceUpdate
		leaf.ParentHash = nil
		if err := SignLeafNode(suite, &leaf, f.signers[i], f.groupID, i); err != nil {
			t.Fatal(err)
		}
		if err := f.tree.UpdateLeaf(i, &leaf); err != nil {
			t.Fatal(err)
		}
	}
	p := f.params(t)
	p.GroupContext.TreeHash = nil
	if err := f.tree.Validate(p); err != nil {
		t.Fatalf("before the mutation: %v", err)
	}
	nodes := f.tree.Export()
	_, pub, err := suite.GenerateHPKEKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes[1] = &wire.Node{NodeType: wire.NodeTypeParent, Parent: &wire.ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}}}
	expectErr(t, validateNodes(suite, nodes, p), ErrParentNotCovered, ErrParentHashInvalid)
}

// TestChainsThroughBlankNodes checks trees whose chains skip blank nodes on
// the way to the root validate, and that blanking the node a chain stops at
// is caught.
func TestChainsThroughBlankNodes(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	// Leaves 0..2 and 8: node 3 (leaves 0-3) is set; node 11 (4-7) is
	// empty; node 7 (0-7) is one-sided, so blank, and the root's chain
	// runs from node 3 through blank node 7 to the root 15.
	f := newFixture(t, suite, 16, func(i int) bool { return i <= 2 || i == 8 })
	tr := f.tree
	if !tr.IsBlank(7) || tr.IsBlank(3) || tr.IsBlank(15) {
		t.Fatalf("unexpected shape: 3 blank %v, 7 blank %v, 15 blank %v", tr.IsBlank(3), tr.IsBlank(7), tr.IsBlank(15))
	}
	p := f.params(t)
	if err := tr.Validate(p); err != nil {
		t.Fatal(err)
	}
	p.GroupContext.TreeHash = nil
	// Blank node 3: the root's left side then resolves to node 1 and
	// leaf 2, neither unmerged at the root, so no chain reaches it.
	nodes := tr.Export()
	nodes[3] = nil
	expectErr(t, validateNodes(suite, nodes, p), ErrParentNotCovered, ErrParentHashInvalid)
	// Changing the parent hash of node 3 breaks the link to the root.
	nodes = tr.Export()
	pn := copyParent(nodes, 3)
	pn.ParentHash[0] ^= 1
	err := validateNodes(suite, nodes, p)
	expectErr(t, err, ErrParentHashInvalid)
}

// treeKEMTree is a treekem.json tree with the signing keys of some leaves.
type treeKEMTree struct {
	vectorTree
	signers map[int]*ciphersuite.SigningKey // by leaf index
}

func loadTreeKEMTrees(t *testing.T) []treeKEMTree {
	t.Helper()
	var cases []treeKEMCase
	vectors.Load(t, "treekem.json", &cases)
	var out []treeKEMTree
	for i, c := range cases {
		suite := suiteFor(t, c.CipherSuite)
		kt := treeKEMTree{
			vectorTree: vectorTree{
				name:    fmt.Sprintf("case=%d/suite=%d", i, c.CipherSuite),
				suite:   suite,
				groupID: c.GroupID,
				nodes:   decodeNodes(t, c.RatchetTree),
			},
			signers: map[int]*ciphersuite.SigningKey{},
		}
		for _, lp := range c.LeavesPrivate {
			s, err := suite.ParseSigningKey(lp.SignaturePriv)
			if err != nil {
				t.Fatal(err)
			}
			kt.signers[int(lp.Index)] = s
		}
		out = append(out, kt)
	}
	return out
}

// twoSigners returns two leaf indices with signing keys.
func (kt treeKEMTree) twoSigners() (int, int, bool) {
	var idx []int
	for i := range kt.signers {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	if len(idx) < 2 {
		return 0, 0, false
	}
	return idx[0], idx[1], true
}

// resign re-signs leaf i of nodes with signer.
func (kt treeKEMTree) resign(t *testing.T, l *wire.LeafNode, i int, signer *ciphersuite.SigningKey) {
	t.Helper()
	if err := SignLeafNode(kt.suite, l, signer, kt.groupID, LeafIndex(i)); err != nil {
		t.Fatal(err)
	}
}

// TestNegativeResigned covers the rules whose mutation changes signed leaf
// content, re-signing with the leaf's own key from leaves_private so that
// only the rule under test breaks.
func TestNegativeResigned(t *testing.T) {
	for _, kt := range loadTreeKEMTrees(t) {
		a, b, ok := kt.twoSigners()
		if !ok {
			continue
		}
		t.Run(kt.name, func(t *testing.T) {
			if err := validateNodes(kt.suite, kt.fresh(), kt.params()); err != nil {
				t.Fatalf("unmutated: %v", err)
			}
			t.Run("duplicate encryption key, two leaves", func(t *testing.T) {
				nodes := kt.fresh()
				l := copyLeaf(nodes, 2*a)
				l.EncryptionKey = nodes[2*b].Leaf.EncryptionKey
				kt.resign(t, l, a, kt.signers[a])
				expectErr(t, validateNodes(kt.suite, nodes, kt.params()), ErrDuplicateEncryptionKey)
			})
			t.Run("duplicate encryption key, leaf and parent", func(t *testing.T) {
				nodes := kt.fresh()
				x := -1
				for y := 1; y < len(nodes); y += 2 {
					if nodes[y] != nil {
						x = y
						break
					}
				}
				if x < 0 {
					t.Skip("no parent node")
				}
				l := copyLeaf(nodes, 2*a)
				l.EncryptionKey = nodes[x].Parent.EncryptionKey
				kt.resign(t, l, a, kt.signers[a])
				expectErr(t, validateNodes(kt.suite, nodes, kt.params()), ErrDuplicateEncryptionKey)
			})
			t.Run("duplicate signature key", func(t *testing.T) {
				nodes := kt.fresh()
				l := copyLeaf(nodes, 2*a)
				l.SignatureKey = nodes[2*b].Leaf.SignatureKey
				kt.resign(t, l, a, kt.signers[b])
				expectErr(t, validateNodes(kt.suite, nodes, kt.params()), ErrDuplicateSignatureKey)
			})
			t.Run("credential type unsupported by a member", func(t *testing.T) {
				// Leaf a switches to an x509 credential, which its
				// capabilities (like everyone's here) list; leaf b stops
				// listing x509, so b cannot handle a's credential.
				nodes := kt.fresh()
				la := copyLeaf(nodes, 2*a)
				la.Credential = wire.Credential{CredentialType: wire.CredentialTypeX509, Certificates: [][]byte{{0x30, 0x00}}}
				if !slices.Contains(la.Capabilities.Credentials, wire.CredentialTypeX509) {
					la.Capabilities.Credentials = append(la.Capabilities.Credentials, wire.CredentialTypeX509)
				}
				kt.resign(t, la, a, kt.signers[a])
				lb := copyLeaf(nodes, 2*b)
				lb.Capabilities.Credentials = []wire.CredentialType{wire.CredentialTypeBasic}
				kt.resign(t, lb, b, kt.signers[b])
				expectErr(t, validateNodes(kt.suite, nodes, kt.params()), ErrCredentialTypeUnsupported)
			})
			t.Run("credential type not in own capabilities", func(t *testing.T) {
				nodes := kt.fresh()
				l := copyLeaf(nodes, 2*a)
				l.Capabilities.Credentials = []wire.CredentialType{wire.CredentialTypeX509}
				kt.resign(t, l, a, kt.signers[a])
				expectErr(t, validateNodes(kt.suite, nodes, kt.params()), ErrCredentialTypeUnsupported)
			})
			t.Run("extension not in capabilities", func(t *testing.T) {
				nodes := kt.fresh()
				l := copyLeaf(nodes, 2*a)
				l.Extensions = append(l.Extensions, wire.Extension{ExtensionType: 0xff0a, ExtensionData: []byte{1}})
				kt.resign(t, l, a, kt.signers[a])
				expectErr(t, validateNodes(kt.suite, nodes, kt.params()), ErrExtensionUnsupported)
			})
			t.Run("lifetime over", func(t *testing.T) {
				// Leaf a becomes a key_package leaf whose lifetime ended.
				nodes := kt.fresh()
				l := copyLeaf(nodes, 2*a)
				l.LeafNodeSource = wire.LeafNodeSourceKeyPackage
				l.ParentHash = nil
				l.Lifetime = wire.Lifetime{NotBefore: 1000, NotAfter: 2000}
				kt.resign(t, l, a, kt.signers[a])
				p := kt.params()
				p.Now = time.Unix(3000, 0)
				expectErr(t, validateNodes(kt.suite, nodes, p), ErrLifetimeExpired)
			})
			t.Run("required capability missing", func(t *testing.T) {
				p := kt.params()
				ext, err := wire.MakeExtension(&wire.RequiredCapabilities{
					ExtensionTypes:  []wire.ExtensionType{0xff0b},
					ProposalTypes:   []wire.ProposalType{},
					CredentialTypes: []wire.CredentialType{},
				})
				if err != nil {
					t.Fatal(err)
				}
				p.GroupContext.Extensions = wire.Extensions{ext}
				expectErr(t, validateNodes(kt.suite, kt.fresh(), p), ErrRequiredCapabilities)
			})
			t.Run("credential rejected", func(t *testing.T) {
				p := kt.params()
				bad := kt.nodes[2*a].Leaf.SignatureKey
				p.ValidateCredential = func(_ *wire.Credential, sigKey []byte) error {
					if bytes.Equal(sigKey, bad) {
						return errors.New("revoked")
					}
					return nil
				}
				expectErr(t, validateNodes(kt.suite, kt.fresh(), p), ErrCredentialInvalid)
			})
		})
	}
}

func TestNegativeDuplicateParentKeys(t *testing.T) {
	tested := 0
	for _, v := range loadVectorTrees(t) {
		nodes := v.fresh()
		var ps []int
		for y := 1; y < len(nodes); y += 2 {
			if nodes[y] != nil {
				ps = append(ps, y)
			}
		}
		if len(ps) < 2 {
			continue
		}
		tested++
		t.Run(v.name, func(t *testing.T) {
			p := copyParent(nodes, ps[1])
			p.EncryptionKey = nodes[ps[0]].Parent.EncryptionKey
			expectErr(t, validateNodes(v.suite, nodes, v.params()), ErrDuplicateEncryptionKey)
		})
	}
	if tested == 0 {
		t.Fatal("no tree with two parent nodes")
	}
}

func TestNegativeLifetimeOver(t *testing.T) {
	for _, v := range loadVectorTrees(t) {
		hasKP := false
		for x := 0; x < len(v.nodes); x += 2 {
			if v.nodes[x] != nil && v.nodes[x].Leaf.LeafNodeSource == wire.LeafNodeSourceKeyPackage {
				hasKP = true
			}
		}
		if !hasKP {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			p := v.params()
			p.Now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			expectErr(t, validateNodes(v.suite, v.fresh(), p), ErrLifetimeExpired)
			p.Now = time.Unix(1700000000, 0)
			if err := validateNodes(v.suite, v.fresh(), p); err != nil {
				t.Fatalf("inside the lifetime: %v", err)
			}
			p.MaxLifetime = 24 * time.Hour
			expectErr(t, validateNodes(v.suite, v.fresh(), p), ErrLifetimeExpired)
		})
	}
}

// unmergedFixture is a tree where leaf 3 is unmerged at node 3 and at the
// root 7 (node 5 between them is blank), and leaves 6 and 7 at the root
// (node 11 above them is blank).
func unmergedFixture(t *testing.T) (*fixture, wire.RatchetTree) {
	t.Helper()
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 8, func(i int) bool { return i != 3 && i < 6 })
	for _, tag := range []string{"three", "six", "seven"} {
		leaf, _, _ := f.newMember(t, tag)
		if _, err := f.tree.AddLeaf(leaf); err != nil {
			t.Fatal(err)
		}
	}
	p := f.params(t)
	if err := f.tree.Validate(p); err != nil {
		t.Fatalf("unmutated: %v", err)
	}
	nodes := f.tree.Export()
	if got := nodes[3].Parent.UnmergedLeaves; !slices.Equal(got, []uint32{3}) {
		t.Fatalf("node 3 unmerged %v", got)
	}
	if got := nodes[7].Parent.UnmergedLeaves; !slices.Equal(got, []uint32{3, 6, 7}) {
		t.Fatalf("root unmerged %v", got)
	}
	return f, nodes
}

func TestNegativeUnmergedLeaves(t *testing.T) {
	f, base := unmergedFixture(t)
	p := f.params(t)
	p.GroupContext.TreeHash = nil
	mutations := []struct {
		name   string
		mutate func(nodes wire.RatchetTree)
	}{
		{"listed twice", func(nodes wire.RatchetTree) {
			pn := copyParent(nodes, 7)
			pn.UnmergedLeaves = []uint32{3, 6, 6, 7}
		}},
		{"unsorted", func(nodes wire.RatchetTree) {
			pn := copyParent(nodes, 7)
			pn.UnmergedLeaves = []uint32{3, 7, 6}
		}},
		{"not a descendant", func(nodes wire.RatchetTree) {
			pn := copyParent(nodes, 3)
			pn.UnmergedLeaves = []uint32{3, 4}
		}},
		{"blank leaf", func(nodes wire.RatchetTree) {
			nodes[12] = nil // leaf 6 blanked, still listed at the root
		}},
		{"missing from an intermediate parent", func(nodes wire.RatchetTree) {
			pn := copyParent(nodes, 3)
			pn.UnmergedLeaves = []uint32{}
		}},
		{"out of range", func(nodes wire.RatchetTree) {
			pn := copyParent(nodes, 7)
			pn.UnmergedLeaves = []uint32{3, 6, 7, 1<<31 - 1}
		}},
		{"near 2^32", func(nodes wire.RatchetTree) {
			pn := copyParent(nodes, 7)
			pn.UnmergedLeaves = []uint32{3, 6, 7, math.MaxUint32}
		}},
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			nodes := slices.Clone(base)
			m.mutate(nodes)
			expectErr(t, validateNodes(f.suite, nodes, p), ErrUnmergedLeafInvalid)
		})
	}
	// From the vectors: a parent listing its unmerged leaf twice, and the
	// leaf dropped from an intermediate parent's list.
	tested := 0
	for _, v := range loadVectorTrees(t) {
		for x := 1; x < len(v.nodes); x += 2 {
			n := v.nodes[x]
			if n == nil || len(n.Parent.UnmergedLeaves) == 0 {
				continue
			}
			tested++
			nodes := v.fresh()
			pn := copyParent(nodes, x)
			pn.UnmergedLeaves = append(pn.UnmergedLeaves, pn.UnmergedLeaves[0])
			expectErr(t, validateNodes(v.suite, nodes, v.params()), ErrUnmergedLeafInvalid)
			break
		}
	}
	if tested == 0 {
		t.Fatal("no vector tree with unmerged leaves")
	}
}

// encodeNodesRaw encodes a ratchet tree without the shape checks
// RatchetTree.Encode applies, to produce malformed bytes.
func encodeNodesRaw(t *testing.T, nodes wire.RatchetTree) []byte {
	t.Helper()
	out, err := codec.Marshal(func(b *cryptobyte.Builder) {
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for _, n := range nodes {
				codec.AddOptional(b, n != nil, func(b *cryptobyte.Builder) { n.Encode(b) })
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNegativeMalformedTree(t *testing.T) {
	v := loadVectorTrees(t)[0]
	t.Run("parent node in a leaf slot", func(t *testing.T) {
		nodes := v.fresh()
		var parent *wire.Node
		for _, n := range nodes {
			if n != nil && n.Parent != nil {
				parent = n
				break
			}
		}
		if parent == nil {
			t.Fatal("no parent node")
		}
		nodes[firstLeaf(nodes)] = parent
		_, err := Import(v.suite, nodes)
		expectErr(t, err, ErrMalformedTree)
		_, err = Decode(v.suite, encodeNodesRaw(t, nodes))
		expectErr(t, err, ErrMalformedTree)
	})
	t.Run("leaf node in a parent slot", func(t *testing.T) {
		nodes := v.fresh()
		nodes[1] = nodes[firstLeaf(nodes)]
		_, err := Import(v.suite, nodes)
		expectErr(t, err, ErrMalformedTree)
		_, err = Decode(v.suite, encodeNodesRaw(t, nodes))
		expectErr(t, err, ErrMalformedTree)
	})
	t.Run("trailing blank", func(t *testing.T) {
		nodes := append(v.fresh(), nil)
		_, err := Import(v.suite, nodes)
		expectErr(t, err, ErrMalformedTree)
		_, err = Decode(v.suite, encodeNodesRaw(t, nodes))
		expectErr(t, err, ErrMalformedTree)
	})
	t.Run("empty", func(t *testing.T) {
		_, err := Import(v.suite, nil)
		expectErr(t, err, ErrMalformedTree)
		_, err = Decode(v.suite, []byte{0})
		expectErr(t, err, ErrMalformedTree)
	})
	t.Run("truncated bytes", func(t *testing.T) {
		enc := encodeNodesRaw(t, v.fresh())
		_, err := Decode(v.suite, enc[:len(enc)-1])
		expectErr(t, err, ErrMalformedTree)
	})
}

func TestNegativeTreeHashMismatch(t *testing.T) {
	for _, v := range loadVectorTrees(t)[:14] {
		t.Run(v.name, func(t *testing.T) {
			tr, err := Import(v.suite, v.fresh())
			if err != nil {
				t.Fatal(err)
			}
			th, _ := tr.TreeHash()
			p := v.params()
			p.GroupContext.TreeHash = bytes.Clone(th)
			p.GroupContext.TreeHash[0] ^= 1
			expectErr(t, tr.Validate(p), ErrTreeHashMismatch)
		})
	}
}

// TestNetworkIndices feeds indices from the network (near 2^31 and 2^32,
// just out of range, blank) to every entry point: errors, never panics.
func TestNetworkIndices(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 8, func(i int) bool { return i != 2 })
	tr := f.tree
	p := f.params(t)
	ps, err := tr.Clone().GenerateUpdatePath(0, tr.Leaf(0), f.signers[0], f.groupID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path, err := ps.Encrypt(tr, nil, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv := f.private(t, tr, 1)
	for _, i := range []uint32{8, 1 << 31, 1<<31 - 1, 1<<31 + 1, math.MaxUint32, math.MaxUint32 - 1} {
		l := LeafIndex(i)
		x := NodeIndex(max(i, 15)) // the 8-leaf tree has nodes 0..14
		expectErr(t, tr.Clone().RemoveLeaf(l), ErrIndexOutOfRange)
		expectErr(t, tr.Clone().UpdateLeaf(l, tr.Leaf(0)), ErrIndexOutOfRange)
		expectErr(t, tr.Clone().MergeUpdatePath(l, path, nil), ErrIndexOutOfRange)
		// An excluded index outside the tree excludes nothing.
		if err := tr.Clone().MergeUpdatePath(0, path, []LeafIndex{l}); err != nil {
			t.Fatalf("excluded %d: %v", i, err)
		}
		_, err := tr.Clone().GenerateUpdatePath(l, tr.Leaf(0), f.signers[0], f.groupID, rand.Reader)
		expectErr(t, err, ErrIndexOutOfRange)
		_, err = priv.Clone().DecryptPath(tr, l, path, nil, nil)
		expectErr(t, err, ErrIndexOutOfRange)
		expectErr(t, tr.ValidateLeafNode(tr.Leaf(0), wire.LeafNodeSourceUpdate, l, p), ErrIndexOutOfRange)
		_, err = tr.NodeHash(x)
		expectErr(t, err, ErrIndexOutOfRange)
		_, err = tr.Resolution(x)
		expectErr(t, err, ErrIndexOutOfRange)
		_, err = tr.FilteredDirectPath(l)
		expectErr(t, err, ErrIndexOutOfRange)
		expectErr(t, priv.Clone().InstallPathSecret(tr, x, make([]byte, 32)), ErrIndexOutOfRange)
		if tr.Leaf(l) != nil || tr.Parent(x) != nil || !tr.IsBlank(x) || tr.EncryptionKey(x) != nil {
			t.Fatalf("accessor at %d returned a node", i)
		}
	}
	expectErr(t, tr.Clone().RemoveLeaf(2), ErrBlankLeaf)
	expectErr(t, tr.Clone().UpdateLeaf(2, tr.Leaf(0)), ErrBlankLeaf)
}

func TestNegativeUpdatePath(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 8, func(int) bool { return true })
	base := f.tree
	const sender = LeafIndex(2)
	gen := base.Clone()
	ps, err := gen.GenerateUpdatePath(sender, base.Leaf(sender), f.signers[sender], f.groupID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx := []byte("context")
	good, err := ps.Encrypt(gen, ctx, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clonePath := func() *wire.UpdatePath {
		enc, err := wire.Marshal(good)
		if err != nil {
			t.Fatal(err)
		}
		var up wire.UpdatePath
		if err := wire.Unmarshal(enc, &up); err != nil {
			t.Fatal(err)
		}
		return &up
	}
	merge := func(up *wire.UpdatePath) error { return base.Clone().MergeUpdatePath(sender, up, nil) }
	if err := merge(clonePath()); err != nil {
		t.Fatalf("unmutated: %v", err)
	}
	t.Run("one node too few", func(t *testing.T) {
		up := clonePath()
		up.Nodes = up.Nodes[:len(up.Nodes)-1]
		expectErr(t, merge(up), ErrUpdatePathShape)
	})
	t.Run("one ciphertext too many", func(t *testing.T) {
		up := clonePath()
		up.Nodes[0].EncryptedPathSecret = append(up.Nodes[0].EncryptedPathSecret, up.Nodes[0].EncryptedPathSecret[0])
		expectErr(t, merge(up), ErrUpdatePathShape)
	})
	t.Run("leaf parent hash wrong", func(t *testing.T) {
		up := clonePath()
		up.LeafNode.ParentHash[0] ^= 1
		if err := SignLeafNode(suite, &up.LeafNode, f.signers[sender], f.groupID, sender); err != nil {
			t.Fatal(err)
		}
		expectErr(t, merge(up), ErrParentHashInvalid)
	})
	t.Run("node key replaced", func(t *testing.T) {
		up := clonePath()
		_, pub, _ := suite.GenerateHPKEKey(nil)
		up.Nodes[1].EncryptionKey = pub
		expectErr(t, merge(up), ErrParentHashInvalid)
	})
	t.Run("node key already in tree", func(t *testing.T) {
		up := clonePath()
		up.Nodes[1].EncryptionKey = base.EncryptionKey(NodeIndex(2 * 6))
		expectErr(t, merge(up), ErrDuplicateEncryptionKey)
	})
	t.Run("node key repeated", func(t *testing.T) {
		up := clonePath()
		up.Nodes[1].EncryptionKey = up.Nodes[0].EncryptionKey
		expectErr(t, merge(up), ErrDuplicateEncryptionKey)
	})
	t.Run("leaf key unchanged", func(t *testing.T) {
		up := clonePath()
		up.LeafNode.EncryptionKey = base.Leaf(sender).EncryptionKey
		if err := SignLeafNode(suite, &up.LeafNode, f.signers[sender], f.groupID, sender); err != nil {
			t.Fatal(err)
		}
		expectErr(t, base.ValidateLeafNode(&up.LeafNode, wire.LeafNodeSourceCommit, sender, f.params(t)), ErrDuplicateEncryptionKey)
		expectErr(t, merge(up), ErrDuplicateEncryptionKey)
	})
	t.Run("leaf source not commit", func(t *testing.T) {
		up := clonePath()
		up.LeafNode.LeafNodeSource = wire.LeafNodeSourceUpdate
		if err := SignLeafNode(suite, &up.LeafNode, f.signers[sender], f.groupID, sender); err != nil {
			t.Fatal(err)
		}
		expectErr(t, base.ValidateLeafNode(&up.LeafNode, wire.LeafNodeSourceCommit, sender, f.params(t)), ErrLeafNodeSource)
		expectErr(t, merge(up), ErrLeafNodeSource)
	})
	t.Run("leaf signed for another index", func(t *testing.T) {
		up := clonePath()
		if err := SignLeafNode(suite, &up.LeafNode, f.signers[sender], f.groupID, sender+1); err != nil {
			t.Fatal(err)
		}
		expectErr(t, base.ValidateLeafNode(&up.LeafNode, wire.LeafNodeSourceCommit, sender, f.params(t)), ErrLeafSignatureInvalid)
	})
	t.Run("leaf takes another member's signature key", func(t *testing.T) {
		up := clonePath()
		up.LeafNode.SignatureKey = base.Leaf(5).SignatureKey
		if err := SignLeafNode(suite, &up.LeafNode, f.signers[5], f.groupID, sender); err != nil {
			t.Fatal(err)
		}
		expectErr(t, base.ValidateLeafNode(&up.LeafNode, wire.LeafNodeSourceCommit, sender, f.params(t)), ErrDuplicateSignatureKey)
	})
	// Decryption: leaf 3 decrypts at node 1 and derives nodes 3 and 7.
	recv := base.Clone()
	if err := recv.MergeUpdatePath(sender, good, nil); err != nil {
		t.Fatal(err)
	}
	t.Run("derived key differs", func(t *testing.T) {
		up := clonePath()
		_, pub, _ := suite.GenerateHPKEKey(nil)
		up.Nodes[2].EncryptionKey = pub
		_, err := f.private(t, base, 3).DecryptPath(recv, sender, up, nil, ctx)
		expectErr(t, err, ErrPathKeyMismatch)
	})
	t.Run("key not derived from the path secret", func(t *testing.T) {
		// A sender that publishes a key of its own choosing for node 7 but
		// keeps the parent hashes and its leaf signature consistent: the
		// merge succeeds, the derivation check catches it.
		up := clonePath()
		_, pub, _ := suite.GenerateHPKEKey(nil)
		up.Nodes[2].EncryptionKey = pub
		nodes, copath := base.filteredDirectPath(sender)
		if len(nodes) != 3 || nodes[2] != 7 {
			t.Fatalf("filtered direct path %v", nodes)
		}
		pubs := [][]byte{up.Nodes[0].EncryptionKey, up.Nodes[1].EncryptionKey, pub}
		_, leafPH, err := base.pathParents(copath, pubs)
		if err != nil {
			t.Fatal(err)
		}
		up.LeafNode.ParentHash = leafPH
		if err := SignLeafNode(suite, &up.LeafNode, f.signers[sender], f.groupID, sender); err != nil {
			t.Fatal(err)
		}
		evil := base.Clone()
		if err := evil.MergeUpdatePath(sender, up, nil); err != nil {
			t.Fatalf("merge: %v", err)
		}
		_, err = f.private(t, base, 3).DecryptPath(evil, sender, up, nil, ctx)
		expectErr(t, err, ErrPathKeyMismatch)
		// Leaf 4 decrypts at the root itself and derives only its key.
		_, err = f.private(t, base, 4).DecryptPath(evil, sender, up, nil, ctx)
		expectErr(t, err, ErrPathKeyMismatch)
	})
	t.Run("tree not merged", func(t *testing.T) {
		_, err := f.private(t, base, 3).DecryptPath(base, sender, good, nil, ctx)
		expectErr(t, err, ErrPathKeyMismatch)
	})
	t.Run("ciphertext corrupted", func(t *testing.T) {
		up := clonePath()
		up.Nodes[0].EncryptedPathSecret[0].Ciphertext[0] ^= 1
		_, err := f.private(t, base, 3).DecryptPath(recv, sender, up, nil, ctx)
		expectErr(t, err, ciphersuite.ErrDecrypt)
	})
	t.Run("wrong group context", func(t *testing.T) {
		_, err := f.private(t, base, 3).DecryptPath(recv, sender, good, nil, []byte("other"))
		expectErr(t, err, ciphersuite.ErrDecrypt)
	})
	t.Run("own path", func(t *testing.T) {
		_, err := f.private(t, base, sender).DecryptPath(recv, sender, good, nil, ctx)
		expectErr(t, err, ErrNoDecryptionKey)
	})
	t.Run("stale keys", func(t *testing.T) {
		// A member whose key is not the one in the tree cannot decrypt.
		priv, _, _ := suite.GenerateHPKEKey(nil)
		p, err := NewPrivate(suite, 3, priv)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.DecryptPath(recv, sender, good, nil, ctx)
		expectErr(t, err, ErrNoDecryptionKey)
	})
	t.Run("wrong path secret", func(t *testing.T) {
		p := f.private(t, base, 3)
		expectErr(t, p.SetPathSecret(recv, 3, make([]byte, 32)), ErrPathKeyMismatch)
		expectErr(t, p.InstallPathSecret(recv, 3, make([]byte, 32)), ErrPathKeyMismatch)
	})
	// The receiver's tree is untouched by every failed merge above.
	if err := base.Validate(f.params(t)); err != nil {
		t.Fatal(err)
	}
}

func TestNegativeLeafNodeSource(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 4, func(int) bool { return true })
	leaf, _, _ := f.newMember(t, "kp")
	p := f.params(t)
	if err := f.tree.ValidateLeafNode(leaf, wire.LeafNodeSourceKeyPackage, 0, p); err != nil {
		t.Fatal(err)
	}
	expectErr(t, f.tree.ValidateLeafNode(leaf, wire.LeafNodeSourceUpdate, 1, p), ErrLeafNodeSource)
	if f.tree.Leaf(0).LeafNodeSource != wire.LeafNodeSourceCommit {
		t.Fatal("fixture leaf 0 is not a commit leaf")
	}
	expectErr(t, f.tree.ValidateLeafNode(f.tree.Leaf(0), wire.LeafNodeSourceKeyPackage, 0, p), ErrLeafNodeSource)
	// A key package whose keys are already in the group.
	dup := *f.tree.Leaf(0)
	dup.LeafNodeSource = wire.LeafNodeSourceKeyPackage
	dup.Lifetime = wire.Lifetime{NotBefore: 0, NotAfter: math.MaxUint64}
	dup.ParentHash = nil
	if err := SignLeafNode(suite, &dup, f.signers[0], nil, 0); err != nil {
		t.Fatal(err)
	}
	expectErr(t, f.tree.ValidateLeafNode(&dup, wire.LeafNodeSourceKeyPackage, 0, p), ErrDuplicateEncryptionKey)
	_, fresh, _ := suite.GenerateHPKEKey(nil)
	dup.EncryptionKey = fresh
	if err := SignLeafNode(suite, &dup, f.signers[0], nil, 0); err != nil {
		t.Fatal(err)
	}
	expectErr(t, f.tree.ValidateLeafNode(&dup, wire.LeafNodeSourceKeyPackage, 0, p), ErrDuplicateSignatureKey)
}
