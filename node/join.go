package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/meshchat/meshchat/dht"
	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/mls"
)

// welcomeProtocol is the libp2p stream protocol on which a member hands a
// Welcome straight to a peer it added: the member writes the MLSMessage and
// closes its side; the peer answers one byte, 1 if it is now in the group, 0
// if not.
const welcomeProtocol = protocol.ID("/meshchat/welcome/1.0.0")

// welcomeStreamTimeout bounds one direct Welcome exchange.
const welcomeStreamTimeout = 20 * time.Second

// errWelcomeNotForUs reports a Welcome for none of this node's KeyPackages.
var errWelcomeNotForUs = errors.New("node: Welcome is not for this node")

// pendingJoin is the state of a Join by topic ID until a Welcome arrives.
type pendingJoin struct {
	request  []byte // the join request envelope
	lastSent time.Time
}

// Join joins a group by its topic ID, or by an invite code (topic ID plus
// invite secret) for an invite-only group. It subscribes to the topic,
// announces a join request carrying a fresh KeyPackage (and the invite
// proof), repeated every Config.JoinRetry, and returns once a member has
// admitted this node and its Welcome has been processed, or when ctx ends.
// If ctx ends first, the KeyPackage's private part is kept, so a Welcome
// that arrives later through the mailbox still lets the node in (it is then
// announced on NewGroups).
func (n *Node) Join(ctx context.Context, code string) (*Group, error) {
	jc, err := parseJoinCode(code)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	n.mu.Lock()
	existing := n.groups[jc.Topic]
	n.mu.Unlock()
	if existing != nil {
		if existing.joinedYet() && !existing.Removed() {
			return existing, nil
		}
		if !existing.joinedYet() {
			return n.waitJoined(ctx, existing)
		}
		// Removed earlier: join anew.
		n.forgetGroup(existing)
	}
	kp, err := n.newJoinKeyPackage()
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	req := &joinRequest{Topic: jc.Topic, KeyPackage: kp.priv.KeyPackage().Bytes()}
	if jc.Invite {
		req.Invite = &inviteProof{ID: jc.ID, MAC: inviteMAC(jc.Key[:], jc.Topic, kp.ref)}
	}
	enc, err := req.marshal()
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	g := n.newGroupHandle(jc.Topic)
	g.join = &pendingJoin{request: enc}
	if err := n.openGroup(g); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	g.wake()
	n.log.Info("joining group", "topic", jc.Topic, "invite", jc.Invite)
	return n.waitJoined(ctx, g)
}

// waitJoined waits until the pending group g is joined; if ctx ends first, it
// gives up on g.
func (n *Node) waitJoined(ctx context.Context, g *Group) (*Group, error) {
	select {
	case <-g.joined:
		return g, nil
	case <-ctx.Done():
		if !g.joinedYet() {
			n.forgetGroup(g)
		}
		return nil, fmt.Errorf("join %s: %w", g.topicID, ctx.Err())
	case <-n.ctx.Done():
		return nil, ErrClosed
	}
}

// forgetGroup stops g and removes it from the node's groups.
func (n *Node) forgetGroup(g *Group) {
	g.stop()
	n.mu.Lock()
	if n.groups[g.topicID] == g {
		delete(n.groups, g.topicID)
	}
	n.mu.Unlock()
}

// announceJoin publishes the join request when there is someone to hear it
// and the last one is older than JoinRetry.
func (g *Group) announceJoin(ctx context.Context, now time.Time) {
	g.mu.Lock()
	j := g.join
	if j == nil || (!j.lastSent.IsZero() && now.Sub(j.lastSent) < g.n.cfg.JoinRetry) {
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	if len(g.topic.Peers()) == 0 {
		return
	}
	if err := g.publish(ctx, j.request); err != nil {
		g.n.log.Debug("publish join request", "group", g.topicID, "err", err)
		return
	}
	g.mu.Lock()
	j.lastSent = now
	g.mu.Unlock()
}

// acceptWelcome processes a Welcome that arrived on a topic, directly or from
// the mailbox: if it is for one of this node's KeyPackages, the node joins
// the group (RFC 9420 §12.4.3.1), persists it, consumes the KeyPackage and
// subscribes to the group's topic. A Welcome for a group the node is already
// in is ignored. via names the path, for logs.
func (n *Node) acceptWelcome(data []byte, via string) (*Group, error) {
	hash := sha256.Sum256(data)
	n.welcomeMu.Lock()
	topic, seen := n.welcomes[hash]
	n.welcomeMu.Unlock()
	if seen {
		// The same Welcome came another way (topic, direct, mailbox).
		if g, ok := n.Group(topic); ok && topic != "" {
			return g, nil
		}
		return nil, errWelcomeNotForUs
	}
	refs, err := mls.WelcomeKeyPackageRefs(data)
	if err != nil {
		return nil, fmt.Errorf("welcome: %w", err)
	}
	mine := n.matchKeyPackages(refs)
	if len(mine) == 0 {
		return nil, errWelcomeNotForUs
	}
	n.welcomeMu.Lock()
	defer n.welcomeMu.Unlock()
	if n.isClosed() {
		return nil, ErrClosed
	}
	if topic, seen := n.welcomes[hash]; seen {
		if g, ok := n.Group(topic); ok && topic != "" {
			return g, nil
		}
		return nil, errWelcomeNotForUs
	}
	if len(n.welcomes) > 4096 {
		clear(n.welcomes)
	}
	n.welcomes[hash] = ""
	// The KeyPackages may have been consumed while we waited for the lock.
	mine = n.matchKeyPackages(refs)
	if len(mine) == 0 {
		return nil, errWelcomeNotForUs
	}
	privs := make([]*mls.PrivateKeyPackage, len(mine))
	for i, kp := range mine {
		privs[i] = kp.priv
	}
	st, err := mls.Join(data, privs, n.mlsCfg, nil)
	if err != nil {
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if _, err := groupMetaOf(st); err != nil {
		return nil, fmt.Errorf("welcome: not a meshchat group: %w", err)
	}
	if len(st.ID()) == 0 || len(st.ID()) > 255 {
		return nil, fmt.Errorf("welcome: group ID of %d bytes", len(st.ID()))
	}
	topic = gossip.TopicIDForGroup(st.ID())
	n.welcomes[hash] = topic
	n.mu.Lock()
	existing := n.groups[topic]
	n.mu.Unlock()
	switch {
	case existing != nil && existing.joinedYet() && !existing.Removed():
		// Already in: the Welcome came a second way, or is stale.
		n.consumeKeyPackages(mine)
		return existing, nil
	case existing != nil && existing.joinedYet():
		// Removed before, added again.
		n.forgetGroup(existing)
		existing = nil
	}
	g := existing
	if g == nil {
		g = n.newGroupHandle(topic)
	}
	g.mu.Lock()
	g.rec = groupRecord{NextSeq: 1, LastRotation: time.Now()}
	g.groupID = st.ID()
	err = g.loadIndexesLocked()
	if err == nil {
		err = g.persistLocked(st, nil)
	}
	if err != nil {
		g.mu.Unlock()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	g.join = nil
	g.setStateLocked(st)
	g.mu.Unlock()
	n.consumeKeyPackages(mine)
	if existing == nil {
		if err := n.openGroup(g); err != nil {
			return nil, fmt.Errorf("welcome: %w", err)
		}
		select {
		case n.newGroups <- g:
		default:
		}
	}
	n.log.Info("joined group", "topic", topic, "epoch", st.Epoch(), "via", via)
	if existing != nil {
		existing.retryBuffered()
	}
	return g, nil
}

// handleWelcomeStream serves welcomeProtocol.
func (n *Node) handleWelcomeStream(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(welcomeStreamTimeout))
	data, err := io.ReadAll(io.LimitReader(s, dht.MaxMailboxSize+1))
	if err != nil || len(data) > dht.MaxMailboxSize {
		s.Reset()
		return
	}
	g, err := n.acceptWelcome(data, "direct")
	ok := byte(0)
	if err == nil && g != nil {
		ok = 1
	} else if err != nil {
		n.log.Debug("direct Welcome", "from", s.Conn().RemotePeer(), "err", err)
	}
	_, _ = s.Write([]byte{ok})
}

// sendWelcomeDirect hands a Welcome to peer p over welcomeProtocol, if p can
// be reached.
func (n *Node) sendWelcomeDirect(ctx context.Context, p peer.ID, welcome []byte) error {
	ctx, cancel := context.WithTimeout(ctx, welcomeStreamTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, welcomeProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(welcomeStreamTimeout))
	if _, err := s.Write(welcome); err != nil {
		s.Reset()
		return err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return err
	}
	var ack [1]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return err
	}
	if !bytes.Equal(ack[:], []byte{1}) {
		return fmt.Errorf("peer %s did not join", p)
	}
	return nil
}
