package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/mls"
)

// pendingRotation is a key rotation of this member that lost its commit
// race and is wanted in by an Update proposal (RFC 9420 §12.1.2) instead:
// commitorder rule 4, no starvation. The tracker knows it as one
// ProposalID for as long as it is wanted; the proposal itself is made
// afresh in each epoch it is proposed in.
type pendingRotation struct {
	id commitorder.ProposalID
	// state is the state the Update was last proposed in: once per state.
	state commitorder.StateID
}

// proposeUpdate asks the group to commit a fresh leaf for this member: it
// is the redo of a Rotate whose commit lost its epoch. A member that keeps
// losing commit races (a high leaf index while lower ones commit) thus still
// gets its keys rotated: the winner of a later epoch includes the Update by
// reference (mls includes every cached proposal it may, RFC 9420 §12.4).
func (g *Group) proposeUpdate(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	err := g.proposeUpdateLocked(true)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	g.wake()
	return nil
}

// proposeUpdateLocked proposes an Update of this member's leaf in the
// current state, persisted with the proposal in the outbox before it is
// published. fresh starts a new rotation request (replacing an older one);
// otherwise the wanted one is proposed again (Decision.Repropose), still
// under its ProposalID. A rotation already proposed in the current state is
// not proposed twice.
func (g *Group) proposeUpdateLocked(fresh bool) error {
	if g.state == nil || g.removed || g.tracker == nil {
		return ErrNotMember
	}
	if len(g.state.Members()) < 2 {
		return nil // nobody else could commit it; an own commit cannot lose here
	}
	if g.rotation != nil && g.rotation.state == g.stateID {
		return nil
	}
	if !fresh && g.rotation == nil {
		return nil
	}
	msg, err := g.state.ProposeUpdate()
	if err != nil {
		return fmt.Errorf("propose update: %w", err)
	}
	// The Update and its leaf's private key are cached in the state
	// (RFC 9420 §12.1.2: the proposer needs it to process the commit).
	ps := g.state.PendingProposals()
	ref := ps[len(ps)-1].Ref
	out := &outboxRecord{Kind: outboxProposal, Message: msg}
	epoch := g.state.Epoch()
	if err := g.persistLocked(g.state, func(tx Tx) error {
		// Logged for sync, like a received proposal: a member that gets
		// the commit including it only by sync needs it too.
		g.logHandshakeLocked(tx, epoch, msg)
		return g.appendOutboxLocked(tx, out)
	}); err != nil {
		g.state.DropProposal(ref)
		return fmt.Errorf("propose update: %w", err)
	}
	g.dirty = false
	if fresh {
		if g.rotation != nil {
			g.tracker.Withdraw(g.rotation.id)
		}
		id := commitorder.NewProposalID(ref)
		g.rotation = &pendingRotation{id: id}
		g.tracker.Propose(commitorder.Proposal{ID: id, Bytes: msg}, time.Now())
	}
	g.rotation.state = g.stateID
	g.n.log.Info("proposed an update of own leaf", "group", g.topicID, "epoch", g.state.Epoch(), "again", !fresh)
	return nil
}

// reproposeLocked proposes again, in the new current state, the own
// proposals that no commit on our branch applied (Decision.Repropose;
// proposals are bound to their epoch, RFC 9420 §12.1). The node proposes
// only Updates, so each is a pending rotation.
func (g *Group) reproposeLocked(ps []commitorder.Proposal) {
	for _, p := range ps {
		if g.rotation == nil || p.ID != g.rotation.id {
			g.tracker.Withdraw(p.ID) // not ours any more
			continue
		}
		if err := g.proposeUpdateLocked(false); err != nil {
			g.n.log.Warn("propose update again", "group", g.topicID, "err", err)
		}
		g.wake()
	}
}

// rotationAppliedLocked returns the ProposalIDs of the own pending rotation
// that a commit applied (for commitorder.State.Apply): by an own commit,
// whose UpdatePath replaces this member's leaf anyway, or by another
// member's commit that includes this member's Update (only this member can
// sign an Update of its leaf, RFC 9420 §12.1.2).
func (g *Group) rotationAppliedLocked(own bool, st *mls.Group, applied []mls.Proposal) []commitorder.ProposalID {
	if g.rotation == nil {
		return nil
	}
	if own {
		return []commitorder.ProposalID{g.rotation.id}
	}
	for _, p := range applied {
		if p.Type == mls.ProposalUpdate && p.Sender.Kind == mls.SenderMember && p.Sender.Index == st.LeafIndex() {
			return []commitorder.ProposalID{g.rotation.id}
		}
	}
	return nil
}

// onProposalLocked caches a PublicMessage proposal in the held state of its
// epoch that accepts it (normally the current one; one kept for the settle
// window if a competing commit was applied there first) and tells the
// tracker, which applies a commit that was waiting for it. It returns the
// buffered messages to retry if the state changed, and whether the node was
// removed.
func (g *Group) onProposalLocked(data []byte, h *mlsHeader) (retry [][]byte, removed bool) {
	if h.Epoch > g.state.Epoch() {
		g.bufferFutureLocked(data)
		return nil, false
	}
	before := g.stateID
	cached := false
	for _, s := range g.tracker.Held() {
		ms, ok := s.(*mlsState)
		if !ok || ms.Epoch() != h.Epoch {
			continue
		}
		r, err := ms.st.ProcessMessage(data)
		if errors.Is(err, mls.ErrOwnMessage) || errors.Is(err, mls.ErrMalformed) {
			// Our own is logged when proposed; a malformed one never
			// will be of use.
			g.rememberUnusableLocked(h.Epoch, data, true)
			return nil, false
		}
		if err != nil {
			g.n.log.Debug("proposal not cached", "group", g.topicID, "epoch", h.Epoch, "state", ms.id, "err", err)
			continue
		}
		if r.Kind != mls.ProposalMessage || r.Proposal == nil {
			continue
		}
		if ms.id == g.stateID {
			g.dirty = true // cached for the next commit (RFC 9420 §12.1)
		}
		g.n.log.Debug("proposal", "group", g.topicID, "epoch", h.Epoch, "type", r.Proposal.Type, "sender", r.Sender.Index)
		// Logged before the tracker hears of it, so that the commit it
		// lets apply lands in the log after it, and a member that gets
		// that commit only by sync is served the proposal first.
		g.logHandshakeLocked(nil, h.Epoch, data)
		p := commitorder.Proposal{ID: commitorder.NewProposalID(r.Proposal.Ref), Bytes: data}
		if err := g.carryOutLocked(g.tracker.ReceiveProposal(ms.id, p, time.Now()), nil); err != nil {
			g.n.log.Warn("commit tracker", "group", g.topicID, "err", err)
		}
		cached = true
		break // a proposal verifies on one branch only (membership tag)
	}
	switch {
	case !cached && h.Epoch == g.state.Epoch():
		// It may belong to a competing state of this epoch, made by a
		// commit still on its way: try again after the next change of
		// state. Once the epoch has passed, it is dropped.
		g.bufferFutureLocked(data)
	case !cached:
		// Of an epoch we left and no held state accepts it: syncs must
		// not serve it to us again.
		g.rememberUnusableLocked(h.Epoch, data, true)
	}
	return g.afterMoveLocked(before)
}
