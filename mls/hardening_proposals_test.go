package mls

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// forgeKeyPackage changes c's KeyPackage with f and signs its leaf and the
// KeyPackage again with c's key: a KeyPackage its owner could publish.
func forgeKeyPackage(t testing.TB, c *client, f func(kp *wire.KeyPackage)) *KeyPackage {
	t.Helper()
	kp := c.kp.KeyPackage().kp
	f(&kp)
	kp.LeafNode.Signature = must[[]byte](t)(c.id.sign(labelLeafNodeTBS, kp.LeafNode.TBS(nil, 0)))
	kp.Signature = must[[]byte](t)(c.id.sign(labelKeyPackageTBS, kp.TBS()))
	return must[*KeyPackage](t)(newKeyPackage(c.id.cs, kp))
}

func addOf(kp *KeyPackage) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: kp.kp}}
}

func removeOf(leaf uint32) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: leaf}}
}

func externalPSKOf(id string, nonce []byte) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		PSKType: wire.PSKTypeExternal, PSKID: []byte(id), PSKNonce: nonce}}}
}

func resumptionPSKOf(g *Group, epoch uint64, usage wire.ResumptionPSKUsage, nonce []byte) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		PSKType: wire.PSKTypeResumption, Usage: usage, PSKGroupID: g.ID(), PSKEpoch: epoch, PSKNonce: nonce}}}
}

func gceOf(exts ...wire.Extension) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeGroupContextExtensions, GroupContextExtensions: &wire.GroupContextExtensions{Extensions: exts}}
}

func reinitOf(g *Group) *wire.Proposal {
	return &wire.Proposal{ProposalType: wire.ProposalTypeReInit, ReInit: &wire.ReInit{GroupID: []byte("next"), Version: wire.ProtocolVersionMLS10, CipherSuite: g.ctx.CipherSuite}}
}

// lastRef is the ProposalRef of the proposal g cached last.
func lastRef(g *Group) []byte { return g.proposals[len(g.proposals)-1].ref }

// Class 7: proposal lists (RFC 9420 §12.1, §12.2, §12.4.3.2). A hostile
// committer (bob) sends alice correctly signed, correctly tagged commits
// whose proposal lists break one rule each.
func TestHardeningProposalLists(t *testing.T) {
	psks := map[string][]byte{"k": bytes.Repeat([]byte{1}, 32)}
	cfg := &Config{ExternalPSK: func(id []byte) ([]byte, bool) { v, ok := psks[string(id)]; return v, ok }}
	h := newHardGroup(t, cfg)
	alice, bob, carol, dave := h.alice, h.bob, h.carol, h.dave
	nh := alice.cs.HashSize()
	nonce := func(b byte) []byte { return bytes.Repeat([]byte{b}, nh) }

	// Proposals alice has cached: carol's Update, bob's own Update, and
	// carol's Remove of dave.
	process(t, alice, must[[]byte](t)(clone(t, carol).ProposeUpdate()))
	carolUpdate := lastRef(alice)
	process(t, alice, must[[]byte](t)(clone(t, bob).ProposeUpdate()))
	bobUpdate := lastRef(alice)
	process(t, alice, must[[]byte](t)(clone(t, carol).ProposeRemove(dave.LeafIndex())))
	carolRemovesDave := lastRef(alice)

	e, f := newTestClient(t, "erin", cfg), newTestClient(t, "frank", cfg)
	erin2 := must[*PrivateKeyPackage](t)(NewKeyPackage(e.id, cfg, nil))
	carolAgain := must[*PrivateKeyPackage](t)(NewKeyPackage(carol.Identity(), cfg, nil))
	carolLeafKey := carol.tree.Leaf(leafIndex(carol.myLeaf)).EncryptionKey
	erinWithCarolsKey := forgeKeyPackage(t, e, func(kp *wire.KeyPackage) { kp.LeafNode.EncryptionKey = carolLeafKey })
	frankWithErinsKey := forgeKeyPackage(t, f, func(kp *wire.KeyPackage) { kp.LeafNode.EncryptionKey = e.kp.KeyPackage().kp.LeafNode.EncryptionKey })
	badSig := e.kp.KeyPackage().kp
	badSig.Signature = bytes.Clone(badSig.Signature)
	badSig.Signature[0] ^= 1
	otherSuite := newTestClientSuite(t, MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519, "gina", nil)

	// Controls: the hostile committer's tool makes commits alice accepts.
	process(t, clone(t, alice), memberCommit(t, bob, alice, inline(addOf(e.kp.KeyPackage()), externalPSKOf("k", nonce(1)))...))

	commit := func(ps ...wire.ProposalOrRef) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return memberCommit(t, bob, alice, ps...) }
	}
	list := func(parts ...[]wire.ProposalOrRef) []wire.ProposalOrRef {
		var out []wire.ProposalOrRef
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	invalid := func(rule error) []error { return []error{ErrInvalidProposalList, rule} }
	cases := []rejectCase{
		{"class7/§12.2 two Adds of the same KeyPackage", commit(inline(addOf(e.kp.KeyPackage()), addOf(e.kp.KeyPackage()))...), invalid(errRuleDuplicateAdd)},
		{"class7/§12.2 two Adds of one client's two KeyPackages", commit(inline(addOf(e.kp.KeyPackage()), addOf(erin2.KeyPackage()))...), invalid(errRuleDuplicateAdd)},
		{"class7/§12.2 Add of a client already in the group", commit(inline(addOf(carolAgain.KeyPackage()))...), invalid(errRuleAddExistingMember)},
		{"class7/§7.3 Add reusing a member's encryption key", commit(inline(addOf(erinWithCarolsKey))...), invalid(tree.ErrDuplicateEncryptionKey)},
		{"class7/§7.3 two Adds of different clients with one encryption key", commit(inline(addOf(e.kp.KeyPackage()), addOf(frankWithErinsKey))...), invalid(tree.ErrDuplicateEncryptionKey)},
		{"class7/§12.1.1 Add with a bad KeyPackage signature", commit(inline(&wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: badSig}})...), []error{ErrInvalidProposalList, ErrBadSignature}},
		{"class7/§12.1.1 Add of a KeyPackage of another cipher suite", commit(inline(addOf(otherSuite.kp.KeyPackage()))...), []error{ErrInvalidProposalList, ErrKeyPackageInvalid}},
		{"class7/§12.2 Update and Remove of the same leaf", commit(list(byRef(carolUpdate), inline(removeOf(carol.myLeaf)))...), invalid(errRuleSameLeafTwice)},
		{"class7/§12.2 two Removes of the same leaf", commit(inline(removeOf(dave.myLeaf), removeOf(dave.myLeaf))...), invalid(errRuleSameLeafTwice)},
		{"class7/§12.2 Remove by reference and inline of the same leaf", commit(list(byRef(carolRemovesDave), inline(removeOf(dave.myLeaf)))...), invalid(errRuleSameLeafTwice)},
		{"class7/§12.2 the same proposal referenced twice", commit(byRef(carolRemovesDave, carolRemovesDave)...), invalid(errRuleSameLeafTwice)},
		{"class7/§12.2 the committer's own Update by reference", commit(byRef(bobUpdate)...), invalid(errRuleUpdateByCommitter)},
		{"class7/§12.2 an Update inline in the commit (the committer's)", commit(inline(&wire.Proposal{ProposalType: wire.ProposalTypeUpdate,
			Update: &wire.Update{LeafNode: *bob.tree.Leaf(leafIndex(bob.myLeaf))}})...), []error{ErrInvalidProposalList}},
		{"class7/§12.2 Remove of the committer", commit(inline(removeOf(bob.myLeaf))...), invalid(errRuleRemoveCommitter)},
		{"class7/§12.2 one external PSK twice (different nonces)", commit(inline(externalPSKOf("k", nonce(1)), externalPSKOf("k", nonce(2)))...), invalid(errRuleDuplicatePSK)},
		{"class7/§12.2 one resumption PSK twice", commit(inline(resumptionPSKOf(alice, alice.Epoch(), wire.ResumptionPSKUsageApplication, nonce(1)),
			resumptionPSKOf(alice, alice.Epoch(), wire.ResumptionPSKUsageApplication, nonce(2)))...), invalid(errRuleDuplicatePSK)},
		{"class7/§12.1.4 PSK nonce shorter than KDF.Nh", commit(inline(externalPSKOf("k", nonce(1)[:nh-1]))...), []error{ErrInvalidProposalList}},
		{"class7/§12.1.4 empty PSK nonce", commit(inline(externalPSKOf("k", nil))...), []error{ErrInvalidProposalList}},
		{"class7/§12.1.4 resumption PSK of usage reinit in a proposal", commit(inline(resumptionPSKOf(alice, alice.Epoch(), wire.ResumptionPSKUsageReInit, nonce(1)))...), []error{ErrInvalidProposalList}},
		{"class7/§12.1.4 resumption PSK of usage branch in a proposal", commit(inline(resumptionPSKOf(alice, alice.Epoch(), wire.ResumptionPSKUsageBranch, nonce(1)))...), []error{ErrInvalidProposalList}},
		{"class7/§12.2 two GroupContextExtensions", commit(inline(gceOf(), gceOf())...), invalid(errRuleMultipleGCE)},
		{"class7/§12.1.7 GroupContextExtensions with an extension a member lacks", commit(inline(gceOf(wire.Extension{ExtensionType: 0xff01}))...), []error{ErrInvalidProposalList, ErrUnsupportedExtension}},
		{"class7/§12.2 ReInit together with an Add", commit(inline(reinitOf(alice), addOf(e.kp.KeyPackage()))...), invalid(errRuleReInitNotAlone)},
		{"class7/§12.2 ReInit together with a Remove by reference", commit(list(inline(reinitOf(alice)), byRef(carolRemovesDave))...), invalid(errRuleReInitNotAlone)},
		{"class7/§12.2 two ReInits", commit(inline(reinitOf(alice), reinitOf(alice))...), invalid(errRuleReInitNotAlone)},
		{"class7/§12.2 ExternalInit in a member's commit", commit(inline(&wire.Proposal{ProposalType: wire.ProposalTypeExternalInit,
			ExternalInit: &wire.ExternalInit{KEMOutput: bytes.Repeat([]byte{1}, 32)}})...), []error{ErrInvalidProposalList}},
		{"class7/§12.4 reference to a proposal never received", commit(byRef(bytes.Repeat([]byte{7}, nh))...), []error{ErrUnknownProposal}},
		{"class7/§12.4 reference of the wrong length", commit(byRef([]byte{1})...), []error{ErrUnknownProposal}},
		{"class7/§12.4 empty reference", commit(byRef(nil)...), []error{ErrUnknownProposal}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)

	t.Run("class7/§12.4 stale reference from the previous epoch", func(t *testing.T) {
		a, b := clone(t, alice), clone(t, bob)
		// Dave commits without the cached proposals; the next epoch has none.
		pc := must[*PendingCommit](t)(clone(t, dave).Commit(&CommitOptions{OmitPending: true, ForcePath: true}))
		a, b = process(t, a, pc.Commit).Next, process(t, b, pc.Commit).Next
		if len(a.PendingProposals()) != 0 {
			t.Fatal("proposals survived the epoch change")
		}
		rejectsMessage(t, a, memberCommit(t, b, a, byRef(carolRemovesDave)...), ErrUnknownProposal)
	})
	t.Run("class7/§12.2 reference to a proposal the application dropped", func(t *testing.T) {
		a := clone(t, alice)
		if !a.DropProposal(carolRemovesDave) {
			t.Fatal("not cached")
		}
		rejectsMessage(t, a, memberCommit(t, bob, a, byRef(carolRemovesDave)...), ErrUnknownProposal)
	})
}

// Class 7 for external commits (RFC 9420 §12.4.3.2): a joiner's commit
// carries exactly one ExternalInit, at most one Remove (of its own old
// leaf), PSKs, nothing by reference, and a path.
func TestHardeningExternalCommitLists(t *testing.T) {
	h := newHardGroup(t, nil)
	alice, carol := h.alice, h.carol
	process(t, alice, must[[]byte](t)(clone(t, carol).ProposeRemove(h.dave.LeafIndex())))
	ref := lastRef(alice)
	mallory := must[*Identity](t)(NewIdentity(testSuite, []byte("mallory"), nil))
	ext := must[*PendingCommit](t)(JoinExternal(must[[]byte](t)(alice.GroupInfo(nil)), mallory, nil, nil)).Commit
	process(t, clone(t, alice), ext)
	e := newTestClient(t, "erin", nil)

	mutate := func(f func(c *wire.Commit)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return mutatePublic(t, ext, alice, mallory, func(pm *wire.PublicMessage) { f(pm.Content.Commit) })
		}
	}
	invalid := func(rule error) []error { return []error{ErrInvalidProposalList, rule} }
	cases := []rejectCase{
		{"class7/§12.4.3.2 proposal by reference in an external commit", mutate(func(c *wire.Commit) { c.Proposals = append(c.Proposals, byRef(ref)...) }), invalid(errRuleExternalByReference)},
		{"class7/§12.4.3.2 external commit without a path", mutate(func(c *wire.Commit) { c.Path = nil }), []error{ErrMalformed}},
		{"class7/§12.4.3.2 external commit with two Removes", mutate(func(c *wire.Commit) {
			c.Proposals = append(c.Proposals, inline(removeOf(h.dave.myLeaf), removeOf(carol.myLeaf))...)
		}), invalid(errRuleExternalRemoveCount)},
		{"class7/§12.4.3.2 external commit with an Add", mutate(func(c *wire.Commit) { c.Proposals = append(c.Proposals, inline(addOf(e.kp.KeyPackage()))...) }), invalid(errRuleExternalOther)},
		{"class7/§12.4.3.2 external commit with a GroupContextExtensions", mutate(func(c *wire.Commit) { c.Proposals = append(c.Proposals, inline(gceOf())...) }), invalid(errRuleExternalOther)},
		{"class7/§12.4.3.2 external commit without ExternalInit", mutate(func(c *wire.Commit) { c.Proposals = nil }), invalid(errRuleExternalInitCount)},
		{"class7/§12.4.3.2 external commit with two ExternalInits", mutate(func(c *wire.Commit) { c.Proposals = append(c.Proposals, c.Proposals[0]) }), invalid(errRuleExternalInitCount)},
		{"class7/§12.4.3.2 external commit removing another client", mutate(func(c *wire.Commit) { c.Proposals = append(c.Proposals, inline(removeOf(carol.myLeaf))...) }), invalid(errRuleExternalResync)},
		{"class7/§12.4.3.2 external commit removing a blank leaf", mutate(func(c *wire.Commit) { c.Proposals = append(c.Proposals, inline(removeOf(9))...) }), []error{ErrInvalidProposalList}},
	}
	cases = append(cases, rejectCase{"class7/§12.4.3.2 external joiner taking a member's signature key without removing it", func(t *testing.T) []byte {
		return mutatePublic(t, ext, alice, carol.Identity(), func(pm *wire.PublicMessage) {
			leaf := &pm.Content.Commit.Path.LeafNode
			leaf.SignatureKey = carol.Identity().SignaturePublicKey()
			leaf.Credential = carol.Identity().credential()
			resignLeaf(t, leaf, carol.Identity(), alice.ID(), 4)
		})
	}, []error{ErrInvalidCommit, tree.ErrDuplicateSignatureKey}})
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)
}

// Class 7 for external senders (RFC 9420 §12.1.8): they may propose Add,
// Remove, PSK, ReInit and GroupContextExtensions only; a new member may
// only propose its own Add.
func TestHardeningExternalSenderProposals(t *testing.T) {
	server := must[*Identity](t)(NewIdentity(testSuite, []byte("server"), nil))
	ext := must[Extension](t)(ExternalSendersExtension(ExternalSender{SignatureKey: server.SignaturePublicKey(), Identity: server.Name()}))
	a, b := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil)
	alice := must[*Group](t)(NewGroup(a.id, nil, &GroupOptions{Extensions: []Extension{ext}}))
	pc := must[*PendingCommit](t)(alice.AddMembers(b.kp.KeyPackage()))
	alice = pc.Next
	bob := must[*Group](t)(Join(pc.Welcome, []*PrivateKeyPackage{b.kp}, nil, nil))

	rm := must[[]byte](t)(ExternalProposal(server, 0, alice.ID(), alice.Epoch(), Proposal{Type: ProposalRemove, Leaf: 1}, nil))
	process(t, clone(t, alice), rm)
	d := newTestClient(t, "dave", nil)
	nmp := must[[]byte](t)(NewMemberProposal(d.kp, alice.ID(), alice.Epoch()))
	process(t, clone(t, alice), nmp)
	bobLeaf := *bob.tree.Leaf(leafIndex(bob.myLeaf))

	asExternal := func(p *wire.Proposal) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return mutatePublic(t, rm, alice, server, func(pm *wire.PublicMessage) { pm.Content.Proposal = p })
		}
	}
	cases := []rejectCase{
		{"class7/§12.1.8 external sender proposes an Update", asExternal(&wire.Proposal{ProposalType: wire.ProposalTypeUpdate, Update: &wire.Update{LeafNode: bobLeaf}}), []error{ErrMalformed}},
		{"class7/§12.1.8 external sender proposes an ExternalInit", asExternal(&wire.Proposal{ProposalType: wire.ProposalTypeExternalInit,
			ExternalInit: &wire.ExternalInit{KEMOutput: bytes.Repeat([]byte{1}, 32)}}), []error{ErrMalformed}},
		{"class7/§12.1.8 external sender sends a commit", func(t *testing.T) []byte {
			return mutatePublic(t, rm, alice, server, func(pm *wire.PublicMessage) {
				pm.Content.ContentType, pm.Content.Proposal, pm.Content.Commit = wire.ContentTypeCommit, nil, &wire.Commit{}
				pm.Auth.ConfirmationTag = make([]byte, 32)
			})
		}, []error{ErrMalformed}},
		{"class7/§12.1.8 new member proposes a Remove", func(t *testing.T) []byte {
			return mutatePublic(t, nmp, alice, d.id, func(pm *wire.PublicMessage) { pm.Content.Proposal = removeOf(1) })
		}, []error{ErrMalformed}},
		{"class7/§12.1.8 external sender removes a blank leaf", asExternal(removeOf(5)), []error{ErrInvalidProposalList}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)
}
