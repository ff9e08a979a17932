package mls

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// handshakeFixture is a four-member group (hardGroup) with samples of
// commit and proposal bodies, for FuzzSignedHandshake.
type handshakeFixture struct {
	alice, bob []byte // persisted states
	bodies     [][]byte
}

func newHandshakeFixture(t testing.TB) *handshakeFixture {
	h := newHardGroup(t, nil)
	e := newTestClient(t, "erin", nil)
	fx := &handshakeFixture{alice: state(t, h.alice), bob: state(t, h.bob)}
	for _, pc := range []*PendingCommit{
		must[*PendingCommit](t)(clone(t, h.bob).Update()),
		must[*PendingCommit](t)(clone(t, h.bob).RemoveMembers(h.dave.myLeaf)),
		must[*PendingCommit](t)(clone(t, h.bob).Commit(&CommitOptions{Add: []*KeyPackage{e.kp.KeyPackage()}, Remove: []uint32{2}})),
		must[*PendingCommit](t)(clone(t, h.bob).Commit(&CommitOptions{GroupContextExtensions: []Extension{}})),
	} {
		fx.bodies = append(fx.bodies, append([]byte{0}, must[[]byte](t)(wire.Marshal(decodePublic(t, pc.Commit).Content.Commit))...))
	}
	for _, m := range [][]byte{
		must[[]byte](t)(clone(t, h.bob).ProposeUpdate()),
		must[[]byte](t)(clone(t, h.bob).ProposeAdd(e.kp.KeyPackage())),
		must[[]byte](t)(clone(t, h.bob).ProposeRemove(h.carol.myLeaf)),
	} {
		fx.bodies = append(fx.bodies, append([]byte{1}, must[[]byte](t)(wire.Marshal(decodePublic(t, m).Content.Proposal))...))
	}
	return fx
}

// FuzzSignedHandshake fuzzes the commits and proposals a member can send:
// the input (a selector byte, then a Commit or Proposal body) is signed by
// bob, tagged for the epoch and processed by alice, so that it reaches every
// check behind the signature and the membership tag (proposal rules, tree
// and UpdatePath validation, path decryption). Nothing may panic, and a
// rejected message must leave alice's state unchanged.
func FuzzSignedHandshake(f *testing.F) {
	fx := newHandshakeFixture(f)
	for _, b := range fx.bodies {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		alice := must[*Group](t)(LoadGroup(fx.alice, nil))
		bob := must[*Group](t)(LoadGroup(fx.bob, nil))
		content := &wire.FramedContent{GroupID: bob.ctx.GroupID, Epoch: bob.ctx.Epoch, Sender: wire.MemberSender(bob.myLeaf)}
		if data[0]&1 == 0 {
			var c wire.Commit
			if wire.Unmarshal(data[1:], &c) != nil {
				return
			}
			content.ContentType, content.Commit = wire.ContentTypeCommit, &c
		} else {
			var p wire.Proposal
			if wire.Unmarshal(data[1:], &p) != nil {
				return
			}
			content.ContentType, content.Proposal = wire.ContentTypeProposal, &p
		}
		ac, err := bob.framer.Sign(bob.id.key, wire.WireFormatPublicMessage, content)
		if err != nil {
			return
		}
		if content.ContentType == wire.ContentTypeCommit {
			ac.Auth.ConfirmationTag = make([]byte, bob.cs.HashSize())
		}
		pm, err := bob.framer.ProtectPublic(ac)
		if err != nil {
			return
		}
		msg, err := wire.Marshal(must[*wire.MLSMessage](t)(wire.NewMLSMessage(pm)))
		if err != nil {
			return
		}
		r, err := alice.ProcessMessage(msg)
		if err == nil {
			if r.Kind == CommitMessage {
				t.Fatal("a commit with an all-zero confirmation tag was accepted")
			}
			return
		}
		if !bytes.Equal(state(t, alice), fx.alice) {
			t.Fatalf("rejected input (%v) changed the state", err)
		}
	})
}

// FuzzJoinGroupInfo fuzzes the GroupInfo inside a Welcome, as its hostile
// committer can: the input is encrypted as the GroupInfo for frank and,
// when it decodes, re-signed by alice with its confirmation tag recomputed,
// so that Join reaches tree validation, path secret installation and the
// key schedule. Nothing may panic.
func FuzzJoinGroupInfo(f *testing.F) {
	a, b, c, e := newTestClient(f, "alice", nil), newTestClient(f, "bob", nil), newTestClient(f, "carol", nil), newTestClient(f, "frank", nil)
	gs := newGroupOf(f, nil, a, b, c)
	up := must[*PendingCommit](f)(gs[1].Update())
	alice := process(f, gs[0], up.Commit).Next
	pc := must[*PendingCommit](f)(alice.Commit(&CommitOptions{Add: []*KeyPackage{e.kp.KeyPackage()}, ForcePath: true}))
	h := openHostile(f, pc.Welcome, e.kp, nil, nil)
	f.Add(must[[]byte](f)(wire.Marshal(&h.gi)))
	noTree := h.gi
	noTree.Extensions = nil
	f.Add(must[[]byte](f)(wire.Marshal(&noTree)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := *h
		opts := sealOptions{rawInfo: func([]byte) []byte { return data }}
		var gi wire.GroupInfo
		if wire.Unmarshal(data, &gi) == nil {
			if gi.GroupContext.CipherSuite != h.gi.GroupContext.CipherSuite {
				return
			}
			c.gi, opts = gi, sealOptions{fixTag: true, signer: a.id}
		}
		welcome := c.seal(t, e.kp, opts)
		g, err := Join(welcome, []*PrivateKeyPackage{e.kp}, nil, nil)
		if err == nil && g == nil {
			t.Fatal("nil group without an error")
		}
	})
}
