package mls

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// decodePublic decodes an MLSMessage holding a PublicMessage.
func decodePublic(t *testing.T, msg []byte) *wire.PublicMessage {
	t.Helper()
	var m wire.MLSMessage
	if err := wire.Unmarshal(msg, &m); err != nil || m.PublicMessage == nil {
		t.Fatalf("not a public message: %v", err)
	}
	return m.PublicMessage
}

func encodePublic(t *testing.T, pm *wire.PublicMessage) []byte {
	t.Helper()
	m := must[*wire.MLSMessage](t)(wire.NewMLSMessage(pm))
	return must[[]byte](t)(wire.Marshal(m))
}

// resign signs pm's content again with signer in the epoch of receiver g.
func resign(t *testing.T, pm *wire.PublicMessage, signer *Identity, g *Group) {
	t.Helper()
	ac := pm.AuthenticatedContent()
	pm.Auth.Signature = must[[]byte](t)(signer.sign(labelFramedContentTBS, ac.TBS(g.ctxRaw)))
}

// retag recomputes pm's membership tag with the membership key of g's
// epoch, so that a test reaches the checks after it.
func retag(t *testing.T, pm *wire.PublicMessage, g *Group) {
	t.Helper()
	ac := pm.AuthenticatedContent()
	tbm := must[[]byte](t)(wire.Marshal(&wire.AuthenticatedContentTBM{ContentTBS: *ac.TBS(g.ctxRaw), Auth: pm.Auth}))
	pm.MembershipTag = g.cs.MAC(g.ks.membership, tbm)
}

// expectRejected processes msg with g and checks that it fails with want,
// with g's persisted state unchanged.
func expectRejected(t *testing.T, g *Group, msg []byte, want error) error {
	t.Helper()
	before := state(t, g)
	_, err := g.ProcessMessage(msg)
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if !bytes.Equal(before, state(t, g)) {
		t.Fatalf("rejected message (%v) changed the state", err)
	}
	return err
}

func TestRejectedCommitsLeaveStateUnchanged(t *testing.T) {
	a, b, c, d := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil), newTestClient(t, "carol", nil), newTestClient(t, "dave", nil)
	gs := newGroupOf(t, nil, a, b, c, d)
	alice, bob, carol, dave := gs[0], gs[1], gs[2], gs[3]

	// Alice removes Dave; everyone else follows.
	rm := must[*PendingCommit](t)(alice.RemoveMembers(dave.LeafIndex()))
	oldAlice := alice
	alice, bob, carol = rm.Next, process(t, bob, rm.Commit).Next, process(t, carol, rm.Commit).Next

	good := must[*PendingCommit](t)(bob.Update()).Commit

	t.Run("bad signature", func(t *testing.T) {
		pm := decodePublic(t, good)
		pm.Auth.Signature[3] ^= 1
		retag(t, pm, alice)
		expectRejected(t, alice, encodePublic(t, pm), ErrBadSignature)
	})
	t.Run("bad membership tag", func(t *testing.T) {
		pm := decodePublic(t, good)
		pm.MembershipTag[0] ^= 1
		expectRejected(t, alice, encodePublic(t, pm), ErrBadMembershipTag)
	})
	t.Run("bad confirmation tag", func(t *testing.T) {
		pm := decodePublic(t, good)
		pm.Auth.ConfirmationTag[0] ^= 1
		retag(t, pm, alice)
		expectRejected(t, alice, encodePublic(t, pm), ErrBadConfirmationTag)
	})
	t.Run("from a removed member", func(t *testing.T) {
		pm := decodePublic(t, good)
		pm.Content.Sender.LeafIndex = dave.LeafIndex()
		resign(t, pm, dave.Identity(), alice)
		retag(t, pm, alice)
		err := expectRejected(t, alice, encodePublic(t, pm), ErrNotMember)
		if errors.Is(err, ErrBadSignature) {
			t.Fatal("removed sender reported as a bad signature")
		}
		// Dave's own commit, made before he processed his removal, is for a
		// past epoch.
		stale := must[*PendingCommit](t)(dave.Update()).Commit
		expectRejected(t, alice, stale, ErrWrongEpoch)
	})
	t.Run("wrong epoch", func(t *testing.T) {
		// A competing commit of the previous epoch.
		stale := must[*PendingCommit](t)(oldAlice.Update()).Commit
		err := expectRejected(t, bob, stale, ErrWrongEpoch)
		if errors.Is(err, ErrReplay) {
			t.Fatal("a competing commit reported as a replay")
		}
		// A commit of a future epoch.
		next := process(t, carol, good).Next
		future := must[*PendingCommit](t)(next.Update()).Commit
		expectRejected(t, alice, future, ErrFutureEpoch)
	})
	t.Run("replayed", func(t *testing.T) {
		next := process(t, alice, good).Next
		expectRejected(t, next, good, ErrReplay)
		expectRejected(t, alice, rm.Commit, ErrReplay)
	})
	t.Run("wrong group", func(t *testing.T) {
		pm := decodePublic(t, good)
		pm.Content.GroupID = []byte("another group")
		expectRejected(t, alice, encodePublic(t, pm), ErrWrongGroup)
	})
	t.Run("malformed", func(t *testing.T) {
		expectRejected(t, alice, good[:len(good)-1], ErrMalformed)
		expectRejected(t, alice, append(bytes.Clone(good), 0), ErrMalformed)
	})
	t.Run("unknown proposal reference", func(t *testing.T) {
		content := &wire.FramedContent{GroupID: bob.ctx.GroupID, Epoch: bob.ctx.Epoch, Sender: wire.MemberSender(bob.LeafIndex()),
			ContentType: wire.ContentTypeCommit, Commit: &wire.Commit{Proposals: []wire.ProposalOrRef{
				{Type: wire.ProposalOrRefTypeReference, Reference: bytes.Repeat([]byte{9}, 32)}}}}
		expectRejected(t, alice, craftCommit(t, bob, content), ErrUnknownProposal)
	})
	t.Run("missing path", func(t *testing.T) {
		content := &wire.FramedContent{GroupID: bob.ctx.GroupID, Epoch: bob.ctx.Epoch, Sender: wire.MemberSender(bob.LeafIndex()),
			ContentType: wire.ContentTypeCommit, Commit: &wire.Commit{Proposals: []wire.ProposalOrRef{
				{Type: wire.ProposalOrRefTypeProposal, Proposal: &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: carol.LeafIndex()}}}}}}
		expectRejected(t, alice, craftCommit(t, bob, content), ErrInvalidCommit)
	})
	t.Run("invalid proposal list", func(t *testing.T) {
		content := &wire.FramedContent{GroupID: bob.ctx.GroupID, Epoch: bob.ctx.Epoch, Sender: wire.MemberSender(bob.LeafIndex()),
			ContentType: wire.ContentTypeCommit, Commit: &wire.Commit{Proposals: []wire.ProposalOrRef{
				{Type: wire.ProposalOrRefTypeProposal, Proposal: &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: bob.LeafIndex()}}}}}}
		err := expectRejected(t, alice, craftCommit(t, bob, content), ErrInvalidProposalList)
		if !errors.Is(err, errRuleRemoveCommitter) {
			t.Fatalf("rule: %v", err)
		}
	})
	t.Run("welcome for someone else", func(t *testing.T) {
		e, f := newTestClient(t, "erin", nil), newTestClient(t, "frank", nil)
		pc := must[*PendingCommit](t)(alice.AddMembers(e.kp.KeyPackage()))
		if _, err := Join(pc.Welcome, []*PrivateKeyPackage{f.kp}, nil, nil); !errors.Is(err, ErrWelcomeNotForUs) {
			t.Fatalf("welcome for someone else: %v", err)
		}
	})
	t.Run("invalid key packages are not added", func(t *testing.T) {
		e := newTestClient(t, "erin", nil)
		bad := e.kp.KeyPackage().kp
		bad.Signature = bytes.Clone(bad.Signature)
		bad.Signature[0] ^= 1
		kp := &KeyPackage{kp: bad, cs: alice.cs}
		before := state(t, alice)
		if _, err := alice.AddMembers(kp); !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrKeyPackageInvalid) {
			t.Fatalf("add with a bad key package signature: %v", err)
		}
		if !bytes.Equal(before, state(t, alice)) {
			t.Fatal("failed commit creation changed the state")
		}
	})
}

// craftCommit signs content as sender's commit with an arbitrary
// confirmation tag and protects it as a PublicMessage: a well-formed,
// authenticated commit whose body the test chose.
func craftCommit(t *testing.T, sender *Group, content *wire.FramedContent) []byte {
	t.Helper()
	ac := must[*wire.AuthenticatedContent](t)(sender.framer.Sign(sender.id.key, wire.WireFormatPublicMessage, content))
	ac.Auth.ConfirmationTag = make([]byte, sender.cs.HashSize())
	pm := must[*wire.PublicMessage](t)(sender.framer.ProtectPublic(ac))
	return encodePublic(t, pm)
}

// A PrivateMessage commit that fails after decryption must not consume
// the handshake key in the receiver's state.
func TestRejectedPrivateCommitLeavesStateUnchanged(t *testing.T) {
	cfg := &Config{EncryptHandshake: true}
	a, b := newTestClient(t, "alice", cfg), newTestClient(t, "bob", cfg)
	gs := newGroupOf(t, cfg, a, b)
	alice, bob := gs[0], gs[1]
	content := &wire.FramedContent{GroupID: bob.ctx.GroupID, Epoch: bob.ctx.Epoch, Sender: wire.MemberSender(bob.LeafIndex()),
		ContentType: wire.ContentTypeCommit, Commit: &wire.Commit{Proposals: []wire.ProposalOrRef{
			{Type: wire.ProposalOrRefTypeProposal, Proposal: &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: alice.LeafIndex()}}}}}}
	ac := must[*wire.AuthenticatedContent](t)(bob.framer.Sign(bob.id.key, wire.WireFormatPrivateMessage, content))
	ac.Auth.ConfirmationTag = make([]byte, bob.cs.HashSize())
	pm := must[*wire.PrivateMessage](t)(bob.framer.ProtectPrivate(ac, nil, nil))
	msg := must[[]byte](t)(wire.Marshal(must[*wire.MLSMessage](t)(wire.NewMLSMessage(pm))))
	expectRejected(t, alice, msg, ErrInvalidCommit)
	// The real commit of that generation is still processed afterwards.
	pc := must[*PendingCommit](t)(bob.Update())
	checkAgree(t, process(t, alice, pc.Commit).Next, pc.Next)
}

func TestPersistenceMidConversation(t *testing.T) {
	a, b, c := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil), newTestClient(t, "carol", nil)
	gs := newGroupOf(t, nil, a, b, c)
	alice, bob, carol := gs[0], gs[1], gs[2]
	checkAgree(t, alice, bob, carol)

	// Messages in flight across a commit, a pending proposal, consumed keys.
	early := must[[]byte](t)(alice.Seal([]byte("early"), nil))
	seen := must[[]byte](t)(alice.Seal([]byte("seen"), nil))
	process(t, bob, seen)
	pc := must[*PendingCommit](t)(carol.Update())
	alice, bob, carol = process(t, alice, pc.Commit).Next, process(t, bob, pc.Commit).Next, pc.Next
	prop := must[[]byte](t)(carol.ProposeUpdate())
	process(t, bob, prop)
	process(t, alice, prop)

	reload := func(g *Group) *Group {
		enc := state(t, g)
		back := must[*Group](t)(LoadGroup(enc, nil))
		if again := state(t, back); !bytes.Equal(enc, again) {
			t.Fatal("persisted state does not round-trip exactly")
		}
		return back
	}
	alice, bob, carol = reload(alice), reload(bob), reload(carol)

	if r := process(t, bob, early); string(r.Data) != "early" || r.Epoch != alice.Epoch()-1 {
		t.Fatalf("late message after reload: %q", r.Data)
	}
	if _, err := bob.ProcessMessage(seen); !errors.Is(err, ErrReplay) {
		t.Fatalf("consumed key after reload: %v", err)
	}
	// Bob commits carol's update proposal (cached before the reload).
	pc = must[*PendingCommit](t)(bob.Commit(nil))
	if len(pc.Proposals) != 1 || pc.Proposals[0].Type != ProposalUpdate {
		t.Fatalf("cached proposals after reload: %+v", pc.Proposals)
	}
	alice, carol, bob = process(t, alice, pc.Commit).Next, process(t, carol, pc.Commit).Next, pc.Next
	checkAgree(t, alice, bob, carol)
	alice, bob, carol = reload(alice), reload(bob), reload(carol)
	pc = must[*PendingCommit](t)(alice.Update())
	checkAgree(t, pc.Next, process(t, bob, pc.Commit).Next, process(t, carol, pc.Commit).Next)

	// A removed state and a reinit state persist too.
	rm := must[*PendingCommit](t)(bob.RemoveMembers(carol.LeafIndex()))
	removed := process(t, carol, rm.Commit).Next
	removed = reload(removed)
	if !removed.Removed() {
		t.Fatal("removed flag lost")
	}
	ri := must[*PendingCommit](t)(rm.Next.Commit(&CommitOptions{ReInit: &ReInitParams{GroupID: []byte("g2"), CipherSuite: testSuite}}))
	if reload(ri.Next).ReInit() == nil {
		t.Fatal("reinit lost")
	}
}

func TestCorruptState(t *testing.T) {
	a, b := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil)
	gs := newGroupOf(t, nil, a, b)
	process(t, gs[1], must[[]byte](t)(gs[0].ProposeUpdate()))
	pc := must[*PendingCommit](t)(gs[1].Commit(&CommitOptions{OmitPending: true, ForcePath: true}))
	g := process(t, gs[0], pc.Commit).Next
	enc := state(t, g)

	bad := bytes.Clone(enc)
	bad[1] = 99
	if _, err := LoadGroup(bad, nil); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("unknown version: %v", err)
	}
	bad[0], bad[1] = kindIdentity, groupVersion
	if _, err := LoadGroup(bad, nil); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("wrong kind: %v", err)
	}
	if _, err := LoadGroup(append(bytes.Clone(enc), 0), nil); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("trailing byte: %v", err)
	}
	for n := 0; n < len(enc); n += 1 + n/64 {
		if _, err := LoadGroup(enc[:n], nil); !errors.Is(err, ErrCorruptState) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	// Flipping a byte never panics; it is either rejected or (inside a
	// secret) loads a state that fails to interoperate.
	for i := 2; i < len(enc); i += 7 {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x55
		if g, err := LoadGroup(bad, nil); err == nil && g == nil {
			t.Fatal("nil group without error")
		} else if err != nil && !errors.Is(err, ErrCorruptState) {
			t.Fatalf("byte %d: %v does not wrap ErrCorruptState", i, err)
		}
	}
}
