package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// Add proposes adding the client of a KeyPackage (RFC 9420 §12.1.1).
type Add struct {
	KeyPackage KeyPackage
}

// Encode implements Encoder.
func (x *Add) Encode(b *cryptobyte.Builder) { x.KeyPackage.Encode(b) }

// Decode implements Decoder.
func (x *Add) Decode(s *cryptobyte.String) bool { return x.KeyPackage.Decode(s) }

// Update proposes replacing the sender's LeafNode (RFC 9420 §12.1.2).
type Update struct {
	LeafNode LeafNode
}

// Encode implements Encoder.
func (x *Update) Encode(b *cryptobyte.Builder) { x.LeafNode.Encode(b) }

// Decode implements Decoder.
func (x *Update) Decode(s *cryptobyte.String) bool { return x.LeafNode.Decode(s) }

// Remove proposes removing the member at leaf index Removed
// (RFC 9420 §12.1.3).
type Remove struct {
	Removed uint32
}

// Encode implements Encoder.
func (x *Remove) Encode(b *cryptobyte.Builder) { b.AddUint32(x.Removed) }

// Decode implements Decoder.
func (x *Remove) Decode(s *cryptobyte.String) bool { return s.ReadUint32(&x.Removed) }

// PreSharedKeyID names a pre-shared key and carries its nonce
// (RFC 9420 §8.4). PSKID is set for external PSKs; Usage, PSKGroupID and
// PSKEpoch for resumption PSKs.
type PreSharedKeyID struct {
	PSKType PSKType

	PSKID []byte // external

	Usage      ResumptionPSKUsage // resumption
	PSKGroupID []byte             // resumption
	PSKEpoch   uint64             // resumption

	PSKNonce []byte
}

// Encode implements Encoder.
func (x *PreSharedKeyID) Encode(b *cryptobyte.Builder) {
	b.AddUint8(uint8(x.PSKType))
	switch x.PSKType {
	case PSKTypeExternal:
		codec.AddOpaque(b, x.PSKID)
	case PSKTypeResumption:
		if x.Usage < ResumptionPSKUsageApplication || x.Usage > ResumptionPSKUsageBranch {
			invalid(b, "resumption PSK usage %v", x.Usage)
			return
		}
		b.AddUint8(uint8(x.Usage))
		codec.AddOpaque(b, x.PSKGroupID)
		b.AddUint64(x.PSKEpoch)
	default:
		invalid(b, "PSK type %v", x.PSKType)
		return
	}
	codec.AddOpaque(b, x.PSKNonce)
}

// Decode implements Decoder. Unknown PSK types and usages are malformed.
func (x *PreSharedKeyID) Decode(s *cryptobyte.String) bool {
	*x = PreSharedKeyID{}
	if !s.ReadUint8((*uint8)(&x.PSKType)) {
		return false
	}
	switch x.PSKType {
	case PSKTypeExternal:
		if !codec.ReadOpaque(s, &x.PSKID) {
			return false
		}
	case PSKTypeResumption:
		if !s.ReadUint8((*uint8)(&x.Usage)) ||
			x.Usage < ResumptionPSKUsageApplication || x.Usage > ResumptionPSKUsageBranch ||
			!codec.ReadOpaque(s, &x.PSKGroupID) ||
			!s.ReadUint64(&x.PSKEpoch) {
			return false
		}
	default:
		return false
	}
	return codec.ReadOpaque(s, &x.PSKNonce)
}

// PSKLabel is the context that binds each PSK to its position when the PSKs
// of an epoch are combined into psk_secret (RFC 9420 §8.4). It is here rather
// than with the key schedule because it embeds a PreSharedKeyID.
type PSKLabel struct {
	ID    PreSharedKeyID
	Index uint16
	Count uint16
}

// Encode implements Encoder.
func (x *PSKLabel) Encode(b *cryptobyte.Builder) {
	x.ID.Encode(b)
	b.AddUint16(x.Index)
	b.AddUint16(x.Count)
}

// Decode implements Decoder.
func (x *PSKLabel) Decode(s *cryptobyte.String) bool {
	return x.ID.Decode(s) && s.ReadUint16(&x.Index) && s.ReadUint16(&x.Count)
}

// PreSharedKey proposes injecting a PSK into the next epoch's key schedule
// (RFC 9420 §12.1.4).
type PreSharedKey struct {
	PSK PreSharedKeyID
}

// Encode implements Encoder.
func (x *PreSharedKey) Encode(b *cryptobyte.Builder) { x.PSK.Encode(b) }

// Decode implements Decoder.
func (x *PreSharedKey) Decode(s *cryptobyte.String) bool { return x.PSK.Decode(s) }

// ReInit proposes reinitializing the group with new parameters
// (RFC 9420 §12.1.5). Version is kept as sent: it may name a future version.
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

// Encode implements Encoder.
func (x *ReInit) Encode(b *cryptobyte.Builder) {
	codec.AddOpaque(b, x.GroupID)
	b.AddUint16(uint16(x.Version))
	b.AddUint16(uint16(x.CipherSuite))
	x.Extensions.Encode(b)
}

// Decode implements Decoder.
func (x *ReInit) Decode(s *cryptobyte.String) bool {
	*x = ReInit{}
	return codec.ReadOpaque(s, &x.GroupID) &&
		s.ReadUint16((*uint16)(&x.Version)) &&
		s.ReadUint16((*uint16)(&x.CipherSuite)) &&
		x.Extensions.Decode(s)
}

// ExternalInit carries the KEM output from which an external joiner and the
// group derive the init secret (RFC 9420 §12.1.6, §8.3).
type ExternalInit struct {
	KEMOutput []byte
}

// Encode implements Encoder.
func (x *ExternalInit) Encode(b *cryptobyte.Builder) { codec.AddOpaque(b, x.KEMOutput) }

// Decode implements Decoder.
func (x *ExternalInit) Decode(s *cryptobyte.String) bool {
	*x = ExternalInit{}
	return codec.ReadOpaque(s, &x.KEMOutput)
}

// GroupContextExtensions proposes replacing the GroupContext extensions
// wholesale (RFC 9420 §12.1.7).
type GroupContextExtensions struct {
	Extensions Extensions
}

// Encode implements Encoder.
func (x *GroupContextExtensions) Encode(b *cryptobyte.Builder) { x.Extensions.Encode(b) }

// Decode implements Decoder.
func (x *GroupContextExtensions) Decode(s *cryptobyte.String) bool {
	*x = GroupContextExtensions{}
	return x.Extensions.Decode(s)
}

// Proposal is a proposed change to the group (RFC 9420 §12.1). The field
// matching ProposalType holds the body; the others are nil. A proposal type
// this package does not know cannot be parsed, so it is malformed.
type Proposal struct {
	ProposalType ProposalType

	Add                    *Add
	Update                 *Update
	Remove                 *Remove
	PreSharedKey           *PreSharedKey
	ReInit                 *ReInit
	ExternalInit           *ExternalInit
	GroupContextExtensions *GroupContextExtensions
}

// body returns the Encoder/Decoder for the selected type, allocating it when
// alloc is set, or nil when the type is unknown or (without alloc) unset.
func (x *Proposal) body(alloc bool) interface {
	Encoder
	Decoder
} {
	switch x.ProposalType {
	case ProposalTypeAdd:
		if alloc {
			x.Add = new(Add)
		}
		if x.Add != nil {
			return x.Add
		}
	case ProposalTypeUpdate:
		if alloc {
			x.Update = new(Update)
		}
		if x.Update != nil {
			return x.Update
		}
	case ProposalTypeRemove:
		if alloc {
			x.Remove = new(Remove)
		}
		if x.Remove != nil {
			return x.Remove
		}
	case ProposalTypePSK:
		if alloc {
			x.PreSharedKey = new(PreSharedKey)
		}
		if x.PreSharedKey != nil {
			return x.PreSharedKey
		}
	case ProposalTypeReInit:
		if alloc {
			x.ReInit = new(ReInit)
		}
		if x.ReInit != nil {
			return x.ReInit
		}
	case ProposalTypeExternalInit:
		if alloc {
			x.ExternalInit = new(ExternalInit)
		}
		if x.ExternalInit != nil {
			return x.ExternalInit
		}
	case ProposalTypeGroupContextExtensions:
		if alloc {
			x.GroupContextExtensions = new(GroupContextExtensions)
		}
		if x.GroupContextExtensions != nil {
			return x.GroupContextExtensions
		}
	}
	return nil
}

// Encode implements Encoder. A nil body for the selected type sets
// ErrInvalid.
func (x *Proposal) Encode(b *cryptobyte.Builder) {
	body := x.body(false)
	if body == nil {
		invalid(b, "proposal of type %v without its body", x.ProposalType)
		return
	}
	b.AddUint16(uint16(x.ProposalType))
	body.Encode(b)
}

// Decode implements Decoder.
func (x *Proposal) Decode(s *cryptobyte.String) bool {
	*x = Proposal{}
	if !s.ReadUint16((*uint16)(&x.ProposalType)) {
		return false
	}
	body := x.body(true)
	return body != nil && body.Decode(s)
}

// ProposalOrRef is one entry of a Commit's proposal list: a proposal inline
// or the ProposalRef of one sent earlier (RFC 9420 §12.4).
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal // proposal
	Reference []byte    // reference: ProposalRef, a HashReference (§5.2)
}

// Encode implements Encoder.
func (x *ProposalOrRef) Encode(b *cryptobyte.Builder) {
	b.AddUint8(uint8(x.Type))
	switch x.Type {
	case ProposalOrRefTypeProposal:
		if x.Proposal == nil {
			invalid(b, "inline ProposalOrRef without a proposal")
			return
		}
		x.Proposal.Encode(b)
	case ProposalOrRefTypeReference:
		codec.AddOpaque(b, x.Reference)
	default:
		invalid(b, "ProposalOrRef type %v", x.Type)
	}
}

// Decode implements Decoder.
func (x *ProposalOrRef) Decode(s *cryptobyte.String) bool {
	*x = ProposalOrRef{}
	if !s.ReadUint8((*uint8)(&x.Type)) {
		return false
	}
	switch x.Type {
	case ProposalOrRefTypeProposal:
		x.Proposal = new(Proposal)
		return x.Proposal.Decode(s)
	case ProposalOrRefTypeReference:
		return codec.ReadOpaque(s, &x.Reference)
	}
	return false
}
