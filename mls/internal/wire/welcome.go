package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// GroupInfo is the signed description of a group's current state that a
// joiner needs (RFC 9420 §12.4.3). Unknown extensions in Extensions must be
// ignored; those in GroupContext.Extensions must be supported (§13.4).
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte // MAC confirmation_tag
	Signer          uint32 // leaf index of the signer
	Signature       []byte // SignWithLabel(., "GroupInfoTBS", GroupInfoTBS)
}

func (x *GroupInfo) encodeContent(b *cryptobyte.Builder) {
	x.GroupContext.Encode(b)
	x.Extensions.Encode(b)
	codec.AddOpaque(b, x.ConfirmationTag)
	b.AddUint32(x.Signer)
}

func (x *GroupInfo) decodeContent(s *cryptobyte.String) bool {
	return x.GroupContext.Decode(s) &&
		x.Extensions.Decode(s) &&
		codec.ReadOpaque(s, &x.ConfirmationTag) &&
		s.ReadUint32(&x.Signer)
}

// Encode implements Encoder.
func (x *GroupInfo) Encode(b *cryptobyte.Builder) {
	x.encodeContent(b)
	codec.AddOpaque(b, x.Signature)
}

// Decode implements Decoder.
func (x *GroupInfo) Decode(s *cryptobyte.String) bool {
	*x = GroupInfo{}
	return x.decodeContent(s) && codec.ReadOpaque(s, &x.Signature)
}

// TBS returns the GroupInfoTBS that x's signature covers.
func (x *GroupInfo) TBS() *GroupInfoTBS { return &GroupInfoTBS{GroupInfo: x} }

// GroupInfoTBS is the content signed with label "GroupInfoTBS": every
// GroupInfo field except the signature (RFC 9420 §12.4.3).
type GroupInfoTBS struct {
	GroupInfo *GroupInfo // its Signature is not part of the encoding
}

// Encode implements Encoder.
func (x *GroupInfoTBS) Encode(b *cryptobyte.Builder) {
	if x.GroupInfo == nil {
		invalid(b, "GroupInfoTBS without a group info")
		return
	}
	x.GroupInfo.encodeContent(b)
}

// Decode implements Decoder. The decoded GroupInfo has no signature.
func (x *GroupInfoTBS) Decode(s *cryptobyte.String) bool {
	*x = GroupInfoTBS{GroupInfo: new(GroupInfo)}
	return x.GroupInfo.decodeContent(s)
}

// PathSecret is the path secret a joiner receives for the lowest node it
// shares with the committer (RFC 9420 §12.4.3.1).
type PathSecret struct {
	PathSecret []byte
}

// Encode implements Encoder.
func (x *PathSecret) Encode(b *cryptobyte.Builder) { codec.AddOpaque(b, x.PathSecret) }

// Decode implements Decoder.
func (x *PathSecret) Decode(s *cryptobyte.String) bool {
	*x = PathSecret{}
	return codec.ReadOpaque(s, &x.PathSecret)
}

// GroupSecrets is what a Welcome encrypts to each new member
// (RFC 9420 §12.4.3.1). PathSecret is nil when the optional path secret is
// absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   *PathSecret
	PSKs         []PreSharedKeyID
}

// Encode implements Encoder.
func (x *GroupSecrets) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.JoinerSecret)
	codec.AddOptional(b, x.PathSecret != nil, func(b *cryptobyte.Builder) { x.PathSecret.Encode(b) })
	addList(b, x.PSKs)
}

// Decode implements Decoder.
func (x *GroupSecrets) Decode(s *cryptobyte.String) bool {
	*x = GroupSecrets{}
	var present bool
	return codec.ReadOpaque(s, &x.JoinerSecret) &&
		codec.ReadOptional(s, &present, func(s *cryptobyte.String) bool {
			x.PathSecret = new(PathSecret)
			return x.PathSecret.Decode(s)
		}) &&
		readList(s, &x.PSKs)
}

// EncryptedGroupSecrets is the GroupSecrets of one new member, encrypted to
// the init key of the KeyPackage named by NewMember (RFC 9420 §12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef, a HashReference (§5.2)
	EncryptedGroupSecrets HPKECiphertext
}

// Encode implements Encoder.
func (x *EncryptedGroupSecrets) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.NewMember)
	x.EncryptedGroupSecrets.Encode(b)
}

// Decode implements Decoder.
func (x *EncryptedGroupSecrets) Decode(s *cryptobyte.String) bool {
	*x = EncryptedGroupSecrets{}
	return codec.ReadOpaque(s, &x.NewMember) && x.EncryptedGroupSecrets.Decode(s)
}

// Welcome brings new members into a group (RFC 9420 §12.4.3.1).
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// Encode implements Encoder.
func (x *Welcome) Encode(b *cryptobyte.Builder) {
	b.AddUint16(uint16(x.CipherSuite))
	addList(b, x.Secrets)
	codec.AddOpaque(b, x.EncryptedGroupInfo)
}

// Decode implements Decoder.
func (x *Welcome) Decode(s *cryptobyte.String) bool {
	*x = Welcome{}
	return s.ReadUint16((*uint16)(&x.CipherSuite)) &&
		readList(s, &x.Secrets) &&
		codec.ReadOpaque(s, &x.EncryptedGroupInfo)
}

// Find returns the entry of Secrets addressed to the KeyPackage with
// reference ref, or nil.
func (x *Welcome) Find(ref []byte) *EncryptedGroupSecrets {
	for i := range x.Secrets {
		if string(x.Secrets[i].NewMember) == string(ref) {
			return &x.Secrets[i]
		}
	}
	return nil
}
