package mls

import (
	"math"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Class 5: the secret-tree ratchet (RFC 9420 §9, §9.2, §15.3). A generation
// far ahead, or a message whose AEAD fails, leaves the ratchet untouched and
// costs no more than a rejected header; a replay is rejected without
// harming the sender's later messages; consumed keys stay consumed across
// MarshalBinary/LoadGroup.
func TestHardeningRatchet(t *testing.T) {
	h := newHardGroup(t, nil)
	alice, bob := h.alice, h.bob
	gap := alice.cfg.maxGenerationGap()
	appAt := func(claimed, keyGen uint32, corrupt bool) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return sealPrivate(t, alice, privateSpec{content: appContent(alice, bob.myLeaf, "x"), signer: bob.Identity(),
				senderData: wire.SenderData{LeafIndex: bob.myLeaf, Generation: claimed}, keyLeaf: bob.myLeaf, keyGen: keyGen, corrupt: corrupt})
		}
	}
	// Control: a hand-built message at the edge of the window opens.
	process(t, clone(t, alice), appAt(gap, gap, false)(t))

	cases := []rejectCase{
		{"class5/§15.3 generation one past the window", appAt(gap+1, 0, false), []error{ErrReplay, secrettree.ErrGenerationTooFar}},
		{"class5/§15.3 generation 2^31", appAt(1<<31, 0, false), []error{ErrReplay, secrettree.ErrGenerationTooFar}},
		{"class5/§15.3 generation 2^32-1", appAt(math.MaxUint32, 0, false), []error{ErrReplay, secrettree.ErrGenerationTooFar}},
		{"class5/§9.2 failing AEAD at the next generation", appAt(0, 0, true), []error{ErrDecrypt}},
		{"class5/§9.2 failing AEAD at the edge of the window", appAt(gap, gap, true), []error{ErrDecrypt}},
		{"class5/§9.2 key of another generation than the sender data names", appAt(5, 6, false), []error{ErrDecrypt}},
		{"class5/§9.1 application content under the handshake ratchet", func(t *testing.T) []byte {
			return sealPrivateWithRatchet(t, alice, bob, secrettree.Handshake)
		}, []error{ErrDecrypt}},
		{"class5/§6.3.2 sender data names another member than the key's", func(t *testing.T) []byte {
			return sealPrivate(t, alice, privateSpec{content: appContent(alice, h.carol.myLeaf, "x"), signer: h.carol.Identity(),
				senderData: wire.SenderData{LeafIndex: h.carol.myLeaf}, keyLeaf: bob.myLeaf, keyGen: 0})
		}, []error{ErrDecrypt}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)

	t.Run("class5/§15.3 a far generation costs what a near rejected one costs", func(t *testing.T) {
		g := clone(t, alice)
		near, far := appAt(gap+1, 0, false)(t), appAt(math.MaxUint32, 0, false)(t)
		allocs := func(msg []byte) float64 {
			return testing.AllocsPerRun(20, func() { _, _ = g.ProcessMessage(msg) })
		}
		// Equal up to sync.Pool noise under the race detector; walking the
		// ratchet to 2^32-1 would take billions.
		if a, b := allocs(near), allocs(far); b > a+a/4+4 {
			t.Fatalf("generation 2^32-1 cost %v allocations, generation gap+1 %v", b, a)
		}
	})

	t.Run("class5/§9.2 replay rejected, later messages unharmed", func(t *testing.T) {
		a, b := clone(t, alice), clone(t, bob)
		m0 := must[[]byte](t)(b.Seal([]byte("0"), nil))
		m1 := must[[]byte](t)(b.Seal([]byte("1"), nil))
		m2 := must[[]byte](t)(b.Seal([]byte("2"), nil))
		process(t, a, m2)
		rejectsMessage(t, a, m2, ErrReplay)
		process(t, a, m0)
		rejectsMessage(t, a, m0, ErrReplay)
		rejectsMessage(t, a, m2, ErrReplay)
		if r := process(t, a, m1); string(r.Data) != "1" {
			t.Fatalf("skipped generation after replays: %q", r.Data)
		}
		if r := process(t, a, must[[]byte](t)(b.Seal([]byte("3"), nil))); string(r.Data) != "3" {
			t.Fatalf("next message after replays: %q", r.Data)
		}
	})

	t.Run("class5/§9.2 consumed keys stay consumed across persist and restore", func(t *testing.T) {
		a, b := clone(t, alice), clone(t, bob)
		var msgs [][]byte
		for _, s := range []string{"0", "1", "2", "3"} {
			msgs = append(msgs, must[[]byte](t)(b.Seal([]byte(s), nil)))
		}
		process(t, a, msgs[0])
		process(t, a, msgs[3]) // generations 1 and 2 are retained
		a = clone(t, a)
		rejectsMessage(t, a, msgs[0], ErrReplay)
		rejectsMessage(t, a, msgs[3], ErrReplay)
		process(t, a, msgs[1])
		a = clone(t, a)
		rejectsMessage(t, a, msgs[1], ErrReplay)
		process(t, a, msgs[2])
		rejectsMessage(t, clone(t, a), msgs[2], ErrReplay)

		// The same for a retained past epoch: a message of epoch n opened
		// after the commit to n+1, then a reload.
		a, b = clone(t, alice), clone(t, bob)
		late := must[[]byte](t)(b.Seal([]byte("late"), nil))
		late2 := must[[]byte](t)(b.Seal([]byte("late2"), nil))
		up := must[*PendingCommit](t)(clone(t, h.carol).Update())
		a = process(t, a, up.Commit).Next
		process(t, a, late)
		a = clone(t, a)
		rejectsMessage(t, a, late, ErrReplay)
		if r := process(t, a, late2); string(r.Data) != "late2" || r.Epoch != alice.Epoch() {
			t.Fatalf("late message of the past epoch after reload: %q in %d", r.Data, r.Epoch)
		}
	})
}

// sealPrivateWithRatchet builds an application message of from's leaf,
// encrypted with the next key of the given ratchet instead of the
// application one.
func sealPrivateWithRatchet(t *testing.T, receiver, from *Group, typ secrettree.RatchetType) []byte {
	t.Helper()
	ct := wire.ContentTypeProposal // a content type of the handshake ratchet
	if typ == secrettree.Application {
		ct = wire.ContentTypeApplication
	}
	gen := nextGen(t, receiver, from.myLeaf, ct)
	msg := sealPrivate(t, receiver, privateSpec{content: appContent(receiver, from.myLeaf, "x"), signer: from.Identity(),
		senderData: wire.SenderData{LeafIndex: from.myLeaf, Generation: gen}, keyLeaf: from.myLeaf, keyGen: gen, keyRatchet: &typ})
	return msg
}
