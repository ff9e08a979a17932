package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/mls"
)

// maxParallelLookups bounds the concurrent DHT lookups of one Add.
const maxParallelLookups = 8

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
//
// redo, if set, is run (in the background) should the commit lose its epoch
// to a lower-ranked one: it commits the same change on the winning branch.
func (g *Group) commitLocked(ctx context.Context, build func() (*mls.CommitOptions, []peer.ID, error), redo func(context.Context) error) error {
	g.waitSettled(ctx.Done())
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
	hash := sha256.Sum256(pc.Commit)
	nextID := commitorder.NewStateID(pc.Next.EpochAuthenticator())
	g.ownCommits[hash] = &ownCommit{base: g.stateID, next: pc.Next, nextID: nextID, proposals: pc.Proposals, redo: redo}
	own := commitorder.Commit{
		Epoch:     g.state.Epoch(),
		Parent:    g.stateID,
		Committer: commitorder.Committer{Leaf: g.state.LeafIndex()},
		Bytes:     pc.Commit,
	}
	// The tracker applies an own commit like any other: it is made on the
	// current state, so it wins unless it is invalid.
	d, err := g.receiveCommitLocked(own, func(tx Tx) error {
		if !alone {
			if err := g.appendOutboxLocked(tx, &outboxRecord{Kind: outboxCommit, Message: pc.Commit}); err != nil {
				return err
			}
		}
		if pc.Welcome != nil {
			// The Welcome waits until its commit settles (RFC 9750
			// §5.2.3), unless no member can out-rank this commit: from
			// the lowest leaf, on a settled state, it can only lose if
			// that state itself is unwound, which the settle wait before
			// committing makes unlikely; joining then costs no window.
			hold := nextID
			if lowestLeaf(g.state.Members()) == g.state.LeafIndex() && g.tracker.Settled(g.stateID) {
				hold = commitorder.StateID{}
			}
			return g.appendOutboxLocked(tx, &outboxRecord{Kind: outboxWelcome, Message: pc.Welcome, Peers: welcomePeers, State: hold})
		}
		return nil
	})
	if err == nil && d.Outcome != commitorder.Applied {
		err = fmt.Errorf("own commit %v", d.Outcome)
	}
	if err != nil {
		g.rec = saved
		g.mu.Unlock()
		return fmt.Errorf("commit: %w", err)
	}
	epoch := pc.Next.Epoch()
	g.mu.Unlock()
	g.n.log.Debug("own commit", "group", g.topicID, "epoch", epoch, "proposals", len(pc.Proposals))
	if g.testHoldPublish.Load() {
		return nil
	}
	if !alone {
		// Members of the old epoch need the commit: give GossipSub a
		// moment to know one. Alone, there is only the Welcome, whose
		// readers are not on the topic yet: it goes out at once.
		g.waitPeers(ctx)
	}
	g.flushOutbox(ctx)
	return nil
}

// lowestLeaf is the lowest leaf index among members (commitorder rule 1:
// its commits out-rank every other).
func lowestLeaf(members []mls.Member) uint32 {
	low := uint32(math.MaxUint32)
	for _, m := range members {
		low = min(low, m.Index)
	}
	return low
}

// commit runs commitLocked under opMu.
func (g *Group) commit(ctx context.Context, build func() (*mls.CommitOptions, []peer.ID, error), redo func(context.Context) error) error {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	return g.commitLocked(ctx, build, redo)
}

// notMembers returns the peers of ids that are not members.
func (g *Group) notMembers(ids []peer.ID) []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []peer.ID
	for _, id := range ids {
		if _, ok := g.memberLeafLocked(id); !ok {
			out = append(out, id)
		}
	}
	return out
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
	}, func(ctx context.Context) error {
		if rest := g.notMembers(ids); len(rest) > 0 {
			return g.Add(ctx, rest...)
		}
		return nil
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
	}, func(ctx context.Context) error {
		if len(g.notMembers([]peer.ID{id})) == 0 {
			return g.Remove(ctx, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}

// Rotate issues a self-update: a commit with a fresh UpdatePath (RFC 9420
// §12.4), which replaces this member's leaf and path keys and moves the group
// to a new epoch (forward secrecy and post-compromise security). Should the
// commit lose its epoch to a lower-ranked one, the member proposes an Update
// of its leaf instead (RFC 9420 §12.1.2), which the winners of later epochs
// commit by reference: a member with a high leaf index among busy
// committers still gets its keys rotated (commitorder rule 4).
func (g *Group) Rotate(ctx context.Context) error {
	if err := g.commit(ctx, func() (*mls.CommitOptions, []peer.ID, error) {
		return &mls.CommitOptions{}, nil, nil
	}, g.proposeUpdate); err != nil {
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
