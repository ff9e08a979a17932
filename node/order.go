package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/mls"
)

// mlsState is one MLS group state (one epoch of one branch) as the
// commitorder.Tracker holds it. Its methods run under the group's lock,
// which is held whenever the tracker is called.
type mlsState struct {
	g  *Group
	st *mls.Group
	id commitorder.StateID
	// applied are the proposals of the commit that made st (nil for a
	// root state), for the admission bookkeeping when st is adopted.
	applied []mls.Proposal
}

func newMLSState(g *Group, st *mls.Group, applied []mls.Proposal) *mlsState {
	return &mlsState{g: g, st: st, id: commitorder.NewStateID(st.EpochAuthenticator()), applied: applied}
}

// ID implements commitorder.State.
func (s *mlsState) ID() commitorder.StateID { return s.id }

// Epoch implements commitorder.State.
func (s *mlsState) Epoch() uint64 { return s.st.Epoch() }

// Apply implements commitorder.State: it processes the commit on this
// state, which mls leaves unchanged (RFC 9420 §14). An own commit is not
// processed again (mls reports ErrOwnCommit): the next state kept when it
// was created is returned.
func (s *mlsState) Apply(c commitorder.Commit) (commitorder.State, []commitorder.ProposalID, error) {
	hash := sha256.Sum256(c.Bytes)
	if oc := s.g.ownCommits[hash]; oc != nil && oc.base == s.id {
		return newMLSState(s.g, oc.next, oc.proposals), s.g.rotationAppliedLocked(true, s.st, nil), nil
	}
	var r *mls.Received
	if v := s.g.validated[hash]; v != nil && v.base == s.id {
		r = v.r
	} else {
		var err error
		r, err = s.st.ProcessMessage(c.Bytes)
		switch {
		case err == nil:
		case errors.Is(err, mls.ErrUnknownProposal):
			return nil, nil, fmt.Errorf("%w: %w", commitorder.ErrMissingProposals, err)
		default:
			return nil, nil, err
		}
	}
	if r.Kind != mls.CommitMessage || r.Next == nil {
		return nil, nil, fmt.Errorf("not a commit: %v", r.Kind)
	}
	return newMLSState(s.g, r.Next, r.Proposals), s.g.rotationAppliedLocked(false, s.st, r.Proposals), nil
}

// Release implements commitorder.State. The mls.Group of a released state
// is dropped from the tracker; the garbage collector reclaims it (mls keeps
// no exported way to erase a state in place).
func (s *mlsState) Release() {}

// ownCommit is a commit this member created, kept until its parent state
// leaves the tracker so that Apply returns the next state mls created with
// it.
type ownCommit struct {
	base      commitorder.StateID
	next      *mls.Group
	nextID    commitorder.StateID
	proposals []mls.Proposal
	// redo makes the commit's change again on the winning branch if the
	// commit loses its epoch: an Add or Remove is committed again, a
	// rotation is proposed as an Update (nil: nothing to redo).
	redo func(context.Context) error
}

// sentMessage is an own application message, kept so that it can be sealed
// again in a winning branch (commitorder.Decision.Resend) with the same
// ID, time and sequence number.
type sentMessage struct {
	data   []byte
	sentAt time.Time
	seq    uint64
	at     time.Time
}

// committerOf ranks a PublicMessage commit by its sender (RFC 9420 §6).
func committerOf(h *mlsHeader) (commitorder.Committer, error) {
	switch h.SenderType {
	case senderTypeMember:
		return commitorder.Committer{Leaf: h.SenderIndex}, nil
	case senderTypeNewMemberCommit:
		return commitorder.Committer{External: true}, nil
	}
	return commitorder.Committer{}, fmt.Errorf("commit from sender type %d", h.SenderType)
}

// newTrackerLocked starts the commit tracker over the group's current
// state: after creating or joining the group, or loading it from the
// store.
func (g *Group) newTrackerLocked() {
	cfg := commitorder.Config{SettleWindow: g.n.cfg.SettleWindow}
	g.tracker = commitorder.New(newMLSState(g, g.state, nil), cfg, time.Now())
	g.syncDue = true // catch up on what was missed while away
}

// receiveCommitLocked hands a commit (received, or our own) to the tracker
// and carries out its decision. extra, if set, is written in the same
// transaction as the state if the decision changes it.
func (g *Group) receiveCommitLocked(c commitorder.Commit, extra func(Tx) error) (commitorder.Decision, error) {
	d, err := g.tracker.Receive(c, time.Now())
	switch {
	case err != nil, d.Outcome == commitorder.Lost, d.Outcome == commitorder.Stale,
		d.Outcome == commitorder.Buffered, d.Outcome == commitorder.Duplicate:
		// Invalid, lost or stale (never applied here), kept by the
		// tracker until its parent or proposals come, or followed
		// already: served again it would only be a duplicate (an orphan
		// of a losing branch never attaches), so syncs must not serve
		// it to us again.
		g.rememberUnusableLocked(c.Epoch, c.Bytes, true)
	}
	if err != nil {
		return d, err
	}
	g.n.log.Debug("commit", "group", g.topicID, "epoch", c.Epoch, "committer", c.Committer.Leaf,
		"external", c.Committer.External, "outcome", d.Outcome, "unwound", d.Unwound)
	if _, served := g.serving[hashOf(g.groupID, c.Bytes)]; d.NeedSync && !served {
		// (A commit served by a sync whose parent the response did not
		// bring asks for no further sync: the server has no parent to
		// give, and an orphan of a losing branch would keep asking.)
		g.syncDue = true
	}
	return d, g.carryOutLocked(d, extra)
}

// carryOutLocked does what a tracker decision says: log the commits it
// applied, adopt its current state, seal again the own messages of a branch
// that lost.
func (g *Group) carryOutLocked(d commitorder.Decision, extra func(Tx) error) error {
	cur, ok := d.Current.(*mlsState)
	if !ok {
		return errors.New("tracker holds a foreign state")
	}
	// Every commit applied, also one that waited for a proposal or for its
	// parent, goes to the handshake log for members that missed it.
	for _, c := range d.Applied {
		g.logCommitLocked(c)
	}
	if cur.id != g.stateID {
		if d.Unwound > 0 {
			g.n.log.Info("switched to a winning branch", "group", g.topicID, "epoch", cur.Epoch(), "unwound", d.Unwound)
		}
		if err := g.adoptLocked(cur.st, cur.applied, extra); err != nil {
			return err
		}
	}
	for id, oc := range g.ownCommits {
		if g.tracker.Lost(oc.nextID) {
			g.ownCommitLostLocked(oc)
			delete(g.ownCommits, id)
			continue
		}
		if _, held := g.tracker.State(oc.base); !held {
			delete(g.ownCommits, id)
		}
	}
	for _, id := range d.Resend {
		if err := g.resealLocked(id); err != nil {
			g.n.log.Warn("re-send message in the winning branch", "group", g.topicID, "err", err)
		}
	}
	g.reproposeLocked(d.Repropose)
	if d.Resync != nil {
		// Find the branch the late winner started and rejoin it, in the
		// background (rejoin.go).
		g.resyncLateLocked(d.Resync)
	}
	return nil
}

// tickTrackerLocked lets time pass in the tracker: states older than the
// settle window are released, and sent-message records past the tracker's
// retention are dropped.
func (g *Group) tickTrackerLocked(now time.Time) {
	if g.tracker == nil || g.removed {
		return
	}
	if err := g.carryOutLocked(g.tracker.Tick(now), nil); err != nil {
		g.n.log.Warn("commit tracker", "group", g.topicID, "err", err)
	}
	for id, s := range g.sentData {
		if now.Sub(s.at) > commitorder.DefaultRetention {
			delete(g.sentData, id)
		}
	}
}

// resealLocked seals an own message again in the current state, with its
// original ID, time and sequence number, and queues it in the outbox
// (commitorder rule 3: receivers drop the copies they already have).
func (g *Group) resealLocked(id commitorder.MessageID) error {
	s := g.sentData[id]
	if s == nil {
		return fmt.Errorf("message %x no longer remembered", id[:4])
	}
	meta := appMeta{ID: id, SentAt: s.sentAt, Seq: s.seq}
	ct, err := g.state.Seal(s.data, meta.marshal())
	if err != nil {
		return err
	}
	out := &outboxRecord{Kind: outboxApplication, Message: ct, ID: id}
	if err := g.persistLocked(g.state, func(tx Tx) error { return g.appendOutboxLocked(tx, out) }); err != nil {
		return err
	}
	g.dirty = false
	g.tracker.Sent(id, time.Now())
	g.wake()
	return nil
}

// waitSettled waits, bounded by the settle window and ctx, until the
// current state is settled: a commit then starts from a state every member
// has had time to reach (commitorder: no starvation).
func (g *Group) waitSettled(done <-chan struct{}) {
	deadline := time.Now().Add(g.n.cfg.SettleWindow + time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		settled := g.tracker == nil || g.tracker.Settled(g.stateID)
		g.mu.Unlock()
		if settled {
			return
		}
		select {
		case <-done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ownCommitLostLocked handles an own commit that lost its epoch (commitorder
// rule 3): the KeyPackages it added may be used again, its Welcome is never
// sent (flushOutbox drops it), and its author makes the same change again
// on the winning branch, in a later epoch: an Add or Remove is committed
// again once that state has settled, a rotation is proposed as an Update
// that the next winner commits by reference (see Rotate).
func (g *Group) ownCommitLostLocked(oc *ownCommit) {
	for _, p := range oc.proposals {
		if p.Type == mls.ProposalAdd && p.KeyPackage != nil {
			delete(g.addedRefs, string(p.KeyPackage.Ref()))
		}
	}
	if oc.redo == nil {
		return
	}
	g.n.log.Info("own commit lost its epoch: making its change again", "group", g.topicID, "epoch", oc.next.Epoch())
	redo := oc.redo
	g.n.spawn(func() {
		if err := redo(g.ctx); err != nil {
			g.n.log.Warn("commit a lost change again", "group", g.topicID, "err", err)
		}
	})
}
