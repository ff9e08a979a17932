package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
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
	// maxSyncCommits bounds the commits of one sync response.
	maxSyncCommits = 256
	// maxSyncResponse bounds the bytes of one sync response.
	maxSyncResponse = 4 << 20
	// maxSyncRequest bounds the bytes of one sync request.
	maxSyncRequest = 512
	// syncStreamTimeout is the deadline of one sync exchange.
	syncStreamTimeout = 10 * time.Second
	// syncRetry is how long a node waits between sync attempts while one
	// is due.
	syncRetry = time.Second

	syncRequestType  = 4
	syncResponseType = 5
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

// logCommitLocked adds a commit the tracker applied to the handshake log and
// drops entries older than handshakeRetention epochs.
func (g *Group) logCommitLocked(c commitorder.Commit) {
	prefix := groupKey(g.groupID)
	err := g.n.store.Update(func(tx Tx) error {
		if err := tx.Put(bucketHandshake, handshakeKey(g.groupID, c.Epoch, c.Bytes), c.Bytes); err != nil {
			return err
		}
		keep := g.n.cfg.handshakeRetention
		if c.Epoch < keep {
			return nil
		}
		limit := binary.BigEndian.AppendUint64(bytes.Clone(prefix), c.Epoch-keep)
		var old [][]byte
		if err := tx.ForEach(bucketHandshake, prefix, func(k, _ []byte) error {
			if bytes.Compare(k, limit) < 0 {
				old = append(old, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := tx.Delete(bucketHandshake, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		g.n.log.Warn("handshake log", "group", g.topicID, "err", err)
	}
}

// syncRequest asks for the logged commits of a group from an epoch on:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 4;
//	    opaque group_id<1..255>;
//	    uint64 since_epoch;
//	} SyncRequest;
type syncRequest struct {
	GroupID []byte
	Since   uint64
}

func (r *syncRequest) marshal() []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte{'m', 'c', 1, syncRequestType})
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.GroupID) })
	b.AddUint64(r.Since)
	return b.BytesOrPanic()
}

func parseSyncRequest(data []byte) (*syncRequest, error) {
	s := cryptobyte.String(data)
	var head []byte
	var id cryptobyte.String
	r := new(syncRequest)
	if !s.ReadBytes(&head, 4) || !bytes.Equal(head, []byte{'m', 'c', 1, syncRequestType}) ||
		!s.ReadUint8LengthPrefixed(&id) || len(id) == 0 || !s.ReadUint64(&r.Since) || !s.Empty() {
		return nil, errors.New("sync request: malformed")
	}
	r.GroupID = bytes.Clone(id)
	return r, nil
}

// syncResponse lists the logged commits from since_epoch on, in epoch
// order, at most maxSyncCommits and maxSyncResponse bytes, and the server's
// current state, for a resync by external commit:
//
//	struct {
//	    opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 5;
//	    uint64 epoch;                // the server's current epoch
//	    opaque state[32];            // its StateID
//	    opaque group_info<0..2^24-1>;// its GroupInfo (RFC 9420 §12.4.3), with the tree
//	    opaque commits<0..2^32-1>;   // each: opaque commit<1..2^24-1>
//	} SyncResponse;
type syncResponse struct {
	Epoch     uint64
	State     commitorder.StateID
	GroupInfo []byte
	Commits   [][]byte
}

func (r *syncResponse) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddBytes([]byte{'m', 'c', 1, syncResponseType})
	b.AddUint64(r.Epoch)
	b.AddBytes(r.State[:])
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.GroupInfo) })
	b.AddUint32LengthPrefixed(func(c *cryptobyte.Builder) {
		for _, m := range r.Commits {
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
		if !list.ReadUint24LengthPrefixed(&m) || len(m) == 0 || len(r.Commits) >= maxSyncCommits {
			return nil, errors.New("sync response: malformed commit list")
		}
		r.Commits = append(r.Commits, bytes.Clone(m))
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
	if g == nil {
		s.Reset()
		return
	}
	g.mu.Lock()
	_, member := g.memberLeafLocked(s.Conn().RemotePeer())
	groupID := g.groupID
	resp := &syncResponse{}
	if member {
		resp.Epoch, resp.State = g.state.Epoch(), g.stateID
		resp.GroupInfo, err = g.state.GroupInfo(nil)
	}
	g.mu.Unlock()
	if !member || err != nil {
		s.Reset()
		return
	}
	prefix := groupKey(groupID)
	from := binary.BigEndian.AppendUint64(bytes.Clone(prefix), req.Since)
	var commits [][]byte
	size := 0
	err = n.store.View(func(tx Tx) error {
		return tx.ForEach(bucketHandshake, prefix, func(k, v []byte) error {
			if bytes.Compare(k, from) < 0 {
				return nil
			}
			if len(commits) >= maxSyncCommits || size+len(v)+3 > maxSyncResponse/2 {
				return errStopIteration
			}
			commits = append(commits, bytes.Clone(v))
			size += len(v) + 3
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStopIteration) {
		s.Reset()
		return
	}
	resp.Commits = commits
	enc, err := resp.marshal()
	if err != nil {
		s.Reset()
		return
	}
	_, _ = s.Write(enc)
}

// errStopIteration ends a ForEach early.
var errStopIteration = errors.New("stop")

// requestSync asks peer p for the commits of the group groupID since epoch.
func (g *Group) requestSync(ctx context.Context, p peer.ID, groupID []byte, since uint64) (*syncResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, syncStreamTimeout)
	defer cancel()
	s, err := g.n.host.NewStream(ctx, p, syncProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncStreamTimeout))
	if _, err := s.Write((&syncRequest{GroupID: groupID, Since: since}).marshal()); err != nil {
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
		return nil, errors.New("sync response too large")
	}
	return parseSyncResponse(data)
}

// syncNow asks connected members, one after the other, for the commits
// since the tracker's SyncFrom and processes them in epoch order through the
// tracker, until a peer served something that moved the state or every
// connected member was asked. It reports whether some member answered.
func (g *Group) syncNow(ctx context.Context) bool {
	g.mu.Lock()
	if g.state == nil || g.removed || g.tracker == nil {
		g.mu.Unlock()
		return false
	}
	since, groupID := g.tracker.SyncFrom(), g.groupID
	var peers []peer.ID
	for _, m := range g.state.Members() {
		id, err := peer.IDFromBytes(m.Identity)
		if err != nil || id == g.n.id {
			continue
		}
		peers = append(peers, id)
	}
	g.mu.Unlock()
	peers = slices.DeleteFunc(peers, func(p peer.ID) bool {
		return g.n.host.Network().Connectedness(p) != network.Connected
	})
	answered := false
	for _, p := range peers {
		resp, err := g.requestSync(ctx, p, groupID, since)
		if err != nil {
			g.n.log.Debug("sync", "group", g.topicID, "peer", p, "err", err)
			continue
		}
		answered = true
		before := g.EpochAuthenticator()
		ours := g.Epoch()
		reaches := false // the log holds a commit made in our epoch
		for _, c := range resp.Commits {
			if h, err := peekMessage(c); err == nil && h.Epoch <= ours {
				reaches = true
			}
			g.onGroupMessage(c)
		}
		g.n.log.Debug("synced", "group", g.topicID, "peer", p, "since", since, "commits", len(resp.Commits), "epoch", g.Epoch())
		if !reaches && ours < resp.Epoch && g.Epoch() == ours && len(resp.GroupInfo) > 0 {
			// The log does not reach back to our epoch (retention):
			// rejoin at the peer's state.
			if err := g.resync(ctx, resp); err != nil {
				g.n.log.Warn("resync", "group", g.topicID, "peer", p, "err", err)
				continue
			}
		}
		if !bytes.Equal(before, g.EpochAuthenticator()) {
			// Moved: ask again from the new state, the log may be longer
			// than one response.
			g.mu.Lock()
			g.syncDue = true
			g.mu.Unlock()
			break
		}
	}
	return answered
}

// syncIfDue starts syncNow in the background when a sync is due (after
// start, on NeedSync), at most one at a time and once per syncRetry, so that
// housekeeping never waits on a peer.
func (g *Group) syncIfDue(ctx context.Context, now time.Time) {
	g.mu.Lock()
	due := g.syncDue && !g.syncing && now.Sub(g.lastSync) >= syncRetry
	if due {
		g.syncDue = false
		g.syncing = true
		g.lastSync = now
	}
	g.mu.Unlock()
	if !due {
		return
	}
	started := g.n.spawn(func() {
		ok := g.syncNow(ctx)
		g.mu.Lock()
		g.syncing = false
		if !ok {
			g.syncDue = true
		}
		g.mu.Unlock()
	})
	if !started {
		g.mu.Lock()
		g.syncing = false
		g.mu.Unlock()
	}
}

// resync rejoins the group at the state a member served, by an external
// commit that removes this member's old leaf (RFC 9420 §12.4.3.2, resync),
// when the handshake log could not bring it there (see rejoin: RejoinSince
// is our current state, so the members re-send what they sent since).
func (g *Group) resync(ctx context.Context, resp *syncResponse) error {
	_, err := g.rejoin(ctx, resp.GroupInfo, resp.State, resp.Epoch, nil)
	return err
}
