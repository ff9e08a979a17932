package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/mls"
)

// maxParallelLookups bounds the concurrent DHT lookups of one Add.
const maxParallelLookups = 8

// incomingCommit is a commit from another member, verified by mls against
// the current state.
type incomingCommit struct {
	// meta is the commit's authenticated_data: the state it claims to be
	// made on (commitorder.Commit.Parent).
	meta *commitMeta
	// received is what mls made of it; received.Next is the state it
	// leads to.
	received *mls.Received
	// data is the MLSMessage as received (commitorder.Commit.Bytes).
	data []byte
}

// decideCommitLocked is the one place where the node decides that a commit
// made by another member becomes the group's state.
//
// Until commitorder (issue 6) is wired in, the first valid commit of an epoch
// wins: mls only accepts commits made on the current state, so a competing
// commit for an epoch already left fails in ProcessMessage (ErrWrongEpoch)
// and never reaches this point, and members that see two commits of one
// epoch in different orders diverge. Issue 6 replaces the body with
// commitorder.Tracker.Receive (building commitorder.Commit from c.meta.Parent,
// c.received.Sender and c.data), adopts Decision.Current, re-sends
// Decision.Resend from the outbox and history, and keeps the previous state
// for the settle window; own commits (commitLocked) go through
// Tracker.Receive as well.
func (g *Group) decideCommitLocked(c incomingCommit) error {
	if c.meta.Parent != g.stateID {
		return fmt.Errorf("commit made on state %v, ours is %v", c.meta.Parent, g.stateID)
	}
	return g.adoptLocked(c.received.Next, c.received.Proposals, nil)
}

// adoptLocked persists next (with extra writes, in one transaction) and then
// makes it the group's state, updating the admission bookkeeping from the
// proposals the commit applied.
func (g *Group) adoptLocked(next *mls.Group, applied []mls.Proposal, extra func(Tx) error) error {
	if err := g.persistLocked(next, extra); err != nil {
		return err
	}
	g.dirty = false
	prevEpoch := g.state.Epoch()
	g.setStateLocked(next)
	now := time.Now()
	for _, p := range applied {
		if p.Type == mls.ProposalAdd && p.KeyPackage != nil {
			ref := string(p.KeyPackage.Ref())
			g.addedRefs[ref] = now
			delete(g.admissions, ref)
		}
	}
	for ref, t := range g.addedRefs {
		if now.Sub(t) > addedRefsRetention {
			delete(g.addedRefs, ref)
		}
	}
	for ref, a := range g.admissions {
		if _, ok := g.memberLeafLocked(a.identity); ok {
			delete(g.admissions, ref)
		}
	}
	g.validated = make(map[[32]byte]*validatedCommit)
	g.n.log.Debug("epoch", "group", g.topicID, "from", prevEpoch, "to", next.Epoch(), "removed", next.Removed())
	return nil
}

// commitLocked creates a commit of this member (what build returns, built
// under the state lock), persists the next state together with the commit
// and Welcome in the outbox, adopts it, and publishes. Every own commit
// carries an UpdatePath, so it also rotates this member's keys. The caller
// holds opMu. build returning nil options means there is nothing to commit.
func (g *Group) commitLocked(ctx context.Context, build func() (*mls.CommitOptions, []peer.ID, error)) error {
	g.mu.Lock()
	if g.state == nil || g.removed {
		g.mu.Unlock()
		return ErrNotMember
	}
	opts, welcomePeers, err := build()
	if err != nil || opts == nil {
		g.mu.Unlock()
		return err
	}
	opts.ForcePath = true
	opts.AuthenticatedData = (&commitMeta{Parent: g.stateID}).marshal()
	pc, err := g.state.Commit(opts)
	if err != nil {
		g.mu.Unlock()
		return fmt.Errorf("commit: %w", err)
	}
	// Only members of the current epoch need the commit; a member alone
	// in it sends its new members the Welcome only.
	alone := len(g.state.Members()) == 1
	saved := g.rec
	g.rec.LastRotation = time.Now()
	g.rec.SentSinceRotation = 0
	err = g.adoptLocked(pc.Next, pc.Proposals, func(tx Tx) error {
		if !alone {
			if err := g.appendOutboxLocked(tx, &outboxRecord{Kind: outboxCommit, Message: pc.Commit}); err != nil {
				return err
			}
		}
		if pc.Welcome != nil {
			return g.appendOutboxLocked(tx, &outboxRecord{Kind: outboxWelcome, Message: pc.Welcome, Peers: welcomePeers})
		}
		return nil
	})
	if err != nil {
		g.rec = saved
		g.mu.Unlock()
		return fmt.Errorf("commit: %w", err)
	}
	epoch := pc.Next.Epoch()
	g.mu.Unlock()
	g.n.log.Debug("own commit", "group", g.topicID, "epoch", epoch, "proposals", len(pc.Proposals))
	g.waitPeers(ctx)
	g.flushOutbox(ctx)
	return nil
}

// commit runs commitLocked under opMu.
func (g *Group) commit(ctx context.Context, build func() (*mls.CommitOptions, []peer.ID, error)) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	return g.commitLocked(ctx, build)
}

// Add adds the peers ids to the group in one commit: it fetches each peer's
// KeyPackage bundle from the DHT (a one-time KeyPackage if one is left, else
// the last-resort one), commits the Adds (RFC 9420 §12.1.1) and sends the
// Welcome (RFC 9420 §12.4.3.1) on the group's topic, directly to each peer
// that is reachable, and to the DHT mailbox of each KeyPackage for peers
// that come online later. It fails without committing if a peer is already a
// member or has no usable KeyPackage.
func (g *Group) Add(ctx context.Context, ids ...peer.ID) error {
	if len(ids) == 0 {
		return nil
	}
	g.mu.Lock()
	if g.state == nil || g.removed {
		g.mu.Unlock()
		return ErrNotMember
	}
	for _, id := range ids {
		if _, ok := g.memberLeafLocked(id); ok {
			g.mu.Unlock()
			return fmt.Errorf("add %s: %w", id, ErrAlreadyMember)
		}
	}
	suite := g.state.CipherSuite()
	g.mu.Unlock()
	kps := make([]*mls.KeyPackage, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelLookups)
	for i, id := range ids {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = fmt.Errorf("add %s: %w", id, ctx.Err())
				return
			}
			kps[i], errs[i] = g.n.lookupKeyPackage(ctx, id, suite, g.wasAdded)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("add %s: %w", id, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	err := g.commit(ctx, func() (*mls.CommitOptions, []peer.ID, error) {
		for _, id := range ids {
			if _, ok := g.memberLeafLocked(id); ok {
				return nil, nil, fmt.Errorf("add %s: %w", id, ErrAlreadyMember)
			}
		}
		return &mls.CommitOptions{Add: kps}, ids, nil
	})
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	return nil
}

// wasAdded reports whether a KeyPackage was added to the group recently
// (one-time KeyPackages are not to be used twice).
func (g *Group) wasAdded(ref []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.addedRefs[string(ref)]
	return ok
}

// ErrRemoveSelf reports an attempt to remove this node itself, which MLS
// does not allow by commit (RFC 9420 §12.4: another member must commit the
// removal).
var ErrRemoveSelf = errors.New("node: cannot remove self")

// Remove removes the member id from the group with a Remove commit (RFC 9420
// §12.1.3). From the next epoch on it cannot read the group's messages.
func (g *Group) Remove(ctx context.Context, id peer.ID) error {
	if id == g.n.id {
		return ErrRemoveSelf
	}
	err := g.commit(ctx, func() (*mls.CommitOptions, []peer.ID, error) {
		leaf, ok := g.memberLeafLocked(id)
		if !ok {
			return nil, nil, fmt.Errorf("remove %s: %w", id, ErrPeerNotMember)
		}
		return &mls.CommitOptions{Remove: []uint32{leaf}}, nil, nil
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}

// Rotate issues a self-update: a commit with a fresh UpdatePath (RFC 9420
// §12.4), which replaces this member's leaf and path keys and moves the group
// to a new epoch (forward secrecy and post-compromise security).
func (g *Group) Rotate(ctx context.Context) error {
	if err := g.commit(ctx, func() (*mls.CommitOptions, []peer.ID, error) {
		return &mls.CommitOptions{}, nil, nil
	}); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	return nil
}

// rotationDue reports whether automatic rotation should run now.
func (g *Group) rotationDue(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil || g.removed {
		return false
	}
	cfg := &g.n.cfg
	if cfg.RotateAfterMessages > 0 && g.rec.SentSinceRotation >= uint64(cfg.RotateAfterMessages) {
		return true
	}
	return cfg.RotateInterval > 0 && now.Sub(g.rec.LastRotation) >= cfg.RotateInterval+g.jitter
}
