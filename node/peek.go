package node

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// mls.Inspect reports the clear header of an MLSMessage but not its
// authenticated_data, which the validator needs before it can open a message
// (the node's metadata: message ID, parent state of a commit). peekMessage
// reads the header up to and including authenticated_data (RFC 9420 §6); it
// is only used on bytes mls.Inspect has accepted, and nothing here is trusted
// beyond routing the message to the right check. It goes once mls reports
// authenticated_data in MessageInfo.

// MLS wire formats (RFC 9420 §6, §17.9).
const (
	wireFormatPublicMessage  = 1
	wireFormatPrivateMessage = 2
	wireFormatWelcome        = 3
	wireFormatGroupInfo      = 4
	wireFormatKeyPackage     = 5
)

// MLS content types (RFC 9420 §6).
const (
	contentTypeApplication = 1
	contentTypeProposal    = 2
	contentTypeCommit      = 3
)

// MLS sender types (RFC 9420 §6).
const (
	senderTypeMember            = 1
	senderTypeExternal          = 2
	senderTypeNewMemberProposal = 3
	senderTypeNewMemberCommit   = 4
)

// mlsVersion10 is ProtocolVersion mls10 (RFC 9420 §6).
const mlsVersion10 = 1

// errNotMLS reports bytes whose header is not an MLSMessage of mls10.
var errNotMLS = errors.New("not an MLSMessage")

// mlsHeader is the clear-text routing information of an MLSMessage.
type mlsHeader struct {
	WireFormat uint16
	// The fields below are set for PublicMessage and PrivateMessage only.
	GroupID           []byte
	Epoch             uint64
	ContentType       uint8
	AuthenticatedData []byte
	// Sender is set for PublicMessage only (PrivateMessage encrypts it).
	SenderType  uint8
	SenderIndex uint32
}

// peekMessage decodes the header of an MLSMessage: version, wire format and,
// for framed messages, group_id, epoch, content type, authenticated_data and
// (PublicMessage) sender. It does not read or check the rest.
func peekMessage(data []byte) (*mlsHeader, error) {
	s := cryptobyte.String(data)
	var version, wf uint16
	if !s.ReadUint16(&version) || !s.ReadUint16(&wf) {
		return nil, fmt.Errorf("%w: truncated header", errNotMLS)
	}
	if version != mlsVersion10 {
		return nil, fmt.Errorf("%w: version %d", errNotMLS, version)
	}
	h := &mlsHeader{WireFormat: wf}
	switch wf {
	case wireFormatPublicMessage:
		// FramedContent: group_id, epoch, sender, authenticated_data,
		// content_type, ...
		if !readVarOpaque(&s, &h.GroupID) || !s.ReadUint64(&h.Epoch) || !s.ReadUint8(&h.SenderType) {
			return nil, fmt.Errorf("%w: truncated PublicMessage", errNotMLS)
		}
		switch h.SenderType {
		case senderTypeMember, senderTypeExternal:
			if !s.ReadUint32(&h.SenderIndex) {
				return nil, fmt.Errorf("%w: truncated sender", errNotMLS)
			}
		case senderTypeNewMemberProposal, senderTypeNewMemberCommit:
		default:
			return nil, fmt.Errorf("%w: sender type %d", errNotMLS, h.SenderType)
		}
		if !readVarOpaque(&s, &h.AuthenticatedData) || !s.ReadUint8(&h.ContentType) {
			return nil, fmt.Errorf("%w: truncated PublicMessage", errNotMLS)
		}
	case wireFormatPrivateMessage:
		// PrivateMessage: group_id, epoch, content_type, authenticated_data,
		// ...
		if !readVarOpaque(&s, &h.GroupID) || !s.ReadUint64(&h.Epoch) || !s.ReadUint8(&h.ContentType) ||
			!readVarOpaque(&s, &h.AuthenticatedData) {
			return nil, fmt.Errorf("%w: truncated PrivateMessage", errNotMLS)
		}
	case wireFormatWelcome, wireFormatGroupInfo, wireFormatKeyPackage:
		return h, nil
	default:
		return nil, fmt.Errorf("%w: wire format %d", errNotMLS, wf)
	}
	if h.ContentType < contentTypeApplication || h.ContentType > contentTypeCommit {
		return nil, fmt.Errorf("%w: content type %d", errNotMLS, h.ContentType)
	}
	return h, nil
}

// readVarOpaque reads an opaque vector with an MLS variable-length length
// prefix (RFC 9420 §2.1.2): the top two bits of the first byte give the
// prefix size (1, 2 or 4 bytes), and the encoding must be minimal.
func readVarOpaque(s *cryptobyte.String, out *[]byte) bool {
	var first uint8
	if len(*s) == 0 {
		return false
	}
	first = (*s)[0]
	var n uint32
	switch first >> 6 {
	case 0:
		var v uint8
		if !s.ReadUint8(&v) {
			return false
		}
		n = uint32(v)
	case 1:
		var v uint16
		if !s.ReadUint16(&v) {
			return false
		}
		n = uint32(v & 0x3fff)
		if n < 1<<6 {
			return false
		}
	case 2:
		var v uint32
		if !s.ReadUint32(&v) {
			return false
		}
		n = v & 0x3fffffff
		if n < 1<<14 {
			return false
		}
	default:
		return false
	}
	var body []byte
	if !s.ReadBytes(&body, int(n)) {
		return false
	}
	*out = body
	return true
}
