package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// KeyPackage is a client's pre-published offer to be added to groups
// (RFC 9420 §10). Version is kept as sent (the group compares it with its own
// version, §10.1); inside an MLSMessage it must equal the message version,
// which MLSMessage.Decode checks.
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte // HPKEPublicKey init_key
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte // SignWithLabel(., "KeyPackageTBS", KeyPackageTBS)
}

func (x *KeyPackage) encodeContent(b *cryptobyte.Builder) {
	b.AddUint16(uint16(x.Version))
	b.AddUint16(uint16(x.CipherSuite))
	codec.AddOpaque(b, x.InitKey)
	x.LeafNode.Encode(b)
	x.Extensions.Encode(b)
}

func (x *KeyPackage) decodeContent(s *cryptobyte.String) bool {
	return s.ReadUint16((*uint16)(&x.Version)) &&
		s.ReadUint16((*uint16)(&x.CipherSuite)) &&
		codec.ReadOpaque(s, &x.InitKey) &&
		x.LeafNode.Decode(s) &&
		x.Extensions.Decode(s)
}

// Encode implements Encoder.
func (x *KeyPackage) Encode(b *cryptobyte.Builder) {
	x.encodeContent(b)
	codec.AddOpaque(b, x.Signature)
}

// Decode implements Decoder.
func (x *KeyPackage) Decode(s *cryptobyte.String) bool {
	*x = KeyPackage{}
	return x.decodeContent(s) && codec.ReadOpaque(s, &x.Signature)
}

// TBS returns the KeyPackageTBS that x's signature covers.
func (x *KeyPackage) TBS() *KeyPackageTBS { return &KeyPackageTBS{KeyPackage: x} }

// IsLastResort reports whether the KeyPackage is marked as a last-resort
// KeyPackage that may be used more than once (RFC 9420 §16.8), either by the
// last_resort extension or by the last_resort_key_package component of an
// app_data_dictionary extension (draft-ietf-mls-extensions). A malformed
// app_data_dictionary counts as unmarked.
func (x *KeyPackage) IsLastResort() bool {
	if x.Extensions.Has(ExtensionTypeLastResort) {
		return true
	}
	var dict AppDataDictionary
	if ok, err := x.Extensions.Get(&dict); !ok || err != nil {
		return false
	}
	_, ok := dict.Find(ComponentIDLastResortKeyPackage)
	return ok
}

// KeyPackageTBS is the content signed with label "KeyPackageTBS": every
// KeyPackage field except the signature (RFC 9420 §10).
type KeyPackageTBS struct {
	KeyPackage *KeyPackage // its Signature is not part of the encoding
}

// Encode implements Encoder.
func (x *KeyPackageTBS) Encode(b *cryptobyte.Builder) {
	if x.KeyPackage == nil {
		invalid(b, "KeyPackageTBS without a key package")
		return
	}
	x.KeyPackage.encodeContent(b)
}

// Decode implements Decoder. The decoded KeyPackage has no signature.
func (x *KeyPackageTBS) Decode(s *cryptobyte.String) bool {
	*x = KeyPackageTBS{KeyPackage: new(KeyPackage)}
	return x.KeyPackage.decodeContent(s)
}
