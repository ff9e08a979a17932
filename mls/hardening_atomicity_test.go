package mls

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// Class 10: atomicity and ordering (RFC 9420 §12.4.2, §14). A commit that
// fails at any check, the last included, changes nothing; a state is only
// replaced by the caller adopting Received.Next or PendingCommit.Next, so a
// failed store leaves the old state usable; a second commit for an epoch,
// an echoed own commit and a replay after a restart are each recognised;
// the sender reported is the one MLS authenticated.
func TestHardeningAtomicity(t *testing.T) {
	psks := map[string][]byte{"k": bytes.Repeat([]byte{1}, 32)}
	withPSK := &Config{ExternalPSK: func(id []byte) ([]byte, bool) { v, ok := psks[string(id)]; return v, ok }}
	h := newHardGroup(t, withPSK)
	alice, bob, carol := h.alice, h.bob, h.carol
	up := must[*PendingCommit](t)(clone(t, bob).Update())
	competing := must[*PendingCommit](t)(clone(t, carol).Update())
	aliceNext := process(t, clone(t, alice), up.Commit).Next
	noPSK := must[*Group](t)(LoadGroup(state(t, alice), nil))
	withPSKCommit := must[*PendingCommit](t)(clone(t, bob).Commit(&CommitOptions{ExternalPSKs: [][]byte{[]byte("k")}})).Commit
	mallory := must[*Identity](t)(NewIdentity(testSuite, []byte("mallory"), nil))
	ext := must[*PendingCommit](t)(JoinExternal(must[[]byte](t)(alice.GroupInfo(nil)), mallory, nil, nil)).Commit

	t.Run("class10/§12.4.2 commit failing at its last check (confirmation tag)", func(t *testing.T) {
		rejectsMessage(t, alice, mutatePublic(t, up.Commit, alice, nil, func(pm *wire.PublicMessage) { pm.Auth.ConfirmationTag[0] ^= 1 }), ErrBadConfirmationTag)
	})
	t.Run("class10/§12.4.3.2 external commit failing at its last check", func(t *testing.T) {
		rejectsMessage(t, alice, mutatePublic(t, ext, alice, nil, func(pm *wire.PublicMessage) { pm.Auth.ConfirmationTag[0] ^= 1 }), ErrBadConfirmationTag)
	})
	t.Run("class10/§8.4 commit failing late on a missing PSK", func(t *testing.T) {
		rejectsMessage(t, noPSK, withPSKCommit, ErrMissingPSK)
	})
	t.Run("class10/§12.4.2 private commit failing at its last check keeps the handshake key", func(t *testing.T) {
		cfg := &Config{EncryptHandshake: true}
		p := newHardGroup(t, cfg)
		pc := must[*PendingCommit](t)(clone(t, p.bob).Update())
		ac := openPrivate(t, p.alice, pc.Commit)
		tag := bytes.Clone(ac.Auth.ConfirmationTag)
		tag[0] ^= 1
		gen := nextGen(t, p.alice, p.bob.myLeaf, wire.ContentTypeCommit)
		bad := sealPrivate(t, p.alice, privateSpec{content: &ac.Content, signer: p.bob.Identity(), confirmationTag: tag,
			senderData: wire.SenderData{LeafIndex: p.bob.myLeaf, Generation: gen}, keyLeaf: p.bob.myLeaf, keyGen: gen})
		rejectsMessage(t, p.alice, bad, ErrBadConfirmationTag)
		// The real commit, of the same generation, still applies.
		checkAgree(t, process(t, p.alice, pc.Commit).Next, pc.Next)
	})

	t.Run("class10/§14 a failed store leaves the old state usable", func(t *testing.T) {
		a := clone(t, alice)
		before := state(t, a)
		r := process(t, a, up.Commit)
		if !bytes.Equal(before, state(t, a)) {
			t.Fatal("processing a commit changed the state it was called on")
		}
		// The application could not store r.Next and keeps a: the same
		// commit applies again, to the same epoch.
		again := process(t, a, up.Commit)
		if !bytes.Equal(again.Next.EpochAuthenticator(), r.Next.EpochAuthenticator()) {
			t.Fatal("the retried commit led to another epoch")
		}
		// The same for a commit of its own: Commit leaves the state as it
		// was, and the next attempt is accepted by the others.
		b := clone(t, bob)
		before = state(t, b)
		_ = must[*PendingCommit](t)(b.Update())
		if !bytes.Equal(before, state(t, b)) {
			t.Fatal("creating a commit changed the state it was called on")
		}
		retry := must[*PendingCommit](t)(b.Update())
		checkAgree(t, retry.Next, process(t, clone(t, alice), retry.Commit).Next)
	})

	t.Run("class10/§14 a second commit for an epoch already left", func(t *testing.T) {
		err := rejectsMessage(t, aliceNext, competing.Commit, ErrWrongEpoch)
		if errors.Is(err, ErrReplay) {
			t.Fatal("a competing commit reported as a replay")
		}
	})
	t.Run("class10/§14 the commit that began the epoch, delivered again", func(t *testing.T) {
		rejectsMessage(t, aliceNext, up.Commit, ErrReplay, ErrWrongEpoch)
	})
	t.Run("class10/§14 an old commit replayed after a restart", func(t *testing.T) {
		restarted := must[*Group](t)(LoadGroup(state(t, aliceNext), withPSK))
		rejectsMessage(t, restarted, up.Commit, ErrReplay, ErrWrongEpoch)
		// Two epochs later it is just a commit of a past epoch.
		pc := must[*PendingCommit](t)(clone(t, restarted).Update())
		later := must[*Group](t)(LoadGroup(state(t, pc.Next), withPSK))
		rejectsMessage(t, later, up.Commit, ErrWrongEpoch)
	})
	t.Run("class10/§14 own commit echoed back", func(t *testing.T) {
		b := clone(t, bob)
		pc := must[*PendingCommit](t)(b.Update())
		rejectsMessage(t, b, pc.Commit, ErrOwnCommit, ErrOwnMessage)
		// After adopting Next, the echo is the commit of the epoch.
		rejectsMessage(t, pc.Next, pc.Commit, ErrReplay)
	})
	t.Run("class10/§14 own private commit, proposal and message echoed back", func(t *testing.T) {
		cfg := &Config{EncryptHandshake: true}
		p := newHardGroup(t, cfg)
		b := p.bob
		pc := must[*PendingCommit](t)(b.Update())
		rejectsMessage(t, b, pc.Commit, ErrOwnCommit, ErrOwnMessage)
		rejectsMessage(t, pc.Next, pc.Commit, ErrWrongEpoch)
		msg := must[[]byte](t)(pc.Next.Seal([]byte("mine"), nil))
		rejectsMessage(t, pc.Next, msg, ErrOwnMessage)
		prop := must[[]byte](t)(pc.Next.ProposeRemove(p.dave.myLeaf))
		err := rejectsMessage(t, pc.Next, prop, ErrOwnMessage)
		if errors.Is(err, ErrOwnCommit) {
			t.Fatal("own proposal reported as own commit")
		}
	})
	t.Run("class10/§12.1 a public proposal delivered twice is cached once", func(t *testing.T) {
		a := clone(t, alice)
		prop := must[[]byte](t)(clone(t, carol).ProposeRemove(h.dave.myLeaf))
		process(t, a, prop)
		before := state(t, a)
		process(t, a, prop)
		if !bytes.Equal(before, state(t, a)) || len(a.PendingProposals()) != 1 {
			t.Fatal("a duplicate proposal changed the state")
		}
	})
	t.Run("class10/§2.1.2 a re-encoded duplicate is not another message", func(t *testing.T) {
		// The only freedom an encoding has is a longer varint; strict
		// decoding refuses it, so one MLS message has one byte string
		// and de-duplicating on its bytes is de-duplicating on content.
		reenc := longerFirstVarint(t, up.Commit)
		rejectsMessage(t, alice, reenc, ErrMalformed)
	})

	t.Run("class10/§6 the reported sender is the authenticated one", func(t *testing.T) {
		a := clone(t, alice)
		// Carol claims to be alice in her payload and authenticated data.
		msg := must[[]byte](t)(clone(t, carol).Seal([]byte("from: alice"), []byte("sender=alice")))
		r := process(t, a, msg)
		if r.Sender.Index != carol.myLeaf || string(r.Sender.Identity) != "carol" || !bytes.Equal(r.Sender.SignatureKey, carol.Identity().SignaturePublicKey()) {
			t.Fatalf("application sender %+v", r.Sender)
		}
		prop := must[[]byte](t)(clone(t, carol).ProposeRemove(h.dave.myLeaf))
		if r := process(t, a, prop); string(r.Sender.Identity) != "carol" || string(r.Proposal.Sender.Identity) != "carol" {
			t.Fatalf("proposal sender %+v", r.Sender)
		}
		if r := process(t, clone(t, alice), up.Commit); string(r.Sender.Identity) != "bob" || r.Sender.Index != bob.myLeaf {
			t.Fatalf("commit sender %+v", r.Sender)
		}
		if r := process(t, clone(t, alice), ext); r.Sender.Kind != SenderNewMemberCommit || string(r.Sender.Identity) != "mallory" {
			t.Fatalf("external commit sender %+v", r.Sender)
		}
	})
}

// longerFirstVarint re-encodes an MLSMessage holding a PublicMessage with
// its group_id length as a two-byte varint instead of one byte.
func longerFirstVarint(t testing.TB, msg []byte) []byte {
	t.Helper()
	pm := decodePublic(t, msg)
	var b cryptobyte.Builder
	b.AddUint16(uint16(wire.ProtocolVersionMLS10))
	b.AddUint16(uint16(wire.WireFormatPublicMessage))
	if len(pm.Content.GroupID) > 0x3f {
		t.Fatal("fixture: group id too long")
	}
	b.AddUint16(0x4000 | uint16(len(pm.Content.GroupID)))
	b.AddBytes(pm.Content.GroupID)
	full := must[[]byte](t)(b.Bytes())
	// The rest of the message after the original one-byte length and the
	// group id.
	rest := msg[4+1+len(pm.Content.GroupID):]
	out := append(full, rest...)
	var check cryptobyte.String = msg[4:5]
	var n uint64
	if !codec.ReadVarint(&check, &n) || int(n) != len(pm.Content.GroupID) {
		t.Fatal("fixture: unexpected layout")
	}
	return out
}
