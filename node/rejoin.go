package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/cryptobyte"

	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/mls"
)

// Rejoining a winning branch (commitorder rules 2 and 7). When the tracker
// reports a late winner (Decision.Resync: a lower-ranked commit on a state
// this member released after the settle window, typically after a
// partition healed), the member asks the connected members, over the sync
// protocol, for their current GroupInfo and their branch
// (commitorder.Tracker.Path), keeps the first branch Tracker.Compare calls
// better, and rejoins it by an external commit (RFC 9420 §12.4.3.2, resync)
// whose metadata names, in RejoinSince, the last state it shared with that
// branch. The members that apply that commit re-send their messages sent
// since then; the rejoiner re-sends its own messages of the branch it left.

const (
	// maxPathSteps bounds the steps of a served branch: the tracker
	// remembers at most commitorder.DefaultLimit past states.
	maxPathSteps = commitorder.DefaultLimit
	// pathStepSize is the encoded size of one PathStep.
	pathStepSize = 32 + 8 + 1 + 4 + 32 + 32
)

// branchRequest asks a member for its current GroupInfo and branch:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 8;
//	    opaque group_id<1..255>;
//	} BranchRequest;
type branchRequest struct {
	GroupID []byte
}

func (r *branchRequest) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	addHeader(&b, branchRequestType)
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.GroupID) })
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode branch request: %w", err)
	}
	return out, nil
}

// isBranchRequest reports whether a sync protocol request is a branch
// request rather than a SyncRequest.
func isBranchRequest(data []byte) bool {
	return isEnvelope(data) && len(data) >= 4 && data[3] == branchRequestType
}

func parseBranchRequest(data []byte) (*branchRequest, error) {
	s := cryptobyte.String(data)
	if err := readHeader(&s, branchRequestType); err != nil {
		return nil, err
	}
	var id cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&id) || len(id) == 0 || !s.Empty() {
		return nil, fmt.Errorf("%w: branch request of %d bytes", errBadEnvelope, len(data))
	}
	return &branchRequest{GroupID: bytes.Clone(id)}, nil
}

// branchResponse is a member's current state and the branch that led to it:
//
//	struct {
//	    opaque state[32];         // a StateID
//	    uint64 epoch;
//	    uint8  external;          // 0 or 1: the commit that made the state
//	    uint32 leaf;              //   its committer's leaf, 0 if external
//	    opaque commit_hash[32];   //   SHA-256 of its MLSMessage
//	    opaque rejoin_since[32];  //   its RejoinSince, zero if none
//	} PathStep;                   // commitorder.Step; all zero committer and
//	                              // hash: the commit is unknown
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 9;
//	    uint64 epoch;                   // the member's current epoch
//	    opaque state[32];               // its StateID
//	    opaque group_info<1..2^24-1>;   // its GroupInfo, ratchet tree included
//	    PathStep path<1..2^24-1>;       // oldest first, ≤ 4096 steps, the
//	} BranchResponse;                   // last one is (state, epoch)
type branchResponse struct {
	Epoch     uint64
	State     commitorder.StateID
	GroupInfo []byte
	Path      []commitorder.Step
}

func (r *branchResponse) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	addHeader(&b, branchResponseType)
	b.AddUint64(r.Epoch)
	b.AddBytes(r.State[:])
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.GroupInfo) })
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, st := range r.Path {
			c.AddBytes(st.State[:])
			c.AddUint64(st.Epoch)
			if st.Committer.External {
				c.AddUint8(1)
				c.AddUint32(0)
			} else {
				c.AddUint8(0)
				c.AddUint32(st.Committer.Leaf)
			}
			c.AddBytes(st.CommitHash[:])
			c.AddBytes(st.RejoinSince[:])
		}
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode branch response: %w", err)
	}
	return out, nil
}

func parseBranchResponse(data []byte) (*branchResponse, error) {
	s := cryptobyte.String(data)
	if err := readHeader(&s, branchResponseType); err != nil {
		return nil, err
	}
	r := new(branchResponse)
	var gi, list cryptobyte.String
	if !s.ReadUint64(&r.Epoch) || !s.CopyBytes(r.State[:]) || !s.ReadUint24LengthPrefixed(&gi) ||
		!s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return nil, fmt.Errorf("%w: branch response of %d bytes", errBadEnvelope, len(data))
	}
	if len(gi) == 0 {
		return nil, fmt.Errorf("%w: branch response without GroupInfo", errBadEnvelope)
	}
	n := len(list) / pathStepSize
	if len(list)%pathStepSize != 0 || n == 0 || n > maxPathSteps {
		return nil, fmt.Errorf("%w: branch path of %d bytes", errBadEnvelope, len(list))
	}
	r.GroupInfo = bytes.Clone(gi)
	r.Path = make([]commitorder.Step, 0, n)
	for !list.Empty() {
		var st commitorder.Step
		var external uint8
		if !list.CopyBytes(st.State[:]) || !list.ReadUint64(&st.Epoch) || !list.ReadUint8(&external) ||
			!list.ReadUint32(&st.Committer.Leaf) || !list.CopyBytes(st.CommitHash[:]) || !list.CopyBytes(st.RejoinSince[:]) {
			return nil, fmt.Errorf("%w: truncated branch path", errBadEnvelope)
		}
		switch {
		case external == 0:
		case external == 1 && st.Committer.Leaf == 0:
			st.Committer.External = true
		default:
			return nil, fmt.Errorf("%w: path step committer %d/%d", errBadEnvelope, external, st.Committer.Leaf)
		}
		r.Path = append(r.Path, st)
	}
	if last := r.Path[len(r.Path)-1]; last.State != r.State || last.Epoch != r.Epoch {
		return nil, fmt.Errorf("%w: branch path does not end at the served state", errBadEnvelope)
	}
	return r, nil
}

// groupByID returns the open group with MLS group ID id.
func (n *Node) groupByID(id []byte) *Group {
	for _, g := range n.Groups() {
		if bytes.Equal(g.ID(), id) {
			return g
		}
	}
	return nil
}

// serveBranch answers a branch request on a sync stream, to members of the
// group's current roster only. The caller closes the stream.
func (n *Node) serveBranch(s network.Stream, data []byte) {
	req, err := parseBranchRequest(data)
	if err != nil {
		s.Reset()
		return
	}
	g := n.groupByID(req.GroupID)
	if g == nil {
		s.Reset()
		return
	}
	g.mu.Lock()
	member := false
	resp := &branchResponse{}
	if g.state != nil && !g.removed && g.tracker != nil {
		_, member = g.memberLeafLocked(s.Conn().RemotePeer())
	}
	if member {
		resp.Epoch, resp.State = g.state.Epoch(), g.stateID
		resp.GroupInfo, err = g.groupInfoLocked()
		resp.Path = g.tracker.Path()
	}
	g.mu.Unlock()
	if !member || err != nil {
		s.Reset()
		return
	}
	if len(resp.Path) > maxPathSteps {
		resp.Path = resp.Path[len(resp.Path)-maxPathSteps:]
	}
	enc, err := resp.marshal()
	if err != nil {
		s.Reset()
		return
	}
	_, _ = s.Write(enc)
}

// requestBranch asks peer p for its GroupInfo and branch of the group
// groupID.
func (g *Group) requestBranch(ctx context.Context, p peer.ID, groupID []byte) (*branchResponse, error) {
	req, err := (&branchRequest{GroupID: groupID}).marshal()
	if err != nil {
		return nil, err
	}
	data, err := g.exchange(ctx, p, req)
	if err != nil {
		return nil, fmt.Errorf("branch request: %w", err)
	}
	return parseBranchResponse(data)
}

// lateResync is a group's bookkeeping for rejoining winning branches,
// guarded by the group's mu.
type lateResync struct {
	running bool // a search for a better branch runs
	again   bool // another late winner arrived during the search
	rejoins int  // rejoins by external commit so far (logs and tests)
	// peers are the topic peers seen at the last tick, away those seen
	// before that left since: a sync is due when one comes back (e.g. when
	// a partition heals).
	peers map[peer.ID]struct{}
	away  map[peer.ID]struct{}
}

// maxAwayPeers bounds the peers remembered as gone from a topic.
const maxAwayPeers = 256

// resyncLateLocked starts, in the background, the search for the branch a
// late winning commit started (commitorder.Decision.Resync), unless one
// runs, which then runs once more. The receive path never waits on it.
func (g *Group) resyncLateLocked(need *commitorder.ResyncNeeded) {
	if g.late.running {
		g.late.again = true
		return
	}
	g.n.log.Info("late winning commit: looking for a better branch", "group", g.topicID,
		"since", need.Since, "epoch", need.Winner.Epoch, "committer", need.Winner.Committer.Leaf,
		"external", need.Winner.Committer.External)
	// The members of a losing side all meet the late winner at about the
	// same time after a partition heals, and their rejoins race (rule 1
	// ranks external commits by hash; each race costs the losers another
	// rejoin). Each waits a step, a quarter of the settle window, per
	// member below it in leaf order, modulo rejoinStagger: neighbours in
	// leaf order rejoin one after the other, most finding the previous
	// rejoin already applied.
	rank := 0
	for _, m := range g.state.Members() {
		if m.Index < g.state.LeafIndex() {
			rank++
		}
	}
	delay := time.Duration(rank%rejoinStagger) * g.n.cfg.SettleWindow / 4
	g.late.running = true
	if !g.n.spawn(func() { g.resyncLate(delay) }) {
		g.late.running = false
	}
}

// rejoinStagger is the number of steps over which members spread their
// rejoins: at most 7/4 of the settle window.
const rejoinStagger = 8

// resyncLate searches for a better branch, each time after waiting delay,
// until no late winner arrived during the last search (a rejoin that lost
// its race to another one is such a late winner).
func (g *Group) resyncLate(delay time.Duration) {
	for {
		select {
		case <-g.ctx.Done():
		case <-time.After(delay):
		}
		g.findBetterBranch(g.ctx)
		g.mu.Lock()
		again := g.late.again && g.ctx.Err() == nil
		g.late.again = false
		if !again {
			g.late.running = false
		}
		g.mu.Unlock()
		if !again {
			return
		}
	}
}

// findBetterBranch asks the connected members, lowest leaf first, for their
// branch, and rejoins the first one Tracker.Compare calls better. If none
// does, the late winner was invalid or abandoned: nothing is done.
func (g *Group) findBetterBranch(ctx context.Context) {
	g.mu.Lock()
	if g.state == nil || g.removed || g.tracker == nil {
		g.mu.Unlock()
		return
	}
	groupID := g.groupID
	var peers []peer.ID
	for _, m := range g.state.Members() { // leaf order
		id, err := peer.IDFromBytes(m.Identity)
		if err != nil || id == g.n.id || slices.Contains(peers, id) {
			continue
		}
		peers = append(peers, id)
	}
	g.mu.Unlock()
	for _, p := range peers {
		if ctx.Err() != nil {
			return
		}
		if g.n.host.Network().Connectedness(p) != network.Connected {
			continue
		}
		resp, err := g.requestBranch(ctx, p, groupID)
		if err != nil {
			g.n.log.Debug("branch request", "group", g.topicID, "peer", p, "err", err)
			continue
		}
		g.mu.Lock()
		_, better := g.tracker.Compare(resp.Path)
		g.mu.Unlock()
		if !better {
			continue
		}
		joined, err := g.rejoin(ctx, resp.GroupInfo, resp.State, resp.Epoch, resp.Path)
		if err != nil {
			g.n.log.Warn("rejoin a better branch", "group", g.topicID, "peer", p, "err", err)
			continue
		}
		if joined {
			return
		}
	}
	g.n.log.Debug("no connected member serves a better branch", "group", g.topicID)
}

// rejoin rejoins the group by an external commit that removes this member's
// old leaf (RFC 9420 §12.4.3.2, resync), made on groupInfo, the GroupInfo of
// state parent in epoch epoch.
//
// With a path (the branch of that state, as its member served it), the
// branch must still be better than ours (Tracker.Compare), and the commit's
// RejoinSince is the state Compare returns: a late winner; or it must lead
// from our current state to a later one (we fell behind the handshake log
// of our peers), and RejoinSince is our current state. Without a path, the
// state must be ahead of ours, and RejoinSince is our current state.
//
// The tracker learns of the rejoin (Tracker.Resynced) and its decision is
// carried out: the new state is persisted with the commit in the outbox,
// then the own messages of the branch left behind are sealed again in it;
// then the outbox is published. It reports whether it rejoined.
func (g *Group) rejoin(ctx context.Context, groupInfo []byte, parent commitorder.StateID, epoch uint64, path []commitorder.Step) (bool, error) {
	joined, err := g.rejoinOp(ctx, groupInfo, parent, epoch, path)
	if joined {
		// Messages of the joined branch that arrived before the rejoin.
		g.retryBuffered()
	}
	return joined, err
}

func (g *Group) rejoinOp(ctx context.Context, groupInfo []byte, parent commitorder.StateID, epoch uint64, path []commitorder.Step) (bool, error) {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	g.mu.Lock()
	if g.state == nil || g.removed || g.tracker == nil {
		g.mu.Unlock()
		return false, nil
	}
	var since commitorder.StateID
	if path != nil {
		var better bool
		since, better = g.tracker.Compare(path)
		// A branch through our current state that is ahead of it: we fell
		// behind the logs, and rejoin at its end.
		extends := !better && since == g.stateID && epoch > g.state.Epoch()
		if !better && !extends {
			g.mu.Unlock()
			return false, nil // not better, or our branch moved meanwhile
		}
	} else {
		if g.state.Epoch() >= epoch {
			g.mu.Unlock()
			return false, nil
		}
		since = g.stateID
	}
	if since.IsZero() {
		since = g.stateID
	}
	pc, err := mls.JoinExternal(groupInfo, g.n.mlsID, g.n.mlsCfg, &mls.ExternalJoinOptions{
		Resync:            true,
		AuthenticatedData: (&commitMeta{Parent: parent, RejoinSince: since}).marshal(),
	})
	if err != nil {
		g.mu.Unlock()
		return false, err
	}
	if !bytes.Equal(pc.Next.ID(), g.groupID) {
		g.mu.Unlock()
		return false, errors.New("GroupInfo of another group")
	}
	if pc.Next.Epoch() != epoch+1 {
		g.mu.Unlock()
		return false, fmt.Errorf("GroupInfo of epoch %d, served as epoch %d", pc.Next.Epoch()-1, epoch)
	}
	c := commitorder.Commit{
		Epoch:       epoch,
		Parent:      parent,
		Committer:   commitorder.Committer{External: true},
		RejoinSince: since,
		Bytes:       pc.Commit,
	}
	from := g.state.Epoch()
	d, err := g.tracker.Resynced(c, newMLSState(g, pc.Next, pc.Proposals), path, time.Now())
	if err != nil {
		g.mu.Unlock()
		return false, err
	}
	g.logCommitLocked(c)
	err = g.carryOutLocked(d, func(tx Tx) error {
		return g.appendOutboxLocked(tx, &outboxRecord{Kind: outboxCommit, Message: pc.Commit})
	})
	if err == nil {
		g.late.rejoins++
	}
	g.mu.Unlock()
	if err != nil {
		return false, err
	}
	g.n.log.Info("rejoined by external commit", "group", g.topicID, "from", from, "to", epoch+1,
		"since", since, "late winner", path != nil, "resend", len(d.Resend))
	g.waitPeers(ctx)
	g.flushOutbox(ctx)
	return true, nil
}

// noticeTopicPeers asks for a sync when a peer that had left the group's
// topic is back on it (commitorder: sync on meeting a peer): after a
// partition heals, this is how each side learns of the other's commits, and
// so of a late winner. Peers seen for the first time need no sync: a
// member that just joined or started asks for one itself.
func (g *Group) noticeTopicPeers() {
	if g.topic == nil {
		return
	}
	peers := g.topic.Peers()
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := make(map[peer.ID]struct{}, len(peers))
	back := false
	for _, p := range peers {
		seen[p] = struct{}{}
		if _, ok := g.late.away[p]; ok {
			back = true
			delete(g.late.away, p)
		}
	}
	for p := range g.late.peers {
		if _, ok := seen[p]; !ok {
			if g.late.away == nil || len(g.late.away) >= maxAwayPeers {
				g.late.away = make(map[peer.ID]struct{})
			}
			g.late.away[p] = struct{}{}
		}
	}
	g.late.peers = seen
	if back && g.state != nil && !g.removed {
		g.syncDue = true
	}
}
