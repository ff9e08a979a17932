package wire

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// MLSMessage is the outer envelope of everything MLS sends (RFC 9420 §6):
// a protocol version, a wire format and the body it selects. The field
// matching WireFormat holds the body; the others are nil. Decode rejects a
// version other than mls10, an unknown wire format, and a KeyPackage whose
// own version differs from the message's (§10).
type MLSMessage struct {
	Version    ProtocolVersion
	WireFormat WireFormat

	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// NewMLSMessage wraps body (a *PublicMessage, *PrivateMessage, *Welcome,
// *GroupInfo or *KeyPackage) in an mls10 MLSMessage of the matching wire
// format.
func NewMLSMessage(body Encoder) (*MLSMessage, error) {
	m := &MLSMessage{Version: ProtocolVersionMLS10}
	switch v := body.(type) {
	case *PublicMessage:
		m.WireFormat, m.PublicMessage = WireFormatPublicMessage, v
	case *PrivateMessage:
		m.WireFormat, m.PrivateMessage = WireFormatPrivateMessage, v
	case *Welcome:
		m.WireFormat, m.Welcome = WireFormatWelcome, v
	case *GroupInfo:
		m.WireFormat, m.GroupInfo = WireFormatGroupInfo, v
	case *KeyPackage:
		m.WireFormat, m.KeyPackage = WireFormatKeyPackage, v
	default:
		return nil, fmt.Errorf("wire: %T cannot be an MLSMessage body: %w", body, ErrInvalid)
	}
	return m, nil
}

// body returns the selected body, allocating it when alloc is set, or nil
// when the wire format is unknown or (without alloc) the body is unset.
func (x *MLSMessage) body(alloc bool) interface {
	Encoder
	Decoder
} {
	switch x.WireFormat {
	case WireFormatPublicMessage:
		if alloc {
			x.PublicMessage = new(PublicMessage)
		}
		if x.PublicMessage != nil {
			return x.PublicMessage
		}
	case WireFormatPrivateMessage:
		if alloc {
			x.PrivateMessage = new(PrivateMessage)
		}
		if x.PrivateMessage != nil {
			return x.PrivateMessage
		}
	case WireFormatWelcome:
		if alloc {
			x.Welcome = new(Welcome)
		}
		if x.Welcome != nil {
			return x.Welcome
		}
	case WireFormatGroupInfo:
		if alloc {
			x.GroupInfo = new(GroupInfo)
		}
		if x.GroupInfo != nil {
			return x.GroupInfo
		}
	case WireFormatKeyPackage:
		if alloc {
			x.KeyPackage = new(KeyPackage)
		}
		if x.KeyPackage != nil {
			return x.KeyPackage
		}
	}
	return nil
}

// Encode implements Encoder. A version other than mls10 or a nil body for
// the selected wire format sets ErrInvalid.
func (x *MLSMessage) Encode(b *cryptobyte.Builder) {
	if x.Version != ProtocolVersionMLS10 {
		invalid(b, "MLSMessage version %v", x.Version)
		return
	}
	body := x.body(false)
	if body == nil {
		invalid(b, "MLSMessage of wire format %v without its body", x.WireFormat)
		return
	}
	b.AddUint16(uint16(x.Version))
	b.AddUint16(uint16(x.WireFormat))
	body.Encode(b)
}

// Decode implements Decoder.
func (x *MLSMessage) Decode(s *cryptobyte.String) bool {
	*x = MLSMessage{}
	if !s.ReadUint16((*uint16)(&x.Version)) || x.Version != ProtocolVersionMLS10 ||
		!s.ReadUint16((*uint16)(&x.WireFormat)) {
		return false
	}
	body := x.body(true)
	if body == nil || !body.Decode(s) {
		return false
	}
	return x.KeyPackage == nil || x.KeyPackage.Version == x.Version
}
