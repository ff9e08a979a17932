package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// GroupContext summarizes the state of the group in an epoch
// (RFC 9420 §8.1). Its version is fixed to mls10: Decode rejects any other
// value, since a GroupContext of another version would not have this layout.
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

// Encode implements Encoder. A version other than mls10 sets ErrInvalid.
func (x *GroupContext) Encode(b *cryptobyte.Builder) {
	if x.Version != ProtocolVersionMLS10 {
		invalid(b, "GroupContext version %v", x.Version)
		return
	}
	b.AddUint16(uint16(x.Version))
	b.AddUint16(uint16(x.CipherSuite))
	codec.AddOpaque(b, x.GroupID)
	b.AddUint64(x.Epoch)
	codec.AddOpaque(b, x.TreeHash)
	codec.AddOpaque(b, x.ConfirmedTranscriptHash)
	x.Extensions.Encode(b)
}

// Decode implements Decoder.
func (x *GroupContext) Decode(s *cryptobyte.String) bool {
	*x = GroupContext{}
	return s.ReadUint16((*uint16)(&x.Version)) &&
		x.Version == ProtocolVersionMLS10 &&
		s.ReadUint16((*uint16)(&x.CipherSuite)) &&
		codec.ReadOpaque(s, &x.GroupID) &&
		s.ReadUint64(&x.Epoch) &&
		codec.ReadOpaque(s, &x.TreeHash) &&
		codec.ReadOpaque(s, &x.ConfirmedTranscriptHash) &&
		x.Extensions.Decode(s)
}
