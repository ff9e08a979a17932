package mls

import (
	"errors"
	"math"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// rawTree encodes ratchet tree nodes the way a hostile sender may, without
// the shape and sorting checks of wire.RatchetTree.Encode: any node kind
// at any position, trailing blanks, unmerged_leaves in any order.
func rawTree(t testing.TB, nodes wire.RatchetTree) []byte {
	t.Helper()
	return must[[]byte](t)(codec.Marshal(func(b *cryptobyte.Builder) {
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for _, n := range nodes {
				codec.AddOptional(b, n != nil, func(b *cryptobyte.Builder) {
					b.AddUint8(uint8(n.NodeType))
					if n.Leaf != nil {
						n.Leaf.Encode(b)
						return
					}
					codec.AddOpaque(b, n.Parent.EncryptionKey)
					codec.AddOpaque(b, n.Parent.ParentHash)
					codec.AddVector(b, func(b *cryptobyte.Builder) {
						for _, u := range n.Parent.UnmergedLeaves {
							b.AddUint32(u)
						}
					})
				})
			}
		})
	}))
}

// treeOf decodes a fresh copy of the ratchet tree of a hostile Welcome.
func (h *hostileWelcome) treeOf(t testing.TB) wire.RatchetTree {
	t.Helper()
	var rt wire.RatchetTree
	if ok, err := h.gi.Extensions.Get(&rt); !ok || err != nil {
		t.Fatalf("no ratchet tree: %v", err)
	}
	return rt
}

// setTree puts nodes in the GroupInfo (raw-encoded) and, when they import,
// sets the GroupContext's tree_hash to theirs: the committer signs what it
// sends, so only the tree's own validity can be wrong.
func (h *hostileWelcome) setTree(t testing.TB, nodes wire.RatchetTree) {
	t.Helper()
	exts := wire.Extensions{}
	for _, e := range h.gi.Extensions {
		if e.ExtensionType != wire.ExtensionTypeRatchetTree {
			exts = append(exts, e)
		}
	}
	h.gi.Extensions = append(exts, wire.Extension{ExtensionType: wire.ExtensionTypeRatchetTree, ExtensionData: rawTree(t, nodes)})
	if tr, err := tree.Import(must[*Identity](t)(NewIdentity(testSuite, []byte("x"), nil)).cs, nodes); err == nil {
		h.gi.GroupContext.TreeHash = must[[]byte](t)(tr.TreeHash())
	}
}

func parentNode(key, parentHash []byte, unmerged ...uint32) *wire.Node {
	return &wire.Node{NodeType: wire.NodeTypeParent, Parent: &wire.ParentNode{EncryptionKey: key, ParentHash: parentHash, UnmergedLeaves: unmerged}}
}

// Class 2: received trees (RFC 9420 §7.1–§7.9, §12.4.3.1, §12.4.3.3). The
// committer sends frank a Welcome whose ratchet tree is invalid in one
// respect each, with a matching tree_hash, a recomputed confirmation tag
// and a valid GroupInfo signature: only tree validation can catch it.
func TestHardeningTrees(t *testing.T) {
	a, b, c, d, e, f := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil), newTestClient(t, "carol", nil),
		newTestClient(t, "dave", nil), newTestClient(t, "erin", nil), newTestClient(t, "frank", nil)
	gs := newGroupOf(t, nil, a, b, c, d)
	alice, bob, carol, dave := gs[0], gs[1], gs[2], gs[3]
	step := func(pc *PendingCommit, committer **Group, others ...**Group) {
		for _, o := range others {
			*o = process(t, *o, pc.Commit).Next
		}
		*committer = pc.Next
	}
	step(must[*PendingCommit](t)(bob.Update()), &bob, &alice, &carol, &dave)
	step(must[*PendingCommit](t)(dave.Update()), &dave, &alice, &bob, &carol)
	step(must[*PendingCommit](t)(bob.RemoveMembers(carol.myLeaf)), &bob, &alice, &dave)
	step(must[*PendingCommit](t)(alice.AddMembers(e.kp.KeyPackage())), &alice, &bob, &dave)
	pc := must[*PendingCommit](t)(alice.AddMembers(f.kp.KeyPackage()))
	alice = pc.Next
	h := openHostile(t, pc.Welcome, f.kp, nil, nil)
	nodes := h.treeOf(t)
	// The shape the cases rely on: leaves alice 0, bob 1, erin 2, dave 3,
	// frank 4; parents 1 and 3 from bob's path, erin unmerged at 3; 5 and 7
	// blank; bob and dave leaves of source commit.
	if len(nodes) != 9 || nodes[1] == nil || nodes[3] == nil || nodes[5] != nil || nodes[7] != nil ||
		!slicesEqual(nodes[3].Parent.UnmergedLeaves, []uint32{2}) || len(nodes[1].Parent.UnmergedLeaves) != 0 ||
		nodes[2].Leaf.LeafNodeSource != wire.LeafNodeSourceCommit || nodes[6].Leaf.LeafNodeSource != wire.LeafNodeSourceCommit ||
		string(nodes[8].Leaf.Credential.Identity) != "frank" {
		t.Fatal("fixture: unexpected tree shape")
	}
	join := func(t *testing.T, welcome []byte, opts *JoinOptions) error {
		g, err := Join(welcome, []*PrivateKeyPackage{f.kp}, nil, opts)
		if err == nil {
			checkAgree(t, clone(t, alice), g)
		}
		return err
	}
	// Controls: the Welcome as sent and the tree re-encoded by setTree.
	if err := join(t, pc.Welcome, nil); err != nil {
		t.Fatal(err)
	}
	resealed := func(mut func(nodes wire.RatchetTree) wire.RatchetTree) []byte {
		c := *h
		c.gi.Extensions = append(wire.Extensions(nil), h.gi.Extensions...)
		c.setTree(t, mut(c.treeOf(t)))
		return c.seal(t, f.kp, sealOptions{fixTag: true, signer: a.id})
	}
	if err := join(t, resealed(func(n wire.RatchetTree) wire.RatchetTree { return n }), nil); err != nil {
		t.Fatalf("control: %v", err)
	}

	freshKey := func() []byte {
		_, pub, err := alice.cs.GenerateHPKEKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	extend := func(n wire.RatchetTree, size int) wire.RatchetTree {
		for len(n) < size {
			n = append(n, nil)
		}
		return n
	}
	invalid := func(rule error) []error { return []error{ErrInvalidTree, rule} }
	cases := []struct {
		name string
		mut  func(n wire.RatchetTree) wire.RatchetTree
		want []error
	}{
		{"class2/§7.9.2 parent node with an empty parent_hash", func(n wire.RatchetTree) wire.RatchetTree {
			n[1].Parent.ParentHash = nil
			return n
		}, invalid(tree.ErrParentNotCovered)},
		{"class2/§7.9.2 parent node with a wrong parent_hash", func(n wire.RatchetTree) wire.RatchetTree {
			n[1].Parent.ParentHash[0] ^= 1
			return n
		}, invalid(tree.ErrParentHashInvalid)},
		{"class2/§7.9.2 parent node with a changed key", func(n wire.RatchetTree) wire.RatchetTree {
			n[3].Parent.EncryptionKey = freshKey()
			return n
		}, invalid(tree.ErrParentNotCovered)},
		{"class2/§7.9.2 parent node added where a blank was", func(n wire.RatchetTree) wire.RatchetTree {
			n[5] = parentNode(freshKey(), nil, 2) // erin's leaf 2 is unmerged above it
			return n
		}, invalid(tree.ErrParentNotCovered)},
		{"class2/§7.9.2 parent node above blank nodes covered by no chain", func(n wire.RatchetTree) wire.RatchetTree {
			// Node 11 sits above blank node 9 (over frank's key_package
			// leaf) and blank subtree 13.
			n = extend(n, 12)
			n[11] = parentNode(freshKey(), nil)
			return n
		}, invalid(tree.ErrParentNotCovered)},
		{"class2/§7.9.2 a blank root made non-blank", func(n wire.RatchetTree) wire.RatchetTree {
			n[7] = parentNode(freshKey(), nil)
			return n
		}, invalid(tree.ErrParentNotCovered)},
		{"class2/§12.4.3.3 parent node in a leaf slot", func(n wire.RatchetTree) wire.RatchetTree {
			n[4] = parentNode(freshKey(), nil)
			return n
		}, invalid(tree.ErrMalformedTree)},
		{"class2/§12.4.3.3 leaf node in a parent slot", func(n wire.RatchetTree) wire.RatchetTree {
			n[5] = n[4]
			return n
		}, invalid(tree.ErrMalformedTree)},
		{"class2/§12.4.3.3 trailing blank node", func(n wire.RatchetTree) wire.RatchetTree {
			return append(n, nil, nil)
		}, invalid(tree.ErrMalformedTree)},
		{"class2/§7.1 unmerged_leaves unsorted", func(n wire.RatchetTree) wire.RatchetTree {
			n[3].Parent.UnmergedLeaves = []uint32{2, 0}
			return n
		}, invalid(tree.ErrMalformedTree)},
		{"class2/§7.1 an unmerged leaf listed twice", func(n wire.RatchetTree) wire.RatchetTree {
			n[3].Parent.UnmergedLeaves = []uint32{2, 2}
			return n
		}, invalid(tree.ErrMalformedTree)},
		{"class2/§12.4.3.1 unmerged leaf that is blank", func(n wire.RatchetTree) wire.RatchetTree {
			n[4] = nil
			return n
		}, invalid(tree.ErrUnmergedLeafInvalid)},
		{"class2/§12.4.3.1 unmerged leaf not below its parent", func(n wire.RatchetTree) wire.RatchetTree {
			n[1].Parent.UnmergedLeaves = []uint32{4}
			return n
		}, invalid(tree.ErrUnmergedLeafInvalid)},
		{"class2/§12.4.3.1 unmerged leaf missing from an intermediate parent", func(n wire.RatchetTree) wire.RatchetTree {
			n[3].Parent.UnmergedLeaves = []uint32{1, 2}
			return n
		}, invalid(tree.ErrUnmergedLeafInvalid)},
		{"class2/§12.4.3.1 unmerged leaf 2^32-1", func(n wire.RatchetTree) wire.RatchetTree {
			n[3].Parent.UnmergedLeaves = []uint32{2, math.MaxUint32}
			return n
		}, invalid(tree.ErrUnmergedLeafInvalid)},
		{"class2/§12.4.3.1 parent key equal to a leaf key", func(n wire.RatchetTree) wire.RatchetTree {
			n[1].Parent.EncryptionKey = n[0].Leaf.EncryptionKey
			return n
		}, invalid(tree.ErrDuplicateEncryptionKey)},
		{"class2/§12.4.3.1 two parents with one key", func(n wire.RatchetTree) wire.RatchetTree {
			n[3].Parent.EncryptionKey = n[1].Parent.EncryptionKey
			return n
		}, invalid(tree.ErrDuplicateEncryptionKey)},
		{"class2/§7.3 two leaves with one encryption key", func(n wire.RatchetTree) wire.RatchetTree {
			n[4].Leaf.EncryptionKey = n[6].Leaf.EncryptionKey
			return n
		}, invalid(tree.ErrDuplicateEncryptionKey)},
		{"class2/§7.3 two leaves with one signature key", func(n wire.RatchetTree) wire.RatchetTree {
			n[4].Leaf.SignatureKey = n[6].Leaf.SignatureKey
			return n
		}, invalid(tree.ErrDuplicateSignatureKey)},
		{"class2/§7.3 valid leaves swapped between indices", func(n wire.RatchetTree) wire.RatchetTree {
			n[2], n[6] = n[6], n[2]
			return n
		}, []error{ErrInvalidTree, ErrBadSignature, tree.ErrLeafSignatureInvalid}},
		{"class2/§7.3 a valid leaf moved to a blank index", func(n wire.RatchetTree) wire.RatchetTree {
			n = extend(n, 11)
			n[10], n[2] = n[2], nil
			n[1] = nil // bob's parent would otherwise fail first
			return n
		}, []error{ErrInvalidTree, ErrBadSignature, tree.ErrLeafSignatureInvalid}},
		{"class2/§7.3 leaf with a bad signature", func(n wire.RatchetTree) wire.RatchetTree {
			n[6].Leaf.Signature[0] ^= 1
			return n
		}, []error{ErrInvalidTree, ErrBadSignature, tree.ErrLeafSignatureInvalid}},
		{"class2/§12.4.3.1 no leaf for the joiner's KeyPackage", func(n wire.RatchetTree) wire.RatchetTree {
			return n[:7]
		}, []error{ErrInvalidTree}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := join(t, resealed(tc.mut), nil)
			if err == nil {
				t.Fatal("joined")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("error %q does not match %q", err, w)
				}
			}
		})
	}

	t.Run("class2/§12.4.3.1 tree hash mismatch", func(t *testing.T) {
		c := *h
		c.gi.Extensions = append(wire.Extensions(nil), h.gi.Extensions...)
		n := c.treeOf(t)
		n[1].Parent.ParentHash[0] ^= 1
		hash := c.gi.GroupContext.TreeHash
		c.setTree(t, n)
		c.gi.GroupContext.TreeHash = hash
		err := join(t, c.seal(t, f.kp, sealOptions{fixTag: true, signer: a.id}), nil)
		if !errors.Is(err, ErrInvalidTree) || !errors.Is(err, tree.ErrTreeHashMismatch) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("class2/§12.4.3.3 out-of-band tree that does not match the signed hash", func(t *testing.T) {
		c := *h
		exts := wire.Extensions{}
		for _, e := range h.gi.Extensions {
			if e.ExtensionType != wire.ExtensionTypeRatchetTree {
				exts = append(exts, e)
			}
		}
		c.gi.Extensions = exts
		welcome := c.seal(t, f.kp, sealOptions{fixTag: true, signer: a.id})
		if err := join(t, welcome, &JoinOptions{RatchetTree: alice.RatchetTree()}); err != nil {
			t.Fatalf("control: %v", err)
		}
		n := h.treeOf(t)
		n[1].Parent.ParentHash[0] ^= 1
		err := join(t, welcome, &JoinOptions{RatchetTree: rawTree(t, n)})
		if !errors.Is(err, ErrInvalidTree) || !errors.Is(err, tree.ErrTreeHashMismatch) {
			t.Fatalf("%v", err)
		}
		n = h.treeOf(t)
		n[3].Parent.UnmergedLeaves = []uint32{2, 0}
		if err := join(t, welcome, &JoinOptions{RatchetTree: rawTree(t, n)}); !errors.Is(err, ErrInvalidTree) {
			t.Fatalf("unsorted out of band: %v", err)
		}
	})

	t.Run("class2/§12.4.3.2 an external joiner validates the tree too", func(t *testing.T) {
		gi := must[[]byte](t)(alice.GroupInfo(nil))
		mallory := must[*Identity](t)(NewIdentity(testSuite, []byte("mallory"), nil))
		must[*PendingCommit](t)(JoinExternal(gi, mallory, nil, nil))
		var msg wire.MLSMessage
		if err := wire.Unmarshal(gi, &msg); err != nil {
			t.Fatal(err)
		}
		hw := &hostileWelcome{gi: *msg.GroupInfo}
		for _, mut := range []struct {
			name string
			f    func(n wire.RatchetTree)
			want error
		}{
			{"unmerged leaf missing from an intermediate parent", func(n wire.RatchetTree) { n[3].Parent.UnmergedLeaves = []uint32{1, 2} }, tree.ErrUnmergedLeafInvalid},
			{"wrong parent_hash", func(n wire.RatchetTree) { n[1].Parent.ParentHash[0] ^= 1 }, tree.ErrParentHashInvalid},
		} {
			c := *hw
			c.gi.Extensions = append(wire.Extensions(nil), hw.gi.Extensions...)
			n := c.treeOf(t)
			mut.f(n)
			c.setTree(t, n)
			c.gi.Signature = must[[]byte](t)(a.id.sign(labelGroupInfoTBS, c.gi.TBS()))
			bad := must[[]byte](t)(wire.Marshal(must[*wire.MLSMessage](t)(wire.NewMLSMessage(&c.gi))))
			if _, err := JoinExternal(bad, mallory, nil, nil); !errors.Is(err, ErrInvalidTree) || !errors.Is(err, mut.want) {
				t.Errorf("class2/§12.4.3.2 %s: %v", mut.name, err)
			}
		}
	})
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
