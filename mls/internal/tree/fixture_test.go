package tree

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// fixture is a synthetic but fully valid ratchet tree with every private
// key known: each non-blank parent was "set" by a commit from its left
// side (or its only populated side), so the parent-hash chains run up the
// left edges, and right-hand nodes carry stale parent hashes as they would
// after later commits. Leaves alternate between the commit, key_package and
// update sources. It stands in for a group that has lived a while, at any
// size, without running the protocol for every member.
type fixture struct {
	suite   *ciphersuite.Suite
	groupID []byte
	tree    *Tree
	signers []*ciphersuite.SigningKey // by leaf; nil for blank leaves
	privs   [][]byte                  // HPKE private key by node index
}

// seedFor is a deterministic 32-byte seed for node x and a purpose.
func seedFor(x NodeIndex, purpose string) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(x))
	h := sha256.Sum256(append([]byte(purpose), b[:]...))
	return h[:]
}

// testCapabilities lists what every fixture leaf supports.
func testCapabilities() wire.Capabilities {
	return wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.ProtocolVersionMLS10},
		CipherSuites: []wire.CipherSuite{1, 2, 3, 4, 5, 6, 7},
		Extensions:   []wire.ExtensionType{},
		Proposals:    []wire.ProposalType{},
		Credentials:  []wire.CredentialType{wire.CredentialTypeBasic},
	}
}

// newFixture builds a tree of leafSlots leaves (a power of two) where
// member(i) says whether leaf i is occupied.
func newFixture(tb testing.TB, suite *ciphersuite.Suite, leafSlots int, member func(int) bool) *fixture {
	tb.Helper()
	f := &fixture{
		suite:   suite,
		groupID: []byte("fixture group"),
		signers: make([]*ciphersuite.SigningKey, leafSlots),
		privs:   make([][]byte, 2*leafSlots-1),
	}
	scratch := New(suite)
	for int(scratch.n) < leafSlots {
		scratch.grow()
	}
	// count[i] is the number of members among leaves [0, i).
	count := make([]int, leafSlots+1)
	for i := range leafSlots {
		count[i+1] = count[i]
		if member(i) {
			count[i+1]++
		}
	}
	populated := func(x NodeIndex) bool {
		lo, hi := leafSpan(x)
		return count[hi+1]-count[lo] > 0
	}
	// build fills the subtree at x; parentHash is the value its top
	// non-blank node carries, live when that node is the link of a
	// parent-hash chain and stale otherwise (nil at the top of the tree).
	var build func(x NodeIndex, parentHash []byte, live bool)
	build = func(x NodeIndex, parentHash []byte, live bool) {
		if !populated(x) {
			return
		}
		if x&1 == 0 {
			f.buildLeaf(tb, scratch, LeafIndex(x>>1), parentHash, live)
			return
		}
		l, r := children(x)
		if !populated(l) || !populated(r) {
			// A node above a one-sided subtree is blank; the chain
			// passes through it.
			build(l, parentHash, live)
			build(r, parentHash, live)
			return
		}
		priv, pub, err := suite.DeriveKeyPair(seedFor(x, "node"))
		if err != nil {
			tb.Fatal(err)
		}
		f.privs[x] = priv
		if parentHash == nil {
			parentHash = []byte{}
		}
		node := &wire.ParentNode{EncryptionKey: pub, ParentHash: parentHash, UnmergedLeaves: []uint32{}}
		scratch.mut(x).parent = node
		// The right side was set by an older commit whose parent no
		// longer exists: a stale parent hash.
		build(r, seedFor(x, "stale"), false)
		sib, err := scratch.nodeHash(r)
		if err != nil {
			tb.Fatal(err)
		}
		ph, err := scratch.parentHash(pub, parentHash, sib)
		if err != nil {
			tb.Fatal(err)
		}
		build(l, ph, true)
	}
	build(scratch.root(), nil, false)
	tr, err := Import(suite, scratch.Export())
	if err != nil {
		tb.Fatal(err)
	}
	f.tree = tr
	return f
}

// buildLeaf creates, signs and stores leaf i. A leaf that is a live chain
// link has source commit; the others are commit leaves with a stale parent
// hash, key_package or update leaves.
func (f *fixture) buildLeaf(tb testing.TB, scratch *Tree, i LeafIndex, parentHash []byte, live bool) {
	tb.Helper()
	x := NodeIndex(2 * i)
	priv, pub, err := f.suite.DeriveKeyPair(seedFor(x, "leaf"))
	if err != nil {
		tb.Fatal(err)
	}
	f.privs[x] = priv
	signer, err := f.suite.GenerateSigningKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	f.signers[i] = signer
	leaf := &wire.LeafNode{
		EncryptionKey: pub,
		SignatureKey:  signer.PublicKey(),
		Credential:    wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: binary.BigEndian.AppendUint32([]byte("member "), uint32(i))},
		Capabilities:  testCapabilities(),
		Extensions:    wire.Extensions{},
	}
	switch {
	case live || (parentHash != nil && i%3 == 0):
		leaf.LeafNodeSource = wire.LeafNodeSourceCommit
		leaf.ParentHash = parentHash
	case i%3 == 1:
		leaf.LeafNodeSource = wire.LeafNodeSourceKeyPackage
		leaf.Lifetime = wire.Lifetime{NotBefore: 1_600_000_000, NotAfter: 2_000_000_000}
	default:
		leaf.LeafNodeSource = wire.LeafNodeSourceUpdate
	}
	if err := SignLeafNode(f.suite, leaf, signer, f.groupID, i); err != nil {
		tb.Fatal(err)
	}
	scratch.mut(NodeIndex(2 * i)).leaf = leaf
}

// params is the validation context of the fixture's group.
func (f *fixture) params(tb testing.TB) *Params {
	tb.Helper()
	th, err := f.tree.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	return &Params{GroupContext: &wire.GroupContext{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: wire.CipherSuite(f.suite.ID()),
		GroupID:     f.groupID,
		TreeHash:    th,
		Extensions:  wire.Extensions{},
	}}
}

// private is the private state of member i: its leaf key and the key of
// every non-blank parent above it.
func (f *fixture) private(tb testing.TB, tr *Tree, i LeafIndex) *Private {
	tb.Helper()
	p, err := NewPrivate(f.suite, i, f.privs[2*i])
	if err != nil {
		tb.Fatal(err)
	}
	for x := NodeIndex(2 * i); x != tr.root(); {
		x = tr.parentOf(x)
		if pn := tr.Parent(x); pn != nil && f.privs[x] != nil {
			p.store(x, append([]byte(nil), f.privs[x]...), pn.EncryptionKey)
		}
	}
	return p
}

// newMember makes a fresh key_package leaf (with its keys) for adding.
func (f *fixture) newMember(tb testing.TB, tag string) (*wire.LeafNode, []byte, *ciphersuite.SigningKey) {
	tb.Helper()
	priv, pub, err := f.suite.GenerateHPKEKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := f.suite.GenerateSigningKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	leaf := &wire.LeafNode{
		EncryptionKey:  pub,
		SignatureKey:   signer.PublicKey(),
		Credential:     wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(tag)},
		Capabilities:   testCapabilities(),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       wire.Lifetime{NotBefore: 1_600_000_000, NotAfter: 2_000_000_000},
		Extensions:     wire.Extensions{},
	}
	if err := SignLeafNode(f.suite, leaf, signer, nil, 0); err != nil {
		tb.Fatal(err)
	}
	return leaf, priv, signer
}

func mustSuite(tb testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	tb.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
