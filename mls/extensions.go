package mls

import (
	"bytes"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// ExtensionType identifies an extension (RFC 9420 §13.4, registry §17.3).
type ExtensionType uint16

// The extension types this package understands. The first five are the
// "default" extensions of RFC 9420 that every client supports.
const (
	// ExtensionApplicationID carries an application-defined identifier for
	// a leaf (RFC 9420 §5.3.3).
	ExtensionApplicationID ExtensionType = 0x0001
	// ExtensionRatchetTree carries the whole ratchet tree in a GroupInfo
	// (RFC 9420 §12.4.3.3). Group.GroupInfo and Welcomes set it.
	ExtensionRatchetTree ExtensionType = 0x0002
	// ExtensionRequiredCapabilities lists the extension, proposal and
	// credential types every member must support (RFC 9420 §11.1). Build it
	// with RequiredCapabilitiesExtension.
	ExtensionRequiredCapabilities ExtensionType = 0x0003
	// ExtensionExternalPub carries the group's external public key in a
	// GroupInfo, for external joins (RFC 9420 §12.4.3.2).
	ExtensionExternalPub ExtensionType = 0x0004
	// ExtensionExternalSenders lists the parties outside the group allowed
	// to send proposals (RFC 9420 §12.1.8.1). Build it with
	// ExternalSendersExtension.
	ExtensionExternalSenders ExtensionType = 0x0005
	// ExtensionLastResort marks a KeyPackage that may be used more than
	// once, for a directory that cannot enforce one-time use (RFC 9420
	// §16.8; the last_resort extension of draft-ietf-mls-extensions).
	ExtensionLastResort ExtensionType = 0x000A
)

// Extension is one typed, opaque extension (RFC 9420 §13.4). GroupContext
// extensions of types the application lists in Config.SupportedExtensions
// are carried through unchanged.
type Extension struct {
	// Type is the extension type.
	Type ExtensionType
	// Data is the extension_data, opaque to this package for types it
	// does not implement.
	Data []byte
}

// CredentialType identifies a kind of credential (RFC 9420 §5.3, registry
// §17.5). This package creates basic credentials.
type CredentialType uint16

// The credential types of RFC 9420 §17.5.
const (
	CredentialBasic CredentialType = 0x0001
	CredentialX509  CredentialType = 0x0002
)

// ProposalType identifies a kind of proposal (RFC 9420 §12.1, registry
// §17.4).
type ProposalType uint16

// The proposal types of RFC 9420 §17.4.
const (
	ProposalAdd                    ProposalType = 0x0001
	ProposalUpdate                 ProposalType = 0x0002
	ProposalRemove                 ProposalType = 0x0003
	ProposalPSK                    ProposalType = 0x0004
	ProposalReInit                 ProposalType = 0x0005
	ProposalExternalInit           ProposalType = 0x0006
	ProposalGroupContextExtensions ProposalType = 0x0007
)

// String returns the registry name of the proposal type.
func (t ProposalType) String() string { return wire.ProposalType(t).String() }

// String returns the registry name of the extension type.
func (t ExtensionType) String() string { return wire.ExtensionType(t).String() }

// ExternalSender is a party outside the group allowed to send proposals to
// it, listed in the external_senders extension (RFC 9420 §12.1.8.1).
type ExternalSender struct {
	// SignatureKey is the sender's public signature key.
	SignatureKey []byte
	// Identity is the identity of its basic credential.
	Identity []byte
}

// ExternalSendersExtension builds the external_senders GroupContext
// extension (RFC 9420 §12.1.8.1). A sender's position in the list is the
// sender_index its proposals carry.
func ExternalSendersExtension(senders ...ExternalSender) (Extension, error) {
	list := make(wire.ExternalSenders, len(senders))
	for i, s := range senders {
		list[i] = wire.ExternalSender{
			SignatureKey: bytes.Clone(s.SignatureKey),
			Credential:   wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: bytes.Clone(s.Identity)},
		}
	}
	return makeExtension(&list)
}

// RequiredCapabilitiesExtension builds the required_capabilities
// GroupContext extension (RFC 9420 §11.1): every member must list these
// extension, proposal and credential types in its capabilities.
func RequiredCapabilitiesExtension(extensions []ExtensionType, proposals []ProposalType, credentials []CredentialType) (Extension, error) {
	rc := wire.RequiredCapabilities{}
	for _, e := range extensions {
		rc.ExtensionTypes = append(rc.ExtensionTypes, wire.ExtensionType(e))
	}
	for _, p := range proposals {
		rc.ProposalTypes = append(rc.ProposalTypes, wire.ProposalType(p))
	}
	for _, c := range credentials {
		rc.CredentialTypes = append(rc.CredentialTypes, wire.CredentialType(c))
	}
	return makeExtension(&rc)
}

// ApplicationIDExtension builds the application_id extension (RFC 9420
// §5.3.3).
func ApplicationIDExtension(id []byte) (Extension, error) {
	return makeExtension(&wire.ApplicationID{ID: bytes.Clone(id)})
}

func makeExtension(v wire.ExtensionPayload) (Extension, error) {
	e, err := wire.MakeExtension(v)
	if err != nil {
		return Extension{}, fmt.Errorf("build %v extension: %w", v.ExtensionType(), err)
	}
	return Extension{Type: ExtensionType(e.ExtensionType), Data: e.ExtensionData}, nil
}

// toWireExtensions copies a public extension list into its wire form,
// rejecting a list with a duplicate type (RFC 9420 §13.4).
func toWireExtensions(exts []Extension) (wire.Extensions, error) {
	out := make(wire.Extensions, len(exts))
	for i, e := range exts {
		out[i] = wire.Extension{ExtensionType: wire.ExtensionType(e.Type), ExtensionData: bytes.Clone(e.Data)}
	}
	if t, dup := out.Duplicate(); dup {
		return nil, fmt.Errorf("extension %v listed twice: %w", t, ErrMalformed)
	}
	return out, nil
}

// fromWireExtensions copies a wire extension list into its public form.
func fromWireExtensions(exts wire.Extensions) []Extension {
	if len(exts) == 0 {
		return nil
	}
	out := make([]Extension, len(exts))
	for i, e := range exts {
		out[i] = Extension{Type: ExtensionType(e.ExtensionType), Data: bytes.Clone(e.ExtensionData)}
	}
	return out
}
