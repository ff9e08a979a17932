package mls

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// manyExtensions returns n extensions of distinct non-default types, and
// the capability list naming them (in reverse order, so that a linear
// search would scan far).
func manyExtensions(n int) (wire.Extensions, []wire.ExtensionType) {
	exts := make(wire.Extensions, n)
	caps := make([]wire.ExtensionType, n)
	for i := range n {
		exts[i] = wire.Extension{ExtensionType: wire.ExtensionType(0x1000 + i)}
		caps[n-1-i] = wire.ExtensionType(0x1000 + i)
	}
	return exts, caps
}

// nestedRatchetTree returns the body of a ratchet_tree extension whose only
// leaf carries a ratchet_tree extension, and so on depth times.
func nestedRatchetTree(t testing.TB, leaf wire.LeafNode, depth int) []byte {
	t.Helper()
	var inner []byte
	for range depth {
		l := leaf
		l.Extensions = wire.Extensions{}
		if inner != nil {
			l.Extensions = wire.Extensions{{ExtensionType: wire.ExtensionTypeRatchetTree, ExtensionData: inner}}
		}
		inner = rawTree(t, wire.RatchetTree{{NodeType: wire.NodeTypeLeaf, Leaf: &l}})
	}
	return inner
}

// Class 9: decoding and denial of service (RFC 9420 §2.1, §13.4). Every
// input costs time and memory in proportion to its size: nothing nested is
// decoded that is not needed, list checks are linear, length prefixes are
// checked against the input before anything is allocated; and strict
// decoding leaves each message exactly one encoding.
func TestHardeningDecoding(t *testing.T) {
	h := newHardGroup(t, nil)
	alice, bob := h.alice, h.bob
	e := newTestClient(t, "erin", nil)

	t.Run("class9/§13.4 thousands of extensions, each checked against the capabilities once", func(t *testing.T) {
		exts, caps := manyExtensions(20000)
		kp := forgeKeyPackage(t, e, func(kp *wire.KeyPackage) { kp.LeafNode.Extensions, kp.LeafNode.Capabilities.Extensions = exts, caps })
		if _, err := ParseKeyPackage(kp.Bytes(), nil); err != nil {
			t.Fatalf("20000 listed extensions: %v", err)
		}
		short := caps[1:] // the last extension's type is no longer listed
		kp = forgeKeyPackage(t, e, func(kp *wire.KeyPackage) { kp.LeafNode.Extensions, kp.LeafNode.Capabilities.Extensions = exts, short })
		if _, err := ParseKeyPackage(kp.Bytes(), nil); !errors.Is(err, ErrInvalidLeafNode) {
			t.Fatalf("one of 20000 extensions unlisted: %v", err)
		}
		// The same KeyPackage proposed to the group: rejected, state kept.
		rejectsMessage(t, alice, memberCommit(t, bob, alice, inline(addOf(kp))...), ErrInvalidProposalList)
	})
	t.Run("class9/§13.4 a duplicate among thousands of extensions", func(t *testing.T) {
		exts, caps := manyExtensions(20000)
		exts[19999].ExtensionType = exts[3].ExtensionType
		kp := e.kp.KeyPackage().kp
		kp.LeafNode.Extensions, kp.LeafNode.Capabilities.Extensions = exts, caps
		// Encode refuses a duplicate; write the list by hand.
		enc := encodeKeyPackageRaw(t, &kp)
		if _, err := ParseKeyPackage(enc, nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("duplicate extension: %v", err)
		}
	})
	t.Run("class9/§12.4.3.3 a ratchet_tree nested in a leaf's extensions is not decoded", func(t *testing.T) {
		leaf := e.kp.KeyPackage().kp.LeafNode
		nested := nestedRatchetTree(t, leaf, 40)
		opaque := bytes.Repeat([]byte{0x55}, len(nested))
		withExt := func(data []byte) []byte {
			return forgeKeyPackage(t, e, func(kp *wire.KeyPackage) {
				kp.LeafNode.Extensions = wire.Extensions{{ExtensionType: wire.ExtensionTypeRatchetTree, ExtensionData: data}}
			}).Bytes()
		}
		n, o := withExt(nested), withExt(opaque)
		if _, err := ParseKeyPackage(n, nil); err != nil {
			t.Fatalf("nested tree in a leaf: %v", err)
		}
		allocs := func(msg []byte) float64 {
			return testing.AllocsPerRun(10, func() { _, _ = ParseKeyPackage(msg, nil) })
		}
		// Decoding the 40 nested trees takes several times the allocations
		// of the whole parse; a quarter of slack absorbs sync.Pool
		// behaviour under the race detector.
		var rt wire.RatchetTree
		decodeAll := testing.AllocsPerRun(10, func() {
			data := nested
			for range 40 {
				if wire.Unmarshal(data, &rt) != nil || len(rt[0].Leaf.Extensions) == 0 {
					return
				}
				data = rt[0].Leaf.Extensions[0].ExtensionData
			}
		})
		an, ao := allocs(n), allocs(o)
		if decodeAll < ao/2 {
			t.Fatalf("fixture: decoding the nesting costs only %v allocations, the parse %v: the check could not see it", decodeAll, ao)
		}
		if an > ao+ao/4 {
			t.Fatalf("a nested ratchet_tree costs %v allocations, opaque bytes of the same size %v: it is being decoded", an, ao)
		}
		// A group member with such a leaf: the tree a joiner validates does
		// not decode it either, and the group works.
		kp := must[*KeyPackage](t)(ParseKeyPackage(n, nil))
		pc := must[*PendingCommit](t)(clone(t, alice).AddMembers(kp))
		process(t, clone(t, bob), pc.Commit)
		f := newTestClient(t, "frank", nil)
		pc2 := must[*PendingCommit](t)(pc.Next.AddMembers(f.kp.KeyPackage()))
		checkAgree(t, pc2.Next, must[*Group](t)(Join(pc2.Welcome, []*PrivateKeyPackage{f.kp}, nil, nil)))
	})

	t.Run("class9/§2.1.2 huge length prefixes on short input cost nothing", func(t *testing.T) {
		// version, wire format, then a vector claiming 2^30-1 bytes.
		huge := func(wf wire.WireFormat) []byte {
			return []byte{0, 1, byte(wf >> 8), byte(wf), 0xbf, 0xff, 0xff, 0xff, 1, 2, 3}
		}
		state := must[[]byte](t)(alice.MarshalBinary())
		hugeState := append(bytes.Clone(state[:2]), 0xbf, 0xff, 0xff, 0xff, 1, 2, 3)
		entries := []struct {
			name string
			f    func([]byte) error
			in   []byte
		}{
			{"ProcessMessage", func(b []byte) error { _, err := alice.ProcessMessage(b); return err }, huge(wire.WireFormatPublicMessage)},
			{"ProcessMessage private", func(b []byte) error { _, err := alice.ProcessMessage(b); return err }, huge(wire.WireFormatPrivateMessage)},
			{"Inspect", func(b []byte) error { _, err := Inspect(b); return err }, huge(wire.WireFormatPublicMessage)},
			{"Join", func(b []byte) error { _, err := Join(b, []*PrivateKeyPackage{e.kp}, nil, nil); return err }, huge(wire.WireFormatWelcome)},
			{"JoinExternal", func(b []byte) error { _, err := JoinExternal(b, e.id, nil, nil); return err }, huge(wire.WireFormatGroupInfo)},
			{"ParseKeyPackage", func(b []byte) error { _, err := ParseKeyPackage(b, nil); return err }, huge(wire.WireFormatKeyPackage)},
			{"LoadGroup", func(b []byte) error { _, err := LoadGroup(b, nil); return err }, hugeState},
		}
		for _, en := range entries {
			if err := en.f(en.in); err == nil {
				t.Fatalf("%s accepted a truncated input", en.name)
			}
			if n := allocatedBytes(func() { _ = en.f(en.in) }); n > 64<<10 {
				t.Errorf("class9/§2.1.2 %s: %d bytes allocated for a 2^30-byte length prefix on %d bytes of input", en.name, n, len(en.in))
			}
		}
	})

	up := must[*PendingCommit](t)(clone(t, bob).Update()).Commit
	cases := []rejectCase{
		{"class9/§2.1.2 non-minimal varint (two bytes for a one-byte length)", func(t *testing.T) []byte { return longerFirstVarint(t, up) }, []error{ErrMalformed}},
		{"class9/§2.1.2 non-minimal varint (four bytes for a one-byte length)", func(t *testing.T) []byte {
			pm := decodePublic(t, up)
			return append(append([]byte{0, 1, 0, 1, 0x80, 0, 0, byte(len(pm.Content.GroupID))}, pm.Content.GroupID...), up[5+len(pm.Content.GroupID):]...)
		}, []error{ErrMalformed}},
		{"class9/§2.1.2 varint with the reserved 0b11 prefix", func(t *testing.T) []byte {
			m := bytes.Clone(up)
			m[4] |= 0xc0
			return m
		}, []error{ErrMalformed}},
		{"class9/§2.1 trailing byte after the message", func(t *testing.T) []byte { return append(bytes.Clone(up), 0) }, []error{ErrMalformed}},
		{"class9/§2.1 message truncated by one byte", func(t *testing.T) []byte { return up[:len(up)-1] }, []error{ErrMalformed}},
		{"class9/§6.3.1 non-zero padding in a private application message", func(t *testing.T) []byte {
			gen := nextGen(t, alice, bob.myLeaf, wire.ContentTypeApplication)
			return sealPrivate(t, alice, privateSpec{content: appContent(alice, bob.myLeaf, "x"), signer: bob.Identity(),
				senderData: wire.SenderData{LeafIndex: bob.myLeaf, Generation: gen}, keyLeaf: bob.myLeaf, keyGen: gen, padding: []byte{0, 0, 1, 0}})
		}, []error{ErrMalformed}},
		{"class9/§6.3.1 non-zero padding in a private proposal", func(t *testing.T) []byte {
			gen := nextGen(t, alice, bob.myLeaf, wire.ContentTypeProposal)
			c := &wire.FramedContent{GroupID: alice.ctx.GroupID, Epoch: alice.ctx.Epoch, Sender: wire.MemberSender(bob.myLeaf),
				ContentType: wire.ContentTypeProposal, Proposal: removeOf(h.dave.myLeaf)}
			return sealPrivate(t, alice, privateSpec{content: c, signer: bob.Identity(),
				senderData: wire.SenderData{LeafIndex: bob.myLeaf, Generation: gen}, keyLeaf: bob.myLeaf, keyGen: gen, padding: []byte{0x80}})
		}, []error{ErrMalformed}},
		{"class9/§6 application data in a PublicMessage", func(t *testing.T) []byte {
			prop := must[[]byte](t)(clone(t, bob).ProposeRemove(h.dave.myLeaf))
			return mutatePublic(t, prop, alice, bob.Identity(), func(pm *wire.PublicMessage) {
				pm.Content.ContentType, pm.Content.Proposal, pm.Content.ApplicationData = wire.ContentTypeApplication, nil, []byte("in clear")
			})
		}, []error{ErrMalformed}},
		{"class9/§12.1.7 GroupContextExtensions with trailing bytes inside required_capabilities", func(t *testing.T) []byte {
			rc := must[[]byte](t)(wire.Marshal(&wire.RequiredCapabilities{}))
			return gceCommit(t, bob, alice, wire.Extension{ExtensionType: wire.ExtensionTypeRequiredCapabilities, ExtensionData: append(rc, 0)})
		}, []error{ErrInvalidProposalList, ErrMalformed}},
		{"class9/§12.1.7 GroupContextExtensions with trailing bytes inside external_senders", func(t *testing.T) []byte {
			es := must[[]byte](t)(wire.Marshal(&wire.ExternalSenders{{SignatureKey: e.id.SignaturePublicKey(), Credential: e.id.credential()}}))
			return gceCommit(t, bob, alice, wire.Extension{ExtensionType: wire.ExtensionTypeExternalSenders, ExtensionData: append(es, 0)})
		}, []error{ErrInvalidProposalList, ErrMalformed}},
		{"class9/§12.1.7 GroupContextExtensions with a truncated external_senders", func(t *testing.T) []byte {
			es := must[[]byte](t)(wire.Marshal(&wire.ExternalSenders{{SignatureKey: e.id.SignaturePublicKey(), Credential: e.id.credential()}}))
			return gceCommit(t, bob, alice, wire.Extension{ExtensionType: wire.ExtensionTypeExternalSenders, ExtensionData: es[:len(es)-1]})
		}, []error{ErrInvalidProposalList, ErrMalformed}},
	}
	runRejectCases(t, func(*testing.T) *Group { return alice }, cases)

	t.Run("class9/§2.1.2 the 0x3fff varint boundary", func(t *testing.T) {
		for _, n := range []int{0x3f, 0x40, 0x3fff, 0x4000} {
			a, b := clone(t, alice), clone(t, bob)
			msg := must[[]byte](t)(b.Seal([]byte("x"), bytes.Repeat([]byte{1}, n)))
			if r := process(t, a, msg); len(r.AuthenticatedData) != n {
				t.Fatalf("authenticated data of %d bytes read as %d", n, len(r.AuthenticatedData))
			}
			// The same length in the next longer encoding is refused.
			longer := reencodePrivateAAD(t, msg, true)
			if n <= 0x3fff {
				rejectsMessage(t, a, longer, ErrMalformed)
			}
		}
	})
}

// allocatedBytes is the average number of bytes f allocates per call.
func allocatedBytes(f func()) uint64 {
	const runs = 10
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// encodeKeyPackageRaw encodes a KeyPackage MLSMessage without the encoder's
// duplicate-extension check: the leaf's extension list is written by hand.
func encodeKeyPackageRaw(t testing.TB, kp *wire.KeyPackage) []byte {
	t.Helper()
	exts := kp.LeafNode.Extensions
	kp.LeafNode.Extensions = wire.Extensions{{ExtensionType: 0xfff0, ExtensionData: []byte("MARKER-MARKER")}}
	enc := must[[]byte](t)(wire.Marshal(must[*wire.MLSMessage](t)(wire.NewMLSMessage(kp))))
	kp.LeafNode.Extensions = exts
	marker := must[[]byte](t)(codec.Marshal(func(b *cryptobyte.Builder) {
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			(&wire.Extension{ExtensionType: 0xfff0, ExtensionData: []byte("MARKER-MARKER")}).Encode(b)
		})
	}))
	list := must[[]byte](t)(codec.Marshal(func(b *cryptobyte.Builder) {
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for i := range exts {
				exts[i].Encode(b)
			}
		})
	}))
	if bytes.Count(enc, marker) != 1 {
		t.Fatal("marker not found")
	}
	return bytes.Replace(enc, marker, list, 1)
}

// reencodePrivateAAD decodes an MLSMessage holding a PrivateMessage and
// encodes it again by hand, with the authenticated_data length in its next
// longer varint form when longer is set.
func reencodePrivateAAD(t testing.TB, msg []byte, longer bool) []byte {
	t.Helper()
	var m wire.MLSMessage
	if err := wire.Unmarshal(msg, &m); err != nil || m.PrivateMessage == nil {
		t.Fatalf("not a private message: %v", err)
	}
	pm := m.PrivateMessage
	return must[[]byte](t)(codec.Marshal(func(b *cryptobyte.Builder) {
		b.AddUint16(uint16(wire.ProtocolVersionMLS10))
		b.AddUint16(uint16(wire.WireFormatPrivateMessage))
		codec.AddOpaque(b, pm.GroupID)
		b.AddUint64(pm.Epoch)
		b.AddUint8(uint8(pm.ContentType))
		n := len(pm.AuthenticatedData)
		switch {
		case !longer:
			codec.AddVarint(b, uint64(n))
		case n <= 0x3f:
			b.AddUint16(0x4000 | uint16(n))
		default:
			b.AddUint32(0x80000000 | uint32(n))
		}
		b.AddBytes(pm.AuthenticatedData)
		codec.AddOpaque(b, pm.EncryptedSenderData)
		codec.AddOpaque(b, pm.Ciphertext)
	}))
}

// gceCommit is sender's commit (with its path) of a GroupContextExtensions
// proposal carrying exts, made with Group.Commit when the sender's checks
// let it through.
func gceCommit(t testing.TB, sender, receiver *Group, exts ...wire.Extension) []byte {
	t.Helper()
	pub := fromWireExtensions(exts)
	pc, err := clone(t, sender).Commit(&CommitOptions{GroupContextExtensions: pub})
	if err == nil {
		return pc.Commit
	}
	// The sender's own checks refuse it: swap the proposal in after the
	// fact, signing and tagging again.
	pc = must[*PendingCommit](t)(clone(t, sender).Commit(&CommitOptions{GroupContextExtensions: []Extension{}}))
	return mutatePublic(t, pc.Commit, receiver, sender.Identity(), func(pm *wire.PublicMessage) {
		pm.Content.Commit.Proposals = inline(gceOf(exts...))
	})
}

// Class 9 for proposals (RFC 9420 §12.1, §12.4): anyone who can post to the
// group may send new_member_proposal Adds. The cache is bounded, and a
// commit of many cached proposals costs work linear in their number: each
// leaf signature is verified once, on receipt, not again for every
// candidate list the committer tries.
func TestHardeningProposalFlood(t *testing.T) {
	t.Run("class9/§12.1 the proposal cache is bounded", func(t *testing.T) {
		cfg := &Config{MaxPendingProposals: 8}
		a, b := newTestClient(t, "alice", cfg), newTestClient(t, "bob", cfg)
		alice := newGroupOf(t, cfg, a, b)[0]
		for range 8 {
			c := newTestClient(t, "x", nil)
			process(t, alice, must[[]byte](t)(NewMemberProposal(c.kp, alice.ID(), alice.Epoch())))
		}
		c := newTestClient(t, "one too many", nil)
		rejectsMessage(t, alice, must[[]byte](t)(NewMemberProposal(c.kp, alice.ID(), alice.Epoch())), ErrTooManyProposals)
		rejectsUnchanged(t, alice, func() error { _, err := alice.ProposeRemove(1); return err }, ErrTooManyProposals)
		// The commit takes them all; the next epoch's cache is empty.
		pc := must[*PendingCommit](t)(alice.Commit(nil))
		if len(pc.Proposals) != 8 || len(pc.Next.PendingProposals()) != 0 {
			t.Fatalf("committed %d proposals", len(pc.Proposals))
		}
	})
	t.Run("class9/§12.4 committing N cached Adds is linear in N", func(t *testing.T) {
		allocs := func(n int) float64 {
			a, b := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil)
			alice := newGroupOf(t, nil, a, b)[0]
			for range n {
				c := newTestClient(t, "x", nil)
				process(t, alice, must[[]byte](t)(NewMemberProposal(c.kp, alice.ID(), alice.Epoch())))
			}
			return testing.AllocsPerRun(2, func() { must[*PendingCommit](t)(alice.Commit(nil)) })
		}
		small, large := allocs(32), allocs(128)
		// Four times the proposals: about four times the work when linear,
		// sixteen when each candidate list is applied from scratch.
		if large > 7*small {
			t.Fatalf("committing 128 cached Adds took %v allocations, 32 took %v", large, small)
		}
	})
	t.Run("class9/§12.4 a conflicting cached proposal is left out", func(t *testing.T) {
		a, b := newTestClient(t, "alice", nil), newTestClient(t, "bob", nil)
		gs := newGroupOf(t, nil, a, b)
		alice, bob := gs[0], gs[1]
		e, f := newTestClient(t, "erin", nil), newTestClient(t, "frank", nil)
		twin := forgeKeyPackage(t, f, func(kp *wire.KeyPackage) { kp.LeafNode.EncryptionKey = e.kp.KeyPackage().kp.LeafNode.EncryptionKey })
		for _, m := range [][]byte{
			must[[]byte](t)(NewMemberProposal(e.kp, alice.ID(), alice.Epoch())),
			must[[]byte](t)(bob.ProposeAdd(twin)),
		} {
			process(t, alice, m)
		}
		pc := must[*PendingCommit](t)(alice.Commit(nil))
		if len(pc.Proposals) != 1 || string(pc.Proposals[0].KeyPackage.Identity()) != "erin" {
			t.Fatalf("committed %+v", pc.Proposals)
		}
	})
}
