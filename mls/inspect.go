package mls

import (
	"bytes"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/wire"
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
}

// Inspect decodes an MLSMessage and reports its clear header. Nothing is
// verified: use it to route messages, never to trust them.
func Inspect(data []byte) (*MessageInfo, error) {
	var m wire.MLSMessage
	if err := wire.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("inspect: %w: %v", ErrMalformed, err)
	}
	info := &MessageInfo{WireFormat: WireFormat(m.WireFormat)}
	switch {
	case m.PublicMessage != nil:
		c := &m.PublicMessage.Content
		info.GroupID, info.Epoch, info.Kind = bytes.Clone(c.GroupID), c.Epoch, MessageKind(c.ContentType)
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
	case m.GroupInfo != nil:
		info.GroupID, info.Epoch = bytes.Clone(m.GroupInfo.GroupContext.GroupID), m.GroupInfo.GroupContext.Epoch
	}
	return info, nil
}
