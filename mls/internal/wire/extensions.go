package wire

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// Extension is one entry of an extension list: a type and its payload,
// kept as opaque bytes (RFC 9420 §7.2). Decode the payload with
// Extensions.Get when it is needed.
type Extension struct {
	ExtensionType ExtensionType
	ExtensionData []byte
}

// Encode implements Encoder.
func (x *Extension) Encode(b *cryptobyte.Builder) {
	b.AddUint16(uint16(x.ExtensionType))
	codec.AddOpaque(b, x.ExtensionData)
}

// Decode implements Decoder. Unknown extension types are kept as they are.
func (x *Extension) Decode(s *cryptobyte.String) bool {
	*x = Extension{}
	return s.ReadUint16((*uint16)(&x.ExtensionType)) && codec.ReadOpaque(s, &x.ExtensionData)
}

// Extensions is an extension list, Extension extensions<V> (RFC 9420 §7.2).
// It appears in LeafNode, KeyPackage, GroupContext, GroupInfo, ReInit and
// GroupContextExtensions. RFC 9420 §13.4 says that any field containing a
// list of extensions MUST NOT have more than one extension of any given
// type, so Decode rejects a list with a duplicate type as malformed wherever
// the list appears, and Encode refuses to produce one.
type Extensions []Extension

// Encode implements Encoder. A list with a duplicate type sets ErrInvalid.
func (x *Extensions) Encode(b *cryptobyte.Builder) {
	if t, dup := x.Duplicate(); dup {
		invalid(b, "extension type %v listed twice", t)
		return
	}
	addList(b, *x)
}

// Decode implements Decoder; a duplicate extension type is malformed
// (RFC 9420 §13.4).
func (x *Extensions) Decode(s *cryptobyte.String) bool {
	list := Extensions{}
	if !codec.ReadList(s, func(s *cryptobyte.String) bool {
		var e Extension
		if !s.ReadUint16((*uint16)(&e.ExtensionType)) || !readAlias(s, &e.ExtensionData) {
			return false
		}
		list = append(list, e)
		return true
	}) {
		return false
	}
	if _, dup := list.Duplicate(); dup {
		return false
	}
	// Give all payloads one fresh allocation instead of one each, as own
	// does for the fields of a struct.
	n := 0
	for _, e := range list {
		n += len(e.ExtensionData)
	}
	buf := make([]byte, 0, n)
	for i := range list {
		start := len(buf)
		buf = append(buf, list[i].ExtensionData...)
		list[i].ExtensionData = buf[start:len(buf):len(buf)]
	}
	*x = list
	return true
}

// Duplicate reports the first extension type that appears more than once in
// the list, in time linear in its length (FirstRepeated).
func (x Extensions) Duplicate() (ExtensionType, bool) {
	return FirstRepeated(len(x), func(i int) ExtensionType { return x[i].ExtensionType })
}

// Find returns the extension of type t, or nil when the list has none.
func (x Extensions) Find(t ExtensionType) *Extension {
	for i := range x {
		if x[i].ExtensionType == t {
			return &x[i]
		}
	}
	return nil
}

// Has reports whether the list contains an extension of type t.
func (x Extensions) Has(t ExtensionType) bool {
	return x.Find(t) != nil
}

// ExtensionPayload is a typed extension payload: it knows its extension type
// and how to encode and decode its extension_data. ApplicationID,
// RatchetTree, RequiredCapabilities, ExternalPub, ExternalSenders,
// AppDataDictionary and LastResort implement it.
type ExtensionPayload interface {
	Encoder
	Decoder
	ExtensionType() ExtensionType
}

// Get looks up the extension of v's type and decodes its payload into v,
// which must consume the extension_data exactly. It reports whether the
// extension was present; a present but malformed payload is an error
// wrapping ErrMalformed.
func (x Extensions) Get(v ExtensionPayload) (bool, error) {
	e := x.Find(v.ExtensionType())
	if e == nil {
		return false, nil
	}
	if err := Unmarshal(e.ExtensionData, v); err != nil {
		return true, fmt.Errorf("wire: %v extension: %w", v.ExtensionType(), err)
	}
	return true, nil
}

// Set encodes v and stores it in the list, replacing an extension of the
// same type or else appending.
func (x *Extensions) Set(v ExtensionPayload) error {
	e, err := MakeExtension(v)
	if err != nil {
		return err
	}
	if old := x.Find(e.ExtensionType); old != nil {
		*old = e
		return nil
	}
	*x = append(*x, e)
	return nil
}

// Remove deletes the extension of type t, reporting whether there was one.
func (x *Extensions) Remove(t ExtensionType) bool {
	for i := range *x {
		if (*x)[i].ExtensionType == t {
			*x = append((*x)[:i], (*x)[i+1:]...)
			return true
		}
	}
	return false
}

// MakeExtension encodes v as an Extension of v's type.
func MakeExtension(v ExtensionPayload) (Extension, error) {
	data, err := Marshal(v)
	if err != nil {
		return Extension{}, err
	}
	return Extension{ExtensionType: v.ExtensionType(), ExtensionData: data}, nil
}

// ApplicationID is the payload of the application_id extension, an
// application-defined identifier for the client of a LeafNode
// (RFC 9420 §5.3.3): opaque application_id<V>.
type ApplicationID struct {
	ID []byte
}

// ExtensionType implements ExtensionPayload.
func (*ApplicationID) ExtensionType() ExtensionType { return ExtensionTypeApplicationID }

// Encode implements Encoder.
func (x *ApplicationID) Encode(b *cryptobyte.Builder) { codec.AddOpaque(b, x.ID) }

// Decode implements Decoder.
func (x *ApplicationID) Decode(s *cryptobyte.String) bool {
	*x = ApplicationID{}
	return codec.ReadOpaque(s, &x.ID)
}

// ExternalPub is the payload of the external_pub GroupInfo extension: the
// HPKE public key external joiners encrypt to (RFC 9420 §12.4.3.2).
type ExternalPub struct {
	ExternalPub []byte // HPKEPublicKey external_pub
}

// ExtensionType implements ExtensionPayload.
func (*ExternalPub) ExtensionType() ExtensionType { return ExtensionTypeExternalPub }

// Encode implements Encoder.
func (x *ExternalPub) Encode(b *cryptobyte.Builder) { codec.AddOpaque(b, x.ExternalPub) }

// Decode implements Decoder.
func (x *ExternalPub) Decode(s *cryptobyte.String) bool {
	*x = ExternalPub{}
	return codec.ReadOpaque(s, &x.ExternalPub)
}

// ExternalSender is a party allowed to send external proposals
// (RFC 9420 §12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// Encode implements Encoder.
func (x *ExternalSender) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.SignatureKey)
	x.Credential.Encode(b)
}

// Decode implements Decoder.
func (x *ExternalSender) Decode(s *cryptobyte.String) bool {
	*x = ExternalSender{}
	return codec.ReadOpaque(s, &x.SignatureKey) && x.Credential.Decode(s)
}

// ExternalSenders is the payload of the external_senders GroupContext
// extension, ExternalSender external_senders<V> (RFC 9420 §12.1.8.1). A
// Sender of type external names an entry by its index in this list.
type ExternalSenders []ExternalSender

// ExtensionType implements ExtensionPayload.
func (*ExternalSenders) ExtensionType() ExtensionType { return ExtensionTypeExternalSenders }

// Encode implements Encoder.
func (x *ExternalSenders) Encode(b *cryptobyte.Builder) { addList(b, *x) }

// Decode implements Decoder.
func (x *ExternalSenders) Decode(s *cryptobyte.String) bool {
	var list []ExternalSender
	if !readList(s, &list) {
		return false
	}
	*x = list
	return true
}

// RequiredCapabilities is the payload of the required_capabilities
// GroupContext extension: what every member must support (RFC 9420 §11.1).
// Unknown values are kept.
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

// ExtensionType implements ExtensionPayload.
func (*RequiredCapabilities) ExtensionType() ExtensionType {
	return ExtensionTypeRequiredCapabilities
}

// Encode implements Encoder.
func (x *RequiredCapabilities) Encode(b *cryptobyte.Builder) {
	addUint16List(b, x.ExtensionTypes)
	addUint16List(b, x.ProposalTypes)
	addUint16List(b, x.CredentialTypes)
}

// Decode implements Decoder.
func (x *RequiredCapabilities) Decode(s *cryptobyte.String) bool {
	*x = RequiredCapabilities{}
	return readUint16List(s, &x.ExtensionTypes) &&
		readUint16List(s, &x.ProposalTypes) &&
		readUint16List(s, &x.CredentialTypes)
}

// LastResort is the payload of the last_resort KeyPackage extension
// (ExtensionTypeLastResort): it is empty, its presence is the signal.
type LastResort struct{}

// ExtensionType implements ExtensionPayload.
func (*LastResort) ExtensionType() ExtensionType { return ExtensionTypeLastResort }

// Encode implements Encoder; the payload is empty.
func (*LastResort) Encode(*cryptobyte.Builder) {}

// Decode implements Decoder; the payload is empty.
func (*LastResort) Decode(*cryptobyte.String) bool { return true }

// ComponentID names an application component of draft-ietf-mls-extensions
// ("Application Components"); it keys the entries of an AppDataDictionary.
type ComponentID uint16

// ComponentIDLastResortKeyPackage is the last_resort_key_package component of
// draft-ietf-mls-extensions: an entry with empty data in a KeyPackage's
// app_data_dictionary marks it as a last-resort KeyPackage.
const ComponentIDLastResortKeyPackage ComponentID = 0x0004

// ComponentData is one entry of an AppDataDictionary.
type ComponentData struct {
	ComponentID ComponentID
	Data        []byte
}

// Encode implements Encoder.
func (x *ComponentData) Encode(b *cryptobyte.Builder) {
	b.AddUint16(uint16(x.ComponentID))
	codec.AddOpaque(b, x.Data)
}

// Decode implements Decoder.
func (x *ComponentData) Decode(s *cryptobyte.String) bool {
	*x = ComponentData{}
	return s.ReadUint16((*uint16)(&x.ComponentID)) && codec.ReadOpaque(s, &x.Data)
}

// AppDataDictionary is the payload of the app_data_dictionary extension of
// draft-ietf-mls-extensions. Its entries MUST be sorted by component ID with
// at most one entry per ID; Decode rejects anything else and Encode refuses
// to produce it.
type AppDataDictionary struct {
	ComponentData []ComponentData
}

// ExtensionType implements ExtensionPayload.
func (*AppDataDictionary) ExtensionType() ExtensionType { return ExtensionTypeAppDataDictionary }

func (x *AppDataDictionary) sorted() bool {
	for i := 1; i < len(x.ComponentData); i++ {
		if x.ComponentData[i-1].ComponentID >= x.ComponentData[i].ComponentID {
			return false
		}
	}
	return true
}

// Encode implements Encoder.
func (x *AppDataDictionary) Encode(b *cryptobyte.Builder) {
	if !x.sorted() {
		invalid(b, "app_data_dictionary entries not strictly sorted by component ID")
		return
	}
	addList(b, x.ComponentData)
}

// Decode implements Decoder.
func (x *AppDataDictionary) Decode(s *cryptobyte.String) bool {
	*x = AppDataDictionary{}
	return readList(s, &x.ComponentData) && x.sorted()
}

// Find returns the data of component id and whether it is present.
func (x *AppDataDictionary) Find(id ComponentID) ([]byte, bool) {
	for _, c := range x.ComponentData {
		if c.ComponentID == id {
			return c.Data, true
		}
	}
	return nil, false
}
