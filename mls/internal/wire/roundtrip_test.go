package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// allSamples is one populated value of every Encoder/Decoder type, with a
// constructor for an empty value to decode into.
func allSamples() map[string]struct {
	value    codecValue
	newValue func() codecValue
} {
	props := sampleProposals()
	kp := sampleKeyPackage()
	gc := sampleGroupContext()
	pub := samplePublicCommit()
	tree := sampleTree(6)
	leafUpdate := sampleLeaf(LeafNodeSourceUpdate)
	gi := &GroupInfo{GroupContext: gc, Extensions: Extensions{{ExtensionType: ExtensionTypeExternalPub, ExtensionData: []byte{1, 9}}},
		ConfirmationTag: fill(20, 32), Signer: 2, Signature: fill(21, 64)}
	welcome := &Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{
		{NewMember: fill(22, 32), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: fill(23, 32), Ciphertext: fill(24, 80)}},
		{NewMember: fill(25, 32), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: fill(26, 32), Ciphertext: fill(27, 80)}},
	}, EncryptedGroupInfo: fill(28, 300)}
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: pub.Content, Auth: pub.Auth}
	gcEnc, _ := Marshal(&gc)
	x509 := Credential{CredentialType: CredentialTypeX509, Certificates: [][]byte{fill(30, 300), fill(31, 200), {}}}

	type entry = struct {
		value    codecValue
		newValue func() codecValue
	}
	m := map[string]entry{}
	add := func(name string, v codecValue, n func() codecValue) { m[name] = entry{v, n} }
	for i := range props {
		p := props[i]
		add("Proposal "+p.ProposalType.String()+string(rune('0'+i)), &p, func() codecValue { return new(Proposal) })
	}
	add("Add", props[0].Add, func() codecValue { return new(Add) })
	add("Update", props[1].Update, func() codecValue { return new(Update) })
	add("Remove", props[2].Remove, func() codecValue { return new(Remove) })
	add("PreSharedKey", props[3].PreSharedKey, func() codecValue { return new(PreSharedKey) })
	add("ReInit", props[5].ReInit, func() codecValue { return new(ReInit) })
	add("ExternalInit", props[6].ExternalInit, func() codecValue { return new(ExternalInit) })
	add("GroupContextExtensions", props[7].GroupContextExtensions, func() codecValue { return new(GroupContextExtensions) })
	add("PSKLabel", &PSKLabel{ID: props[4].PreSharedKey.PSK, Index: 1, Count: 3}, func() codecValue { return new(PSKLabel) })
	add("KeyPackage", kp, func() codecValue { return new(KeyPackage) })
	add("KeyPackageTBS", kp.TBS(), func() codecValue { return new(KeyPackageTBS) })
	add("LeafNode update", &leafUpdate, func() codecValue { return new(LeafNode) })
	add("LeafNodeTBS update", leafUpdate.TBS([]byte("g"), 3), func() codecValue { return new(LeafNodeTBS) })
	add("LeafNodeTBS key_package", kp.LeafNode.TBS(nil, 0), func() codecValue { return new(LeafNodeTBS) })
	add("Credential x509", &x509, func() codecValue { return new(Credential) })
	add("Capabilities", &Capabilities{}, func() codecValue { return new(Capabilities) })
	add("Lifetime", &Lifetime{NotBefore: 1, NotAfter: 1 << 63}, func() codecValue { return new(Lifetime) })
	add("RatchetTree", &tree, func() codecValue { return new(RatchetTree) })
	add("Node parent", tree[1], func() codecValue { return new(Node) })
	add("UpdatePath", sampleUpdatePath(), func() codecValue { return new(UpdatePath) })
	add("Commit", sampleCommit(), func() codecValue { return new(Commit) })
	add("Commit without path", &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefTypeReference, Reference: []byte{1}}}}, func() codecValue { return new(Commit) })
	add("GroupContext", &gc, func() codecValue { return new(GroupContext) })
	add("GroupInfo", gi, func() codecValue { return new(GroupInfo) })
	add("GroupInfoTBS", gi.TBS(), func() codecValue { return new(GroupInfoTBS) })
	add("GroupSecrets", &GroupSecrets{JoinerSecret: fill(40, 32), PathSecret: &PathSecret{PathSecret: fill(41, 32)},
		PSKs: []PreSharedKeyID{props[3].PreSharedKey.PSK, props[4].PreSharedKey.PSK}}, func() codecValue { return new(GroupSecrets) })
	add("GroupSecrets empty path secret", &GroupSecrets{JoinerSecret: fill(40, 32), PathSecret: &PathSecret{}}, func() codecValue { return new(GroupSecrets) })
	add("Welcome", welcome, func() codecValue { return new(Welcome) })
	add("PublicMessage", pub, func() codecValue { return new(PublicMessage) })
	add("PublicMessage external proposal", &PublicMessage{Content: FramedContent{GroupID: []byte("g"), Epoch: 1,
		Sender: Sender{SenderType: SenderTypeExternal, SenderIndex: 2}, ContentType: ContentTypeProposal, Proposal: &props[2]},
		Auth: FramedContentAuthData{Signature: []byte("s")}}, func() codecValue { return new(PublicMessage) })
	add("PublicMessage new member commit", &PublicMessage{Content: FramedContent{GroupID: []byte("g"), Epoch: 1,
		Sender: Sender{SenderType: SenderTypeNewMemberCommit}, ContentType: ContentTypeCommit, Commit: sampleCommit()},
		Auth: FramedContentAuthData{Signature: []byte("s"), ConfirmationTag: []byte("t")}}, func() codecValue { return new(PublicMessage) })
	add("AuthenticatedContent", ac, func() codecValue { return new(AuthenticatedContent) })
	add("FramedContentTBS member", ac.TBS(gcEnc), func() codecValue { return new(FramedContentTBS) })
	add("AuthenticatedContentTBM", &AuthenticatedContentTBM{ContentTBS: *ac.TBS(gcEnc), Auth: ac.Auth}, func() codecValue { return new(AuthenticatedContentTBM) })
	add("ConfirmedTranscriptHashInput", ac.ConfirmedTranscriptHashInput(), func() codecValue { return new(ConfirmedTranscriptHashInput) })
	add("InterimTranscriptHashInput", ac.InterimTranscriptHashInput(), func() codecValue { return new(InterimTranscriptHashInput) })
	priv := &PrivateMessage{GroupID: []byte("g"), Epoch: 7, ContentType: ContentTypeCommit, AuthenticatedData: []byte("a"),
		EncryptedSenderData: fill(50, 28), Ciphertext: fill(51, 200)}
	add("PrivateMessage", priv, func() codecValue { return new(PrivateMessage) })
	add("SenderData", &SenderData{LeafIndex: 9, Generation: 1 << 31, ReuseGuard: [4]byte{1, 2, 3, 4}}, func() codecValue { return new(SenderData) })
	add("SenderDataAAD", priv.SenderDataAAD(), func() codecValue { return new(SenderDataAAD) })
	add("PrivateContentAAD", priv.ContentAAD(), func() codecValue { return new(PrivateContentAAD) })
	for _, body := range []Encoder{pub, priv, welcome, gi, kp} {
		msg, err := NewMLSMessage(body)
		if err != nil {
			panic(err)
		}
		add("MLSMessage "+msg.WireFormat.String(), msg, func() codecValue { return new(MLSMessage) })
	}
	add("TreeHashInput leaf", LeafTreeHashInput(4, &leafUpdate), func() codecValue { return new(TreeHashInput) })
	add("TreeHashInput blank leaf", LeafTreeHashInput(4, nil), func() codecValue { return new(TreeHashInput) })
	add("TreeHashInput parent", ParentTreeHashInput(tree[1].Parent, fill(60, 32), fill(61, 32)), func() codecValue { return new(TreeHashInput) })
	add("TreeHashInput blank parent", ParentTreeHashInput(nil, fill(60, 32), fill(61, 32)), func() codecValue { return new(TreeHashInput) })
	add("ParentHashInput", &ParentHashInput{EncryptionKey: fill(62, 32), OriginalSiblingTreeHash: fill(63, 32)}, func() codecValue { return new(ParentHashInput) })
	add("ExternalSenders", &ExternalSenders{{SignatureKey: fill(64, 32), Credential: x509}}, func() codecValue { return new(ExternalSenders) })
	add("RequiredCapabilities", &RequiredCapabilities{ExtensionTypes: []ExtensionType{9}, CredentialTypes: []CredentialType{1}}, func() codecValue { return new(RequiredCapabilities) })
	add("ExternalPub", &ExternalPub{ExternalPub: fill(65, 32)}, func() codecValue { return new(ExternalPub) })
	add("ApplicationID", &ApplicationID{ID: []byte("app")}, func() codecValue { return new(ApplicationID) })
	add("AppDataDictionary", &AppDataDictionary{ComponentData: []ComponentData{{ComponentID: 1, Data: []byte("x")}, {ComponentID: ComponentIDLastResortKeyPackage}}}, func() codecValue { return new(AppDataDictionary) })
	add("Extension", &Extension{ExtensionType: 0xfafa, ExtensionData: []byte("grease")}, func() codecValue { return new(Extension) })
	add("PathSecret", &PathSecret{PathSecret: fill(66, 32)}, func() codecValue { return new(PathSecret) })
	return m
}

// TestRoundTripAllTypes encodes a populated value of every type, decodes it,
// and checks that the decoded value equals the original field by field
// (modulo nil versus empty slices) and re-encodes to the same bytes.
func TestRoundTripAllTypes(t *testing.T) {
	for name, c := range allSamples() {
		enc, err := Marshal(c.value)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := c.newValue()
		if err := Unmarshal(enc, got); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		again, err := Marshal(got)
		if err != nil || !bytes.Equal(again, enc) {
			t.Errorf("%s: re-encoding differs (%v)", name, err)
		}
		// TBS types decode without the signature they leave out, so
		// only their bytes are compared.
		if !strings.Contains(name, "TBS") && !equalModuloEmpty(reflect.ValueOf(c.value), reflect.ValueOf(got)) {
			t.Errorf("%s: decoded value differs from the original\n got %+v\nwant %+v", name, got, c.value)
		}
	}
}

// equalModuloEmpty compares two values deeply, treating nil and empty slices
// as equal and ignoring fields that are not on the wire for the selected
// variant only insofar as both sides leave them zero.
func equalModuloEmpty(a, b reflect.Value) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalModuloEmpty(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalModuloEmpty(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range a.Len() {
			if !equalModuloEmpty(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalModuloEmpty(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default:
		return a.Equal(b)
	}
}

func TestExtensionHelpers(t *testing.T) {
	var exts Extensions
	if ok, err := exts.Get(new(ExternalPub)); ok || err != nil {
		t.Fatalf("Get on empty list: %v %v", ok, err)
	}
	if err := exts.Set(&ExternalPub{ExternalPub: []byte("k1")}); err != nil {
		t.Fatal(err)
	}
	if err := exts.Set(&ApplicationID{ID: []byte("me")}); err != nil {
		t.Fatal(err)
	}
	if err := exts.Set(&ExternalPub{ExternalPub: []byte("k2")}); err != nil {
		t.Fatal(err)
	}
	if len(exts) != 2 {
		t.Fatalf("Set did not replace: %d entries", len(exts))
	}
	var pub ExternalPub
	if ok, err := exts.Get(&pub); !ok || err != nil || string(pub.ExternalPub) != "k2" {
		t.Fatalf("Get: %v %v %q", ok, err, pub.ExternalPub)
	}
	tree := sampleTree(3)
	if err := exts.Set(&tree); err != nil {
		t.Fatal(err)
	}
	var gotTree RatchetTree
	if ok, err := exts.Get(&gotTree); !ok || err != nil || len(gotTree) != 5 {
		t.Fatalf("ratchet tree: %v %v %d", ok, err, len(gotTree))
	}
	// A payload with trailing bytes or garbage is an error, not absent.
	exts = append(exts, Extension{ExtensionType: ExtensionTypeExternalSenders, ExtensionData: []byte{0x05, 0}})
	if ok, err := exts.Get(new(ExternalSenders)); !ok || !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed payload: %v %v", ok, err)
	}
	if !exts.Remove(ExtensionTypeExternalSenders) || exts.Has(ExtensionTypeExternalSenders) || exts.Remove(ExtensionTypeExternalSenders) {
		t.Fatal("Remove")
	}
	if !exts.Has(ExtensionTypeApplicationID) || exts.Find(0x7777) != nil {
		t.Fatal("Has/Find")
	}
}

func TestLastResort(t *testing.T) {
	kp := sampleKeyPackage()
	if !kp.IsLastResort() {
		t.Fatal("last_resort extension not recognised")
	}
	kp.Extensions = nil
	if kp.IsLastResort() {
		t.Fatal("unmarked key package reported last resort")
	}
	dict := &AppDataDictionary{ComponentData: []ComponentData{{ComponentID: 1, Data: []byte{0}}}}
	if err := kp.Extensions.Set(dict); err != nil {
		t.Fatal(err)
	}
	if kp.IsLastResort() {
		t.Fatal("dictionary without the component reported last resort")
	}
	dict.ComponentData = append(dict.ComponentData, ComponentData{ComponentID: ComponentIDLastResortKeyPackage})
	if err := kp.Extensions.Set(dict); err != nil {
		t.Fatal(err)
	}
	if !kp.IsLastResort() {
		t.Fatal("last_resort_key_package component not recognised")
	}
	// Unsorted dictionaries are malformed.
	raw := build(t, func(b *cryptobyte.Builder) {
		addList(b, []ComponentData{{ComponentID: 4}, {ComponentID: 1}})
	})
	mustFail(t, "unsorted dictionary", raw, new(AppDataDictionary))
}

func TestEnumHelpers(t *testing.T) {
	for _, v := range []uint16{0x0a0a, 0x1a1a, 0x5a5a, 0xeaea} {
		if !IsGREASE(v) {
			t.Errorf("%#04x not GREASE", v)
		}
	}
	for _, v := range []uint16{0, 1, 0xfafa, 0x0a1a, 0x0b0b, 0xa0a0} {
		if IsGREASE(v) {
			t.Errorf("%#04x GREASE", v)
		}
	}
	if !ProposalTypeGroupContextExtensions.IsDefault() || ProposalType(8).IsDefault() || ProposalType(0).IsDefault() {
		t.Error("ProposalType.IsDefault")
	}
	if !ExtensionTypeExternalSenders.IsDefault() || ExtensionTypeLastResort.IsDefault() {
		t.Error("ExtensionType.IsDefault")
	}
	if ContentTypeCommit.String() != "commit" || WireFormat(9).String() != "WireFormat(9)" {
		t.Error("String")
	}
}

func TestPrivateMessageContentRebuildsFramedContent(t *testing.T) {
	msg := &PrivateMessage{GroupID: []byte("g"), Epoch: 3, ContentType: ContentTypeProposal, AuthenticatedData: []byte("ad")}
	props := sampleProposals()
	pmc := &PrivateMessageContent{ContentType: ContentTypeProposal, Proposal: &props[2], Auth: FramedContentAuthData{Signature: []byte("s")}}
	fc := pmc.FramedContent(msg, MemberSender(4))
	want := &FramedContent{GroupID: []byte("g"), Epoch: 3, Sender: MemberSender(4), AuthenticatedData: []byte("ad"),
		ContentType: ContentTypeProposal, Proposal: &props[2]}
	if !bytes.Equal(mustMarshal(t, fc), mustMarshal(t, want)) {
		t.Fatal("rebuilt FramedContent differs")
	}
}

func TestFramedContentTBSContext(t *testing.T) {
	gc := sampleGroupContext()
	gcEnc := mustMarshal(t, &gc)
	props := sampleProposals()
	for _, st := range []SenderType{SenderTypeMember, SenderTypeExternal, SenderTypeNewMemberProposal, SenderTypeNewMemberCommit} {
		fc := FramedContent{GroupID: []byte("g"), Epoch: 1, Sender: Sender{SenderType: st}, ContentType: ContentTypeProposal, Proposal: &props[0]}
		tbs := mustMarshal(t, &FramedContentTBS{WireFormat: WireFormatPublicMessage, Content: &fc, GroupContext: gcEnc})
		want := append([]byte{0, 1, 0, 1}, mustMarshal(t, &fc)...)
		if st == SenderTypeMember || st == SenderTypeNewMemberCommit {
			want = append(want, gcEnc...)
		}
		if !bytes.Equal(tbs, want) {
			t.Errorf("%v: TBS layout differs", st)
		}
	}
	// TBS, KeyPackageTBS and GroupInfoTBS are the signed struct minus the
	// trailing signature.
	kp := sampleKeyPackage()
	kpEnc := mustMarshal(t, kp)
	if tbs := mustMarshal(t, kp.TBS()); !bytes.HasPrefix(kpEnc, tbs) || len(kpEnc)-len(tbs) != codec.VarintLen(uint64(len(kp.Signature)))+len(kp.Signature) {
		t.Error("KeyPackageTBS is not the KeyPackage without its signature")
	}
	leaf := sampleLeaf(LeafNodeSourceCommit)
	leafEnc := mustMarshal(t, &leaf)
	tbs := mustMarshal(t, leaf.TBS([]byte("grp"), 0x01020304))
	content := leafEnc[:len(leafEnc)-codec.VarintLen(uint64(len(leaf.Signature)))-len(leaf.Signature)]
	if !bytes.Equal(tbs, append(append([]byte{}, content...), 3, 'g', 'r', 'p', 1, 2, 3, 4)) {
		t.Error("LeafNodeTBS for a commit leaf lacks group_id and leaf_index")
	}
}

func TestCapabilitiesHelpers(t *testing.T) {
	c := sampleCapabilities()
	if !c.HasVersion(ProtocolVersionMLS10) || c.HasVersion(2) {
		t.Error("HasVersion")
	}
	if !c.HasCipherSuite(3) || c.HasCipherSuite(2) {
		t.Error("HasCipherSuite")
	}
	if !c.HasExtension(ExtensionTypeRatchetTree) || !c.HasExtension(ExtensionTypeLastResort) || c.HasExtension(ExtensionTypeAppDataDictionary) {
		t.Error("HasExtension")
	}
	if !c.HasProposal(ProposalTypeRemove) || !c.HasProposal(0x2a2a) || c.HasProposal(8) {
		t.Error("HasProposal")
	}
	if !c.HasCredential(CredentialTypeX509) || c.HasCredential(3) {
		t.Error("HasCredential")
	}
	var empty Capabilities
	if empty.HasCredential(CredentialTypeBasic) {
		t.Error("credential types have no defaults")
	}
}
