package wire

import "fmt"

// ProtocolVersion is an MLS protocol version (RFC 9420 §6). Value 0 is
// reserved.
type ProtocolVersion uint16

// ProtocolVersionMLS10 is the only version defined by RFC 9420.
const ProtocolVersionMLS10 ProtocolVersion = 1

func (v ProtocolVersion) String() string {
	if v == ProtocolVersionMLS10 {
		return "mls10"
	}
	return fmt.Sprintf("ProtocolVersion(%d)", uint16(v))
}

// CipherSuite is a cipher suite number from the MLS registry (RFC 9420
// §17.1). This package carries it as data; the algorithms live in
// mls/internal/ciphersuite.
type CipherSuite uint16

// WireFormat tells which structure an MLSMessage carries (RFC 9420 §6,
// registry in §17.2). Value 0 is reserved.
type WireFormat uint16

// The wire formats of RFC 9420 §17.2.
const (
	WireFormatPublicMessage  WireFormat = 1 // mls_public_message
	WireFormatPrivateMessage WireFormat = 2 // mls_private_message
	WireFormatWelcome        WireFormat = 3 // mls_welcome
	WireFormatGroupInfo      WireFormat = 4 // mls_group_info
	WireFormatKeyPackage     WireFormat = 5 // mls_key_package
)

func (w WireFormat) String() string {
	switch w {
	case WireFormatPublicMessage:
		return "mls_public_message"
	case WireFormatPrivateMessage:
		return "mls_private_message"
	case WireFormatWelcome:
		return "mls_welcome"
	case WireFormatGroupInfo:
		return "mls_group_info"
	case WireFormatKeyPackage:
		return "mls_key_package"
	}
	return fmt.Sprintf("WireFormat(%d)", uint16(w))
}

// ContentType is the kind of content a FramedContent carries (RFC 9420 §6).
// It is a closed enum: any other value is malformed.
type ContentType uint8

// The content types of RFC 9420 §6.
const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func (c ContentType) String() string {
	switch c {
	case ContentTypeApplication:
		return "application"
	case ContentTypeProposal:
		return "proposal"
	case ContentTypeCommit:
		return "commit"
	}
	return fmt.Sprintf("ContentType(%d)", uint8(c))
}

func (c ContentType) valid() bool {
	return c >= ContentTypeApplication && c <= ContentTypeCommit
}

// SenderType says who sent a message and how its signer is found (RFC 9420
// §6). It is a closed enum.
type SenderType uint8

// The sender types of RFC 9420 §6.
const (
	SenderTypeMember            SenderType = 1
	SenderTypeExternal          SenderType = 2
	SenderTypeNewMemberProposal SenderType = 3
	SenderTypeNewMemberCommit   SenderType = 4
)

func (t SenderType) String() string {
	switch t {
	case SenderTypeMember:
		return "member"
	case SenderTypeExternal:
		return "external"
	case SenderTypeNewMemberProposal:
		return "new_member_proposal"
	case SenderTypeNewMemberCommit:
		return "new_member_commit"
	}
	return fmt.Sprintf("SenderType(%d)", uint8(t))
}

// ProposalType identifies a proposal (RFC 9420 §12.1, registry in §17.4).
// The registry is open, but a Proposal whose type this package does not know
// cannot be parsed, so it is malformed; in Capabilities and
// RequiredCapabilities unknown values are kept.
type ProposalType uint16

// The proposal types of RFC 9420 §17.4. All of them are "default" proposal
// types (§7.2) that need not be listed in Capabilities.
const (
	ProposalTypeAdd                    ProposalType = 1
	ProposalTypeUpdate                 ProposalType = 2
	ProposalTypeRemove                 ProposalType = 3
	ProposalTypePSK                    ProposalType = 4
	ProposalTypeReInit                 ProposalType = 5
	ProposalTypeExternalInit           ProposalType = 6
	ProposalTypeGroupContextExtensions ProposalType = 7
)

func (t ProposalType) String() string {
	switch t {
	case ProposalTypeAdd:
		return "add"
	case ProposalTypeUpdate:
		return "update"
	case ProposalTypeRemove:
		return "remove"
	case ProposalTypePSK:
		return "psk"
	case ProposalTypeReInit:
		return "reinit"
	case ProposalTypeExternalInit:
		return "external_init"
	case ProposalTypeGroupContextExtensions:
		return "group_context_extensions"
	}
	return fmt.Sprintf("ProposalType(%d)", uint16(t))
}

// IsDefault reports whether t is one of the RFC 9420 proposal types that
// every client supports and that MUST NOT be listed in Capabilities (§7.2).
func (t ProposalType) IsDefault() bool {
	return t >= ProposalTypeAdd && t <= ProposalTypeGroupContextExtensions
}

// CredentialType identifies a credential format (RFC 9420 §5.3, registry in
// §17.5). A Credential of an unknown type cannot be parsed and is malformed;
// in capability lists unknown values are kept.
type CredentialType uint16

// The credential types of RFC 9420 §17.5.
const (
	CredentialTypeBasic CredentialType = 1
	CredentialTypeX509  CredentialType = 2
)

func (t CredentialType) String() string {
	switch t {
	case CredentialTypeBasic:
		return "basic"
	case CredentialTypeX509:
		return "x509"
	}
	return fmt.Sprintf("CredentialType(%d)", uint16(t))
}

// LeafNodeSource says how a LeafNode came to be in the tree, which decides
// its optional fields (RFC 9420 §7.2). It is a closed enum.
type LeafNodeSource uint8

// The leaf node sources of RFC 9420 §7.2.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

func (s LeafNodeSource) String() string {
	switch s {
	case LeafNodeSourceKeyPackage:
		return "key_package"
	case LeafNodeSourceUpdate:
		return "update"
	case LeafNodeSourceCommit:
		return "commit"
	}
	return fmt.Sprintf("LeafNodeSource(%d)", uint8(s))
}

// NodeType tells a leaf from a parent in a ratchet tree encoding and in tree
// hash inputs (RFC 9420 §7.8, §12.4.3.3). It is a closed enum.
type NodeType uint8

// The node types of RFC 9420 §7.8.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

func (t NodeType) String() string {
	switch t {
	case NodeTypeLeaf:
		return "leaf"
	case NodeTypeParent:
		return "parent"
	}
	return fmt.Sprintf("NodeType(%d)", uint8(t))
}

// PSKType tells an external PSK from a resumption PSK (RFC 9420 §8.4). It is
// a closed enum.
type PSKType uint8

// The PSK types of RFC 9420 §8.4.
const (
	PSKTypeExternal   PSKType = 1
	PSKTypeResumption PSKType = 2
)

func (t PSKType) String() string {
	switch t {
	case PSKTypeExternal:
		return "external"
	case PSKTypeResumption:
		return "resumption"
	}
	return fmt.Sprintf("PSKType(%d)", uint8(t))
}

// ResumptionPSKUsage says what a resumption PSK is used for (RFC 9420 §8.4).
// It is a closed enum.
type ResumptionPSKUsage uint8

// The resumption PSK usages of RFC 9420 §8.4.
const (
	ResumptionPSKUsageApplication ResumptionPSKUsage = 1
	ResumptionPSKUsageReInit      ResumptionPSKUsage = 2
	ResumptionPSKUsageBranch      ResumptionPSKUsage = 3
)

func (u ResumptionPSKUsage) String() string {
	switch u {
	case ResumptionPSKUsageApplication:
		return "application"
	case ResumptionPSKUsageReInit:
		return "reinit"
	case ResumptionPSKUsageBranch:
		return "branch"
	}
	return fmt.Sprintf("ResumptionPSKUsage(%d)", uint8(u))
}

// ProposalOrRefType tells an inline proposal from a reference in a Commit
// (RFC 9420 §12.4). It is a closed enum.
type ProposalOrRefType uint8

// The ProposalOrRef types of RFC 9420 §12.4.
const (
	ProposalOrRefTypeProposal  ProposalOrRefType = 1
	ProposalOrRefTypeReference ProposalOrRefType = 2
)

func (t ProposalOrRefType) String() string {
	switch t {
	case ProposalOrRefTypeProposal:
		return "proposal"
	case ProposalOrRefTypeReference:
		return "reference"
	}
	return fmt.Sprintf("ProposalOrRefType(%d)", uint8(t))
}

// ExtensionType identifies an extension (RFC 9420 §7.2, registry in
// §17.3). The registry is open: unknown types are carried as opaque data and
// MUST be ignored where §13.4 says so.
type ExtensionType uint16

// The extension types of RFC 9420 §17.3, plus the ones this project uses
// from the MLS extensions draft.
const (
	ExtensionTypeApplicationID        ExtensionType = 1 // application_id (§5.3.3)
	ExtensionTypeRatchetTree          ExtensionType = 2 // ratchet_tree (§12.4.3.3)
	ExtensionTypeRequiredCapabilities ExtensionType = 3 // required_capabilities (§11.1)
	ExtensionTypeExternalPub          ExtensionType = 4 // external_pub (§12.4.3.2)
	ExtensionTypeExternalSenders      ExtensionType = 5 // external_senders (§12.1.8.1)

	// ExtensionTypeAppDataDictionary is the app_data_dictionary extension of
	// draft-ietf-mls-extensions ("MLS Extension Types"; value 0x0006 is the
	// draft's suggestion, not yet an IANA assignment). The current draft
	// marks last-resort KeyPackages with a component inside it, see
	// ComponentIDLastResortKeyPackage.
	ExtensionTypeAppDataDictionary ExtensionType = 0x0006

	// ExtensionTypeLastResort is the last_resort KeyPackage extension of
	// earlier revisions of draft-ietf-mls-extensions, an empty extension
	// marking a KeyPackage that may be used more than once (RFC 9420 §16.8).
	// The current draft replaced it with a component; 0x000A is kept because
	// it is what deployed implementations (OpenMLS) send and accept.
	ExtensionTypeLastResort ExtensionType = 0x000A
)

func (t ExtensionType) String() string {
	switch t {
	case ExtensionTypeApplicationID:
		return "application_id"
	case ExtensionTypeRatchetTree:
		return "ratchet_tree"
	case ExtensionTypeRequiredCapabilities:
		return "required_capabilities"
	case ExtensionTypeExternalPub:
		return "external_pub"
	case ExtensionTypeExternalSenders:
		return "external_senders"
	case ExtensionTypeAppDataDictionary:
		return "app_data_dictionary"
	case ExtensionTypeLastResort:
		return "last_resort"
	}
	return fmt.Sprintf("ExtensionType(%d)", uint16(t))
}

// IsDefault reports whether t is one of the RFC 9420 extension types that
// every client supports and that MUST NOT be listed in Capabilities (§7.2).
func (t ExtensionType) IsDefault() bool {
	return t >= ExtensionTypeApplicationID && t <= ExtensionTypeExternalSenders
}

// IsGREASE reports whether v is one of the GREASE code points reserved in
// every MLS registry (RFC 9420 §13.5): 0x0A0A, 0x1A1A, ... 0xEAEA.
func IsGREASE(v uint16) bool {
	return v&0x0F0F == 0x0A0A && v>>12 == (v>>4)&0xF && v>>12 <= 0xE
}
