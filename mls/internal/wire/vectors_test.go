package wire

import (
	"bytes"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/vectors"
	"golang.org/x/crypto/cryptobyte"
)

// messagesCase is one case of messages.json: one encoded structure per field.
type messagesCase struct {
	MLSWelcome                     vectors.Hex `json:"mls_welcome"`
	MLSGroupInfo                   vectors.Hex `json:"mls_group_info"`
	MLSKeyPackage                  vectors.Hex `json:"mls_key_package"`
	RatchetTree                    vectors.Hex `json:"ratchet_tree"`
	GroupSecrets                   vectors.Hex `json:"group_secrets"`
	AddProposal                    vectors.Hex `json:"add_proposal"`
	UpdateProposal                 vectors.Hex `json:"update_proposal"`
	RemoveProposal                 vectors.Hex `json:"remove_proposal"`
	PreSharedKeyProposal           vectors.Hex `json:"pre_shared_key_proposal"`
	ReInitProposal                 vectors.Hex `json:"re_init_proposal"`
	ExternalInitProposal           vectors.Hex `json:"external_init_proposal"`
	GroupContextExtensionsProposal vectors.Hex `json:"group_context_extensions_proposal"`
	Commit                         vectors.Hex `json:"commit"`
	PublicMessageApplication       vectors.Hex `json:"public_message_application"`
	PublicMessageProposal          vectors.Hex `json:"public_message_proposal"`
	PublicMessageCommit            vectors.Hex `json:"public_message_commit"`
	PrivateMessage                 vectors.Hex `json:"private_message"`
}

// messageField is one field of a messages.json case: its bytes, a fresh
// value of the type it encodes, and for MLSMessages the expected wire format
// (and content type for public messages).
type messageField struct {
	name        string
	data        []byte
	newValue    func() codecValue
	wireFormat  WireFormat
	contentType ContentType
}

// codecValue is a structure that is both an Encoder and a Decoder.
type codecValue interface {
	Encoder
	Decoder
}

func (c *messagesCase) fields() []messageField {
	msg := func() codecValue { return new(MLSMessage) }
	return []messageField{
		{"mls_welcome", c.MLSWelcome, msg, WireFormatWelcome, 0},
		{"mls_group_info", c.MLSGroupInfo, msg, WireFormatGroupInfo, 0},
		{"mls_key_package", c.MLSKeyPackage, msg, WireFormatKeyPackage, 0},
		{"ratchet_tree", c.RatchetTree, func() codecValue { return new(RatchetTree) }, 0, 0},
		{"group_secrets", c.GroupSecrets, func() codecValue { return new(GroupSecrets) }, 0, 0},
		{"add_proposal", c.AddProposal, func() codecValue { return new(Add) }, 0, 0},
		{"update_proposal", c.UpdateProposal, func() codecValue { return new(Update) }, 0, 0},
		{"remove_proposal", c.RemoveProposal, func() codecValue { return new(Remove) }, 0, 0},
		{"pre_shared_key_proposal", c.PreSharedKeyProposal, func() codecValue { return new(PreSharedKey) }, 0, 0},
		{"re_init_proposal", c.ReInitProposal, func() codecValue { return new(ReInit) }, 0, 0},
		{"external_init_proposal", c.ExternalInitProposal, func() codecValue { return new(ExternalInit) }, 0, 0},
		{"group_context_extensions_proposal", c.GroupContextExtensionsProposal, func() codecValue { return new(GroupContextExtensions) }, 0, 0},
		{"commit", c.Commit, func() codecValue { return new(Commit) }, 0, 0},
		{"public_message_application", c.PublicMessageApplication, msg, WireFormatPublicMessage, ContentTypeApplication},
		{"public_message_proposal", c.PublicMessageProposal, msg, WireFormatPublicMessage, ContentTypeProposal},
		{"public_message_commit", c.PublicMessageCommit, msg, WireFormatPublicMessage, ContentTypeCommit},
		{"private_message", c.PrivateMessage, msg, WireFormatPrivateMessage, 0},
	}
}

// TestMessagesVectors decodes every field of every messages.json case with
// its type and checks that re-encoding gives back the same bytes.
func TestMessagesVectors(t *testing.T) {
	var cases []messagesCase
	vectors.Load(t, "messages.json", &cases)
	tl := vectors.NewTally(t, "messages.json")
	for i := range cases {
		c := &cases[i]
		tl.Run(t, vectors.Name("case", i), func(t *testing.T) {
			for _, f := range c.fields() {
				if f.data == nil {
					t.Errorf("%s: field missing from the vector", f.name)
					continue
				}
				v := f.newValue()
				if err := Unmarshal(f.data, v); err != nil {
					t.Errorf("%s: %v", f.name, err)
					continue
				}
				if m, ok := v.(*MLSMessage); ok {
					if m.WireFormat != f.wireFormat {
						t.Errorf("%s: wire format %v, want %v", f.name, m.WireFormat, f.wireFormat)
					}
					if f.contentType != 0 && m.PublicMessage.Content.ContentType != f.contentType {
						t.Errorf("%s: content type %v, want %v", f.name, m.PublicMessage.Content.ContentType, f.contentType)
					}
				}
				out, err := Marshal(v)
				if err != nil {
					t.Errorf("%s: re-encode: %v", f.name, err)
					continue
				}
				if !bytes.Equal(out, f.data) {
					t.Errorf("%s: re-encoding differs\n got %x\nwant %x", f.name, out, f.data)
				}
			}
		})
	}
}

// deserializationCase is one case of deserialization.json.
type deserializationCase struct {
	VLBytesHeader vectors.Hex `json:"vlbytes_header"`
	Length        uint64      `json:"length"`
}

// TestDeserializationVectors checks that each varint header decodes to the
// expected length and that the minimal re-encoding is the header itself.
func TestDeserializationVectors(t *testing.T) {
	var cases []deserializationCase
	vectors.Load(t, "deserialization.json", &cases)
	tl := vectors.NewTally(t, "deserialization.json")
	for i, c := range cases {
		tl.Run(t, vectors.Name("case", i, "length", c.Length), func(t *testing.T) {
			s := cryptobyte.String(c.VLBytesHeader)
			var n uint64
			if !codec.ReadVarint(&s, &n) || !s.Empty() {
				t.Fatalf("header %x does not decode to exactly one varint", []byte(c.VLBytesHeader))
			}
			if n != c.Length {
				t.Fatalf("header %x decodes to %d, want %d", []byte(c.VLBytesHeader), n, c.Length)
			}
			b := cryptobyte.NewBuilder(nil)
			codec.AddVarint(b, n)
			out, err := b.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, c.VLBytesHeader) {
				t.Fatalf("re-encoding of %d is %x, want %x", n, out, []byte(c.VLBytesHeader))
			}
		})
	}
}
