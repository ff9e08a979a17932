package node

import (
	"bytes"
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/mls"
)

// admission is a join request that passed the group's policy and waits for
// this member's turn to admit it.
type admission struct {
	kp       *mls.KeyPackage
	identity peer.ID
	due      time.Time
}

// onJoinRequest checks a join request against the group's policy and, if it
// passes, schedules its admission: at once for the member with the lowest
// leaf index, after rank × AdmitTakeover for the others, so that one member
// admits and the others take over only if it is offline (see "Admission").
func (g *Group) onJoinRequest(jr *joinRequest, from peer.ID) {
	if jr.Topic != g.topicID {
		return
	}
	kp, err := mls.ParseKeyPackage(jr.KeyPackage, g.n.mlsCfg)
	if err != nil {
		g.n.log.Debug("join request with an invalid KeyPackage", "group", g.topicID, "from", from, "err", err)
		return
	}
	// The request is signed at the GossipSub layer by from; the KeyPackage
	// must name the same peer, so a request cannot be made for someone
	// else.
	if !bytes.Equal(kp.Identity(), []byte(from)) {
		g.n.log.Debug("join request for another peer's KeyPackage", "group", g.topicID, "from", from)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil || g.removed || g.meta == nil {
		return
	}
	if kp.CipherSuite() != g.state.CipherSuite() {
		return
	}
	ref := string(kp.Ref())
	if _, ok := g.addedRefs[ref]; ok {
		return
	}
	if _, ok := g.memberLeafLocked(from); ok {
		return
	}
	if _, ok := g.admissions[ref]; ok {
		return
	}
	if !g.admissibleLocked(jr, kp) {
		g.n.log.Info("join request refused by policy", "group", g.topicID, "from", from, "policy", g.meta.Policy)
		return
	}
	rank := g.rankLocked()
	g.admissions[ref] = &admission{kp: kp, identity: from, due: time.Now().Add(time.Duration(rank) * g.n.cfg.AdmitTakeover)}
	g.n.log.Debug("join request accepted", "group", g.topicID, "from", from, "rank", rank)
	g.wake()
}

// admissibleLocked applies the group's admission policy.
func (g *Group) admissibleLocked(jr *joinRequest, kp *mls.KeyPackage) bool {
	switch g.meta.Policy {
	case Open:
		return true
	case Invite:
		return jr.Invite != nil && verifyInvite(g.meta.InviteRoot[:], g.topicID, kp.Ref(), jr.Invite)
	}
	return false
}

// rankLocked is this member's position among the members in leaf order.
func (g *Group) rankLocked() int {
	me := g.state.LeafIndex()
	rank := 0
	for _, m := range g.state.Members() {
		if m.Index < me {
			rank++
		}
	}
	return rank
}

// admitDue admits every scheduled joiner whose time has come, in one commit.
// Each is checked again under the state lock: a KeyPackage already added,
// or a peer that is already a member, is never added again.
func (g *Group) admitDue(ctx context.Context, now time.Time) {
	g.mu.Lock()
	due := false
	for _, a := range g.admissions {
		if !now.Before(a.due) {
			due = true
		}
	}
	g.mu.Unlock()
	if !due {
		return
	}
	err := g.commit(ctx, func() (*mls.CommitOptions, []peer.ID, error) {
		var kps []*mls.KeyPackage
		var peers []peer.ID
		for ref, a := range g.admissions {
			if now.Before(a.due) {
				continue
			}
			delete(g.admissions, ref)
			if _, ok := g.addedRefs[ref]; ok {
				continue
			}
			if _, ok := g.memberLeafLocked(a.identity); ok {
				continue
			}
			if nb, na := a.kp.Lifetime(); now.Before(nb) || !now.Before(na) {
				continue
			}
			kps = append(kps, a.kp)
			peers = append(peers, a.identity)
		}
		if len(kps) == 0 {
			return nil, nil, nil
		}
		return &mls.CommitOptions{Add: kps}, peers, nil
	}, nil)
	if err != nil {
		g.n.log.Warn("admit joiners", "group", g.topicID, "err", err)
		return
	}
}

// housekeeping is the group's timer loop: join requests while joining,
// admissions, outbox retries, state persistence and key rotation.
func (g *Group) housekeeping() {
	t := time.NewTicker(g.n.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		case <-g.poke:
		}
		g.tick(time.Now())
	}
}

func (g *Group) tick(now time.Time) {
	ctx := g.ctx
	if !g.joinedYet() {
		g.announceJoin(ctx, now)
		return
	}
	if g.Removed() {
		return
	}
	g.flushState()
	g.mu.Lock()
	g.releaseHeldLocked(now)
	g.tickTrackerLocked(now)
	g.mu.Unlock()
	g.noticeTopicPeers()
	g.syncIfDue(ctx, now)
	g.admitDue(ctx, now)
	g.mu.Lock()
	pending := g.outboxLen > len(g.inflight)
	g.mu.Unlock()
	if pending {
		g.opMu.Lock()
		g.flushOutbox(ctx)
		g.opMu.Unlock()
	}
	if g.rotationDue(now) {
		if err := g.Rotate(ctx); err != nil {
			g.n.log.Warn("automatic rotation", "group", g.topicID, "err", err)
		} else {
			g.n.log.Info("rotated keys", "group", g.topicID, "epoch", g.Epoch())
		}
	}
}
