package mls

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Class 4: indices (RFC 9420 §4, §6, §12.1.3). Every leaf or sender index
// from the network is checked against the tree before it is used: out of
// range, blank, or near 2^31 and 2^32 is an error (never a panic, never a
// wrapped-around index), and leaf 0 is a member like any other.
func TestHardeningIndices(t *testing.T) {
	h := newHardGroup(t, nil)
	// Bob removes dave: leaf 3 is blank, the tree keeps 4 leaves.
	rm := must[*PendingCommit](t)(h.bob.RemoveMembers(h.dave.LeafIndex()))
	alice, bob, carol := process(t, h.alice, rm.Commit).Next, rm.Next, process(t, h.carol, rm.Commit).Next
	if _, ok := alice.Member(3); ok || alice.tree.LeafCount() != 4 {
		t.Fatalf("fixture: leaf 3 should be blank in a 4-leaf tree")
	}
	bad := []struct {
		name string
		leaf uint32
	}{
		{"blank leaf", 3},
		{"leaf count", 4},
		{"2^31-1", math.MaxInt32},
		{"2^31", 1 << 31},
		{"2^32-1", math.MaxUint32},
	}
	prop := must[[]byte](t)(clone(t, bob).ProposeRemove(carol.LeafIndex()))
	commit := must[*PendingCommit](t)(clone(t, bob).Update()).Commit
	app := func(leaf uint32) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			keyLeaf := leaf
			if leaf >= alice.tree.LeafCount() {
				keyLeaf = bob.myLeaf // no key exists for the claimed leaf
			}
			gen := nextGen(t, alice, keyLeaf, wire.ContentTypeApplication)
			return sealPrivate(t, alice, privateSpec{content: appContent(alice, leaf, "spoof"), signer: bob.Identity(),
				senderData: wire.SenderData{LeafIndex: leaf, Generation: gen}, keyLeaf: keyLeaf, keyGen: gen})
		}
	}
	var cases []rejectCase
	for _, b := range bad {
		b := b
		cases = append(cases,
			rejectCase{fmt.Sprintf("class4/§6.1 public proposal from sender %s", b.name), func(t *testing.T) []byte {
				return mutatePublic(t, prop, alice, nil, func(pm *wire.PublicMessage) { pm.Content.Sender.LeafIndex = b.leaf })
			}, []error{ErrNotMember}},
			rejectCase{fmt.Sprintf("class4/§6.1 public commit from sender %s", b.name), func(t *testing.T) []byte {
				return mutatePublic(t, commit, alice, nil, func(pm *wire.PublicMessage) { pm.Content.Sender.LeafIndex = b.leaf })
			}, []error{ErrNotMember}},
			rejectCase{fmt.Sprintf("class4/§6.3.2 private message with sender data %s", b.name), app(b.leaf), []error{ErrNotMember}},
			rejectCase{fmt.Sprintf("class4/§12.1.3 remove proposal of %s", b.name), func(t *testing.T) []byte {
				return mutatePublic(t, prop, alice, bob.Identity(), func(pm *wire.PublicMessage) { pm.Content.Proposal.Remove.Removed = b.leaf })
			}, []error{ErrInvalidProposalList}},
			rejectCase{fmt.Sprintf("class4/§12.1.3 remove of %s inline in a commit", b.name), func(t *testing.T) []byte {
				return memberCommit(t, bob, alice, inline(&wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: b.leaf}})...)
			}, []error{ErrInvalidProposalList}},
		)
	}
	for _, idx := range []uint32{0, 1 << 31, math.MaxUint32} {
		cases = append(cases, rejectCase{fmt.Sprintf("class4/§12.1.8 external sender index %d not listed", idx), func(t *testing.T) []byte {
			return must[[]byte](t)(ExternalProposal(carol.Identity(), idx, alice.ID(), alice.Epoch(), Proposal{Type: ProposalRemove, Leaf: 1}, nil))
		}, []error{ErrNotMember}})
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)

	t.Run("class4/§12.1.3 local API refuses bad indices", func(t *testing.T) {
		for _, b := range bad {
			rejectsUnchanged(t, alice, func() error { _, err := alice.ProposeRemove(b.leaf); return err }, ErrInvalidProposalList)
			rejectsUnchanged(t, alice, func() error { _, err := alice.RemoveMembers(b.leaf); return err }, ErrInvalidProposalList)
			if _, ok := alice.Member(b.leaf); ok {
				t.Errorf("Member(%s) reported a member", b.name)
			}
		}
	})

	t.Run("class4/§4 leaf 0 is a real member", func(t *testing.T) {
		if alice.LeafIndex() != 0 {
			t.Fatal("fixture: alice is not leaf 0")
		}
		m, ok := bob.Member(0)
		if !ok || string(m.Identity) != "alice" {
			t.Fatalf("Member(0) = %+v, %v", m, ok)
		}
		// A message from leaf 0 is attributed to leaf 0.
		r := process(t, clone(t, bob), must[[]byte](t)(clone(t, alice).Seal([]byte("from zero"), nil)))
		if r.Sender.Kind != SenderMember || r.Sender.Index != 0 || string(r.Sender.Identity) != "alice" {
			t.Fatalf("sender of leaf 0's message: %+v", r.Sender)
		}
		// A proposal by leaf 0 is cached with leaf 0 as its sender, and
		// bob's commit of it applies it.
		p := must[[]byte](t)(clone(t, alice).ProposeRemove(carol.LeafIndex()))
		b := clone(t, bob)
		if r := process(t, b, p); r.Sender.Index != 0 || r.Proposal.Sender.Index != 0 {
			t.Fatalf("proposal sender %+v", r.Sender)
		}
		pc := must[*PendingCommit](t)(b.Commit(nil))
		if len(pc.Proposals) != 1 || pc.Proposals[0].Sender.Index != 0 || string(pc.Proposals[0].Sender.Identity) != "alice" {
			t.Fatalf("committed proposal %+v", pc.Proposals)
		}
		// Removing leaf 0 removes alice, not "nobody".
		rm := must[*PendingCommit](t)(clone(t, bob).RemoveMembers(0))
		r = process(t, clone(t, alice), rm.Commit)
		if !r.Next.Removed() || len(r.Proposals) != 1 || r.Proposals[0].Leaf != 0 {
			t.Fatalf("remove of leaf 0: removed=%v proposals=%+v", r.Next.Removed(), r.Proposals)
		}
		if _, ok := rm.Next.Member(0); ok {
			t.Fatal("leaf 0 still a member after its removal")
		}
	})

	t.Run("class4/§4 persisted leaf index out of range", func(t *testing.T) {
		for _, b := range bad[1:] {
			c := clone(t, alice)
			p := c.priv.clone()
			p.leaf = leafIndex(b.leaf)
			c.priv = p
			if _, err := LoadGroup(state(t, c), nil); !errors.Is(err, ErrCorruptState) {
				t.Errorf("leaf %s: %v", b.name, err)
			}
		}
	})
}
