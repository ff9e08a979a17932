package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// Credential binds identities to a member's signature key (RFC 9420 §5.3).
// Exactly one body is meaningful, chosen by CredentialType: Identity for
// basic, Certificates for x509. A credential type this package does not know
// cannot be parsed, so it is malformed (§13.5 forbids GREASE values in
// Credential.credential_type).
type Credential struct {
	CredentialType CredentialType

	// Identity is the application-defined identity of a basic credential.
	Identity []byte

	// Certificates is the DER certificate chain of an x509 credential,
	// end-entity certificate first (§5.3). The certificates are kept as
	// bytes; this package does not parse them.
	Certificates [][]byte
}

// Encode implements Encoder. An unknown credential type sets ErrInvalid.
func (x *Credential) Encode(b *cryptobyte.Builder) {
	b.AddUint16(uint16(x.CredentialType))
	switch x.CredentialType {
	case CredentialTypeBasic:
		codec.AddOpaque(b, x.Identity)
	case CredentialTypeX509:
		// struct { opaque cert_data<V>; } Certificate; Certificate certificates<V>;
		addOpaqueList(b, x.Certificates)
	default:
		invalid(b, "credential type %v", x.CredentialType)
	}
}

// Decode implements Decoder.
func (x *Credential) Decode(s *cryptobyte.String) bool {
	*x = Credential{}
	if !s.ReadUint16((*uint16)(&x.CredentialType)) {
		return false
	}
	switch x.CredentialType {
	case CredentialTypeBasic:
		return codec.ReadOpaque(s, &x.Identity)
	case CredentialTypeX509:
		return readOpaqueList(s, &x.Certificates)
	default:
		return false
	}
}
