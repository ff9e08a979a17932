package mls

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/framing"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// openPrivate opens a PrivateMessage with a copy of receiver's keys and
// returns its verified content (receiver is not changed).
func openPrivate(t testing.TB, receiver *Group, msg []byte) *wire.AuthenticatedContent {
	t.Helper()
	g := clone(t, receiver)
	var m wire.MLSMessage
	if err := wire.Unmarshal(msg, &m); err != nil || m.PrivateMessage == nil {
		t.Fatalf("not a private message: %v", err)
	}
	v := must[*framing.Verified](t)(g.framer.Unprotect(&m, roster{tree: g.tree, ctx: &g.ctx}))
	return v.AuthenticatedContent()
}

// Class 1: tags and signatures (RFC 9420 §6.1, §6.2). Every tag is
// compared over its full length in constant time: empty, truncated and
// extended tags fail; a valid membership tag does not make up for a
// signature by the wrong key.
func TestHardeningTagsAndSignatures(t *testing.T) {
	h := newHardGroup(t, nil)
	alice, bob, carol := h.alice, h.bob, h.carol
	up := must[*PendingCommit](t)(bob.Update()).Commit
	goodTag := decodePublic(t, up).Auth.ConfirmationTag
	goodMembership := decodePublic(t, up).MembershipTag
	prop := must[[]byte](t)(clone(t, bob).ProposeRemove(h.dave.LeafIndex()))

	withMembershipTag := func(tag []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			pm := decodePublic(t, up)
			pm.MembershipTag = tag
			return encodePublic(t, pm)
		}
	}
	withConfirmationTag := func(tag []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return mutatePublic(t, up, alice, nil, func(pm *wire.PublicMessage) { pm.Auth.ConfirmationTag = tag })
		}
	}
	// The control: the commit as sent, and the helpers' re-encoding of it,
	// are accepted, so every rejection below is the mutation's.
	process(t, clone(t, alice), up)
	process(t, clone(t, alice), mutatePublic(t, up, alice, bob.Identity(), func(*wire.PublicMessage) {}))

	e := newTestClient(t, "erin", nil)
	nmp := must[[]byte](t)(NewMemberProposal(e.kp, alice.ID(), alice.Epoch()))
	process(t, clone(t, alice), nmp)
	mallory := must[*Identity](t)(NewIdentity(testSuite, []byte("mallory"), nil))
	ext := must[*PendingCommit](t)(JoinExternal(must[[]byte](t)(alice.GroupInfo(nil)), mallory, nil, nil)).Commit
	process(t, clone(t, alice), ext)

	cases := []rejectCase{
		{"class1/§6.2 empty membership tag", withMembershipTag(nil), []error{ErrBadMembershipTag}},
		{"class1/§6.2 membership tag truncated to half", withMembershipTag(goodMembership[:len(goodMembership)/2]), []error{ErrBadMembershipTag}},
		{"class1/§6.2 membership tag of one byte", withMembershipTag(goodMembership[:1]), []error{ErrBadMembershipTag}},
		{"class1/§6.2 membership tag with a byte appended", withMembershipTag(append(bytes.Clone(goodMembership), 0)), []error{ErrBadMembershipTag}},
		{"class1/§6.2 membership tag under another key", withMembershipTag(alice.cs.MAC(make([]byte, 32), []byte("x"))), []error{ErrBadMembershipTag}},
		{"class1/§6.1 empty confirmation tag", withConfirmationTag(nil), []error{ErrBadConfirmationTag}},
		{"class1/§6.1 confirmation tag truncated to half", withConfirmationTag(goodTag[:len(goodTag)/2]), []error{ErrBadConfirmationTag}},
		{"class1/§6.1 confirmation tag of one byte", withConfirmationTag(goodTag[:1]), []error{ErrBadConfirmationTag}},
		{"class1/§6.1 confirmation tag with a byte appended", withConfirmationTag(append(bytes.Clone(goodTag), 0)), []error{ErrBadConfirmationTag}},
		{"class1/§6.1 all-zero confirmation tag", withConfirmationTag(make([]byte, len(goodTag))), []error{ErrBadConfirmationTag}},
		{"class1/§6.1 commit signed by another member, valid membership tag", func(t *testing.T) []byte {
			return mutatePublic(t, up, alice, carol.Identity(), func(*wire.PublicMessage) {})
		}, []error{ErrBadSignature}},
		{"class1/§6.1 sender switched to another member, original signature", func(t *testing.T) []byte {
			return mutatePublic(t, up, alice, nil, func(pm *wire.PublicMessage) { pm.Content.Sender.LeafIndex = carol.LeafIndex() })
		}, []error{ErrBadSignature}},
		{"class1/§6.1 empty signature", func(t *testing.T) []byte {
			return mutatePublic(t, up, alice, nil, func(pm *wire.PublicMessage) { pm.Auth.Signature = nil })
		}, []error{ErrBadSignature}},
		{"class1/§6.1 truncated signature", func(t *testing.T) []byte {
			return mutatePublic(t, up, alice, nil, func(pm *wire.PublicMessage) { pm.Auth.Signature = pm.Auth.Signature[:32] })
		}, []error{ErrBadSignature}},
		{"class1/§6.1 proposal signed by another member, valid membership tag", func(t *testing.T) []byte {
			return mutatePublic(t, prop, alice, carol.Identity(), func(*wire.PublicMessage) {})
		}, []error{ErrBadSignature}},
		{"class1/§6.1 new_member_proposal signed by a key other than its leaf's", func(t *testing.T) []byte {
			return mutatePublic(t, nmp, alice, mallory, func(*wire.PublicMessage) {})
		}, []error{ErrBadSignature}},
		{"class1/§6.1 external commit signed by a key other than its path leaf's", func(t *testing.T) []byte {
			return mutatePublic(t, ext, alice, carol.Identity(), func(*wire.PublicMessage) {})
		}, []error{ErrBadSignature}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)
}

// Class 1 for PrivateMessage: the same rules once the AEAD has opened.
func TestHardeningTagsAndSignaturesPrivate(t *testing.T) {
	cfg := &Config{EncryptHandshake: true}
	h := newHardGroup(t, cfg)
	alice, bob, carol := h.alice, h.bob, h.carol
	up := must[*PendingCommit](t)(clone(t, bob).Update()).Commit
	ac := openPrivate(t, alice, up)
	commitSpec := func(tag []byte, signer *Identity) privateSpec {
		return privateSpec{content: &ac.Content, signer: signer, confirmationTag: tag,
			senderData: wire.SenderData{LeafIndex: bob.myLeaf, Generation: nextGen(t, alice, bob.myLeaf, wire.ContentTypeCommit)},
			keyLeaf:    bob.myLeaf, keyGen: nextGen(t, alice, bob.myLeaf, wire.ContentTypeCommit)}
	}
	goodTag := ac.Auth.ConfirmationTag
	// Control: the hand-built PrivateMessage with the real tag is accepted.
	process(t, clone(t, alice), sealPrivate(t, alice, commitSpec(goodTag, bob.Identity())))

	appSpec := func(signer *Identity) privateSpec {
		gen := nextGen(t, alice, bob.myLeaf, wire.ContentTypeApplication)
		return privateSpec{content: appContent(alice, bob.myLeaf, "hello"), signer: signer,
			senderData: wire.SenderData{LeafIndex: bob.myLeaf, Generation: gen}, keyLeaf: bob.myLeaf, keyGen: gen}
	}
	process(t, clone(t, alice), sealPrivate(t, alice, appSpec(bob.Identity())))

	cases := []rejectCase{
		{"class1/§6.1 private commit with an empty confirmation tag", func(t *testing.T) []byte {
			return sealPrivate(t, alice, commitSpec(nil, bob.Identity()))
		}, []error{ErrBadConfirmationTag}},
		{"class1/§6.1 private commit with a truncated confirmation tag", func(t *testing.T) []byte {
			return sealPrivate(t, alice, commitSpec(goodTag[:len(goodTag)/2], bob.Identity()))
		}, []error{ErrBadConfirmationTag}},
		{"class1/§6.1 private commit with a confirmation tag extended by a byte", func(t *testing.T) []byte {
			return sealPrivate(t, alice, commitSpec(append(bytes.Clone(goodTag), 0), bob.Identity()))
		}, []error{ErrBadConfirmationTag}},
		{"class1/§6.1 private commit signed by another member", func(t *testing.T) []byte {
			return sealPrivate(t, alice, commitSpec(goodTag, carol.Identity()))
		}, []error{ErrBadSignature}},
		{"class1/§6.1 private application message signed by another member", func(t *testing.T) []byte {
			return sealPrivate(t, alice, appSpec(carol.Identity()))
		}, []error{ErrBadSignature}},
		{"class1/§6.1 private proposal signed by another member", func(t *testing.T) []byte {
			gen := nextGen(t, alice, bob.myLeaf, wire.ContentTypeProposal)
			c := &wire.FramedContent{GroupID: alice.ctx.GroupID, Epoch: alice.ctx.Epoch, Sender: wire.MemberSender(bob.myLeaf),
				ContentType: wire.ContentTypeProposal, Proposal: &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: h.dave.myLeaf}}}
			return sealPrivate(t, alice, privateSpec{content: c, signer: carol.Identity(),
				senderData: wire.SenderData{LeafIndex: bob.myLeaf, Generation: gen}, keyLeaf: bob.myLeaf, keyGen: gen})
		}, []error{ErrBadSignature}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)

	// A forged application message must not burn the generation it named:
	// the sender's real message of that generation still opens.
	rejectsMessage(t, alice, sealPrivate(t, alice, appSpec(carol.Identity())), ErrBadSignature)
	real := must[[]byte](t)(bob.Seal([]byte("real"), nil))
	if r := process(t, alice, real); string(r.Data) != "real" {
		t.Fatalf("real message after a forged one: %q", r.Data)
	}
}
