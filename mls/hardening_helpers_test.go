package mls

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// The hardening suites (hardening_*_test.go) build hostile input with this
// package's own code, mostly by mutating valid messages, and check two
// things for every case: the exact rejection (errors.Is on the exported
// sentinel and, where the rule has one, on the internal error naming it),
// and that the receiver's persisted state is byte-for-byte what it was.
// Case names are "classN/§x.y rule", after issue 9's failure classes.

// rejectCase is one hostile message for a receiver.
type rejectCase struct {
	name string
	// msg builds the hostile message.
	msg func(t *testing.T) []byte
	// want lists errors the rejection must match, the exported sentinel
	// first.
	want []error
}

// runRejectCases processes each case's message with receiver and checks
// the rejection and that the state did not change.
func runRejectCases(t *testing.T, receiver func(t *testing.T) *Group, cases []rejectCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := receiver(t)
			msg := tc.msg(t)
			rejectsMessage(t, g, msg, tc.want...)
		})
	}
}

// rejectsMessage processes msg with g and checks that it fails with every
// error of want and leaves g's persisted state unchanged.
func rejectsMessage(t testing.TB, g *Group, msg []byte, want ...error) error {
	t.Helper()
	return rejectsUnchanged(t, g, func() error {
		r, err := g.ProcessMessage(msg)
		if err == nil {
			t.Fatalf("accepted: %v message from %+v", r.Kind, r.Sender)
		}
		if r != nil {
			t.Fatal("a result together with an error")
		}
		return err
	}, want...)
}

// rejectsUnchanged runs op, which must fail with every error of want, and
// checks that g's persisted state is byte-for-byte what it was before.
func rejectsUnchanged(t testing.TB, g *Group, op func() error, want ...error) error {
	t.Helper()
	before := state(t, g)
	err := op()
	if err == nil {
		t.Fatal("accepted, want a rejection")
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("error %q does not match %q", err, w)
		}
	}
	if after := state(t, g); !bytes.Equal(before, after) {
		t.Fatalf("rejected input (%v) changed the state", err)
	}
	return err
}

// clone returns an independent copy of g through its persisted form.
func clone(t testing.TB, g *Group) *Group {
	t.Helper()
	return must[*Group](t)(LoadGroup(state(t, g), g.cfg))
}

// mutatePublic decodes a PublicMessage, lets f change it, signs its content
// again with signer (nil keeps the signature) and recomputes the membership
// tag for receiver's epoch, so that only the mutation can be rejected.
func mutatePublic(t testing.TB, msg []byte, receiver *Group, signer *Identity, f func(pm *wire.PublicMessage)) []byte {
	t.Helper()
	pm := decodePublic(t, msg)
	f(pm)
	if signer != nil {
		resign(t, pm, signer, receiver)
	}
	if pm.Content.Sender.SenderType == wire.SenderTypeMember {
		retag(t, pm, receiver)
	}
	return encodePublic(t, pm)
}

// hardGroup is a four-member group whose tree has parent nodes: alice
// (leaf 0), bob (1), carol (2), dave (3), after bob committed an update.
type hardGroup struct {
	alice, bob, carol, dave *Group
}

func newHardGroup(t testing.TB, cfg *Config) *hardGroup {
	t.Helper()
	a, b, c, d := newTestClient(t, "alice", cfg), newTestClient(t, "bob", cfg), newTestClient(t, "carol", cfg), newTestClient(t, "dave", cfg)
	gs := newGroupOf(t, cfg, a, b, c, d)
	up := must[*PendingCommit](t)(gs[1].Update())
	return &hardGroup{
		alice: process(t, gs[0], up.Commit).Next,
		bob:   up.Next,
		carol: process(t, gs[2], up.Commit).Next,
		dave:  process(t, gs[3], up.Commit).Next,
	}
}

// commitTagFor computes the confirmation tag receiver expects for the
// path-less commit ac (commit_secret all zero), by replaying the key
// schedule as processCommit does. With it a test builds a commit that is
// authentic in every respect except the one under test.
func commitTagFor(t testing.TB, receiver *Group, ac *wire.AuthenticatedContent) []byte {
	t.Helper()
	list := must[[]resolved](t)(receiver.resolveProposals(ac.Content.Commit.Proposals, ac.Content.Sender))
	ap := must[*applied](t)(receiver.applyProposals(list))
	ap.ctx.TreeHash = must[[]byte](t)(ap.tree.TreeHash())
	input := must[[]byte](t)(wire.Marshal(ac.ConfirmedTranscriptHashInput()))
	cth := keyschedule.ConfirmedTranscriptHash(receiver.cs, receiver.interim, input)
	ctx := ap.ctx
	ctx.ConfirmedTranscriptHash = cth
	ctxRaw := must[[]byte](t)(wire.Marshal(&ctx))
	psks := must[[]keyschedule.PSK](t)(pskInputs(ap.pskIDs, receiver.pskSecret))
	pskSecret := must[[]byte](t)(keyschedule.PSKSecret(receiver.cs, psks))
	ks := must[*keyschedule.EpochSecrets](t)(keyschedule.Advance(receiver.cs, receiver.ks.init, nil, pskSecret, ctxRaw))
	return keyschedule.ConfirmationTag(receiver.cs, ks.ConfirmationKey, cth)
}

// memberCommit builds a path-less commit of sender holding proposals, as a
// PublicMessage with a confirmation tag valid for receiver (a member of the
// same epoch), unless the proposals are rejected before the tag could be
// computed; then the tag is all zero. It is the hostile committer's tool:
// every proposal list, every reference, correctly signed and tagged.
func memberCommit(t testing.TB, sender, receiver *Group, proposals ...wire.ProposalOrRef) []byte {
	t.Helper()
	content := &wire.FramedContent{GroupID: sender.ctx.GroupID, Epoch: sender.ctx.Epoch, Sender: wire.MemberSender(sender.myLeaf),
		ContentType: wire.ContentTypeCommit, Commit: &wire.Commit{Proposals: proposals}}
	ac := must[*wire.AuthenticatedContent](t)(sender.framer.Sign(sender.id.key, wire.WireFormatPublicMessage, content))
	ac.Auth.ConfirmationTag = make([]byte, sender.cs.HashSize())
	if list, err := receiver.resolveProposals(proposals, content.Sender); err == nil {
		if _, err := receiver.applyProposals(list); err == nil && validateList(list, content.Sender, false) == nil {
			ac.Auth.ConfirmationTag = commitTagFor(t, receiver, ac)
		}
	}
	pm := must[*wire.PublicMessage](t)(sender.framer.ProtectPublic(ac))
	return encodePublic(t, pm)
}

// inline wraps proposals for a commit's list.
func inline(ps ...*wire.Proposal) []wire.ProposalOrRef {
	out := make([]wire.ProposalOrRef, len(ps))
	for i, p := range ps {
		out[i] = wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: p}
	}
	return out
}

// byRef names cached proposals by reference.
func byRef(refs ...[]byte) []wire.ProposalOrRef {
	out := make([]wire.ProposalOrRef, len(refs))
	for i, r := range refs {
		out[i] = wire.ProposalOrRef{Type: wire.ProposalOrRefTypeReference, Reference: r}
	}
	return out
}

// privateSpec describes a PrivateMessage built by hand, field by field,
// so that a test can set what ProtectPrivate never would: any sender data,
// any generation, a content signed by anyone, trailing garbage.
type privateSpec struct {
	// content is signed by signer (as is) and encrypted.
	content *wire.FramedContent
	signer  *Identity
	// confirmationTag is set in the auth data of a commit.
	confirmationTag []byte
	// senderData is encrypted as the sender data; keyLeaf and keyGen pick
	// the ratchet key the content is encrypted with (normally the same
	// leaf and generation).
	senderData      wire.SenderData
	keyLeaf, keyGen uint32
	// keyRatchet, when set, overrides the ratchet the content type selects.
	keyRatchet *secrettree.RatchetType
	// padding is appended to the encoded PrivateMessageContent.
	padding []byte
	// corrupt flips a bit of the content ciphertext.
	corrupt bool
}

// sealPrivate builds the PrivateMessage of spec in g's epoch, deriving the
// content key from a copy of g's secret tree (g is not changed).
func sealPrivate(t testing.TB, g *Group, spec privateSpec) []byte {
	t.Helper()
	c := spec.content
	ac := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPrivateMessage, Content: *c}
	ac.Auth.Signature = must[[]byte](t)(spec.signer.sign(labelFramedContentTBS, ac.TBS(g.ctxRaw)))
	if c.ContentType == wire.ContentTypeCommit {
		ac.Auth.ConfirmationTag = spec.confirmationTag
	}
	pmc := &wire.PrivateMessageContent{ContentType: c.ContentType, ApplicationData: c.ApplicationData,
		Proposal: c.Proposal, Commit: c.Commit, Auth: ac.Auth}
	plaintext := append(must[[]byte](t)(wire.Marshal(pmc)), spec.padding...)

	raw := must[[]byte](t)(g.stree.MarshalBinary())
	st := must[*secrettree.Tree](t)(secrettree.Unmarshal(raw, secrettree.Config{MaxForward: ^uint32(0)}))
	typ := ratchetOf(c.ContentType)
	if spec.keyRatchet != nil {
		typ = *spec.keyRatchet
	}
	kn := must[secrettree.KeyNonce](t)(st.Peek(treemath.LeafIndex(spec.keyLeaf), typ, spec.keyGen))
	aead := must[cipher.AEAD](t)(g.cs.NewAEAD(kn.Key))
	nonce := bytes.Clone(kn.Nonce)
	for i, b := range spec.senderData.ReuseGuard {
		nonce[i] ^= b
	}
	pm := &wire.PrivateMessage{GroupID: c.GroupID, Epoch: c.Epoch, ContentType: c.ContentType, AuthenticatedData: c.AuthenticatedData}
	pm.Ciphertext = aead.Seal(nil, nonce, plaintext, must[[]byte](t)(wire.Marshal(pm.ContentAAD())))
	if spec.corrupt {
		pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1
	}
	key, sdNonce := mustPair(t)(secrettree.SenderDataKeyNonce(g.cs, g.ks.senderData, pm.Ciphertext))
	sdAEAD := must[cipher.AEAD](t)(g.cs.NewAEAD(key))
	sd := must[[]byte](t)(wire.Marshal(&spec.senderData))
	pm.EncryptedSenderData = sdAEAD.Seal(nil, sdNonce, sd, must[[]byte](t)(wire.Marshal(pm.SenderDataAAD())))
	return must[[]byte](t)(wire.Marshal(must[*wire.MLSMessage](t)(wire.NewMLSMessage(pm))))
}

func ratchetOf(ct wire.ContentType) secrettree.RatchetType {
	if ct == wire.ContentTypeApplication {
		return secrettree.Application
	}
	return secrettree.Handshake
}

func mustPair(t testing.TB) func(a, b []byte, err error) ([]byte, []byte) {
	return func(a, b []byte, err error) ([]byte, []byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

// appContent is application data of member leaf in g's epoch.
func appContent(g *Group, leaf uint32, data string) *wire.FramedContent {
	return &wire.FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: wire.MemberSender(leaf),
		ContentType: wire.ContentTypeApplication, ApplicationData: []byte(data)}
}

// nextGen is the next unused generation of leaf's ratchet in g's secret
// tree for content type ct: a receiver would accept it.
func nextGen(t testing.TB, g *Group, leaf uint32, ct wire.ContentType) uint32 {
	t.Helper()
	raw := must[[]byte](t)(g.stree.MarshalBinary())
	st := must[*secrettree.Tree](t)(secrettree.Unmarshal(raw, secrettree.Config{}))
	for gen := uint32(0); ; gen++ {
		if _, err := st.Peek(treemath.LeafIndex(leaf), ratchetOf(ct), gen); err == nil {
			return gen
		}
		if gen > 1<<16 {
			t.Fatal("no usable generation")
		}
	}
}

func leafIndex(i uint32) treemath.LeafIndex { return treemath.LeafIndex(i) }
