package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/crypto/cryptobyte"

	"github.com/meshchat/meshchat/commitorder"
)

// syncProtocol is the libp2p stream protocol on which a member asks another
// for the commits of a group it missed (commitorder rule 4).
const syncProtocol = protocol.ID("/meshchat/sync/1.0.0")

const (
	// defaultHandshakeRetention is how many epochs below the newest logged
	// one the handshake log keeps.
	defaultHandshakeRetention = 64
	// maxSyncCommits bounds the log entries (commits and application
	// messages) of one sync response.
	maxSyncCommits = 1024
	// maxSyncResponse bounds the bytes of one sync response.
	maxSyncResponse = 4 << 20
	// maxSyncRequest bounds the bytes of one sync request: its fixed
	// fields, a group ID and maxSyncHave hash prefixes.
	maxSyncRequest = 4 + 256 + 8 + 8 + 32 + 2 + 8*maxSyncHave
	// maxSyncJoined bounds the peers that joined the topic and wait to be
	// asked.
	maxSyncJoined = 64
	// syncStreamTimeout is the deadline of one sync exchange.
	syncStreamTimeout = 10 * time.Second
	// syncRetry is how long a node waits between sync attempts while one
	// is due.
	syncRetry = time.Second
)

// bucketHandshake holds the handshake log: key groupKey(group ID) ||
// uint64 epoch || 8 bytes of the commit's SHA-256, value the commit
// (MLSMessage) exactly as received.
const bucketHandshake = "handshake"

// handshakeKey is the log key of a commit of the given epoch.
func handshakeKey(groupID []byte, epoch uint64, data []byte) []byte {
	h := sha256.Sum256(data)
	k := binary.BigEndian.AppendUint64(groupKey(groupID), epoch)
	return append(k, h[:8]...)
}

// logHandshakeLocked adds a handshake message of the given epoch to the
// handshake log (in tx if given): a commit the tracker applied, or a
// PublicMessage proposal cached in a held state of its epoch (a commit that
// references it cannot be applied without it). It drops the entries of both
// logs older than handshakeRetention epochs below epoch.
func (g *Group) logHandshakeLocked(tx Tx, epoch uint64, data []byte) {
	if g.groupID == nil {
		return
	}
	write := func(tx Tx) error {
		prefix := groupKey(g.groupID)
		key := handshakeKey(g.groupID, epoch, data)
		if tx.Get(bucketHandshake, key) != nil {
			return nil
		}
		if err := tx.Put(bucketHandshake, key, data); err != nil {
			return err
		}
		keep := g.n.cfg.handshakeRetention
		if epoch < keep {
			return nil
		}
		if _, err := pruneLogBelow(tx, bucketHandshake, prefix, epoch-keep); err != nil {
			return err
		}
		// The application log keeps the same epochs.
		n, err := pruneLogBelow(tx, bucketAppLog, prefix, epoch-keep)
		if err == nil && g.appLogLen >= 0 {
			g.appLogLen = max(g.appLogLen-n, 0)
		}
		return err
	}
	var err error
	if tx != nil {
		err = write(tx)
	} else {
		err = g.n.store.Update(write)
	}
	if err != nil {
		g.n.log.Warn("handshake log", "group", g.topicID, "err", err)
	}
}

// logCommitLocked adds a commit the tracker applied to the handshake log.
func (g *Group) logCommitLocked(c commitorder.Commit) { g.logHandshakeLocked(nil, c.Epoch, c.Bytes) }

// syncRequest asks for the logged commits of a group from an epoch on,
// and for its logged application messages from an epoch on, except those
// the asker lists as held:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 4;
//	    opaque group_id<1..255>;
//	    uint64 since_epoch;        // handshake log (commits, proposals) from here
//	    uint64 messages_since;     // application messages from this epoch on
//	    opaque state[32];          // the asker's current StateID
//	    opaque have<0..2^16-1>;    // 8-byte hash prefixes, ascending, ≤ 2048
//	} SyncRequest;
type syncRequest struct {
	GroupID []byte
	// Since is the epoch from which commits and proposals are asked for.
	Since uint64
	// MessagesSince is the epoch from which application messages are
	// asked for.
	MessagesSince uint64
	// State is the asker's current state: a server in the same state
	// leaves out its GroupInfo (nothing to resync to).
	State commitorder.StateID
	// Have lists the first 8 bytes of the SHA-256 of log entries the
	// asker holds (or cannot use), strictly ascending, at most
	// maxSyncHave: the server does not send them.
	Have []logHash
}

func (r *syncRequest) marshal() []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte{'m', 'c', 1, syncRequestType})
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.GroupID) })
	b.AddUint64(r.Since)
	b.AddUint64(r.MessagesSince)
	b.AddBytes(r.State[:])
	b.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, h := range r.Have {
			c.AddBytes(h[:])
		}
	})
	return b.BytesOrPanic()
}

func parseSyncRequest(data []byte) (*syncRequest, error) {
	s := cryptobyte.String(data)
	var head []byte
	var id, have cryptobyte.String
	r := new(syncRequest)
	if !s.ReadBytes(&head, 4) || !bytes.Equal(head, []byte{'m', 'c', 1, syncRequestType}) ||
		!s.ReadUint8LengthPrefixed(&id) || len(id) == 0 || !s.ReadUint64(&r.Since) ||
		!s.ReadUint64(&r.MessagesSince) || !s.CopyBytes(r.State[:]) ||
		!s.ReadUint16LengthPrefixed(&have) || !s.Empty() {
		return nil, errors.New("sync request: malformed")
	}
	if len(have)%len(logHash{}) != 0 || len(have) > maxSyncHave*len(logHash{}) {
		return nil, errors.New("sync request: malformed hash list")
	}
	r.Have = make([]logHash, 0, len(have)/len(logHash{}))
	for !have.Empty() {
		var h logHash
		if !have.CopyBytes(h[:]) {
			return nil, errors.New("sync request: malformed hash list")
		}
		if n := len(r.Have); n > 0 && bytes.Compare(r.Have[n-1][:], h[:]) >= 0 {
			return nil, errors.New("sync request: hash list not strictly ascending")
		}
		r.Have = append(r.Have, h)
	}
	r.GroupID = bytes.Clone(id)
	return r, nil
}

// syncResponse lists the logged commits and application messages the
// asker lacks (see readSyncLog for the order and the bounds), and the
// server's current state, for a resync by external commit:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 5;
//	    uint64 epoch;                // the server's current epoch
//	    opaque state[32];            // its StateID
//	    opaque group_info<0..2^24-1>;// its GroupInfo (RFC 9420 §12.4.3), with the tree;
//	                                 // empty if the asker is in the same state
//	    opaque entries<0..2^32-1>;   // each: opaque message<1..2^24-1>
//	} SyncResponse;
type syncResponse struct {
	Epoch     uint64
	State     commitorder.StateID
	GroupInfo []byte
	// Entries are MLSMessages from the logs: PublicMessage commits and
	// proposals, PrivateMessage application messages.
	Entries [][]byte
}

func (r *syncResponse) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddBytes([]byte{'m', 'c', 1, syncResponseType})
	b.AddUint64(r.Epoch)
	b.AddBytes(r.State[:])
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.GroupInfo) })
	b.AddUint32LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, m := range r.Entries {
			c.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(m) })
		}
	})
	return b.Bytes()
}

func parseSyncResponse(data []byte) (*syncResponse, error) {
	s := cryptobyte.String(data)
	var head []byte
	var gi, list cryptobyte.String
	r := new(syncResponse)
	if !s.ReadBytes(&head, 4) || !bytes.Equal(head, []byte{'m', 'c', 1, syncResponseType}) ||
		!s.ReadUint64(&r.Epoch) || !s.CopyBytes(r.State[:]) || !s.ReadUint24LengthPrefixed(&gi) ||
		!readUint32Prefixed(&s, &list) || !s.Empty() {
		return nil, errors.New("sync response: malformed")
	}
	r.GroupInfo = bytes.Clone(gi)
	for !list.Empty() {
		var m cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&m) || len(m) == 0 || len(r.Entries) >= maxSyncCommits {
			return nil, errors.New("sync response: malformed entry list")
		}
		r.Entries = append(r.Entries, bytes.Clone(m))
	}
	return r, nil
}

// handleSyncStream serves syncProtocol to members of the group asked for.
func (n *Node) handleSyncStream(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncStreamTimeout))
	data, err := io.ReadAll(io.LimitReader(s, maxSyncRequest+1))
	if err != nil || len(data) > maxSyncRequest {
		s.Reset()
		return
	}
	if isBranchRequest(data) {
		n.serveBranch(s, data)
		return
	}
	req, err := parseSyncRequest(data)
	if err != nil {
		s.Reset()
		return
	}
	var g *Group
	for _, c := range n.Groups() {
		if bytes.Equal(c.ID(), req.GroupID) {
			g = c
		}
	}
	if g == nil || g.testHoldPublish.Load() {
		// (A node whose publishing a test holds back stands for one cut
		// off from the group: it serves nothing either.)
		s.Reset()
		return
	}
	g.mu.Lock()
	_, member := g.memberLeafLocked(s.Conn().RemotePeer())
	groupID := g.groupID
	resp := &syncResponse{}
	if member {
		resp.Epoch, resp.State = g.state.Epoch(), g.stateID
		if req.State != g.stateID {
			resp.GroupInfo, err = g.groupInfoLocked()
		}
	}
	g.mu.Unlock()
	if !member || err != nil {
		s.Reset()
		return
	}
	err = n.store.View(func(tx Tx) error {
		entries, err := readSyncLog(tx, groupID, req)
		resp.Entries = entries
		return err
	})
	if err != nil {
		s.Reset()
		return
	}
	enc, err := resp.marshal()
	if err != nil {
		s.Reset()
		return
	}
	_, _ = s.Write(enc)
}

// errStopIteration ends a ForEach early.
var errStopIteration = errors.New("stop")

// requestSync sends req to peer p and reads the response.
func (g *Group) requestSync(ctx context.Context, p peer.ID, req *syncRequest) (*syncResponse, error) {
	data, err := g.exchange(ctx, p, req.marshal())
	if err != nil {
		return nil, err
	}
	return parseSyncResponse(data)
}

// exchange sends one request to peer p on syncProtocol and reads the
// response, at most maxSyncResponse bytes, within syncStreamTimeout.
func (g *Group) exchange(ctx context.Context, p peer.ID, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, syncStreamTimeout)
	defer cancel()
	s, err := g.n.host.NewStream(ctx, p, syncProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncStreamTimeout))
	if _, err := s.Write(req); err != nil {
		s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(s, maxSyncResponse+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSyncResponse {
		return nil, errors.New("sync protocol response too large")
	}
	return data, nil
}

// syncMode says whom a sync asks.
type syncMode int

const (
	// syncAll asks connected members one after the other, at most
	// maxSyncAsk of them, until one serves what the node lacked (a sync
	// is due: start, a missing commit, a member back on the topic).
	syncAll syncMode = iota
	// syncOne asks one connected member (anti-entropy: the periodic ask,
	// a member joining the topic; the same member again after it served
	// something).
	syncOne
)

const (
	// maxSyncAsk bounds the members one syncAll round asks.
	maxSyncAsk = 3
)

// syncStats counts a group's syncs, for tests and debugging.
type syncStats struct {
	rounds   [2]int // rounds started, by syncMode
	requests int    // sync requests sent
}

// groupInfoLocked returns the GroupInfo of the current state (RFC 9420
// §12.4.3), ratchet tree included, signed once per state: sync and branch
// responses after a partition heals would otherwise sign one per request.
func (g *Group) groupInfoLocked() ([]byte, error) {
	if g.groupInfo.state == g.stateID && g.groupInfo.data != nil {
		return g.groupInfo.data, nil
	}
	gi, err := g.state.GroupInfo(nil)
	if err != nil {
		return nil, err
	}
	g.groupInfo.state, g.groupInfo.data = g.stateID, gi
	return gi, nil
}

// syncNow asks connected members for what the node lacks: commits and
// proposals since the tracker's SyncFrom and application messages of the
// epochs it can still open, listing what it holds. prefer, if connected,
// is asked first; otherwise the members are taken in turn. syncOne asks one
// member, syncAll at most maxSyncAsk. Served entries go through the
// tracker and the receive path, in the order served, exactly like messages
// from the topic. It stops at the first member whose answer moved the
// state or opened a message (and marks that member to be asked again, for
// the rest), and reports whether some member answered.
func (g *Group) syncNow(ctx context.Context, mode syncMode, prefer peer.ID) bool {
	g.mu.Lock()
	if g.state == nil || g.removed || g.tracker == nil {
		g.mu.Unlock()
		return false
	}
	epoch := g.state.Epoch()
	req := &syncRequest{
		GroupID:       g.groupID,
		Since:         g.tracker.SyncFrom(),
		MessagesSince: epoch - min(epoch, retainedEpochs),
		State:         g.stateID,
	}
	for h, e := range g.unusable {
		if e < req.MessagesSince {
			delete(g.unusable, h)
		}
	}
	for h, e := range g.unusableHandshake {
		if e < req.Since {
			delete(g.unusableHandshake, h)
		}
	}
	extra := maps.Clone(g.unusable)
	extraHandshake := maps.Clone(g.unusableHandshake)
	var peers []peer.ID
	for _, m := range g.state.Members() {
		id, err := peer.IDFromBytes(m.Identity)
		if err != nil || id == g.n.id {
			continue
		}
		peers = append(peers, id)
	}
	turn := g.syncTurn
	g.syncTurn++
	g.syncStats.rounds[mode]++
	g.mu.Unlock()
	peers = slices.DeleteFunc(peers, func(p peer.ID) bool {
		return g.n.host.Network().Connectedness(p) != network.Connected
	})
	if len(peers) == 0 {
		return false
	}
	k := turn % len(peers)
	peers = append(peers[k:], peers[:k]...)
	if i := slices.Index(peers, prefer); i > 0 {
		peers = append([]peer.ID{prefer}, slices.Delete(peers, i, i+1)...)
	}
	if mode == syncOne {
		peers = peers[:1]
	} else if len(peers) > maxSyncAsk {
		peers = peers[:maxSyncAsk]
	}
	err := g.n.store.View(func(tx Tx) error {
		var err error
		req.Have, req.MessagesSince, err = haveList(tx, req.GroupID, req.Since, req.MessagesSince, extraHandshake, extra)
		return err
	})
	if err != nil {
		g.n.log.Warn("sync: read logs", "group", g.topicID, "err", err)
		return false
	}
	answered := false
	for _, p := range peers {
		g.mu.Lock()
		g.syncStats.requests++
		g.mu.Unlock()
		resp, err := g.requestSync(ctx, p, req)
		if err != nil {
			g.n.log.Debug("sync", "group", g.topicID, "peer", p, "err", err)
			continue
		}
		answered = true
		before := g.EpochAuthenticator()
		ours := g.Epoch()
		reaches := false // the log holds a commit made in our epoch
		commits, proposals, opened := 0, 0, 0
		for _, m := range resp.Entries {
			h, err := peekMessage(m)
			if err != nil {
				continue
			}
			switch {
			case h.WireFormat == wireFormatPublicMessage && h.ContentType == contentTypeCommit:
				commits++
				if h.Epoch <= ours {
					reaches = true
				}
			case h.WireFormat == wireFormatPublicMessage && h.ContentType == contentTypeProposal:
				proposals++
			case h.WireFormat == wireFormatPrivateMessage && h.ContentType == contentTypeApplication:
			default:
				continue // the logs hold nothing else
			}
			opened += g.processServed(m)
		}
		g.n.log.Debug("synced", "group", g.topicID, "peer", p, "since", req.Since, "messages_since", req.MessagesSince,
			"have", len(req.Have), "entries", len(resp.Entries), "commits", commits, "proposals", proposals,
			"opened", opened, "epoch", g.Epoch())
		g.mu.Lock()
		searching := g.late.running
		g.mu.Unlock()
		if !reaches && !searching && resp.Epoch > ours+g.n.cfg.handshakeRetention && g.Epoch() == ours && len(resp.GroupInfo) > 0 {
			// The log does not reach back to our epoch (retention: the
			// peer is further ahead than its log keeps, and it served
			// no commit made in our epoch or before): rejoin at the
			// peer's state. A peer that is not that far ahead may just
			// have left out the commits we listed as held (our branch,
			// lost ones, orphans); and while a late winner's branch is
			// searched for, that search rejoins, with the right
			// RejoinSince.
			if err := g.resync(ctx, p, req.GroupID, resp); err != nil {
				g.n.log.Warn("resync", "group", g.topicID, "peer", p, "err", err)
				continue
			}
		}
		if !bytes.Equal(before, g.EpochAuthenticator()) || opened > 0 {
			// Moved, or brought messages: ask the same member again (that
			// member only), the logs may be longer than one response.
			g.mu.Lock()
			g.syncMore = p
			g.mu.Unlock()
			break
		}
	}
	return answered
}

// processServed processes one entry of a sync response like a message from
// the topic and reports whether it was an application message that opened
// (not one this node already had).
func (g *Group) processServed(data []byte) int {
	g.mu.Lock()
	if g.groupID == nil {
		g.mu.Unlock()
		return 0
	}
	h := hashOf(g.groupID, data)
	g.serving[h] = false
	g.mu.Unlock()
	g.onGroupMessage(data)
	g.mu.Lock()
	defer g.mu.Unlock()
	opened := g.serving[h]
	delete(g.serving, h)
	if opened {
		return 1
	}
	return 0
}

// syncIfDue starts syncNow in the background, at most one at a time and
// at most one start per syncRetry, so that housekeeping never waits on a
// peer. In order of precedence: the member whose last answer moved the
// state or opened a message, asked again alone; a syncAll round when a
// sync is due (after start, on NeedSync, a member back on the topic); one
// member that just joined the topic; or, every Config.SyncInterval, the
// next connected member.
func (g *Group) syncIfDue(ctx context.Context, now time.Time) {
	g.mu.Lock()
	if g.syncing || now.Sub(g.lastSync) < syncRetry {
		g.mu.Unlock()
		return
	}
	mode, prefer, due := syncAll, peer.ID(""), false
	switch {
	case g.syncMore != "":
		due, mode, prefer = true, syncOne, g.syncMore
		g.syncMore = ""
	case g.syncDue:
		due = true
		g.syncDue = false
	case len(g.syncJoined) > 0:
		for p := range g.syncJoined {
			prefer = p
			break
		}
		delete(g.syncJoined, prefer)
		due, mode = true, syncOne
	case g.n.cfg.SyncInterval > 0 && now.Sub(g.lastSync) >= g.n.cfg.SyncInterval:
		due, mode = true, syncOne
	}
	if due {
		g.syncing = true
		g.lastSync = now
	}
	g.mu.Unlock()
	if !due {
		return
	}
	started := g.n.spawn(func() {
		ok := g.syncNow(ctx, mode, prefer)
		g.mu.Lock()
		g.syncing = false
		if !ok && mode == syncAll {
			g.syncDue = true // nobody answered: try again
		}
		g.mu.Unlock()
	})
	if !started {
		g.mu.Lock()
		g.syncing = false
		g.mu.Unlock()
	}
}

// watchTopic is the group's loop that notes members (re)appearing on the
// topic, to be asked for what they may hold that this node missed: a
// message published while GossipSub did not know a subscription (a member
// that just restarted or reconnected) reached nobody there.
func (g *Group) watchTopic() {
	for {
		p, err := g.topic.NextPeerJoin(g.ctx)
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.state != nil && !g.removed && len(g.syncJoined) < maxSyncJoined {
			if _, member := g.memberLeafLocked(p); member {
				g.syncJoined[p] = struct{}{}
			}
		}
		g.mu.Unlock()
		g.wake()
	}
}

// resync rejoins the group at the state member p served, by an external
// commit that removes this member's old leaf (RFC 9420 §12.4.3.2, resync),
// when the handshake log could not bring it there. It asks p for its
// branch first, so that the tracker tells a branch that extends ours (we
// fell behind the logs) from one that beat ours at a fork (we are on a
// losing branch: a late winner); without the branch, RejoinSince is our
// current state (see rejoin).
func (g *Group) resync(ctx context.Context, p peer.ID, groupID []byte, resp *syncResponse) error {
	if br, err := g.requestBranch(ctx, p, groupID); err == nil {
		_, err = g.rejoin(ctx, br.GroupInfo, br.State, br.Epoch, br.Path)
		return err
	}
	_, err := g.rejoin(ctx, resp.GroupInfo, resp.State, resp.Epoch, nil)
	return err
}
