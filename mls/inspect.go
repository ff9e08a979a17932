package mls

import (
	"bytes"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// WireFormat says which MLS structure a message carries (RFC 9420 §6,
// registry §17.2).
type WireFormat uint16

// The wire formats of RFC 9420 §17.2.
const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// String names the wire format as the registry does.
func (w WireFormat) String() string { return wire.WireFormat(w).String() }

// MessageInfo is what the clear header of an MLSMessage says, before any
// key is used or signature checked: enough to route a message to its group,
// to order commits by epoch and, for a PublicMessage, by committer.
type MessageInfo struct {
	// WireFormat is the structure the message carries.
	WireFormat WireFormat
	// GroupID and Epoch are set for PublicMessage, PrivateMessage and
	// GroupInfo.
	GroupID []byte
	Epoch   uint64
	// Kind is the content type of a PublicMessage or PrivateMessage.
	Kind MessageKind
	// Sender is the claimed sender of a PublicMessage (kind and index
	// only). A PrivateMessage hides its sender.
	Sender *Sender
	// AuthenticatedData is the authenticated_data of a PublicMessage or
	// PrivateMessage (RFC 9420 §6), sent in the clear in both: an
	// application can route on it before processing, but it is only
	// authenticated once ProcessMessage accepts the message.
	AuthenticatedData []byte
}

// Inspect decodes an MLSMessage and reports its clear header. Nothing is
// verified: use it to route messages, never to trust them.
func Inspect(data []byte) (*MessageInfo, error) {
	m, err := decodeMLSMessage(data)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	info := &MessageInfo{WireFormat: WireFormat(m.WireFormat)}
	switch {
	case m.PublicMessage != nil:
		c := &m.PublicMessage.Content
		info.GroupID, info.Epoch, info.Kind = bytes.Clone(c.GroupID), c.Epoch, MessageKind(c.ContentType)
		info.AuthenticatedData = bytes.Clone(c.AuthenticatedData)
		s := &Sender{Kind: SenderKind(c.Sender.SenderType)}
		switch c.Sender.SenderType {
		case wire.SenderTypeMember:
			s.Index = c.Sender.LeafIndex
		case wire.SenderTypeExternal:
			s.Index = c.Sender.SenderIndex
		}
		info.Sender = s
	case m.PrivateMessage != nil:
		pm := m.PrivateMessage
		info.GroupID, info.Epoch, info.Kind = bytes.Clone(pm.GroupID), pm.Epoch, MessageKind(pm.ContentType)
		info.AuthenticatedData = bytes.Clone(pm.AuthenticatedData)
	case m.GroupInfo != nil:
		info.GroupID, info.Epoch = bytes.Clone(m.GroupInfo.GroupContext.GroupID), m.GroupInfo.GroupContext.Epoch
	}
	return info, nil
}

// decodeMLSMessage decodes an MLSMessage strictly (RFC 9420 §6). A failure
// wraps ErrMalformed and, when the message names a protocol version other
// than mls10, ErrUnsupportedVersion too.
func decodeMLSMessage(data []byte) (*wire.MLSMessage, error) {
	m := new(wire.MLSMessage)
	if err := wire.Unmarshal(data, m); err != nil {
		s := cryptobyte.String(data)
		var version uint16
		if s.ReadUint16(&version) && wire.ProtocolVersion(version) != wire.ProtocolVersionMLS10 {
			return nil, fmt.Errorf("%w: %w: version %v", ErrUnsupportedVersion, ErrMalformed, wire.ProtocolVersion(version))
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}
