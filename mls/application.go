package mls

import (
	"bytes"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Seal encrypts and signs application data for the group as a
// PrivateMessage (RFC 9420 §15) under the next key of this member's
// application ratchet, and returns the MLSMessage to send. authenticatedData
// travels in clear but is covered by the signature and the AEAD.
//
// It fails with ErrPendingProposals while proposals of the epoch wait to be
// committed (RFC 9420 §12.4: commit them first), and with ErrRemoved or
// ErrReInitPending when the group can no longer be used to send.
func (g *Group) Seal(plaintext, authenticatedData []byte) ([]byte, error) {
	if err := g.canSend(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if len(g.proposals) > 0 {
		return nil, fmt.Errorf("seal: %d proposals: %w", len(g.proposals), ErrPendingProposals)
	}
	content := &wire.FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            wire.MemberSender(g.myLeaf),
		AuthenticatedData: bytes.Clone(authenticatedData),
		ContentType:       wire.ContentTypeApplication,
		ApplicationData:   plaintext,
	}
	ac, err := g.framer.Sign(g.id.key, wire.WireFormatPrivateMessage, content)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", mapFramingError(err))
	}
	msg, err := g.protect(ac)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", mapFramingError(err))
	}
	return msg, nil
}
