package wire

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"golang.org/x/crypto/cryptobyte"
)

// build returns the bytes written by f, failing the test on a builder error.
func build(t testing.TB, f func(b *cryptobyte.Builder)) []byte {
	t.Helper()
	b := cryptobyte.NewBuilder(nil)
	f(b)
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mustFail asserts that data does not decode into v, with an error wrapping
// ErrMalformed.
func mustFail(t *testing.T, what string, data []byte, v Decoder) {
	t.Helper()
	err := Unmarshal(data, v)
	if err == nil {
		t.Errorf("%s: %x decoded without error", what, data)
		return
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("%s: error %v does not wrap ErrMalformed", what, err)
	}
}

// mustDecode asserts that data decodes into v.
func mustDecode(t *testing.T, what string, data []byte, v Decoder) {
	t.Helper()
	if err := Unmarshal(data, v); err != nil {
		t.Errorf("%s: %x: %v", what, data, err)
	}
}

func TestVarintLengthPrefixes(t *testing.T) {
	// ExternalInit is a single opaque<V>, so its encoding is a length
	// prefix followed by that many bytes.
	withBody := func(prefix []byte, n int) []byte {
		return append(append([]byte{}, prefix...), bytes.Repeat([]byte{0xAB}, n)...)
	}
	good := []struct {
		prefix []byte
		n      int
	}{
		{[]byte{0x00}, 0},
		{[]byte{0x3f}, 63},
		{[]byte{0x40, 0x40}, 64},
		{[]byte{0x7f, 0xff}, 0x3fff},
		{[]byte{0x80, 0x00, 0x40, 0x00}, 0x4000},
	}
	for _, g := range good {
		var x ExternalInit
		mustDecode(t, "minimal varint", withBody(g.prefix, g.n), &x)
		if len(x.KEMOutput) != g.n {
			t.Errorf("prefix %x: got %d bytes, want %d", g.prefix, len(x.KEMOutput), g.n)
		}
	}
	bad := []struct {
		name   string
		prefix []byte
		n      int
	}{
		{"0x4001 for 1", []byte{0x40, 0x01}, 1},
		{"0x4000 for 0", []byte{0x40, 0x00}, 0},
		{"0x403f for 63", []byte{0x40, 0x3f}, 63},
		{"0x80000040 for 64", []byte{0x80, 0x00, 0x00, 0x40}, 64},
		{"0x80003fff for 16383", []byte{0x80, 0x00, 0x3f, 0xff}, 0x3fff},
		{"0x80000001 for 1", []byte{0x80, 0x00, 0x00, 0x01}, 1},
		{"0b11 prefix", []byte{0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}, 1},
		{"0b11 one byte", []byte{0xc1}, 1},
		{"truncated 2-byte varint", []byte{0x40}, 0},
		{"truncated 4-byte varint", []byte{0x80, 0x00, 0x40}, 0},
		{"length past input", []byte{0x05}, 4},
	}
	for _, c := range bad {
		mustFail(t, c.name, withBody(c.prefix, c.n), new(ExternalInit))
	}
}

// vectorMessages returns every field of the first messages.json cases, or
// nil when the vectors are missing.
func vectorMessages(t testing.TB, cases int) []messageField {
	if _, ok := vectors.Dir(); !ok {
		return nil
	}
	var all []messagesCase
	vectors.Load(t, "messages.json", &all)
	var out []messageField
	for i := 0; i < cases && i < len(all); i++ {
		out = append(out, all[i].fields()...)
	}
	return out
}

// sampleFields are valid encodings built here, so the truncation and
// trailing-byte tests run even without the vector folder.
func sampleFields(t testing.TB) []messageField {
	t.Helper()
	kp := sampleKeyPackage()
	msg, err := NewMLSMessage(kp)
	if err != nil {
		t.Fatal(err)
	}
	commit := sampleCommit()
	pub := samplePublicCommit()
	pubMsg, _ := NewMLSMessage(pub)
	tree := sampleTree(5)
	return []messageField{
		{name: "sample key package", data: mustMarshal(t, msg), newValue: func() codecValue { return new(MLSMessage) }},
		{name: "sample commit", data: mustMarshal(t, commit), newValue: func() codecValue { return new(Commit) }},
		{name: "sample public message", data: mustMarshal(t, pubMsg), newValue: func() codecValue { return new(MLSMessage) }},
		{name: "sample tree", data: mustMarshal(t, &tree), newValue: func() codecValue { return new(RatchetTree) }},
	}
}

func mustMarshal(t testing.TB, v Encoder) []byte {
	t.Helper()
	out, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTruncation cuts valid encodings at every length: every proper prefix
// must fail cleanly (MLS encodings are self-delimiting), never panic.
func TestTruncation(t *testing.T) {
	fields := append(sampleFields(t), vectorMessages(t, 3)...)
	for _, f := range fields {
		for n := 0; n < len(f.data); n++ {
			v := f.newValue()
			if err := Unmarshal(f.data[:n], v); err == nil {
				t.Errorf("%s: prefix of %d/%d bytes decoded", f.name, n, len(f.data))
				break
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: prefix %d: error %v does not wrap ErrMalformed", f.name, n, err)
				break
			}
		}
	}
}

// TestTrailingBytes appends a byte to valid encodings: Unmarshal must refuse.
func TestTrailingBytes(t *testing.T) {
	fields := append(sampleFields(t), vectorMessages(t, 3)...)
	for _, f := range fields {
		data := append(append([]byte{}, f.data...), 0x00)
		err := Unmarshal(data, f.newValue())
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "trailing") {
			t.Errorf("%s: trailing byte: err = %v", f.name, err)
		}
	}
}

func TestErrorNamesStructure(t *testing.T) {
	err := Unmarshal([]byte{0x00}, new(KeyPackage))
	if err == nil || !strings.Contains(err.Error(), "KeyPackage") {
		t.Fatalf("error %v does not name KeyPackage", err)
	}
	_, err = Marshal(&Proposal{ProposalType: ProposalTypeAdd})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Proposal") {
		t.Fatalf("encode error %v", err)
	}
}

// TestUnknownSelectors feeds every select position a value its enum does not
// define; none can be skipped, so each must fail.
func TestUnknownSelectors(t *testing.T) {
	u32 := []byte{0, 0, 0, 1}
	// Sender
	for _, st := range []byte{0, 5, 0xff} {
		mustFail(t, "sender type", append([]byte{st}, u32...), new(Sender))
	}
	mustDecode(t, "sender member", append([]byte{1}, u32...), new(Sender))
	mustDecode(t, "sender new_member_commit", []byte{4}, new(Sender))

	// Proposal: remove is type 3 with a uint32; 0 and 8 are unknown.
	mustDecode(t, "remove proposal", append([]byte{0, 3}, u32...), new(Proposal))
	for _, pt := range [][]byte{{0, 0}, {0, 8}, {0x0a, 0x0a}, {0xff, 0xff}} {
		mustFail(t, "proposal type", append(pt, u32...), new(Proposal))
	}

	// Credential: basic is 1, x509 2.
	mustDecode(t, "basic credential", []byte{0, 1, 1, 'a'}, new(Credential))
	mustDecode(t, "x509 credential", []byte{0, 2, 2, 1, 'c'}, new(Credential))
	for _, ct := range [][]byte{{0, 0}, {0, 3}, {0x0a, 0x0a}} {
		mustFail(t, "credential type", append(ct, 1, 'a'), new(Credential))
	}

	// Node
	parent := []byte{1, 'k', 0, 0} // encryption_key "k", empty parent_hash, no unmerged leaves
	mustDecode(t, "parent node", append([]byte{2}, parent...), new(Node))
	for _, nt := range []byte{0, 3} {
		mustFail(t, "node type", append([]byte{nt}, parent...), new(Node))
	}

	// PreSharedKeyID
	mustDecode(t, "external psk", []byte{1, 1, 'i', 1, 'n'}, new(PreSharedKeyID))
	resumption := func(usage byte) []byte {
		return []byte{2, usage, 1, 'g', 0, 0, 0, 0, 0, 0, 0, 7, 1, 'n'}
	}
	mustDecode(t, "resumption psk", resumption(3), new(PreSharedKeyID))
	for _, pt := range []byte{0, 3} {
		mustFail(t, "psk type", []byte{pt, 1, 'i', 1, 'n'}, new(PreSharedKeyID))
	}
	for _, usage := range []byte{0, 4} {
		mustFail(t, "resumption usage", resumption(usage), new(PreSharedKeyID))
	}

	// ProposalOrRef
	mustDecode(t, "reference", []byte{2, 1, 'r'}, new(ProposalOrRef))
	for _, rt := range []byte{0, 3} {
		mustFail(t, "proposal-or-ref type", []byte{rt, 1, 'r'}, new(ProposalOrRef))
	}

	// LeafNodeSource: patch the source byte of a valid leaf.
	leaf := sampleLeaf(LeafNodeSourceUpdate)
	enc := mustMarshal(t, &leaf)
	prefix := build(t, func(b *cryptobyte.Builder) {
		leafPrefix := leaf
		// everything before leaf_node_source
		b.AddBytes(mustMarshal(t, &opaqueValue{leafPrefix.EncryptionKey}))
		b.AddBytes(mustMarshal(t, &opaqueValue{leafPrefix.SignatureKey}))
		leafPrefix.Credential.Encode(b)
		leafPrefix.Capabilities.Encode(b)
	})
	if enc[len(prefix)] != byte(LeafNodeSourceUpdate) {
		t.Fatalf("source byte not at offset %d", len(prefix))
	}
	for _, src := range []byte{0, 4} {
		bad := append([]byte{}, enc...)
		bad[len(prefix)] = src
		mustFail(t, "leaf node source", bad, new(LeafNode))
	}

	// FramedContent content type and PrivateMessage content type.
	pub := samplePublicCommit()
	fc := mustMarshal(t, &pub.Content)
	ctOffset := len(mustMarshal(t, &opaqueValue{pub.Content.GroupID})) + 8 + 5 + len(mustMarshal(t, &opaqueValue{pub.Content.AuthenticatedData}))
	if fc[ctOffset] != byte(ContentTypeCommit) {
		t.Fatalf("content type not at offset %d", ctOffset)
	}
	for _, ct := range []byte{0, 4} {
		bad := append([]byte{}, fc...)
		bad[ctOffset] = ct
		mustFail(t, "framed content type", bad, new(FramedContent))
	}
	pm := PrivateMessage{GroupID: []byte("g"), Epoch: 1, ContentType: ContentTypeApplication, Ciphertext: []byte("c")}
	pmEnc := mustMarshal(t, &pm)
	mustDecode(t, "private message", pmEnc, new(PrivateMessage))
	for _, ct := range []byte{0, 4} {
		bad := append([]byte{}, pmEnc...)
		bad[2+8] = ct
		mustFail(t, "private message content type", bad, new(PrivateMessage))
	}

	// MLSMessage: unknown wire format, wrong version, key package version
	// different from the message version.
	kp := sampleKeyPackage()
	kpEnc := mustMarshal(t, kp)
	mustDecode(t, "key package message", append([]byte{0, 1, 0, 5}, kpEnc...), new(MLSMessage))
	for _, hdr := range [][]byte{{0, 1, 0, 0}, {0, 1, 0, 6}, {0, 0, 0, 5}, {0, 2, 0, 5}} {
		mustFail(t, "MLSMessage header", append(hdr, kpEnc...), new(MLSMessage))
	}
	kp2 := sampleKeyPackage()
	kp2.Version = 2
	mustDecode(t, "bare key package of version 2", mustMarshal(t, kp2), new(KeyPackage))
	mustFail(t, "key package version mismatch", append([]byte{0, 1, 0, 5}, mustMarshal(t, kp2)...), new(MLSMessage))

	// GroupContext version is fixed to mls10.
	gc := sampleGroupContext()
	gcEnc := mustMarshal(t, &gc)
	gcEnc[1] = 2
	mustFail(t, "group context version", gcEnc, new(GroupContext))
}

// opaqueValue encodes a single opaque<V>; the tests use it to find offsets.
type opaqueValue struct{ b []byte }

func (o *opaqueValue) Encode(b *cryptobyte.Builder) { (&ExternalInit{KEMOutput: o.b}).Encode(b) }

func TestOptionalPresenceByte(t *testing.T) {
	// Commit: empty proposal list, then optional<UpdatePath>.
	mustDecode(t, "commit without path", []byte{0, 0}, new(Commit))
	for _, p := range []byte{2, 0xff} {
		mustFail(t, "commit presence byte", []byte{0, p}, new(Commit))
	}
	// GroupSecrets: joiner secret, optional<PathSecret>, psks.
	mustDecode(t, "group secrets", []byte{1, 'j', 1, 1, 'p', 0}, new(GroupSecrets))
	mustFail(t, "group secrets presence byte", []byte{1, 'j', 2, 1, 'p', 0}, new(GroupSecrets))
	// RatchetTree entry.
	tree := sampleTree(1)
	enc := mustMarshal(t, &tree)
	hdr := codec.VarintLen(uint64(len(enc))) // length prefix of the node list
	if enc[hdr] != 1 {
		t.Fatalf("unexpected tree encoding %x", enc)
	}
	enc[hdr] = 2
	mustFail(t, "tree presence byte", enc, new(RatchetTree))
	// LeafNodeHashInput
	mustDecode(t, "blank leaf hash input", []byte{0, 0, 0, 3, 0}, new(LeafNodeHashInput))
	mustFail(t, "leaf hash input presence byte", []byte{0, 0, 0, 3, 2}, new(LeafNodeHashInput))
}

// TestHugeLengthFailsCheaply feeds structures a length prefix claiming about
// 1 GiB on a few bytes of input: decoding must fail without allocating
// anything near that size.
func TestHugeLengthFailsCheaply(t *testing.T) {
	huge := []byte{0xbf, 0xff, 0xff, 0xff} // 2^30-1
	inputs := []struct {
		name string
		data []byte
		v    func() Decoder
	}{
		{"opaque", append(append([]byte{}, huge...), 0x00), func() Decoder { return new(ExternalInit) }},
		{"tree", append(append([]byte{}, huge...), 0x00), func() Decoder { return new(RatchetTree) }},
		{"commit proposals", append(append([]byte{}, huge...), 0x00), func() Decoder { return new(Commit) }},
		{"welcome secrets", append([]byte{0, 1, 0, 3, 0, 1}, append(huge, 0x00)...), func() Decoder { return new(MLSMessage) }},
		{"capabilities", append(append([]byte{}, huge...), 0x00), func() Decoder { return new(Capabilities) }},
		{"unmerged leaves", append([]byte{0, 0}, append(huge, 0x00)...), func() Decoder { return new(ParentNode) }},
	}
	for _, in := range inputs {
		s := cryptobyte.String(in.data)
		if in.v().Decode(&s) {
			t.Fatalf("%s: decoded", in.name)
		}
		allocs := testing.AllocsPerRun(100, func() {
			s := cryptobyte.String(in.data)
			in.v().Decode(&s)
		})
		// A handful of small allocations for the enclosing structures is
		// expected; nothing may depend on the claimed length.
		if allocs > 8 {
			t.Errorf("%s: %v allocations per failed decode", in.name, allocs)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			_ = Unmarshal(in.data, in.v())
		}
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
			t.Errorf("%s: 100 failed decodes allocated %d bytes", in.name, grown)
		}
	}
}

func TestPrivateMessageContentPadding(t *testing.T) {
	pmc := PrivateMessageContent{
		ContentType:     ContentTypeApplication,
		ApplicationData: []byte("hello"),
		Auth:            FramedContentAuthData{Signature: []byte("sig")},
		Padding:         7,
	}
	enc := mustMarshal(t, &pmc)
	if !bytes.HasSuffix(enc, make([]byte, 7)) || len(enc) != 1+5+1+3+7 {
		t.Fatalf("encoding %x", enc)
	}
	var got PrivateMessageContent
	s := cryptobyte.String(enc)
	if !got.Decode(&s, ContentTypeApplication) || !s.Empty() {
		t.Fatal("valid padded content did not decode")
	}
	if got.Padding != 7 || string(got.ApplicationData) != "hello" || string(got.Auth.Signature) != "sig" {
		t.Fatalf("decoded %+v", got)
	}
	for i := len(enc) - 7; i < len(enc); i++ {
		bad := append([]byte{}, enc...)
		bad[i] = 0x01
		s := cryptobyte.String(bad)
		if new(PrivateMessageContent).Decode(&s, ContentTypeApplication) {
			t.Errorf("non-zero padding byte at %d accepted", i)
		}
	}
	// The same bytes are not a valid commit plaintext, and an unknown
	// content type never decodes.
	for _, ct := range []ContentType{ContentTypeCommit, 0, 4} {
		s := cryptobyte.String(enc)
		if new(PrivateMessageContent).Decode(&s, ct) {
			t.Errorf("decoded as content type %v", ct)
		}
	}
	// A commit plaintext carries its confirmation tag.
	c := sampleCommit()
	pmc = PrivateMessageContent{ContentType: ContentTypeCommit, Commit: c,
		Auth: FramedContentAuthData{Signature: []byte("s"), ConfirmationTag: []byte("tag")}}
	enc = mustMarshal(t, &pmc)
	s = cryptobyte.String(enc)
	if !got.Decode(&s, ContentTypeCommit) || string(got.Auth.ConfirmationTag) != "tag" || got.Padding != 0 {
		t.Fatalf("commit plaintext: %+v", got)
	}
	pmc.Padding = -1
	if _, err := Marshal(&pmc); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative padding: %v", err)
	}
}

func TestRatchetTreeShape(t *testing.T) {
	leaf := func() *Node { l := sampleLeaf(LeafNodeSourceCommit); return &Node{NodeType: NodeTypeLeaf, Leaf: &l} }
	parent := func() *Node {
		return &Node{NodeType: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte("p"), UnmergedLeaves: []uint32{2}}}
	}
	encodeRaw := func(nodes []*Node) []byte {
		// Bypass the encoder's shape checks to build malformed trees.
		return build(t, func(b *cryptobyte.Builder) {
			addListRaw(b, nodes)
		})
	}
	good := RatchetTree{leaf(), parent(), leaf()}
	mustDecode(t, "three-node tree", encodeRaw(good), new(RatchetTree))
	var oneBlank RatchetTree
	mustDecode(t, "tree with blank", encodeRaw([]*Node{leaf(), nil, nil, nil, leaf()}), &oneBlank)
	if len(oneBlank) != 5 || oneBlank[1] != nil || oneBlank[4] == nil || oneBlank.LeafCount() != 4 {
		t.Fatalf("decoded %v, leaf count %d", oneBlank, oneBlank.LeafCount())
	}
	bad := map[string][]*Node{
		"empty":           {},
		"trailing blank":  {leaf(), nil, nil},
		"only blank":      {nil},
		"leaf at odd":     {leaf(), leaf(), leaf()},
		"parent at even":  {parent(), nil, leaf()},
		"parent at index": {leaf(), parent(), parent()},
	}
	for name, nodes := range bad {
		mustFail(t, name, encodeRaw(nodes), new(RatchetTree))
		tree := RatchetTree(nodes)
		if _, err := Marshal(&tree); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: encoder accepted the tree: %v", name, err)
		}
	}
	// unmerged_leaves must be strictly increasing
	p := ParentNode{EncryptionKey: []byte("k"), UnmergedLeaves: []uint32{1, 3}}
	enc := mustMarshal(t, &p)
	mustDecode(t, "sorted unmerged leaves", enc, new(ParentNode))
	for _, unsorted := range [][]uint32{{3, 1}, {2, 2}} {
		p.UnmergedLeaves = unsorted
		if _, err := Marshal(&p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: encoder accepted", unsorted)
		}
		raw := build(t, func(b *cryptobyte.Builder) {
			(&opaqueValue{p.EncryptionKey}).Encode(b)
			(&opaqueValue{nil}).Encode(b)
			addUint32List(b, unsorted)
		})
		mustFail(t, "unsorted unmerged leaves", raw, new(ParentNode))
	}
	if n := (RatchetTree{leaf()}).LeafCount(); n != 1 {
		t.Errorf("leaf count of one node = %d", n)
	}
	if n := make(RatchetTree, 9).LeafCount(); n != 8 {
		t.Errorf("leaf count of 9 nodes = %d", n)
	}
}

// addListRaw writes a ratchet tree without the encoder's shape checks.
func addListRaw(b *cryptobyte.Builder, nodes []*Node) {
	inner := cryptobyte.NewBuilder(nil)
	for _, n := range nodes {
		if n == nil {
			inner.AddUint8(0)
			continue
		}
		inner.AddUint8(1)
		n.Encode(inner)
	}
	body, err := inner.Bytes()
	if err != nil {
		b.SetError(err)
		return
	}
	(&opaqueValue{body}).Encode(b)
}

func TestDuplicateExtensions(t *testing.T) {
	dup := Extensions{
		{ExtensionType: 0x0a0a, ExtensionData: []byte("x")},
		{ExtensionType: ExtensionTypeApplicationID, ExtensionData: []byte{0}},
		{ExtensionType: 0x0a0a, ExtensionData: nil},
	}
	if typ, ok := dup.Duplicate(); !ok || typ != 0x0a0a {
		t.Fatalf("Duplicate() = %v, %v", typ, ok)
	}
	if _, err := Marshal(&dup); !errors.Is(err, ErrInvalid) {
		t.Fatalf("encoder accepted duplicates: %v", err)
	}
	raw := build(t, func(b *cryptobyte.Builder) { addList(b, dup) })
	mustFail(t, "extension list with duplicate", raw, new(Extensions))
	// The same rule holds in every place an extension list appears.
	gce := append([]byte{}, raw...)
	mustFail(t, "group context extensions proposal", gce, new(GroupContextExtensions))
	gc := sampleGroupContext()
	gcEnc := mustMarshal(t, &gc)
	gcEnc = append(gcEnc[:len(gcEnc)-1], raw...) // sample has an empty list: replace it
	mustFail(t, "group context", gcEnc, new(GroupContext))

	// Long lists take the map path.
	var long Extensions
	for i := range 100 {
		long = append(long, Extension{ExtensionType: ExtensionType(1000 + i)})
	}
	if _, ok := long.Duplicate(); ok {
		t.Fatal("distinct long list reported a duplicate")
	}
	long = append(long, Extension{ExtensionType: 1050})
	if typ, ok := long.Duplicate(); !ok || typ != 1050 {
		t.Fatalf("long list: %v %v", typ, ok)
	}
	raw = build(t, func(b *cryptobyte.Builder) { addList(b, long) })
	mustFail(t, "long extension list with duplicate", raw, new(Extensions))
}

func TestEncoderRejectsInconsistentValues(t *testing.T) {
	cases := map[string]Encoder{
		"proposal without body":        &Proposal{ProposalType: ProposalTypeRemove},
		"proposal unknown type":        &Proposal{ProposalType: 99, Remove: &Remove{}},
		"inline ProposalOrRef":         &ProposalOrRef{Type: ProposalOrRefTypeProposal},
		"ProposalOrRef type":           &ProposalOrRef{Type: 3},
		"credential type":              &Credential{CredentialType: 7},
		"leaf source":                  &LeafNode{Credential: Credential{CredentialType: CredentialTypeBasic}},
		"node without body":            &Node{NodeType: NodeTypeLeaf},
		"sender type":                  &Sender{},
		"framed content without body":  &FramedContent{Sender: MemberSender(0), ContentType: ContentTypeCommit},
		"framed content type":          &FramedContent{Sender: MemberSender(0), ContentType: 9},
		"MLSMessage version":           &MLSMessage{WireFormat: WireFormatWelcome, Welcome: &Welcome{}},
		"MLSMessage body":              &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome},
		"group context version":        &GroupContext{},
		"psk type":                     &PreSharedKeyID{},
		"psk usage":                    &PreSharedKeyID{PSKType: PSKTypeResumption},
		"private message content type": &PrivateMessage{},
		"TBS without context":          &FramedContentTBS{Content: &FramedContent{Sender: MemberSender(1), ContentType: ContentTypeApplication}},
		"transcript input not commit":  &ConfirmedTranscriptHashInput{Content: &FramedContent{Sender: MemberSender(1), ContentType: ContentTypeApplication}},
		"unsorted dictionary":          &AppDataDictionary{ComponentData: []ComponentData{{ComponentID: 2}, {ComponentID: 1}}},
	}
	for name, v := range cases {
		if _, err := Marshal(v); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Marshal error %v, want ErrInvalid", name, err)
		}
	}
	if _, err := NewMLSMessage(&Commit{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewMLSMessage(Commit): %v", err)
	}
}

// TestDecodeCopies checks that decoded byte fields do not alias the input.
func TestDecodeCopies(t *testing.T) {
	kp := sampleKeyPackage()
	enc := mustMarshal(t, kp)
	var got KeyPackage
	mustDecode(t, "key package", enc, &got)
	want := mustMarshal(t, &got)
	for i := range enc {
		enc[i] ^= 0xff
	}
	if again := mustMarshal(t, &got); !bytes.Equal(again, want) {
		t.Fatal("decoded key package changed when its input was overwritten")
	}
	// Byte fields share one allocation per structure, but appending to one
	// must not overwrite its neighbour, and absent fields stay nil.
	leaf := &got.LeafNode
	sigKey := append([]byte{}, leaf.SignatureKey...)
	_ = append(leaf.EncryptionKey, 0xEE, 0xEE, 0xEE)
	if !bytes.Equal(leaf.SignatureKey, sigKey) {
		t.Fatal("appending to EncryptionKey overwrote SignatureKey")
	}
	if leaf.ParentHash != nil {
		t.Fatal("key_package leaf got a non-nil ParentHash")
	}
	exts := got.Extensions
	var two Extensions
	mustDecode(t, "extensions", mustMarshal(t, &Extensions{{ExtensionType: 1, ExtensionData: []byte("ab")}, {ExtensionType: 2, ExtensionData: []byte("cd")}}), &two)
	_ = append(two[0].ExtensionData, 'X')
	if string(two[1].ExtensionData) != "cd" || len(exts) != 1 {
		t.Fatal("appending to one extension payload overwrote the next")
	}
}
