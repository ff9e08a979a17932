package framing

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// protectionCase is one case of message-protection.json: the sender is leaf
// 1 of a 2-member group.
type protectionCase struct {
	CipherSuite             uint16      `json:"cipher_suite"`
	GroupID                 vectors.Hex `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	TreeHash                vectors.Hex `json:"tree_hash"`
	ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
	SignaturePriv           vectors.Hex `json:"signature_priv"`
	SignaturePub            vectors.Hex `json:"signature_pub"`
	EncryptionSecret        vectors.Hex `json:"encryption_secret"`
	SenderDataSecret        vectors.Hex `json:"sender_data_secret"`
	MembershipKey           vectors.Hex `json:"membership_key"`

	Proposal        vectors.Hex `json:"proposal"`
	ProposalPriv    vectors.Hex `json:"proposal_priv"`
	ProposalPub     vectors.Hex `json:"proposal_pub"`
	Commit          vectors.Hex `json:"commit"`
	CommitPriv      vectors.Hex `json:"commit_priv"`
	CommitPub       vectors.Hex `json:"commit_pub"`
	Application     vectors.Hex `json:"application"`
	ApplicationPriv vectors.Hex `json:"application_priv"`
}

const vectorSender = treemath.LeafIndex(1)

// vectorEpoch is a fresh view of the case's epoch with its own secret tree,
// so that each message is decrypted from an untouched ratchet.
func vectorEpoch(t *testing.T, suite *ciphersuite.Suite, tc *protectionCase) *Epoch {
	t.Helper()
	tree, err := secrettree.New(suite, tc.EncryptionSecret, 2, secrettree.Config{})
	if err != nil {
		t.Fatal(err)
	}
	gc := &wire.GroupContext{
		Version:                 wire.ProtocolVersionMLS10,
		CipherSuite:             wire.CipherSuite(tc.CipherSuite),
		GroupID:                 tc.GroupID,
		Epoch:                   tc.Epoch,
		TreeHash:                tc.TreeHash,
		ConfirmedTranscriptHash: tc.ConfirmedTranscriptHash,
	}
	e, err := NewEpoch(suite, gc, EpochKeys{MembershipKey: tc.MembershipKey, SenderDataSecret: tc.SenderDataSecret, SecretTree: tree})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// deterministicSignatures reports whether the suite's signature scheme
// (EdDSA) gives one signature per message, so re-protecting a PublicMessage
// must reproduce the vector's bytes.
func deterministicSignatures(id ciphersuite.ID) bool {
	switch id {
	case ciphersuite.X25519_AES128GCM_SHA256_Ed25519, ciphersuite.X25519_CHACHA20POLY1305_SHA256_Ed25519,
		ciphersuite.X448_AES256GCM_SHA512_Ed448, ciphersuite.X448_CHACHA20POLY1305_SHA512_Ed448:
		return true
	}
	return false
}

func TestMessageProtectionVectors(t *testing.T) {
	var cases []protectionCase
	vectors.Load(t, "message-protection.json", &cases)
	tl := vectors.NewTally(t, "message-protection.json")
	for i := range cases {
		tc := &cases[i]
		tl.Run(t, vectors.Name("case", i, "suite", tc.CipherSuite), func(t *testing.T) {
			suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
			if err != nil {
				t.Fatalf("suite %d: %v", tc.CipherSuite, err)
			}
			signer, err := suite.ParseSigningKey(tc.SignaturePriv)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(signer.PublicKey(), tc.SignaturePub) {
				t.Fatal("signature_priv does not match signature_pub")
			}
			other, err := suite.GenerateSigningKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			roster := &testRoster{members: map[treemath.LeafIndex][]byte{0: other.PublicKey(), vectorSender: tc.SignaturePub}}

			// check verifies that v is the payload's content from leaf 1.
			check := func(t *testing.T, v *Verified, wf wire.WireFormat, ct wire.ContentType, payload []byte) {
				t.Helper()
				c := v.Content()
				if v.WireFormat() != wf || c.ContentType != ct ||
					v.Sender() != wire.MemberSender(uint32(vectorSender)) ||
					!bytes.Equal(c.GroupID, tc.GroupID) || c.Epoch != tc.Epoch {
					t.Fatalf("wrong header: wf=%v ct=%v sender=%+v epoch=%d", v.WireFormat(), c.ContentType, v.Sender(), c.Epoch)
				}
				var got []byte
				switch ct {
				case wire.ContentTypeApplication:
					got = c.ApplicationData
				case wire.ContentTypeProposal:
					got, err = wire.Marshal(c.Proposal)
				case wire.ContentTypeCommit:
					got, err = wire.Marshal(c.Commit)
					if len(v.ConfirmationTag()) != suite.HashSize() {
						t.Errorf("commit confirmation tag of %d bytes", len(v.ConfirmationTag()))
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, payload) {
					t.Fatalf("content differs from the raw payload:\n got %x\nwant %x", got, payload)
				}
			}
			unprotect := func(t *testing.T, e *Epoch, m *wire.MLSMessage) *Verified {
				t.Helper()
				v, err := e.Unprotect(m, roster)
				if err != nil {
					t.Fatalf("unprotect: %v", err)
				}
				return v
			}

			type message struct {
				name      string
				ct        wire.ContentType
				wf        wire.WireFormat
				payload   []byte
				protected []byte
			}
			messages := []message{
				{"proposal_pub", wire.ContentTypeProposal, wire.WireFormatPublicMessage, tc.Proposal, tc.ProposalPub},
				{"commit_pub", wire.ContentTypeCommit, wire.WireFormatPublicMessage, tc.Commit, tc.CommitPub},
				{"proposal_priv", wire.ContentTypeProposal, wire.WireFormatPrivateMessage, tc.Proposal, tc.ProposalPriv},
				{"commit_priv", wire.ContentTypeCommit, wire.WireFormatPrivateMessage, tc.Commit, tc.CommitPriv},
				{"application_priv", wire.ContentTypeApplication, wire.WireFormatPrivateMessage, tc.Application, tc.ApplicationPriv},
			}
			for _, msg := range messages {
				t.Run(msg.name, func(t *testing.T) {
					// Their message, unprotected by us.
					var m wire.MLSMessage
					if err := wire.Unmarshal(msg.protected, &m); err != nil {
						t.Fatal(err)
					}
					if m.WireFormat != msg.wf {
						t.Fatalf("vector message has wire format %v", m.WireFormat)
					}
					theirs := unprotect(t, vectorEpoch(t, suite, tc), &m)
					check(t, theirs, msg.wf, msg.ct, msg.payload)

					// The same content, protected by us and unprotected again.
					sender, receiver := vectorEpoch(t, suite, tc), vectorEpoch(t, suite, tc)
					content := *theirs.Content()
					ac, err := sender.Sign(signer, msg.wf, &content)
					if err != nil {
						t.Fatal(err)
					}
					ac.Auth.ConfirmationTag = theirs.ConfirmationTag()
					var body wire.Encoder
					if msg.wf == wire.WireFormatPublicMessage {
						pub, err := sender.ProtectPublic(ac)
						if err != nil {
							t.Fatal(err)
						}
						body = pub
						if deterministicSignatures(suite.ID()) {
							ours, err := wire.Marshal(roundTrip(t, pub))
							if err != nil {
								t.Fatal(err)
							}
							if !bytes.Equal(ours, msg.protected) {
								t.Errorf("re-protected PublicMessage differs from the vector:\n got %x\nwant %x", ours, msg.protected)
							}
						}
					} else {
						priv, err := sender.ProtectPrivate(ac, PadToMultiple(32), nil)
						if err != nil {
							t.Fatal(err)
						}
						body = priv
					}
					mine := unprotect(t, receiver, roundTrip(t, body))
					check(t, mine, msg.wf, msg.ct, msg.payload)
					if !bytes.Equal(mine.AuthenticatedContent().Auth.Signature, ac.Auth.Signature) {
						t.Error("signature changed in transit")
					}
				})
			}

			// Application data never goes out as a PublicMessage.
			app := &wire.FramedContent{
				GroupID: tc.GroupID, Epoch: tc.Epoch, Sender: wire.MemberSender(uint32(vectorSender)),
				ContentType: wire.ContentTypeApplication, ApplicationData: tc.Application,
			}
			if _, err := vectorEpoch(t, suite, tc).Sign(signer, wire.WireFormatPublicMessage, app); !errorIs(err, ErrApplicationInPublic) {
				t.Errorf("signing application data for a PublicMessage: %v, want ErrApplicationInPublic", err)
			}
		})
	}
}
