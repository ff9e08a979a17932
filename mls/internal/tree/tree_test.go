package tree

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// checkConsistent checks that the incrementally maintained tree hash and
// key indexes agree with a tree decoded afresh from t's encoding.
func checkConsistent(t *testing.T, tr *Tree) {
	t.Helper()
	enc, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Decode(tr.suite, enc)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.LeafCount() != tr.LeafCount() {
		t.Fatalf("fresh tree has %d leaves, incremental %d", fresh.LeafCount(), tr.LeafCount())
	}
	want, err := fresh.TreeHash()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.VerifyTreeHash(want); err != nil {
		t.Fatal(err)
	}
	for x := range NodeIndex(tr.width()) {
		if tr.resolutionSize(x) != fresh.resolutionSize(x) {
			t.Fatalf("resolution size of node %d: %d, fresh %d", x, tr.resolutionSize(x), fresh.resolutionSize(x))
		}
		if key := tr.EncryptionKey(x); key != nil {
			if at, ok := tr.HasEncryptionKey(key); !ok || at != x {
				t.Fatalf("encryption key of node %d indexed at %d (%v)", x, at, ok)
			}
		}
	}
	for i := range tr.LeafCount() {
		if l := tr.Leaf(LeafIndex(i)); l != nil {
			if at, ok := tr.FindSignatureKey(l.SignatureKey); !ok || uint32(at) != i {
				t.Fatalf("signature key of leaf %d indexed at %d (%v)", i, at, ok)
			}
		}
	}
	if fresh.MemberCount() != tr.MemberCount() {
		t.Fatalf("member count %d, fresh %d", tr.MemberCount(), fresh.MemberCount())
	}
}

func TestFixtureShapesValidate(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	shapes := []struct {
		name   string
		slots  int
		member func(int) bool
	}{
		{"one member", 1, func(int) bool { return true }},
		{"full 16", 16, func(int) bool { return true }},
		{"quarter blank 32", 32, func(i int) bool { return i%4 != 3 }},
		{"left heavy 16", 16, func(i int) bool { return i < 5 || i == 9 }},
		{"sparse 64", 64, func(i int) bool { return i%7 == 0 || i == 63 }},
		{"left half blank 8", 8, func(i int) bool { return i >= 5 }},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			f := newFixture(t, suite, sh.slots, sh.member)
			if err := f.tree.Validate(f.params(t)); err != nil {
				t.Fatal(err)
			}
			checkConsistent(t, f.tree)
		})
	}
}

// TestRandomOperations applies random adds, updates, removes and commits
// with paths to a group, checking after each step that the tree validates,
// that caches and indexes match a fresh decode, that a clone taken before
// the step is unchanged, and that every path is decrypted by another member
// to the same commit secret.
func TestRandomOperations(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 8, func(i int) bool { return i != 5 })
	tr := f.tree
	signers := map[LeafIndex]*ciphersuite.SigningKey{}
	privs := map[LeafIndex]*Private{}
	for i, s := range f.signers {
		if s != nil {
			signers[LeafIndex(i)] = s
			privs[LeafIndex(i)] = f.private(t, tr, LeafIndex(i))
		}
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	members := func() []LeafIndex {
		var out []LeafIndex
		for i := range signers {
			out = append(out, i)
		}
		// Map order is random; sort for a reproducible choice.
		for a := range out {
			for b := a + 1; b < len(out); b++ {
				if out[b] < out[a] {
					out[a], out[b] = out[b], out[a]
				}
			}
		}
		return out
	}
	for step := range 60 {
		before := tr.Clone()
		beforeHash, err := before.TreeHash()
		if err != nil {
			t.Fatal(err)
		}
		ms := members()
		switch op := rng.IntN(4); {
		case op == 0 || len(ms) < 3:
			leaf, priv, signer := f.newMember(t, "added")
			if err := tr.ValidateLeafNode(leaf, wire.LeafNodeSourceKeyPackage, 0, f.params(t)); err != nil {
				t.Fatalf("step %d: add: %v", step, err)
			}
			i, err := tr.AddLeaf(leaf)
			if err != nil {
				t.Fatal(err)
			}
			signers[i] = signer
			if privs[i], err = NewPrivate(suite, i, priv); err != nil {
				t.Fatal(err)
			}
		case op == 1:
			i := ms[rng.IntN(len(ms))]
			if err := tr.RemoveLeaf(i); err != nil {
				t.Fatalf("step %d: remove %d: %v", step, i, err)
			}
			delete(signers, i)
			delete(privs, i)
		case op == 2:
			i := ms[rng.IntN(len(ms))]
			priv, pub, err := suite.GenerateHPKEKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			leaf := *tr.Leaf(i)
			leaf.EncryptionKey = pub
			leaf.LeafNodeSource = wire.LeafNodeSourceUpdate
			leaf.Lifetime = wire.Lifetime{}
			leaf.ParentHash = nil
			if err := SignLeafNode(suite, &leaf, signers[i], f.groupID, i); err != nil {
				t.Fatal(err)
			}
			if err := tr.ValidateLeafNode(&leaf, wire.LeafNodeSourceUpdate, i, f.params(t)); err != nil {
				t.Fatalf("step %d: update %d: %v", step, i, err)
			}
			if err := tr.UpdateLeaf(i, &leaf); err != nil {
				t.Fatal(err)
			}
			if privs[i], err = NewPrivate(suite, i, priv); err != nil {
				t.Fatal(err)
			}
		default:
			sender := ms[rng.IntN(len(ms))]
			receiver := ms[rng.IntN(len(ms))]
			if receiver == sender {
				receiver = ms[(rng.IntN(len(ms)-1)+1+indexOf(ms, sender))%len(ms)]
			}
			commitPath(t, tr, f, sender, receiver, signers, privs)
		}
		if err := tr.Validate(f.params(t)); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		checkConsistent(t, tr)
		if err := before.VerifyTreeHash(beforeHash); err != nil {
			t.Fatalf("step %d: clone changed: %v", step, err)
		}
	}
}

func indexOf(list []LeafIndex, v LeafIndex) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return -1
}

// commitPath has sender commit with a path on tr and receiver (on a clone
// of the tree before) merge and decrypt it.
func commitPath(t *testing.T, tr *Tree, f *fixture, sender, receiver LeafIndex, signers map[LeafIndex]*ciphersuite.SigningKey, privs map[LeafIndex]*Private) {
	t.Helper()
	recvTree := tr.Clone()
	ps, err := tr.GenerateUpdatePath(sender, tr.Leaf(sender), signers[sender], f.groupID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	th, err := tr.TreeHash()
	if err != nil {
		t.Fatal(err)
	}
	ctx := append([]byte("provisional context "), th...)
	path, err := ps.Encrypt(tr, ctx, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := recvTree.ValidateLeafNode(&path.LeafNode, wire.LeafNodeSourceCommit, sender, f.params(t)); err != nil {
		t.Fatalf("receiver %d: leaf: %v", receiver, err)
	}
	if err := recvTree.MergeUpdatePath(sender, path, nil); err != nil {
		t.Fatalf("receiver %d: merge: %v", receiver, err)
	}
	if err := recvTree.VerifyTreeHash(th); err != nil {
		t.Fatalf("receiver %d: %v", receiver, err)
	}
	commit, err := privs[receiver].DecryptPath(recvTree, sender, path, nil, ctx)
	if err != nil {
		t.Fatalf("receiver %d from %d: %v", receiver, sender, err)
	}
	if !bytes.Equal(commit, ps.CommitSecret()) {
		t.Fatalf("receiver %d: commit secret differs", receiver)
	}
	privs[sender] = ps.Private()
	// Every other member processes the path too and keeps its new keys.
	for m, p := range privs {
		if m == sender || m == receiver {
			continue
		}
		got, err := p.DecryptPath(recvTree, sender, path, nil, ctx)
		if err != nil {
			t.Fatalf("member %d from %d: %v", m, sender, err)
		}
		if !bytes.Equal(got, commit) {
			t.Fatalf("member %d: commit secret differs", m)
		}
	}
	ps.Zero()
}

func TestUpdatePathWithNewMembersExcluded(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 8, func(i int) bool { return i < 6 })
	tr := f.tree
	// Two adds in the same commit: they are excluded from the resolutions.
	var added []LeafIndex
	for _, tag := range []string{"new a", "new b"} {
		leaf, _, _ := f.newMember(t, tag)
		i, err := tr.AddLeaf(leaf)
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, i)
	}
	if added[0] != 6 || added[1] != 7 {
		t.Fatalf("adds went to %v, want leftmost blanks 6, 7", added)
	}
	recv := tr.Clone()
	ps, err := tr.GenerateUpdatePath(0, tr.Leaf(0), f.signers[0], f.groupID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	th, _ := tr.TreeHash()
	path, err := ps.Encrypt(tr, th, added, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The root's copath child is node 11 (leaves 4-7): leaves 6 and 7 are
	// unmerged there but excluded, so one ciphertext, to node 11 itself.
	top := path.Nodes[len(path.Nodes)-1]
	if len(top.EncryptedPathSecret) != 1 {
		t.Fatalf("root ciphertexts: %d, want 1", len(top.EncryptedPathSecret))
	}
	// Without the exclusion the receiver counts three and rejects.
	if err := recv.Clone().MergeUpdatePath(0, path, nil); !errors.Is(err, ErrUpdatePathShape) {
		t.Fatalf("merge without exclusion: %v, want ErrUpdatePathShape", err)
	}
	if err := recv.MergeUpdatePath(0, path, added); err != nil {
		t.Fatal(err)
	}
	if err := recv.VerifyTreeHash(th); err != nil {
		t.Fatal(err)
	}
	commit, err := f.private(t, f.tree, 5).DecryptPath(recv, 0, path, added, th)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(commit, ps.CommitSecret()) {
		t.Fatal("commit secret differs")
	}
	// The new member at leaf 6 gets the path secret of the common
	// ancestor of 0 and 6 (the root, node 7) and derives the rest.
	secret, ok := ps.PathSecretFor(6)
	if !ok {
		t.Fatal("no path secret for the new member")
	}
	// A joiner's state starts from its own leaf key, which the
	// fixture did not keep for added members; the path secret alone
	// must give it the root key.
	np := &Private{suite: suite, leaf: 6, keys: map[NodeIndex]keyPair{}}
	if err := np.InstallPathSecret(recv, 7, secret); err != nil {
		t.Fatal(err)
	}
	if !np.HasKey(recv, 7) {
		t.Fatal("joiner does not hold the root key")
	}
	if err := recv.Validate(f.params(t)); err != nil {
		t.Fatal(err)
	}
}

func TestAddRemoveShape(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 1, func(int) bool { return true })
	tr := f.tree
	var leaves []LeafIndex
	for k := range 4 {
		leaf, _, _ := f.newMember(t, string(rune('a'+k)))
		i, err := tr.AddLeaf(leaf)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, i)
	}
	if tr.LeafCount() != 8 || leaves[3] != 4 {
		t.Fatalf("after 4 adds: %d leaves, last at %d", tr.LeafCount(), leaves[3])
	}
	// Removing the rightmost member truncates back to 4 leaves (§7.7).
	if err := tr.RemoveLeaf(4); err != nil {
		t.Fatal(err)
	}
	if tr.LeafCount() != 4 {
		t.Fatalf("after removing leaf 4: %d leaves, want 4", tr.LeafCount())
	}
	// Removing a middle member leaves a blank that the next add fills.
	if err := tr.RemoveLeaf(1); err != nil {
		t.Fatal(err)
	}
	if tr.FreeLeaf() != 1 {
		t.Fatalf("free leaf %d, want 1", tr.FreeLeaf())
	}
	leaf, _, _ := f.newMember(t, "z")
	if i, err := tr.AddLeaf(leaf); err != nil || i != 1 {
		t.Fatalf("add went to %d (%v), want 1", i, err)
	}
	// Removing everyone but leaf 0 shrinks to a single leaf.
	for _, i := range []LeafIndex{3, 2, 1} {
		if err := tr.RemoveLeaf(i); err != nil {
			t.Fatal(err)
		}
	}
	if tr.LeafCount() != 1 {
		t.Fatalf("%d leaves, want 1", tr.LeafCount())
	}
	checkConsistent(t, tr)
	enc, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rt := tr.Export()
	if len(rt) != 1 || rt[0] == nil {
		t.Fatalf("exported %d nodes", len(rt))
	}
	if _, err := Decode(suite, enc); err != nil {
		t.Fatal(err)
	}
}

// TestCloneIndependence mutates a clone and then the original and checks
// that neither sees the other's changes, including cached hashes and
// resolution sizes living in shared chunks.
func TestCloneIndependence(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 256, func(i int) bool { return i%5 != 4 })
	orig := f.tree
	encode := func(tr *Tree) []byte {
		enc, err := tr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	origEnc := encode(orig)
	origHash, _ := orig.TreeHash()

	c := orig.Clone()
	ps, err := c.GenerateUpdatePath(7, c.Leaf(7), f.signers[7], f.groupID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_ = ps
	if err := c.RemoveLeaf(200); err != nil {
		t.Fatal(err)
	}
	leaf, _, _ := f.newMember(t, "clone-only")
	if _, err := c.AddLeaf(leaf); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, c)
	if !bytes.Equal(encode(orig), origEnc) {
		t.Fatal("original changed by writes to the clone")
	}
	if err := orig.VerifyTreeHash(origHash); err != nil {
		t.Fatal(err)
	}
	if _, ok := orig.HasEncryptionKey(leaf.EncryptionKey); ok {
		t.Fatal("original indexes a key added to the clone")
	}
	cloneEnc := encode(c)
	cloneHash, _ := c.TreeHash()

	// Now write to the original; the clone must keep its state.
	if _, err := orig.GenerateUpdatePath(100, orig.Leaf(100), f.signers[100], f.groupID, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := orig.RemoveLeaf(3); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, orig)
	if !bytes.Equal(encode(c), cloneEnc) {
		t.Fatal("clone changed by writes to the original")
	}
	if err := c.VerifyTreeHash(cloneHash); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(f.params(t)); err == nil {
		t.Fatal("clone validated against the original's tree hash")
	}
	p := f.params(t)
	p.GroupContext.TreeHash = cloneHash
	if err := c.Validate(p); err != nil {
		t.Fatal(err)
	}
}

// TestExternalCommitPath has a new member take the leftmost free leaf of a
// full tree (growing it) and commit a path there, which members merge at
// the same leaf (RFC 9420 §12.4.2, §12.4.3.2).
func TestExternalCommitPath(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 4, func(int) bool { return true })
	joiner, _, signer := f.newMember(t, "external")

	gen := f.tree.Clone()
	at := gen.AllocateLeaf()
	if at != 4 || gen.LeafCount() != 8 {
		t.Fatalf("allocated leaf %d of %d", at, gen.LeafCount())
	}
	ps, err := gen.GenerateUpdatePath(at, joiner, signer, f.groupID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	th, _ := gen.TreeHash()
	path, err := ps.Encrypt(gen, th, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	recv := f.tree.Clone()
	if got := recv.AllocateLeaf(); got != at {
		t.Fatalf("receiver allocated %d", got)
	}
	if err := recv.ValidateLeafNode(&path.LeafNode, wire.LeafNodeSourceCommit, at, f.params(t)); err != nil {
		t.Fatal(err)
	}
	if err := recv.MergeUpdatePath(at, path, nil); err != nil {
		t.Fatal(err)
	}
	if err := recv.VerifyTreeHash(th); err != nil {
		t.Fatal(err)
	}
	commit, err := f.private(t, f.tree, 2).DecryptPath(recv, at, path, nil, th)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(commit, ps.CommitSecret()) {
		t.Fatal("commit secret differs")
	}
	p := f.params(t)
	p.GroupContext.TreeHash = th
	if err := recv.Validate(p); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, recv)
}

// TestSingleMemberPath commits a path in a group of one: no parent nodes,
// an empty parent hash, and a commit secret all the same.
func TestSingleMemberPath(t *testing.T) {
	suite := mustSuite(t, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	f := newFixture(t, suite, 1, func(int) bool { return true })
	ps, err := f.tree.GenerateUpdatePath(0, f.tree.Leaf(0), f.signers[0], f.groupID, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path, err := ps.Encrypt(f.tree, nil, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(path.Nodes) != 0 || len(path.LeafNode.ParentHash) != 0 || len(ps.CommitSecret()) != suite.HashSize() {
		t.Fatalf("path of %d nodes, parent hash %x, commit secret of %d bytes", len(path.Nodes), path.LeafNode.ParentHash, len(ps.CommitSecret()))
	}
	if err := f.tree.Validate(f.params(t)); err != nil {
		t.Fatal(err)
	}
	ext, err := f.tree.Extension()
	if err != nil {
		t.Fatal(err)
	}
	if ext.ExtensionType != wire.ExtensionTypeRatchetTree {
		t.Fatalf("extension type %v", ext.ExtensionType)
	}
	back, err := Decode(suite, ext.ExtensionData)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := f.tree.TreeHash()
	if err := back.VerifyTreeHash(want); err != nil {
		t.Fatal(err)
	}
}
