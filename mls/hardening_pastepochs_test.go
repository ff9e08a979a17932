package mls

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Class 6: past epochs (RFC 9420 §6.1, §15.3). A message delayed across
// commits is verified and attributed with the tree of its own epoch: a
// leaf removed and then given to someone else still names its old
// occupant, and the new occupant cannot speak for the old one.
func TestHardeningPastEpochs(t *testing.T) {
	h := newHardGroup(t, nil)
	alice, bob, carol, dave := h.alice, h.bob, h.carol, h.dave
	epochE := alice.Epoch()
	daveKey := dave.Identity().SignaturePublicKey()
	// Dave speaks in epoch E, then is removed (E+1), and erin takes his
	// leaf (E+2).
	fromDave := must[[]byte](t)(clone(t, dave).Seal([]byte("dave in E"), nil))
	fromDave2 := must[[]byte](t)(clone(t, dave).Seal([]byte("dave again"), nil))
	daveProposal := must[[]byte](t)(clone(t, dave).ProposeRemove(carol.myLeaf))
	aliceE := clone(t, alice)
	rm := must[*PendingCommit](t)(bob.RemoveMembers(dave.myLeaf))
	alice, bob = process(t, alice, rm.Commit).Next, rm.Next
	e := newTestClient(t, "erin", nil)
	add := must[*PendingCommit](t)(bob.AddMembers(e.kp.KeyPackage()))
	alice, bob = process(t, alice, add.Commit).Next, add.Next
	erin := must[*Group](t)(Join(add.Welcome, []*PrivateKeyPackage{e.kp}, nil, nil))
	if erin.LeafIndex() != dave.LeafIndex() {
		t.Fatalf("fixture: erin at leaf %d, dave was at %d", erin.LeafIndex(), dave.LeafIndex())
	}

	check := func(t *testing.T, g *Group) {
		r := process(t, g, fromDave)
		if r.Epoch != epochE || r.Sender.Index != dave.myLeaf || string(r.Sender.Identity) != "dave" ||
			!bytes.Equal(r.Sender.SignatureKey, daveKey) || string(r.Data) != "dave in E" {
			t.Fatalf("class6/§15.3 delayed message attributed to %q (index %d, epoch %d), want dave in epoch %d",
				r.Sender.Identity, r.Sender.Index, r.Epoch, epochE)
		}
	}
	t.Run("class6/§15.3 delayed message of a removed and reassigned leaf names the old member", func(t *testing.T) {
		check(t, clone(t, alice))
	})
	t.Run("class6/§15.3 the same after a reload", func(t *testing.T) {
		check(t, must[*Group](t)(LoadGroup(state(t, alice), nil)))
	})
	t.Run("class6/§15.3 a removed member's later message of its last epoch is still its own", func(t *testing.T) {
		g := clone(t, alice)
		r := process(t, g, fromDave2)
		if string(r.Sender.Identity) != "dave" || r.Epoch != epochE {
			t.Fatalf("sender %q epoch %d", r.Sender.Identity, r.Epoch)
		}
	})

	cases := []rejectCase{
		{"class6/§6.1 the new occupant's signature on a past epoch's message of its leaf", func(t *testing.T) []byte {
			gen := nextGen(t, aliceE, dave.myLeaf, wire.ContentTypeApplication) + 2
			return sealPrivate(t, aliceE, privateSpec{content: appContent(aliceE, dave.myLeaf, "erin as dave"), signer: erin.Identity(),
				senderData: wire.SenderData{LeafIndex: dave.myLeaf, Generation: gen}, keyLeaf: dave.myLeaf, keyGen: gen})
		}, []error{ErrBadSignature}},
		{"class6/§6.1 past epoch message from a leaf that did not exist then", func(t *testing.T) []byte {
			return sealPrivate(t, aliceE, privateSpec{content: appContent(aliceE, 4, "from the future"), signer: erin.Identity(),
				senderData: wire.SenderData{LeafIndex: 4}, keyLeaf: 0, keyGen: 0})
		}, []error{ErrNotMember}},
		{"class6/§12.4 a proposal of a past epoch", func(*testing.T) []byte { return daveProposal }, []error{ErrWrongEpoch}},
		{"class6/§12.4 a commit of a past epoch", func(t *testing.T) []byte {
			return must[*PendingCommit](t)(clone(t, aliceE).Update()).Commit
		}, []error{ErrWrongEpoch}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)

	t.Run("class6/§15.3 a message older than the retained epochs is rejected", func(t *testing.T) {
		g := clone(t, alice)
		for range g.cfg.retainedEpochs() {
			pc := must[*PendingCommit](t)(g.Update())
			g = pc.Next
		}
		rejectsMessage(t, g, fromDave, ErrWrongEpoch, ErrEpochNotRetained)
	})
	t.Run("class6/§15.3 no retained epochs: delayed messages are rejected, never misattributed", func(t *testing.T) {
		cfg := &Config{RetainedEpochs: -1}
		g := must[*Group](t)(LoadGroup(state(t, aliceE), cfg))
		g = process(t, g, rm.Commit).Next
		g = process(t, g, add.Commit).Next
		rejectsMessage(t, g, fromDave, ErrEpochNotRetained)
	})
}
