package framing

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// testRoster is a stand-in for the group's ratchet tree and external_senders
// extension: a leaf without an entry (or with a nil key) is blank.
type testRoster struct {
	members  map[treemath.LeafIndex][]byte
	external map[uint32][]byte
}

func (r *testRoster) MemberSignatureKey(leaf treemath.LeafIndex) ([]byte, bool) {
	k, ok := r.members[leaf]
	return k, ok && k != nil
}

func (r *testRoster) ExternalSenderSignatureKey(index uint32) ([]byte, bool) {
	k, ok := r.external[index]
	return k, ok && k != nil
}

// testGroup is the shared state of one epoch of a small group: every member
// derives the same secrets, each member keeps its own secret tree.
type testGroup struct {
	suite            *ciphersuite.Suite
	gc               *wire.GroupContext
	membershipKey    []byte
	senderDataSecret []byte
	encryptionSecret []byte
	leaves           treemath.LeafCount
	signers          map[treemath.LeafIndex]*ciphersuite.SigningKey
	roster           *testRoster
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newTestGroup makes a group of the given number of leaves, all members.
func newTestGroup(t testing.TB, id ciphersuite.ID, leaves int) *testGroup {
	t.Helper()
	suite, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	nh := suite.HashSize()
	g := &testGroup{
		suite: suite,
		gc: &wire.GroupContext{
			Version:                 wire.ProtocolVersionMLS10,
			CipherSuite:             wire.CipherSuite(id),
			GroupID:                 []byte("test group"),
			Epoch:                   7,
			TreeHash:                randomBytes(t, nh),
			ConfirmedTranscriptHash: randomBytes(t, nh),
		},
		membershipKey:    randomBytes(t, nh),
		senderDataSecret: randomBytes(t, nh),
		encryptionSecret: randomBytes(t, nh),
		leaves:           treemath.LeafCount(leaves),
		signers:          map[treemath.LeafIndex]*ciphersuite.SigningKey{},
		roster:           &testRoster{members: map[treemath.LeafIndex][]byte{}, external: map[uint32][]byte{}},
	}
	for i := range leaves {
		k, err := suite.GenerateSigningKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		g.signers[treemath.LeafIndex(i)] = k
		g.roster.members[treemath.LeafIndex(i)] = k.PublicKey()
	}
	return g
}

// epoch is one member's view of the epoch, with its own secret tree.
func (g *testGroup) epoch(t testing.TB) *Epoch {
	t.Helper()
	tree, err := secrettree.New(g.suite, g.encryptionSecret, g.leaves, secrettree.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEpoch(g.suite, g.gc, EpochKeys{
		MembershipKey:    g.membershipKey,
		SenderDataSecret: g.senderDataSecret,
		SecretTree:       tree,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (g *testGroup) content(sender wire.Sender, ct wire.ContentType) *wire.FramedContent {
	c := &wire.FramedContent{
		GroupID:           g.gc.GroupID,
		Epoch:             g.gc.Epoch,
		Sender:            sender,
		AuthenticatedData: []byte("aad"),
		ContentType:       ct,
	}
	switch ct {
	case wire.ContentTypeApplication:
		c.ApplicationData = []byte("hello, group")
	case wire.ContentTypeProposal:
		c.Proposal = &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: 0}}
	case wire.ContentTypeCommit:
		c.Commit = &wire.Commit{}
	}
	return c
}

// signed signs content for wf with the sender's key and, for a commit, adds
// a confirmation tag of the right length.
func (g *testGroup) signed(t testing.TB, e *Epoch, signer *ciphersuite.SigningKey, wf wire.WireFormat, c *wire.FramedContent) *wire.AuthenticatedContent {
	t.Helper()
	ac, err := e.Sign(signer, wf, c)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if c.ContentType == wire.ContentTypeCommit {
		ac.Auth.ConfirmationTag = bytes.Repeat([]byte{0xc7}, g.suite.HashSize())
	}
	return ac
}

// roundTrip encodes msg as an MLSMessage and decodes it again, as the
// network would.
func roundTrip(t testing.TB, body wire.Encoder) *wire.MLSMessage {
	t.Helper()
	m, err := wire.NewMLSMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	data, err := wire.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := new(wire.MLSMessage)
	if err := wire.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func errorIs(err, target error) bool { return err != nil && errors.Is(err, target) }
