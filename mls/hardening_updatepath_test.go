package mls

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// provisionalContext is the encoded provisional GroupContext receiver uses
// to decrypt the path of commit content c (RFC 9420 §12.4.2): proposals
// applied, path merged, new tree hash, old transcript hash.
func provisionalContext(t testing.TB, receiver *Group, c *wire.FramedContent) []byte {
	t.Helper()
	list := must[[]resolved](t)(receiver.resolveProposals(c.Commit.Proposals, c.Sender))
	ap := must[*applied](t)(receiver.applyProposals(list))
	if err := ap.tree.MergeUpdatePath(leafIndex(c.Sender.LeafIndex), c.Commit.Path, ap.addedLeaves); err != nil {
		t.Fatal(err)
	}
	ap.ctx.TreeHash = must[[]byte](t)(ap.tree.TreeHash())
	return must[[]byte](t)(wire.Marshal(&ap.ctx))
}

// resignLeaf signs a path's leaf node again with signer for group groupID
// at leaf index.
func resignLeaf(t testing.TB, leaf *wire.LeafNode, signer *Identity, groupID []byte, index uint32) {
	t.Helper()
	leaf.Signature = must[[]byte](t)(signer.sign(labelLeafNodeTBS, leaf.TBS(groupID, index)))
}

// Class 3: UpdatePath (RFC 9420 §7.5, §7.6, §7.9, §12.4.2). Bob, a member,
// sends alice commits whose path is wrong in one respect each, re-signed
// and re-tagged so that nothing else is.
func TestHardeningUpdatePath(t *testing.T) {
	h := newHardGroup(t, nil)
	alice, bob, carol := h.alice, h.bob, h.carol
	cs := alice.cs
	up := must[*PendingCommit](t)(clone(t, bob).Update()).Commit
	process(t, clone(t, alice), up)
	pm0 := decodePublic(t, up)
	if n := len(pm0.Content.Commit.Path.Nodes); n != 2 || len(pm0.Content.Commit.Path.Nodes[1].EncryptedPathSecret) != 2 {
		t.Fatalf("fixture: bob's path has %d nodes", n)
	}
	provisional := provisionalContext(t, alice, &pm0.Content)
	aliceLeafPub := alice.tree.Leaf(leafIndex(alice.myLeaf)).EncryptionKey
	ct := pm0.Content.Commit.Path.Nodes[0].EncryptedPathSecret[0]
	pathSecret := must[[]byte](t)(cs.DecryptWithLabel(alice.priv.leafPriv, labelUpdatePathNode, provisional, ct.KEMOutput, ct.Ciphertext))
	encryptToAlice := func(secret, context []byte) wire.HPKECiphertext {
		kem, c, err := cs.EncryptWithLabel(aliceLeafPub, labelUpdatePathNode, context, secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		return wire.HPKECiphertext{KEMOutput: kem, Ciphertext: c}
	}
	groupID := alice.ID()

	mutatePath := func(msg []byte, f func(p *wire.UpdatePath)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return mutatePublic(t, msg, alice, bob.Identity(), func(pm *wire.PublicMessage) { f(pm.Content.Commit.Path) })
		}
	}
	leafChange := func(msg []byte, f func(l *wire.LeafNode)) func(t *testing.T) []byte {
		return mutatePath(msg, func(p *wire.UpdatePath) {
			f(&p.LeafNode)
			resignLeaf(t, &p.LeafNode, bob.Identity(), groupID, bob.myLeaf)
		})
	}
	commitErr := func(errs ...error) []error { return append([]error{ErrInvalidCommit}, errs...) }

	// The same mutations on a commit that removes alice: she cannot derive
	// the next epoch, but must still reject an invalid commit instead of
	// reporting that she was removed.
	rmAlice := must[*PendingCommit](t)(clone(t, bob).RemoveMembers(alice.myLeaf)).Commit
	if r := process(t, clone(t, alice), rmAlice); !r.Next.Removed() {
		t.Fatal("fixture: alice not removed")
	}

	cases := []rejectCase{
		{"class3/§7.5 decrypted path secret does not derive the node's public key", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptedPathSecret[0] = encryptToAlice(bytes.Repeat([]byte{9}, cs.HashSize()), provisional)
		}), []error{ErrInvalidCommit}},
		{"class3/§7.5 path secret of the node above sent for the node below", mutatePath(up, func(p *wire.UpdatePath) {
			next := must[[]byte](t)(cs.DeriveSecret(pathSecret, "path"))
			p.Nodes[0].EncryptedPathSecret[0] = encryptToAlice(next, provisional)
		}), []error{ErrInvalidCommit}},
		{"class3/§7.6 path secret encrypted under the old GroupContext", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptedPathSecret[0] = encryptToAlice(pathSecret, alice.ctxRaw)
		}), []error{ErrDecrypt}},
		{"class3/§7.6 garbage ciphertext for the receiver", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptedPathSecret[0].Ciphertext[0] ^= 1
		}), []error{ErrDecrypt}},
		{"class3/§12.4.2 path node key already in the tree", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptionKey = carol.tree.Leaf(leafIndex(carol.myLeaf)).EncryptionKey
		}), commitErr(tree.ErrDuplicateEncryptionKey)},
		{"class3/§12.4.2 path node key equal to the old key of that node", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptionKey = alice.tree.EncryptionKey(1)
		}), commitErr(tree.ErrDuplicateEncryptionKey)},
		{"class3/§12.4.2 two path nodes with one key", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[1].EncryptionKey = p.Nodes[0].EncryptionKey
		}), commitErr(tree.ErrDuplicateEncryptionKey)},
		{"class3/§7.3 new leaf key equal to the committer's current leaf key", leafChange(up, func(l *wire.LeafNode) {
			l.EncryptionKey = alice.tree.Leaf(leafIndex(bob.myLeaf)).EncryptionKey
		}), commitErr(tree.ErrDuplicateEncryptionKey)},
		{"class3/§12.4.2 new leaf key equal to a path node key", leafChange(up, func(l *wire.LeafNode) {
			l.EncryptionKey = pm0.Content.Commit.Path.Nodes[0].EncryptionKey
		}), commitErr(tree.ErrDuplicateEncryptionKey)},
		{"class3/§7.6 one path node too few", mutatePath(up, func(p *wire.UpdatePath) { p.Nodes = p.Nodes[:1] }), commitErr(tree.ErrUpdatePathShape)},
		{"class3/§7.6 one path node too many", mutatePath(up, func(p *wire.UpdatePath) { p.Nodes = append(p.Nodes, p.Nodes[1]) }), commitErr(tree.ErrUpdatePathShape)},
		{"class3/§7.6 empty path", mutatePath(up, func(p *wire.UpdatePath) { p.Nodes = nil }), commitErr(tree.ErrUpdatePathShape)},
		{"class3/§7.6 a ciphertext missing for a resolution node", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[1].EncryptedPathSecret = p.Nodes[1].EncryptedPathSecret[:1]
		}), commitErr(tree.ErrUpdatePathShape)},
		{"class3/§7.6 an extra ciphertext", mutatePath(up, func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptedPathSecret = append(p.Nodes[0].EncryptedPathSecret, p.Nodes[0].EncryptedPathSecret[0])
		}), commitErr(tree.ErrUpdatePathShape)},
		{"class3/§7.9.2 new leaf with a wrong parent_hash", leafChange(up, func(l *wire.LeafNode) { l.ParentHash[0] ^= 1 }), commitErr(tree.ErrParentHashInvalid)},
		{"class3/§7.9.2 new leaf with an empty parent_hash", leafChange(up, func(l *wire.LeafNode) { l.ParentHash = nil }), commitErr(tree.ErrParentHashInvalid)},
		{"class3/§7.3 new leaf of source update", leafChange(up, func(l *wire.LeafNode) { l.LeafNodeSource = wire.LeafNodeSourceUpdate; l.ParentHash = nil }),
			commitErr(ErrInvalidLeafNode, tree.ErrLeafNodeSource)},
		{"class3/§7.3 new leaf signed for another leaf index", mutatePath(up, func(p *wire.UpdatePath) {
			resignLeaf(t, &p.LeafNode, bob.Identity(), groupID, carol.myLeaf)
		}), commitErr(ErrBadSignature, tree.ErrLeafSignatureInvalid)},
		{"class3/§7.3 new leaf signed for another group", mutatePath(up, func(p *wire.UpdatePath) {
			resignLeaf(t, &p.LeafNode, bob.Identity(), []byte("another group"), bob.myLeaf)
		}), commitErr(ErrBadSignature, tree.ErrLeafSignatureInvalid)},
		{"class3/§7.3 new leaf carrying another member's signature key", mutatePath(up, func(p *wire.UpdatePath) {
			p.LeafNode.SignatureKey = carol.Identity().SignaturePublicKey()
			resignLeaf(t, &p.LeafNode, carol.Identity(), groupID, bob.myLeaf)
		}), commitErr(tree.ErrDuplicateSignatureKey)},
		{"class3/§12.4.2 commit removing the receiver: new leaf signature invalid", mutatePath(rmAlice, func(p *wire.UpdatePath) {
			p.LeafNode.Signature[0] ^= 1
		}), commitErr(ErrBadSignature)},
		{"class3/§12.4.2 commit removing the receiver: path too short", mutatePath(rmAlice, func(p *wire.UpdatePath) { p.Nodes = p.Nodes[:0] }),
			commitErr(tree.ErrUpdatePathShape)},
		{"class3/§12.4.2 commit removing the receiver: a ciphertext missing", mutatePath(rmAlice, func(p *wire.UpdatePath) {
			last := &p.Nodes[len(p.Nodes)-1]
			last.EncryptedPathSecret = last.EncryptedPathSecret[1:]
		}), commitErr(tree.ErrUpdatePathShape)},
		{"class3/§12.4.2 commit removing the receiver: path key already in the tree", mutatePath(rmAlice, func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptionKey = carol.tree.Leaf(leafIndex(carol.myLeaf)).EncryptionKey
		}), commitErr(tree.ErrDuplicateEncryptionKey)},
		{"class3/§12.4.2 commit removing the receiver: wrong leaf parent_hash", leafChange(rmAlice, func(l *wire.LeafNode) { l.ParentHash[0] ^= 1 }),
			commitErr(tree.ErrParentHashInvalid)},
		{"class3/§12.4.2 commit removing the receiver: no path", func(t *testing.T) []byte {
			return mutatePublic(t, rmAlice, alice, bob.Identity(), func(pm *wire.PublicMessage) { pm.Content.Commit.Path = nil })
		}, []error{ErrInvalidCommit}},
		{"class3/§12.4.2 commit removing the receiver: signed by another member", func(t *testing.T) []byte {
			return mutatePublic(t, rmAlice, alice, carol.Identity(), func(*wire.PublicMessage) {})
		}, []error{ErrBadSignature}},
		{"class3/§12.4.2 commit removing the receiver: bad membership tag", func(t *testing.T) []byte {
			pm := decodePublic(t, rmAlice)
			pm.MembershipTag[0] ^= 1
			return encodePublic(t, pm)
		}, []error{ErrBadMembershipTag}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)
}
