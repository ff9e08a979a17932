package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// Sender identifies who sent a message (RFC 9420 §6). LeafIndex is used for
// member senders, SenderIndex (an index into the external_senders
// extension) for external ones; new-member senders carry neither.
type Sender struct {
	SenderType  SenderType
	LeafIndex   uint32 // member
	SenderIndex uint32 // external
}

// MemberSender is the Sender of the member at leaf index leaf.
func MemberSender(leaf uint32) Sender {
	return Sender{SenderType: SenderTypeMember, LeafIndex: leaf}
}

// Encode implements Encoder.
func (x *Sender) Encode(b *cryptobyte.Builder) {
	b.AddUint8(uint8(x.SenderType))
	switch x.SenderType {
	case SenderTypeMember:
		b.AddUint32(x.LeafIndex)
	case SenderTypeExternal:
		b.AddUint32(x.SenderIndex)
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		invalid(b, "sender type %v", x.SenderType)
	}
}

// Decode implements Decoder. An unknown sender type is malformed.
func (x *Sender) Decode(s *cryptobyte.String) bool {
	*x = Sender{}
	if !s.ReadUint8((*uint8)(&x.SenderType)) {
		return false
	}
	switch x.SenderType {
	case SenderTypeMember:
		return s.ReadUint32(&x.LeafIndex)
	case SenderTypeExternal:
		return s.ReadUint32(&x.SenderIndex)
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
		return true
	}
	return false
}

// contentBody is the select on content_type shared by FramedContent and
// PrivateMessageContent: application data, a proposal or a commit.
func encodeContentBody(b *cryptobyte.Builder, ct ContentType, app []byte, p *Proposal, c *Commit) {
	switch {
	case ct == ContentTypeApplication:
		codec.AddOpaque(b, app)
	case ct == ContentTypeProposal && p != nil:
		p.Encode(b)
	case ct == ContentTypeCommit && c != nil:
		c.Encode(b)
	default:
		invalid(b, "content of type %v without its body", ct)
	}
}

func decodeContentBody(s *cryptobyte.String, ct ContentType, app *[]byte, p **Proposal, c **Commit) bool {
	switch ct {
	case ContentTypeApplication:
		return codec.ReadOpaque(s, app)
	case ContentTypeProposal:
		*p = new(Proposal)
		return (*p).Decode(s)
	case ContentTypeCommit:
		*c = new(Commit)
		return (*c).Decode(s)
	}
	return false
}

// FramedContent is the content of a handshake or application message with
// its group, epoch and sender (RFC 9420 §6). The field matching ContentType
// holds the body: ApplicationData, Proposal or Commit.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte    // application
	Proposal          *Proposal // proposal
	Commit            *Commit   // commit
}

// Encode implements Encoder.
func (x *FramedContent) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.GroupID)
	b.AddUint64(x.Epoch)
	x.Sender.Encode(b)
	codec.AddOpaque(b, x.AuthenticatedData)
	b.AddUint8(uint8(x.ContentType))
	encodeContentBody(b, x.ContentType, x.ApplicationData, x.Proposal, x.Commit)
}

// Decode implements Decoder. An unknown content type is malformed.
func (x *FramedContent) Decode(s *cryptobyte.String) bool {
	*x = FramedContent{}
	return codec.ReadOpaque(s, &x.GroupID) &&
		s.ReadUint64(&x.Epoch) &&
		x.Sender.Decode(s) &&
		codec.ReadOpaque(s, &x.AuthenticatedData) &&
		s.ReadUint8((*uint8)(&x.ContentType)) &&
		decodeContentBody(s, x.ContentType, &x.ApplicationData, &x.Proposal, &x.Commit)
}

// FramedContentAuthData authenticates a FramedContent: the sender's signature
// and, for commits only, the confirmation tag (RFC 9420 §6.1). Because the
// tag's presence depends on the content type of the enclosing content, Encode
// and Decode take that content type.
type FramedContentAuthData struct {
	Signature       []byte // SignWithLabel(., "FramedContentTBS", FramedContentTBS)
	ConfirmationTag []byte // commit only: MAC(confirmation_key, confirmed_transcript_hash)
}

// Encode appends the encoding for content of type ct.
func (x *FramedContentAuthData) Encode(b *cryptobyte.Builder, ct ContentType) {
	codec.AddOpaque(b, x.Signature)
	switch ct {
	case ContentTypeCommit:
		codec.AddOpaque(b, x.ConfirmationTag)
	case ContentTypeApplication, ContentTypeProposal:
	default:
		invalid(b, "auth data for content type %v", ct)
	}
}

// Decode reads the encoding for content of type ct.
func (x *FramedContentAuthData) Decode(s *cryptobyte.String, ct ContentType) bool {
	*x = FramedContentAuthData{}
	if !codec.ReadOpaque(s, &x.Signature) {
		return false
	}
	switch ct {
	case ContentTypeCommit:
		return codec.ReadOpaque(s, &x.ConfirmationTag)
	case ContentTypeApplication, ContentTypeProposal:
		return true
	}
	return false
}

// AuthenticatedContent is a FramedContent with its authentication and the
// wire format it travels in (RFC 9420 §6). ProposalRef and the transcript
// hashes are computed over its encoding.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

// Encode implements Encoder.
func (x *AuthenticatedContent) Encode(b *cryptobyte.Builder) {
	b.AddUint16(uint16(x.WireFormat))
	x.Content.Encode(b)
	x.Auth.Encode(b, x.Content.ContentType)
}

// Decode implements Decoder. The wire format is kept as read.
func (x *AuthenticatedContent) Decode(s *cryptobyte.String) bool {
	*x = AuthenticatedContent{}
	return s.ReadUint16((*uint16)(&x.WireFormat)) &&
		x.Content.Decode(s) &&
		x.Auth.Decode(s, x.Content.ContentType)
}

// TBS returns the FramedContentTBS that x's signature covers. groupContext is
// the encoded GroupContext of the epoch; it is used only for member and
// new_member_commit senders.
func (x *AuthenticatedContent) TBS(groupContext []byte) *FramedContentTBS {
	return &FramedContentTBS{WireFormat: x.WireFormat, Content: &x.Content, GroupContext: groupContext}
}

// ConfirmedTranscriptHashInput returns the part of x that the confirmed
// transcript hash covers (RFC 9420 §8.2). x must hold a commit.
func (x *AuthenticatedContent) ConfirmedTranscriptHashInput() *ConfirmedTranscriptHashInput {
	return &ConfirmedTranscriptHashInput{WireFormat: x.WireFormat, Content: &x.Content, Signature: x.Auth.Signature}
}

// InterimTranscriptHashInput returns the part of x that the interim
// transcript hash covers (RFC 9420 §8.2). x must hold a commit.
func (x *AuthenticatedContent) InterimTranscriptHashInput() *InterimTranscriptHashInput {
	return &InterimTranscriptHashInput{ConfirmationTag: x.Auth.ConfirmationTag}
}

// FramedContentTBS is the content signed with label "FramedContentTBS"
// (RFC 9420 §6.1): the version (always mls10), the wire format, the content
// and, for member and new_member_commit senders, the GroupContext of the
// epoch. GroupContext holds that GroupContext already encoded (as the group
// keeps it); it is appended verbatim and ignored for other senders.
type FramedContentTBS struct {
	WireFormat   WireFormat
	Content      *FramedContent
	GroupContext []byte // encoded GroupContext; member and new_member_commit only
}

func senderHasContext(t SenderType) bool {
	return t == SenderTypeMember || t == SenderTypeNewMemberCommit
}

// Encode implements Encoder. A missing GroupContext for a sender that needs
// one sets ErrInvalid.
func (x *FramedContentTBS) Encode(b *cryptobyte.Builder) {
	if x.Content == nil {
		invalid(b, "FramedContentTBS without content")
		return
	}
	b.AddUint16(uint16(ProtocolVersionMLS10))
	b.AddUint16(uint16(x.WireFormat))
	x.Content.Encode(b)
	if senderHasContext(x.Content.Sender.SenderType) {
		if len(x.GroupContext) == 0 {
			invalid(b, "FramedContentTBS for a %v sender without a group context", x.Content.Sender.SenderType)
			return
		}
		b.AddBytes(x.GroupContext)
	}
}

// Decode implements Decoder. The version must be mls10; the GroupContext,
// when present, is checked to be well formed and kept encoded.
func (x *FramedContentTBS) Decode(s *cryptobyte.String) bool {
	*x = FramedContentTBS{Content: new(FramedContent)}
	var version uint16
	if !s.ReadUint16(&version) || ProtocolVersion(version) != ProtocolVersionMLS10 ||
		!s.ReadUint16((*uint16)(&x.WireFormat)) || !x.Content.Decode(s) {
		return false
	}
	if senderHasContext(x.Content.Sender.SenderType) {
		start := *s
		var gc GroupContext
		if !gc.Decode(s) {
			return false
		}
		x.GroupContext = append([]byte(nil), start[:len(start)-len(*s)]...)
	}
	return true
}

// AuthenticatedContentTBM is the input of a PublicMessage's membership tag,
// MAC(membership_key, AuthenticatedContentTBM) (RFC 9420 §6.2).
type AuthenticatedContentTBM struct {
	ContentTBS FramedContentTBS
	Auth       FramedContentAuthData
}

// Encode implements Encoder.
func (x *AuthenticatedContentTBM) Encode(b *cryptobyte.Builder) {
	if x.ContentTBS.Content == nil {
		invalid(b, "AuthenticatedContentTBM without content")
		return
	}
	x.ContentTBS.Encode(b)
	x.Auth.Encode(b, x.ContentTBS.Content.ContentType)
}

// Decode implements Decoder.
func (x *AuthenticatedContentTBM) Decode(s *cryptobyte.String) bool {
	*x = AuthenticatedContentTBM{}
	return x.ContentTBS.Decode(s) && x.Auth.Decode(s, x.ContentTBS.Content.ContentType)
}

// PublicMessage is a signed, unencrypted message (RFC 9420 §6.2).
// MembershipTag is on the wire if and only if the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // member senders only
}

// Encode implements Encoder.
func (x *PublicMessage) Encode(b *cryptobyte.Builder) {
	x.Content.Encode(b)
	x.Auth.Encode(b, x.Content.ContentType)
	if x.Content.Sender.SenderType == SenderTypeMember {
		codec.AddOpaque(b, x.MembershipTag)
	}
}

// Decode implements Decoder.
func (x *PublicMessage) Decode(s *cryptobyte.String) bool {
	*x = PublicMessage{}
	if !x.Content.Decode(s) || !x.Auth.Decode(s, x.Content.ContentType) {
		return false
	}
	if x.Content.Sender.SenderType == SenderTypeMember {
		return codec.ReadOpaque(s, &x.MembershipTag)
	}
	return true
}

// AuthenticatedContent returns the AuthenticatedContent that x carries
// (wire format mls_public_message), sharing x's fields.
func (x *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: x.Content, Auth: x.Auth}
}

// PrivateMessage is a signed and encrypted message (RFC 9420 §6.3).
// ContentType is a closed enum here too: an unknown value is malformed.
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// Encode implements Encoder.
func (x *PrivateMessage) Encode(b *cryptobyte.Builder) {
	if !x.ContentType.valid() {
		invalid(b, "private message of content type %v", x.ContentType)
		return
	}
	codec.AddOpaque(b, x.GroupID)
	b.AddUint64(x.Epoch)
	b.AddUint8(uint8(x.ContentType))
	codec.AddOpaque(b, x.AuthenticatedData)
	codec.AddOpaque(b, x.EncryptedSenderData)
	codec.AddOpaque(b, x.Ciphertext)
}

// Decode implements Decoder.
func (x *PrivateMessage) Decode(s *cryptobyte.String) bool {
	*x = PrivateMessage{}
	return codec.ReadOpaque(s, &x.GroupID) &&
		s.ReadUint64(&x.Epoch) &&
		s.ReadUint8((*uint8)(&x.ContentType)) &&
		x.ContentType.valid() &&
		codec.ReadOpaque(s, &x.AuthenticatedData) &&
		codec.ReadOpaque(s, &x.EncryptedSenderData) &&
		codec.ReadOpaque(s, &x.Ciphertext)
}

// SenderDataAAD returns the AAD of x's sender data encryption.
func (x *PrivateMessage) SenderDataAAD() *SenderDataAAD {
	return &SenderDataAAD{GroupID: x.GroupID, Epoch: x.Epoch, ContentType: x.ContentType}
}

// ContentAAD returns the AAD of x's content encryption.
func (x *PrivateMessage) ContentAAD() *PrivateContentAAD {
	return &PrivateContentAAD{GroupID: x.GroupID, Epoch: x.Epoch, ContentType: x.ContentType, AuthenticatedData: x.AuthenticatedData}
}

// PrivateMessageContent is the plaintext of PrivateMessage.ciphertext
// (RFC 9420 §6.3.1): the content body selected by the PrivateMessage's
// content type, the auth data, and Padding zero bytes.
//
// ContentType is not encoded (it travels in the PrivateMessage header): Encode
// uses it to select the body, and Decode takes it as an argument and records
// it. Decode consumes all remaining input as padding and rejects it as
// malformed if any padding byte is non-zero.
type PrivateMessageContent struct {
	ContentType     ContentType
	ApplicationData []byte    // application
	Proposal        *Proposal // proposal
	Commit          *Commit   // commit
	Auth            FramedContentAuthData
	Padding         int // number of zero bytes appended
}

// Encode implements Encoder. A negative Padding sets ErrInvalid.
func (x *PrivateMessageContent) Encode(b *cryptobyte.Builder) {
	if x.Padding < 0 || x.Padding > codec.MaxVarint {
		invalid(b, "padding length %d", x.Padding)
		return
	}
	encodeContentBody(b, x.ContentType, x.ApplicationData, x.Proposal, x.Commit)
	x.Auth.Encode(b, x.ContentType)
	b.AddBytes(make([]byte, x.Padding))
}

// Decode reads the plaintext of a PrivateMessage of content type ct,
// consuming all of s.
func (x *PrivateMessageContent) Decode(s *cryptobyte.String, ct ContentType) bool {
	*x = PrivateMessageContent{ContentType: ct}
	if !decodeContentBody(s, ct, &x.ApplicationData, &x.Proposal, &x.Commit) ||
		!x.Auth.Decode(s, ct) {
		return false
	}
	for _, c := range *s {
		if c != 0 {
			return false
		}
	}
	x.Padding = len(*s)
	*s = (*s)[len(*s):]
	return true
}

// FramedContent rebuilds the FramedContent of a decrypted PrivateMessage from
// its header, the sender from its SenderData, and this plaintext.
func (x *PrivateMessageContent) FramedContent(msg *PrivateMessage, sender Sender) *FramedContent {
	return &FramedContent{
		GroupID:           msg.GroupID,
		Epoch:             msg.Epoch,
		Sender:            sender,
		AuthenticatedData: msg.AuthenticatedData,
		ContentType:       x.ContentType,
		ApplicationData:   x.ApplicationData,
		Proposal:          x.Proposal,
		Commit:            x.Commit,
	}
}

// SenderData identifies the sender and key generation of a PrivateMessage; it
// is encrypted into encrypted_sender_data (RFC 9420 §6.3.2).
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

// Encode implements Encoder.
func (x *SenderData) Encode(b *cryptobyte.Builder) {
	b.AddUint32(x.LeafIndex)
	b.AddUint32(x.Generation)
	b.AddBytes(x.ReuseGuard[:])
}

// Decode implements Decoder.
func (x *SenderData) Decode(s *cryptobyte.String) bool {
	return s.ReadUint32(&x.LeafIndex) && s.ReadUint32(&x.Generation) && s.CopyBytes(x.ReuseGuard[:])
}

// SenderDataAAD is the AAD of the sender data encryption: the first three
// fields of the PrivateMessage (RFC 9420 §6.3.2).
type SenderDataAAD struct {
	GroupID     []byte
	Epoch       uint64
	ContentType ContentType
}

// Encode implements Encoder.
func (x *SenderDataAAD) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.GroupID)
	b.AddUint64(x.Epoch)
	b.AddUint8(uint8(x.ContentType))
}

// Decode implements Decoder.
func (x *SenderDataAAD) Decode(s *cryptobyte.String) bool {
	*x = SenderDataAAD{}
	return codec.ReadOpaque(s, &x.GroupID) && s.ReadUint64(&x.Epoch) &&
		s.ReadUint8((*uint8)(&x.ContentType)) && x.ContentType.valid()
}

// PrivateContentAAD is the AAD of the content encryption of a
// PrivateMessage (RFC 9420 §6.3.1).
type PrivateContentAAD struct {
	GroupID           []byte
	Epoch             uint64
	ContentType       ContentType
	AuthenticatedData []byte
}

// Encode implements Encoder.
func (x *PrivateContentAAD) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.GroupID)
	b.AddUint64(x.Epoch)
	b.AddUint8(uint8(x.ContentType))
	codec.AddOpaque(b, x.AuthenticatedData)
}

// Decode implements Decoder.
func (x *PrivateContentAAD) Decode(s *cryptobyte.String) bool {
	*x = PrivateContentAAD{}
	return codec.ReadOpaque(s, &x.GroupID) && s.ReadUint64(&x.Epoch) &&
		s.ReadUint8((*uint8)(&x.ContentType)) && x.ContentType.valid() &&
		codec.ReadOpaque(s, &x.AuthenticatedData)
}

// ConfirmedTranscriptHashInput is the part of a commit's
// AuthenticatedContent that the confirmed transcript hash covers
// (RFC 9420 §8.2). Content must hold a commit; Decode rejects anything else.
type ConfirmedTranscriptHashInput struct {
	WireFormat WireFormat
	Content    *FramedContent
	Signature  []byte
}

// Encode implements Encoder.
func (x *ConfirmedTranscriptHashInput) Encode(b *cryptobyte.Builder) {
	if x.Content == nil || x.Content.ContentType != ContentTypeCommit {
		invalid(b, "confirmed transcript hash input without commit content")
		return
	}
	b.AddUint16(uint16(x.WireFormat))
	x.Content.Encode(b)
	codec.AddOpaque(b, x.Signature)
}

// Decode implements Decoder.
func (x *ConfirmedTranscriptHashInput) Decode(s *cryptobyte.String) bool {
	*x = ConfirmedTranscriptHashInput{Content: new(FramedContent)}
	return s.ReadUint16((*uint16)(&x.WireFormat)) &&
		x.Content.Decode(s) &&
		x.Content.ContentType == ContentTypeCommit &&
		codec.ReadOpaque(s, &x.Signature)
}

// InterimTranscriptHashInput is the part of a commit's AuthenticatedContent
// that the interim transcript hash adds: its confirmation tag
// (RFC 9420 §8.2).
type InterimTranscriptHashInput struct {
	ConfirmationTag []byte
}

// Encode implements Encoder.
func (x *InterimTranscriptHashInput) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.ConfirmationTag)
}

// Decode implements Decoder.
func (x *InterimTranscriptHashInput) Decode(s *cryptobyte.String) bool {
	*x = InterimTranscriptHashInput{}
	return codec.ReadOpaque(s, &x.ConfirmationTag)
}
