package framing

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

const suite1 = ciphersuite.X25519_AES128GCM_SHA256_Ed25519

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want %v", what, target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("%s: %v, want %v", what, err, target)
	}
}

// privateFrom protects content of type ct from leaf with e's secret tree.
func (g *testGroup) privateFrom(t testing.TB, e *Epoch, leaf treemath.LeafIndex, ct wire.ContentType) *wire.PrivateMessage {
	t.Helper()
	ac := g.signed(t, e, g.signers[leaf], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(uint32(leaf)), ct))
	pm, err := e.ProtectPrivate(ac, nil, nil)
	if err != nil {
		t.Fatalf("protect private: %v", err)
	}
	return pm
}

// publicFrom protects content of type ct from leaf as a PublicMessage.
func (g *testGroup) publicFrom(t testing.TB, e *Epoch, leaf treemath.LeafIndex, ct wire.ContentType) *wire.PublicMessage {
	t.Helper()
	ac := g.signed(t, e, g.signers[leaf], wire.WireFormatPublicMessage, g.content(wire.MemberSender(uint32(leaf)), ct))
	pm, err := e.ProtectPublic(ac)
	if err != nil {
		t.Fatalf("protect public: %v", err)
	}
	return pm
}

// receive runs the whole receive path.
func (g *testGroup) receive(e *Epoch, body wire.Encoder) (*Verified, error) {
	m, err := wire.NewMLSMessage(body)
	if err != nil {
		return nil, err
	}
	return e.Unprotect(m, g.roster)
}

func clonePublic(pm *wire.PublicMessage) *wire.PublicMessage {
	c := *pm
	c.Auth.Signature = bytes.Clone(pm.Auth.Signature)
	c.MembershipTag = bytes.Clone(pm.MembershipTag)
	return &c
}

func clonePrivate(pm *wire.PrivateMessage) *wire.PrivateMessage {
	c := *pm
	c.GroupID = bytes.Clone(pm.GroupID)
	c.AuthenticatedData = bytes.Clone(pm.AuthenticatedData)
	c.EncryptedSenderData = bytes.Clone(pm.EncryptedSenderData)
	c.Ciphertext = bytes.Clone(pm.Ciphertext)
	return &c
}

// sealRaw builds a PrivateMessage by hand around an arbitrary plaintext,
// with the next key of keyLeaf's ratchet in tree and sender data claiming
// claimedLeaf: an independent sender for messages ProtectPrivate refuses to
// make.
func (g *testGroup) sealRaw(t *testing.T, tree *secrettree.Tree, keyLeaf treemath.LeafIndex, claimedLeaf uint32, ct wire.ContentType, plaintext []byte) *wire.PrivateMessage {
	t.Helper()
	kn, err := tree.NextSendKey(keyLeaf, ratchetFor(ct))
	if err != nil {
		t.Fatal(err)
	}
	pm := &wire.PrivateMessage{GroupID: g.gc.GroupID, Epoch: g.gc.Epoch, ContentType: ct, AuthenticatedData: []byte("aad")}
	guard := [4]byte{1, 2, 3, 4}
	aad, _ := wire.Marshal(pm.ContentAAD())
	aead, err := g.suite.NewAEAD(kn.Key)
	if err != nil {
		t.Fatal(err)
	}
	pm.Ciphertext = aead.Seal(nil, guardedNonce(kn.Nonce, guard), plaintext, aad)
	sd, _ := wire.Marshal(&wire.SenderData{LeafIndex: claimedLeaf, Generation: kn.Generation, ReuseGuard: guard})
	key, nonce, err := secrettree.SenderDataKeyNonce(g.suite, g.senderDataSecret, pm.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	sdAEAD, _ := g.suite.NewAEAD(key)
	sdAAD, _ := wire.Marshal(pm.SenderDataAAD())
	pm.EncryptedSenderData = sdAEAD.Seal(nil, nonce, sd, sdAAD)
	return pm
}

// signedPlaintext is a valid PrivateMessageContent encoding of application
// data from leaf, without padding.
func (g *testGroup) signedPlaintext(t *testing.T, e *Epoch, leaf treemath.LeafIndex) []byte {
	t.Helper()
	ac := g.signed(t, e, g.signers[leaf], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(uint32(leaf)), wire.ContentTypeApplication))
	pt, err := wire.Marshal(&wire.PrivateMessageContent{ContentType: ac.Content.ContentType, ApplicationData: ac.Content.ApplicationData, Auth: ac.Auth})
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func TestSignatureChecks(t *testing.T) {
	g := newTestGroup(t, suite1, 3)
	alice, bob := g.epoch(t), g.epoch(t)

	t.Run("flipped signature bit, public", func(t *testing.T) {
		pm := clonePublic(g.publicFrom(t, alice, 0, wire.ContentTypeProposal))
		pm.Auth.Signature[5] ^= 0x01
		// Recompute the membership tag so that only the signature is wrong.
		ac := pm.AuthenticatedContent()
		pm.MembershipTag, _ = alice.membershipTag(ac)
		_, err := g.receive(bob, pm)
		wantErr(t, "flipped signature", err, ErrBadSignature)
	})
	t.Run("flipped signature bit, private", func(t *testing.T) {
		sender := g.epoch(t)
		pt := g.signedPlaintext(t, sender, 0)
		pt[len(pt)-1] ^= 0x80 // the last byte of the signature
		pm := g.sealRaw(t, sender.keys.SecretTree, 0, 0, wire.ContentTypeApplication, pt)
		_, err := g.receive(g.epoch(t), pm)
		wantErr(t, "flipped signature", err, ErrBadSignature)
	})
	t.Run("signed by another member's key", func(t *testing.T) {
		ac := g.signed(t, alice, g.signers[2], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(0), wire.ContentTypeApplication))
		pm, err := alice.ProtectPrivate(ac, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.receive(bob, pm)
		wantErr(t, "wrong signer", err, ErrBadSignature)
	})
	t.Run("signed for the other wire format", func(t *testing.T) {
		sender := g.epoch(t)
		ac := g.signed(t, sender, g.signers[0], wire.WireFormatPublicMessage, g.content(wire.MemberSender(0), wire.ContentTypeProposal))
		ac.WireFormat = wire.WireFormatPrivateMessage
		pm, err := sender.ProtectPrivate(ac, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.receive(g.epoch(t), pm)
		wantErr(t, "public signature in a PrivateMessage", err, ErrBadSignature)
	})
	t.Run("member signature covers the GroupContext", func(t *testing.T) {
		other := *g
		gc := *g.gc
		gc.TreeHash = randomBytes(t, g.suite.HashSize())
		other.gc = &gc
		pm := g.privateFrom(t, g.epoch(t), 1, wire.ContentTypeApplication)
		_, err := g.receive(other.epoch(t), pm)
		wantErr(t, "other GroupContext", err, ErrBadSignature)
		// And the membership tag covers it too.
		pub := g.publicFrom(t, g.epoch(t), 1, wire.ContentTypeCommit)
		_, err = g.receive(other.epoch(t), pub)
		wantErr(t, "other GroupContext", err, ErrBadMembershipTag)
	})
	t.Run("blank or absent member in a PublicMessage", func(t *testing.T) {
		for _, leaf := range []uint32{2, 3, 0xffffffff} {
			// The sender knows the membership key, so only the roster can
			// tell it is not a member.
			sender := g.epoch(t)
			ac := g.signed(t, sender, g.signers[2], wire.WireFormatPublicMessage, g.content(wire.MemberSender(leaf), wire.ContentTypeProposal))
			pm, err := sender.ProtectPublic(ac)
			if err != nil {
				t.Fatal(err)
			}
			roster := &testRoster{members: map[treemath.LeafIndex][]byte{0: g.roster.members[0], 1: g.roster.members[1], 2: nil}}
			m, _ := wire.NewMLSMessage(pm)
			_, err = g.epoch(t).Unprotect(m, roster)
			wantErr(t, "non-member leaf", err, ErrSenderNotMember)
		}
	})
}

func TestMembershipTag(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	pm := g.publicFrom(t, g.epoch(t), 0, wire.ContentTypeProposal)
	if _, err := g.receive(g.epoch(t), pm); err != nil {
		t.Fatalf("genuine message: %v", err)
	}
	nh := g.suite.HashSize()
	cases := map[string][]byte{
		"empty":             {},
		"nil":               nil,
		"truncated to 1":    pm.MembershipTag[:1],
		"truncated to half": pm.MembershipTag[:nh/2],
		"one byte short":    pm.MembershipTag[:nh-1],
		"one byte long":     append(bytes.Clone(pm.MembershipTag), 0),
		"doubled":           append(bytes.Clone(pm.MembershipTag), pm.MembershipTag...),
		"flipped bit":       func() []byte { b := bytes.Clone(pm.MembershipTag); b[nh-1] ^= 1; return b }(),
		"zero":              make([]byte, nh),
	}
	for name, tag := range cases {
		t.Run(name, func(t *testing.T) {
			bad := clonePublic(pm)
			bad.MembershipTag = tag
			// Through the wire too, where an empty tag is a valid encoding.
			_, err := g.epoch(t).Unprotect(roundTrip(t, bad), g.roster)
			wantErr(t, "membership tag "+name, err, ErrBadMembershipTag)
		})
	}
	t.Run("other membership key", func(t *testing.T) {
		other := *g
		other.membershipKey = randomBytes(t, nh)
		_, err := g.receive(other.epoch(t), pm)
		wantErr(t, "other membership key", err, ErrBadMembershipTag)
	})
	t.Run("tampered authenticated data", func(t *testing.T) {
		bad := clonePublic(pm)
		bad.Content.AuthenticatedData = []byte("other")
		_, err := g.receive(g.epoch(t), bad)
		wantErr(t, "tampered content", err, ErrBadMembershipTag)
	})
}

func TestGroupAndEpoch(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	other := func(mutate func(gc *wire.GroupContext)) *Epoch {
		o := *g
		gc := *g.gc
		mutate(&gc)
		o.gc = &gc
		return o.epoch(t)
	}
	wrongEpoch := other(func(gc *wire.GroupContext) { gc.Epoch++ })
	wrongGroup := other(func(gc *wire.GroupContext) { gc.GroupID = []byte("another group") })
	for _, tc := range []struct {
		name string
		body wire.Encoder
	}{
		{"public", g.publicFrom(t, g.epoch(t), 0, wire.ContentTypeCommit)},
		{"private", g.privateFrom(t, g.epoch(t), 0, wire.ContentTypeApplication)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.receive(wrongEpoch, tc.body)
			wantErr(t, "wrong epoch", err, ErrWrongEpoch)
			_, err = g.receive(wrongGroup, tc.body)
			wantErr(t, "wrong group", err, ErrWrongGroup)
		})
	}
	t.Run("sending content of another epoch", func(t *testing.T) {
		c := g.content(wire.MemberSender(0), wire.ContentTypeApplication)
		c.Epoch++
		_, err := g.epoch(t).Sign(g.signers[0], wire.WireFormatPrivateMessage, c)
		wantErr(t, "sign", err, ErrWrongEpoch)
	})
}

func TestPrivateSenderLeaf(t *testing.T) {
	g := newTestGroup(t, suite1, 3)
	delete(g.roster.members, 2) // leaf 2 is blank
	for _, leaf := range []uint32{2, 3, 4, 1 << 20, 0xfffffffe, 0xffffffff} {
		sender := g.epoch(t)
		pm := g.sealRaw(t, sender.keys.SecretTree, 0, leaf, wire.ContentTypeApplication, g.signedPlaintext(t, sender, 0))
		receiver := g.epoch(t)
		_, err := g.receive(receiver, pm)
		wantErr(t, "sender data leaf", err, ErrSenderNotMember)
		if receiver.keys.SecretTree.Retained() != 0 {
			t.Fatal("secret tree changed")
		}
	}
	// The same construction with the true leaf is accepted, so the refusal
	// above is about the leaf alone.
	sender := g.epoch(t)
	pm := g.sealRaw(t, sender.keys.SecretTree, 0, 0, wire.ContentTypeApplication, g.signedPlaintext(t, sender, 0))
	if _, err := g.receive(g.epoch(t), pm); err != nil {
		t.Fatalf("control message: %v", err)
	}
}

func TestPadding(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	for _, tc := range []struct {
		name    string
		padding []byte
		want    error
	}{
		{"none", nil, nil},
		{"zeros", make([]byte, 100), nil},
		{"last byte set", []byte{0, 0, 0, 1}, ErrNonZeroPadding},
		{"first byte set", []byte{0x80, 0, 0, 0}, ErrNonZeroPadding},
		{"single byte", []byte{0xff}, ErrNonZeroPadding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := g.epoch(t)
			pt := append(g.signedPlaintext(t, sender, 0), tc.padding...)
			pm := g.sealRaw(t, sender.keys.SecretTree, 0, 0, wire.ContentTypeApplication, pt)
			v, err := g.receive(g.epoch(t), pm)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(v.Content().ApplicationData, []byte("hello, group")) {
					t.Fatal("wrong content")
				}
				return
			}
			wantErr(t, "padding", err, tc.want)
		})
	}
	t.Run("truncated content", func(t *testing.T) {
		sender := g.epoch(t)
		pt := g.signedPlaintext(t, sender, 0)
		pm := g.sealRaw(t, sender.keys.SecretTree, 0, 0, wire.ContentTypeApplication, pt[:len(pt)-3])
		_, err := g.receive(g.epoch(t), pm)
		wantErr(t, "truncated", err, ErrMalformed)
	})
	t.Run("policy", func(t *testing.T) {
		for _, block := range []int{0, 1, 16, 32, 100} {
			sender, receiver := g.epoch(t), g.epoch(t)
			ac := g.signed(t, sender, g.signers[0], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(0), wire.ContentTypeApplication))
			pm, err := sender.ProtectPrivate(ac, PadToMultiple(block), nil)
			if err != nil {
				t.Fatal(err)
			}
			plainLen := len(pm.Ciphertext) - aeadTagSize
			if block >= 2 && plainLen%block != 0 {
				t.Errorf("block %d: plaintext of %d bytes", block, plainLen)
			}
			if _, err := g.receive(receiver, pm); err != nil {
				t.Fatalf("block %d: %v", block, err)
			}
		}
		sender := g.epoch(t)
		ac := g.signed(t, sender, g.signers[0], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(0), wire.ContentTypeApplication))
		if _, err := sender.ProtectPrivate(ac, func(int) int { return -1 }, nil); err == nil {
			t.Error("negative padding accepted")
		}
	})
}

func TestAEADTamperLeavesRatchet(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	sender := g.epoch(t)
	genuine := g.privateFrom(t, sender, 1, wire.ContentTypeApplication)
	receiver := g.epoch(t)
	tampers := map[string]func(pm *wire.PrivateMessage){
		// Past the first KDF.Nh bytes the sender data still decrypts, so
		// this one fails at the content AEAD.
		"ciphertext tag":         func(pm *wire.PrivateMessage) { pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1 },
		"ciphertext sample":      func(pm *wire.PrivateMessage) { pm.Ciphertext[0] ^= 1 },
		"truncated ciphertext":   func(pm *wire.PrivateMessage) { pm.Ciphertext = pm.Ciphertext[:len(pm.Ciphertext)-1] },
		"empty ciphertext":       func(pm *wire.PrivateMessage) { pm.Ciphertext = nil },
		"encrypted sender data":  func(pm *wire.PrivateMessage) { pm.EncryptedSenderData[3] ^= 1 },
		"empty sender data":      func(pm *wire.PrivateMessage) { pm.EncryptedSenderData = nil },
		"authenticated data":     func(pm *wire.PrivateMessage) { pm.AuthenticatedData = []byte("AAD") },
		"content type":           func(pm *wire.PrivateMessage) { pm.ContentType = wire.ContentTypeProposal },
		"handshake content type": func(pm *wire.PrivateMessage) { pm.ContentType = wire.ContentTypeCommit },
	}
	for name, tamper := range tampers {
		bad := clonePrivate(genuine)
		tamper(bad)
		_, err := g.receive(receiver, bad)
		wantErr(t, name, err, ErrDecryption)
	}
	v, err := g.receive(receiver, genuine)
	if err != nil {
		t.Fatalf("genuine message after tampered copies: %v", err)
	}
	if !bytes.Equal(v.Content().ApplicationData, []byte("hello, group")) {
		t.Fatal("wrong content")
	}
	if receiver.keys.SecretTree.Retained() != 0 {
		t.Fatalf("%d keys retained, want 0: a tampered message moved the ratchet", receiver.keys.SecretTree.Retained())
	}

	t.Run("forged far generation", func(t *testing.T) {
		// A forged message claiming generation 500 must not make the
		// receiver skip (and retain) 500 keys.
		sender, receiver := g.epoch(t), g.epoch(t)
		for range 500 {
			if _, err := sender.keys.SecretTree.NextSendKey(1, secrettree.Application); err != nil {
				t.Fatal(err)
			}
		}
		forged := clonePrivate(g.privateFrom(t, sender, 1, wire.ContentTypeApplication))
		forged.Ciphertext[len(forged.Ciphertext)-1] ^= 1
		_, err := g.receive(receiver, forged)
		wantErr(t, "forged", err, ErrDecryption)
		if n := receiver.keys.SecretTree.Retained(); n != 0 {
			t.Fatalf("%d keys retained after a forged message", n)
		}
		if _, err := g.receive(receiver, g.privateFrom(t, g.epoch(t), 1, wire.ContentTypeApplication)); err != nil {
			t.Fatalf("generation 0 after the forgery: %v", err)
		}
	})
}

func TestReplayAndGenerations(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	sender, receiver := g.epoch(t), g.epoch(t)
	var msgs []*wire.PrivateMessage
	for range 4 {
		msgs = append(msgs, g.privateFrom(t, sender, 0, wire.ContentTypeApplication))
	}
	if _, err := g.receive(receiver, msgs[0]); err != nil {
		t.Fatal(err)
	}
	_, err := g.receive(receiver, msgs[0])
	wantErr(t, "replay", err, ErrKeyConsumed)
	// Later generations, out of order, still work, and each only once.
	for _, i := range []int{3, 1, 2} {
		if _, err := g.receive(receiver, msgs[i]); err != nil {
			t.Fatalf("generation %d: %v", i, err)
		}
		_, err := g.receive(receiver, msgs[i])
		wantErr(t, "replay", err, ErrKeyConsumed)
	}
	// Handshake and application ratchets are separate: a handshake message
	// at generation 0 is fine after application generations were used.
	if _, err := g.receive(receiver, g.privateFrom(t, sender, 0, wire.ContentTypeProposal)); err != nil {
		t.Fatal(err)
	}

	t.Run("too far ahead", func(t *testing.T) {
		sender, receiver := g.epoch(t), g.epoch(t)
		for range secrettree.DefaultMaxForward + 1 {
			if _, err := sender.keys.SecretTree.NextSendKey(0, secrettree.Application); err != nil {
				t.Fatal(err)
			}
		}
		_, err := g.receive(receiver, g.privateFrom(t, sender, 0, wire.ContentTypeApplication))
		wantErr(t, "generation too far", err, ErrGenerationTooFar)
	})
}

func TestSenderTypeRules(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	ext, err := g.suite.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	g.roster.external[0] = ext.PublicKey()
	joiner, err := g.suite.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	external := wire.Sender{SenderType: wire.SenderTypeExternal, SenderIndex: 0}
	newMemberProposal := wire.Sender{SenderType: wire.SenderTypeNewMemberProposal}
	newMemberCommit := wire.Sender{SenderType: wire.SenderTypeNewMemberCommit}
	leaf := func(source wire.LeafNodeSource) wire.LeafNode {
		return wire.LeafNode{
			EncryptionKey:  []byte{1},
			SignatureKey:   joiner.PublicKey(),
			Credential:     wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("joiner")},
			LeafNodeSource: source,
			ParentHash:     []byte{2},
			Signature:      []byte{3},
		}
	}
	kp := wire.KeyPackage{
		Version: wire.ProtocolVersionMLS10, CipherSuite: wire.CipherSuite(suite1),
		InitKey: []byte{4}, LeafNode: leaf(wire.LeafNodeSourceKeyPackage), Signature: []byte{5},
	}

	// rawPublic frames content as a PublicMessage without the sending-side
	// checks, as a hostile sender would, with a valid signature by key and
	// (for members) a valid membership tag.
	rawPublic := func(t *testing.T, key *ciphersuite.SigningKey, c *wire.FramedContent) *wire.PublicMessage {
		e := g.epoch(t)
		ac := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPublicMessage, Content: *c}
		tbs, err := wire.Marshal(ac.TBS(e.groupContext))
		if err != nil {
			t.Fatal(err)
		}
		if ac.Auth.Signature, err = g.suite.SignWithLabel(key, signatureLabel, tbs); err != nil {
			t.Fatal(err)
		}
		if c.ContentType == wire.ContentTypeCommit {
			ac.Auth.ConfirmationTag = make([]byte, g.suite.HashSize())
		}
		pm := &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}
		if c.Sender.SenderType == wire.SenderTypeMember {
			pm.MembershipTag, _ = e.membershipTag(ac)
		}
		return pm
	}
	proposal := func(pt wire.ProposalType) *wire.Proposal {
		switch pt {
		case wire.ProposalTypeAdd:
			return &wire.Proposal{ProposalType: pt, Add: &wire.Add{KeyPackage: kp}}
		case wire.ProposalTypeUpdate:
			return &wire.Proposal{ProposalType: pt, Update: &wire.Update{LeafNode: leaf(wire.LeafNodeSourceUpdate)}}
		case wire.ProposalTypeRemove:
			return &wire.Proposal{ProposalType: pt, Remove: &wire.Remove{Removed: 1}}
		case wire.ProposalTypeExternalInit:
			return &wire.Proposal{ProposalType: pt, ExternalInit: &wire.ExternalInit{KEMOutput: []byte{1}}}
		}
		panic("unexpected proposal type")
	}
	withProposal := func(s wire.Sender, pt wire.ProposalType) *wire.FramedContent {
		c := g.content(s, wire.ContentTypeProposal)
		c.Proposal = proposal(pt)
		return c
	}

	refused := []struct {
		name string
		key  *ciphersuite.SigningKey
		c    *wire.FramedContent
		want error
		// signRefuses: the rule is about the content alone, so Sign
		// refuses it too, with the same error.
		signRefuses bool
	}{
		{"application from a member", g.signers[0], g.content(wire.MemberSender(0), wire.ContentTypeApplication), ErrApplicationInPublic, true},
		{"application from an external sender", ext, g.content(external, wire.ContentTypeApplication), ErrApplicationInPublic, true},
		{"commit from an external sender", ext, g.content(external, wire.ContentTypeCommit), ErrSenderNotAllowed, true},
		{"update from an external sender", ext, withProposal(external, wire.ProposalTypeUpdate), ErrSenderNotAllowed, true},
		{"external_init from an external sender", ext, withProposal(external, wire.ProposalTypeExternalInit), ErrSenderNotAllowed, true},
		{"remove from a new member", joiner, withProposal(newMemberProposal, wire.ProposalTypeRemove), ErrSenderNotAllowed, true},
		{"commit from new_member_proposal", joiner, g.content(newMemberProposal, wire.ContentTypeCommit), ErrSenderNotAllowed, true},
		{"proposal from new_member_commit", joiner, withProposal(newMemberCommit, wire.ProposalTypeAdd), ErrSenderNotAllowed, true},
		{"external commit without a path", joiner, g.content(newMemberCommit, wire.ContentTypeCommit), ErrSenderNotAllowed, true},
		{"unknown external sender", ext, withProposal(wire.Sender{SenderType: wire.SenderTypeExternal, SenderIndex: 1}, wire.ProposalTypeRemove), ErrUnknownExternalSender, false},
		{"external sender signed by a member", g.signers[0], withProposal(external, wire.ProposalTypeRemove), ErrBadSignature, false},
		{"new member signed by another key", ext, withProposal(newMemberProposal, wire.ProposalTypeAdd), ErrBadSignature, false},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			pm := rawPublic(t, tc.key, tc.c)
			_, err := g.epoch(t).Unprotect(roundTrip(t, pm), g.roster)
			wantErr(t, "receive", err, tc.want)
			if tc.signRefuses {
				if _, err := g.epoch(t).Sign(tc.key, wire.WireFormatPublicMessage, tc.c); !errors.Is(err, tc.want) {
					t.Fatalf("sign: %v, want %v", err, tc.want)
				}
			}
		})
	}

	// What the rules allow goes through, through Sign and ProtectPublic.
	other := *g
	gc := *g.gc
	gc.TreeHash = randomBytes(t, g.suite.HashSize())
	other.gc = &gc
	allowed := []struct {
		name string
		key  *ciphersuite.SigningKey
		c    *wire.FramedContent
		// coversContext: the signature covers the GroupContext (§6.1), so a
		// receiver with another GroupContext must reject it.
		coversContext bool
	}{
		{"remove from an external sender", ext, withProposal(external, wire.ProposalTypeRemove), false},
		{"add from an external sender", ext, withProposal(external, wire.ProposalTypeAdd), false},
		{"add from a new member", joiner, withProposal(newMemberProposal, wire.ProposalTypeAdd), false},
		{"external commit", joiner, func() *wire.FramedContent {
			c := g.content(newMemberCommit, wire.ContentTypeCommit)
			c.Commit = &wire.Commit{Path: &wire.UpdatePath{LeafNode: leaf(wire.LeafNodeSourceCommit)}}
			return c
		}(), true},
	}
	for _, tc := range allowed {
		t.Run(tc.name, func(t *testing.T) {
			// A non-member has no epoch secrets at all.
			sender, err := NewEpoch(g.suite, g.gc, EpochKeys{})
			if err != nil {
				t.Fatal(err)
			}
			ac := g.signed(t, sender, tc.key, wire.WireFormatPublicMessage, tc.c)
			pm, err := sender.ProtectPublic(ac)
			if err != nil {
				t.Fatal(err)
			}
			if pm.MembershipTag != nil {
				t.Fatal("membership tag on a non-member message")
			}
			v, err := g.epoch(t).Unprotect(roundTrip(t, pm), g.roster)
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			if v.Sender() != tc.c.Sender {
				t.Fatalf("sender %+v", v.Sender())
			}
			_, err = other.epoch(t).Unprotect(roundTrip(t, pm), g.roster)
			if tc.coversContext {
				wantErr(t, "other GroupContext", err, ErrBadSignature)
			} else if err != nil {
				t.Fatalf("signature without GroupContext rejected under another GroupContext: %v", err)
			}
			// Non-members can never send a PrivateMessage.
			_, err = sender.Sign(tc.key, wire.WireFormatPrivateMessage, tc.c)
			wantErr(t, "private from a non-member", err, ErrSenderNotAllowed)
		})
	}
}

func TestSendingSideChecks(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	e := g.epoch(t)
	ac, err := e.Sign(g.signers[0], wire.WireFormatPublicMessage, g.content(wire.MemberSender(0), wire.ContentTypeCommit))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ProtectPublic(ac)
	wantErr(t, "commit without confirmation tag", err, ErrBadConfirmationTag)
	ac.Auth.ConfirmationTag = make([]byte, g.suite.HashSize()-1)
	_, err = e.ProtectPublic(ac)
	wantErr(t, "short confirmation tag", err, ErrBadConfirmationTag)

	priv := g.signed(t, e, g.signers[0], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(0), wire.ContentTypeApplication))
	_, err = e.ProtectPublic(priv)
	wantErr(t, "private content as public", err, ErrWrongWireFormat)
	pub := g.signed(t, e, g.signers[0], wire.WireFormatPublicMessage, g.content(wire.MemberSender(0), wire.ContentTypeProposal))
	_, err = e.ProtectPrivate(pub, nil, nil)
	wantErr(t, "public content as private", err, ErrWrongWireFormat)

	bare, err := NewEpoch(g.suite, g.gc, EpochKeys{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bare.ProtectPublic(pub)
	wantErr(t, "member message without membership key", err, ErrMissingKeys)
	_, err = bare.ProtectPrivate(priv, nil, nil)
	wantErr(t, "private message without secret tree", err, ErrMissingKeys)
	_, err = bare.Unprotect(roundTrip(t, g.privateFrom(t, g.epoch(t), 0, wire.ContentTypeApplication)), g.roster)
	wantErr(t, "receive private without secret tree", err, ErrMissingKeys)

	if _, err := e.Unprotect(&wire.MLSMessage{Version: wire.ProtocolVersionMLS10, WireFormat: wire.WireFormatWelcome, Welcome: &wire.Welcome{}}, g.roster); !errors.Is(err, ErrWrongWireFormat) {
		t.Fatalf("welcome: %v", err)
	}
}

func TestConfirmationTag(t *testing.T) {
	g := newTestGroup(t, suite1, 2)
	key := randomBytes(t, g.suite.HashSize())
	cth := randomBytes(t, g.suite.HashSize())
	e := g.epoch(t)
	ac := g.signed(t, e, g.signers[0], wire.WireFormatPrivateMessage, g.content(wire.MemberSender(0), wire.ContentTypeCommit))
	ac.Auth.ConfirmationTag = g.suite.MAC(key, cth)
	pm, err := e.ProtectPrivate(ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := g.receive(g.epoch(t), pm)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyConfirmationTag(key, cth); err != nil {
		t.Fatalf("genuine tag: %v", err)
	}
	wantErr(t, "other transcript", v.VerifyConfirmationTag(key, randomBytes(t, len(cth))), ErrBadConfirmationTag)
	wantErr(t, "other key", v.VerifyConfirmationTag(randomBytes(t, len(key)), cth), ErrBadConfirmationTag)

	app, err := g.receive(g.epoch(t), g.privateFrom(t, g.epoch(t), 0, wire.ContentTypeApplication))
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "application message", app.VerifyConfirmationTag(key, cth), ErrBadConfirmationTag)
}

func TestAllSuitesRoundTrip(t *testing.T) {
	for id := ciphersuite.ID(1); id <= 7; id++ {
		t.Run(id.String(), func(t *testing.T) {
			g := newTestGroup(t, id, 3)
			sender, receiver := g.epoch(t), g.epoch(t)
			for _, ct := range []wire.ContentType{wire.ContentTypeApplication, wire.ContentTypeProposal, wire.ContentTypeCommit} {
				v, err := g.receive(receiver, g.privateFrom(t, sender, 2, ct))
				if err != nil {
					t.Fatalf("private %v: %v", ct, err)
				}
				if v.Sender() != wire.MemberSender(2) || v.Content().ContentType != ct {
					t.Fatalf("private %v: got %+v", ct, v.Content())
				}
				if ct == wire.ContentTypeApplication {
					continue
				}
				if _, err := g.receive(receiver, g.publicFrom(t, sender, 2, ct)); err != nil {
					t.Fatalf("public %v: %v", ct, err)
				}
			}
		})
	}
}
