package mls

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/framing"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// ProcessMessage processes a message sent to the group (an MLSMessage
// holding a PublicMessage or PrivateMessage, RFC 9420 §6) and reports what
// it carried:
//
//   - an application message is decrypted and returned (RFC 9420 §15);
//     messages of the current epoch and of the retained earlier epochs
//     open, in any order within an epoch;
//   - a proposal is verified and cached for the next commit (§12.1);
//   - a commit is verified and applied with every check of §12.4.2, and
//     Received.Next holds the state of the new epoch. g itself is left
//     unchanged, so that the caller can keep it to process a competing
//     commit for the same epoch (§14).
//
// A message that fails any check is rejected with an error matching one of
// the package's sentinel errors, and the state is unchanged. Messages this
// client sent itself, echoed back, are reported with ErrOwnCommit or
// ErrOwnMessage.
func (g *Group) ProcessMessage(data []byte) (*Received, error) {
	var msg wire.MLSMessage
	if err := wire.Unmarshal(data, &msg); err != nil {
		return nil, fmt.Errorf("process message: %w: %v", ErrMalformed, err)
	}
	var r *Received
	var err error
	switch msg.WireFormat {
	case wire.WireFormatPublicMessage:
		r, err = g.processPublic(msg.PublicMessage)
	case wire.WireFormatPrivateMessage:
		r, err = g.processPrivate(msg.PrivateMessage)
	default:
		err = fmt.Errorf("%v is not a group message: %w", msg.WireFormat, ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("process message: %w", err)
	}
	return r, nil
}

// checkEpoch classifies a message's group and epoch against this state.
// pastOK allows retained past epochs (application messages only).
func (g *Group) checkEpoch(groupID []byte, epoch uint64, pastOK bool) (*pastEpoch, error) {
	if !bytes.Equal(groupID, g.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	switch {
	case epoch > g.ctx.Epoch:
		if g.removed {
			return nil, fmt.Errorf("message of epoch %d: %w", epoch, ErrRemoved)
		}
		return nil, fmt.Errorf("message of epoch %d, group at %d: %w: %w", epoch, g.ctx.Epoch, ErrWrongEpoch, ErrFutureEpoch)
	case epoch == g.ctx.Epoch:
		if g.removed {
			return nil, fmt.Errorf("message of epoch %d: %w", epoch, ErrRemoved)
		}
		return nil, nil
	case !pastOK:
		return nil, fmt.Errorf("handshake message of past epoch %d, group at %d: %w", epoch, g.ctx.Epoch, ErrWrongEpoch)
	}
	for _, pe := range g.past {
		if pe.epoch == epoch {
			return pe, nil
		}
	}
	return nil, fmt.Errorf("message of epoch %d, group at %d: %w: %w", epoch, g.ctx.Epoch, ErrWrongEpoch, ErrEpochNotRetained)
}

// processPublic handles a PublicMessage: always a handshake message of the
// current epoch (RFC 9420 §6).
func (g *Group) processPublic(pm *wire.PublicMessage) (*Received, error) {
	c := &pm.Content
	if c.ContentType == wire.ContentTypeApplication {
		return nil, fmt.Errorf("application data in a PublicMessage: %w", ErrMalformed)
	}
	if _, err := g.checkEpoch(c.GroupID, c.Epoch, false); err != nil {
		if c.ContentType == wire.ContentTypeCommit && c.Epoch+1 == g.ctx.Epoch && len(g.confTag) > 0 &&
			hmac.Equal(pm.Auth.ConfirmationTag, g.confTag) {
			// The commit that began this epoch, delivered again.
			return nil, fmt.Errorf("commit of epoch %d already applied: %w: %w", c.Epoch, ErrReplay, ErrWrongEpoch)
		}
		return nil, err
	}
	u, err := g.framer.UnprotectPublic(pm)
	if err != nil {
		return nil, mapFramingError(err)
	}
	v, err := u.Verify(roster{tree: g.tree, ctx: &g.ctx})
	if err != nil {
		return nil, mapFramingError(err)
	}
	if err := g.checkOwn(v.Sender(), v.Content().ContentType); err != nil {
		return nil, err
	}
	return g.handle(v, nil)
}

// checkOwn reports a message sent by this client itself.
func (g *Group) checkOwn(s wire.Sender, ct wire.ContentType) error {
	if s.SenderType != wire.SenderTypeMember || s.LeafIndex != g.myLeaf {
		return nil
	}
	if ct == wire.ContentTypeCommit {
		return fmt.Errorf("%w: %w", ErrOwnCommit, ErrOwnMessage)
	}
	return ErrOwnMessage
}

// processPrivate handles a PrivateMessage: a handshake message of the
// current epoch, or an application message of the current or a retained
// epoch (RFC 9420 §6.3, §15.3).
func (g *Group) processPrivate(pm *wire.PrivateMessage) (*Received, error) {
	app := pm.ContentType == wire.ContentTypeApplication
	pe, err := g.checkEpoch(pm.GroupID, pm.Epoch, app)
	if err != nil {
		return nil, err
	}
	if pe != nil {
		return g.openPast(pe, pm)
	}
	// A handshake message is opened with a copy of the secret tree, so that
	// a message failing a later check leaves this state exactly as it was.
	framer, stree := g.framer, g.stree
	if !app {
		if stree, err = cloneSecretTree(g.stree, g.cfg); err != nil {
			return nil, err
		}
		if framer, err = framing.NewEpoch(g.cs, &g.ctx, framing.EpochKeys{
			MembershipKey: g.ks.membership, SenderDataSecret: g.ks.senderData, SecretTree: stree,
		}); err != nil {
			return nil, err
		}
	}
	rost := roster{tree: g.tree, ctx: &g.ctx}
	u, err := framer.UnprotectPrivate(pm, rost)
	if err != nil {
		if g.isOwnPrivate(pm, g.ks.senderData) {
			return nil, g.checkOwn(wire.MemberSender(g.myLeaf), pm.ContentType)
		}
		return nil, mapFramingError(err)
	}
	v, err := u.Verify(rost)
	if err != nil {
		return nil, mapFramingError(err)
	}
	if app {
		return g.applicationReceived(v, g.tree), nil
	}
	r, err := g.handle(v, stree)
	if err != nil {
		return nil, err
	}
	if r.Kind == ProposalMessage {
		// The proposal is accepted: its handshake key stays consumed.
		g.stree, g.framer = stree, framer
	}
	return r, nil
}

// openPast opens an application message of a retained epoch.
func (g *Group) openPast(pe *pastEpoch, pm *wire.PrivateMessage) (*Received, error) {
	rost := roster{tree: pe.tree, ctx: &pe.ctx}
	u, err := pe.framer.UnprotectPrivate(pm, rost)
	if err != nil {
		if g.isOwnPrivate(pm, pe.senderData) {
			return nil, ErrOwnMessage
		}
		return nil, mapFramingError(err)
	}
	v, err := u.Verify(rost)
	if err != nil {
		return nil, mapFramingError(err)
	}
	return g.applicationReceived(v, pe.tree), nil
}

// isOwnPrivate reports whether a PrivateMessage that failed to open names
// this client as its sender: its key was used up when it was sent
// (RFC 9420 §6.3.2).
func (g *Group) isOwnPrivate(pm *wire.PrivateMessage, senderDataSecret []byte) bool {
	key, nonce, err := secrettree.SenderDataKeyNonce(g.cs, senderDataSecret, pm.Ciphertext)
	if err != nil {
		return false
	}
	defer clear(key)
	defer clear(nonce)
	aead, err := g.cs.NewAEAD(key)
	if err != nil {
		return false
	}
	aad, err := wire.Marshal(pm.SenderDataAAD())
	if err != nil {
		return false
	}
	plain, err := aead.Open(nil, nonce, pm.EncryptedSenderData, aad)
	if err != nil {
		return false
	}
	var sd wire.SenderData
	return wire.Unmarshal(plain, &sd) == nil && sd.LeafIndex == g.myLeaf
}

// applicationReceived describes a verified application message.
func (g *Group) applicationReceived(v *framing.Verified, t *tree.Tree) *Received {
	c := v.Content()
	return &Received{
		Kind:              ApplicationMessage,
		Epoch:             c.Epoch,
		Sender:            memberSender(t, c.Sender.LeafIndex),
		AuthenticatedData: bytes.Clone(c.AuthenticatedData),
		Data:              bytes.Clone(c.ApplicationData),
	}
}

// handle acts on a verified handshake message of the current epoch.
// consumed is the copy of the secret tree it was opened with, for a
// PrivateMessage.
func (g *Group) handle(v *framing.Verified, consumed *secrettree.Tree) (*Received, error) {
	c := v.Content()
	switch c.ContentType {
	case wire.ContentTypeProposal:
		return g.receiveProposal(v)
	case wire.ContentTypeCommit:
		r, err := g.processCommit(v, consumed)
		if err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("content type %v: %w", c.ContentType, ErrMalformed)
}

// receiveProposal checks and caches a proposal (RFC 9420 §12.1).
func (g *Group) receiveProposal(v *framing.Verified) (*Received, error) {
	c := v.Content()
	if err := g.checkProposal(c.Proposal, c.Sender, false); err != nil {
		return nil, fmt.Errorf("proposal: %w", err)
	}
	if c.Sender.SenderType == wire.SenderTypeNewMemberProposal {
		if err := g.tree.ValidateLeafNode(&c.Proposal.Add.KeyPackage.LeafNode, wire.LeafNodeSourceKeyPackage, 0, g.leafNodeParams(&g.ctx, true)); err != nil && !errors.Is(err, tree.ErrDuplicateSignatureKey) {
			return nil, fmt.Errorf("proposal: %w: %w", ErrInvalidProposalList, mapTreeError(err))
		}
	}
	ref, err := proposalRef(g.cs, v.AuthenticatedContent())
	if err != nil {
		return nil, err
	}
	if g.findProposal(ref) == nil {
		g.proposals = append(g.proposals, &cachedProposal{ref: ref, proposal: c.Proposal, sender: c.Sender})
	}
	p := g.describe(c.Proposal, c.Sender, ref, g.tree)
	return &Received{
		Kind:              ProposalMessage,
		Epoch:             c.Epoch,
		Sender:            p.Sender,
		AuthenticatedData: bytes.Clone(c.AuthenticatedData),
		Proposal:          &p,
	}, nil
}
