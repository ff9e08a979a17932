package tree

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// FuzzTree feeds arbitrary ratchet_tree bytes to Decode and, when they
// parse, to every read-only entry point, Validate, the encoder and the
// membership operations. Nothing may panic, and a decoded tree must encode
// back to the same bytes.
func FuzzTree(f *testing.F) {
	if _, ok := vectors.Dir(); ok {
		var cases []treeValidationCase
		vectors.Load(f, "tree-validation.json", &cases)
		for _, c := range cases {
			if c.CipherSuite == 1 && len(c.Tree) < 8000 {
				f.Add([]byte(c.Tree))
			}
		}
	}
	suite := mustSuite(f, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	fx := newFixture(f, suite, 8, func(i int) bool { return i != 6 })
	seed, err := fx.tree.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	newLeaf, _, _ := fx.newMember(f, "fuzz")
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Decode(suite, data)
		if err != nil {
			return
		}
		enc, err := tr.Encode()
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatal("decoded tree encodes differently")
		}
		th, _ := tr.TreeHash()
		for x := range NodeIndex(tr.width()) {
			_, _ = tr.Resolution(x)
			_, _ = tr.NodeHash(x)
		}
		for i := range tr.LeafCount() {
			_, _ = tr.FilteredDirectPath(LeafIndex(i))
		}
		// The structural checks always; the whole of Validate (with its
		// signature verifications) only on small trees, to keep the
		// fuzzer fast.
		_ = tr.checkUnmergedLeaves()
		_ = tr.checkUniqueKeys()
		_ = tr.verifyParentHashes()
		if tr.width() <= 15 {
			_ = tr.Validate(&Params{GroupContext: &wire.GroupContext{
				Version: wire.ProtocolVersionMLS10, CipherSuite: 1, GroupID: []byte("g"), TreeHash: th,
			}})
		}
		c := tr.Clone()
		for i := range c.LeafCount() {
			if c.Leaf(LeafIndex(i)) != nil {
				_ = c.RemoveLeaf(LeafIndex(i))
				break
			}
		}
		_, _ = c.AddLeaf(newLeaf)
		_, _ = c.TreeHash()
		_ = tr.ValidateLeafNode(newLeaf, wire.LeafNodeSourceKeyPackage, 0, &Params{GroupContext: &wire.GroupContext{}})
	})
}

// FuzzUpdatePath feeds arbitrary UpdatePath bytes, sender and excluded leaf
// to MergeUpdatePath and DecryptPath on a valid tree. Nothing may panic, and
// a failed merge must leave the tree unchanged.
func FuzzUpdatePath(f *testing.F) {
	suite := mustSuite(f, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	fx := newFixture(f, suite, 8, func(i int) bool { return i != 6 })
	gen := fx.tree.Clone()
	ps, err := gen.GenerateUpdatePath(2, gen.Leaf(2), fx.signers[2], fx.groupID, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ctx := []byte("fuzz context")
	up, err := ps.Encrypt(gen, ctx, nil, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	seed, err := wire.Marshal(up)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(2), uint32(6), seed)
	f.Add(uint32(1<<31), uint32(1<<32-1), seed)
	before, _ := fx.tree.TreeHash()
	f.Fuzz(func(t *testing.T, sender, excluded uint32, data []byte) {
		var path wire.UpdatePath
		if err := wire.Unmarshal(data, &path); err != nil {
			return
		}
		tr := fx.tree.Clone()
		ex := []LeafIndex{LeafIndex(excluded)}
		if err := tr.MergeUpdatePath(LeafIndex(sender), &path, ex); err != nil {
			if err := tr.VerifyTreeHash(before); err != nil {
				t.Fatalf("failed merge changed the tree: %v", err)
			}
			return
		}
		_, _ = tr.TreeHash()
		p := fx.private(t, fx.tree, 5)
		_, _ = p.DecryptPath(tr, LeafIndex(sender), &path, ex, ctx)
	})
}
