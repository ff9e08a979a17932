package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// Capabilities lists what a client supports (RFC 9420 §7.2). Unknown values
// (including GREASE) are kept as they are and must be ignored by the
// receiver. The default proposal and extension types MUST NOT be listed; that
// is a LeafNode validation rule (§7.3) left to the caller, not a decoding
// rule.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// Encode implements Encoder.
func (x *Capabilities) Encode(b *cryptobyte.Builder) {
	addUint16List(b, x.Versions)
	addUint16List(b, x.CipherSuites)
	addUint16List(b, x.Extensions)
	addUint16List(b, x.Proposals)
	addUint16List(b, x.Credentials)
}

// Decode implements Decoder.
func (x *Capabilities) Decode(s *cryptobyte.String) bool {
	*x = Capabilities{}
	return readUint16List(s, &x.Versions) &&
		readUint16List(s, &x.CipherSuites) &&
		readUint16List(s, &x.Extensions) &&
		readUint16List(s, &x.Proposals) &&
		readUint16List(s, &x.Credentials)
}

// HasVersion reports whether v is listed in Versions.
func (x *Capabilities) HasVersion(v ProtocolVersion) bool { return contains(x.Versions, v) }

// HasCipherSuite reports whether cs is listed in CipherSuites.
func (x *Capabilities) HasCipherSuite(cs CipherSuite) bool { return contains(x.CipherSuites, cs) }

// HasExtension reports whether t is supported: listed in Extensions, or one
// of the default extension types every client supports (RFC 9420 §7.2).
func (x *Capabilities) HasExtension(t ExtensionType) bool {
	return t.IsDefault() || contains(x.Extensions, t)
}

// HasProposal reports whether t is supported: listed in Proposals, or one of
// the default proposal types every client supports (RFC 9420 §7.2).
func (x *Capabilities) HasProposal(t ProposalType) bool {
	return t.IsDefault() || contains(x.Proposals, t)
}

// HasCredential reports whether t is listed in Credentials. There are no
// default credential types (RFC 9420 §11.1).
func (x *Capabilities) HasCredential(t CredentialType) bool { return contains(x.Credentials, t) }

func contains[T comparable](list []T, v T) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

// Lifetime is the validity window of a LeafNode from a KeyPackage, in
// seconds since the Unix epoch (RFC 9420 §7.2).
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// Encode implements Encoder.
func (x *Lifetime) Encode(b *cryptobyte.Builder) {
	b.AddUint64(x.NotBefore)
	b.AddUint64(x.NotAfter)
}

// Decode implements Decoder.
func (x *Lifetime) Decode(s *cryptobyte.String) bool {
	return s.ReadUint64(&x.NotBefore) && s.ReadUint64(&x.NotAfter)
}

// LeafNode describes one member in the ratchet tree or in a KeyPackage,
// signed by that member (RFC 9420 §7.2). Which optional field is on the wire
// depends on LeafNodeSource: Lifetime for key_package, ParentHash for
// commit, neither for update; the other is ignored when encoding and left
// zero when decoding.
type LeafNode struct {
	EncryptionKey  []byte // HPKEPublicKey encryption_key
	SignatureKey   []byte // SignaturePublicKey signature_key
	Credential     Credential
	Capabilities   Capabilities
	LeafNodeSource LeafNodeSource
	Lifetime       Lifetime // key_package only
	ParentHash     []byte   // commit only
	Extensions     Extensions
	Signature      []byte // SignWithLabel(., "LeafNodeTBS", LeafNodeTBS)
}

// encodeContent appends the fields that LeafNode and LeafNodeTBS share, up
// to and including the extensions.
func (x *LeafNode) encodeContent(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.EncryptionKey)
	codec.AddOpaque(b, x.SignatureKey)
	x.Credential.Encode(b)
	x.Capabilities.Encode(b)
	b.AddUint8(uint8(x.LeafNodeSource))
	switch x.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		x.Lifetime.Encode(b)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		codec.AddOpaque(b, x.ParentHash)
	default:
		invalid(b, "leaf node source %v", x.LeafNodeSource)
		return
	}
	x.Extensions.Encode(b)
}

// decodeContent reads the fields that LeafNode and LeafNodeTBS share. The
// direct byte fields alias s until the caller passes them to own.
func (x *LeafNode) decodeContent(s *cryptobyte.String) bool {
	if !readAlias(s, &x.EncryptionKey) ||
		!readAlias(s, &x.SignatureKey) ||
		!x.Credential.Decode(s) ||
		!x.Capabilities.Decode(s) ||
		!s.ReadUint8((*uint8)(&x.LeafNodeSource)) {
		return false
	}
	switch x.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		if !x.Lifetime.Decode(s) {
			return false
		}
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		if !readAlias(s, &x.ParentHash) {
			return false
		}
	default:
		return false
	}
	return x.Extensions.Decode(s)
}

// Encode implements Encoder.
func (x *LeafNode) Encode(b *cryptobyte.Builder) {
	x.encodeContent(b)
	codec.AddOpaque(b, x.Signature)
}

// Decode implements Decoder.
func (x *LeafNode) Decode(s *cryptobyte.String) bool {
	*x = LeafNode{}
	if !x.decodeContent(s) || !readAlias(s, &x.Signature) {
		return false
	}
	own(&x.EncryptionKey, &x.SignatureKey, &x.ParentHash, &x.Signature)
	return true
}

// TBS returns the LeafNodeTBS that x's signature covers. groupID and
// leafIndex are the group and position the leaf is used in; they are part of
// the signed content only for the update and commit sources (RFC 9420 §7.2)
// and ignored for key_package.
func (x *LeafNode) TBS(groupID []byte, leafIndex uint32) *LeafNodeTBS {
	return &LeafNodeTBS{LeafNode: x, GroupID: groupID, LeafIndex: leafIndex}
}

// LeafNodeTBS is the content signed with label "LeafNodeTBS" in a LeafNode
// (RFC 9420 §7.2): every LeafNode field except the signature, followed, for
// the update and commit sources, by the group ID and the leaf's index.
type LeafNodeTBS struct {
	LeafNode  *LeafNode // its Signature is not part of the encoding
	GroupID   []byte    // update and commit sources only
	LeafIndex uint32    // update and commit sources only
}

// Encode implements Encoder.
func (x *LeafNodeTBS) Encode(b *cryptobyte.Builder) {
	if x.LeafNode == nil {
		invalid(b, "LeafNodeTBS without a leaf node")
		return
	}
	x.LeafNode.encodeContent(b)
	switch x.LeafNode.LeafNodeSource {
	case LeafNodeSourceUpdate, LeafNodeSourceCommit:
		codec.AddOpaque(b, x.GroupID)
		b.AddUint32(x.LeafIndex)
	}
}

// Decode implements Decoder. The decoded LeafNode has no signature.
func (x *LeafNodeTBS) Decode(s *cryptobyte.String) bool {
	*x = LeafNodeTBS{LeafNode: new(LeafNode)}
	if !x.LeafNode.decodeContent(s) {
		return false
	}
	own(&x.LeafNode.EncryptionKey, &x.LeafNode.SignatureKey, &x.LeafNode.ParentHash)
	switch x.LeafNode.LeafNodeSource {
	case LeafNodeSourceUpdate, LeafNodeSourceCommit:
		return codec.ReadOpaque(s, &x.GroupID) && s.ReadUint32(&x.LeafIndex)
	}
	return true
}
