package wire

import (
	"github.com/meshchat/meshchat/mls/internal/codec"
	"golang.org/x/crypto/cryptobyte"
)

// Commit applies a list of proposals and optionally refreshes the
// committer's path (RFC 9420 §12.4). Path is nil when the optional UpdatePath
// is absent; whether it may be absent is a validation rule (§12.4), not a
// decoding one.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

// Encode implements Encoder.
func (x *Commit) Encode(b *cryptobyte.Builder) {
	addList(b, x.Proposals)
	codec.AddOptional(b, x.Path != nil, func(b *cryptobyte.Builder) { x.Path.Encode(b) })
}

// Decode implements Decoder.
func (x *Commit) Decode(s *cryptobyte.String) bool {
	*x = Commit{}
	var present bool
	return readList(s, &x.Proposals) && codec.ReadOptional(s, &present, func(s *cryptobyte.String) bool {
		x.Path = new(UpdatePath)
		return x.Path.Decode(s)
	})
}
