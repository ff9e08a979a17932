package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/mls"
)

// MaxMessageSize is the largest application payload Send accepts.
const MaxMessageSize = 256 << 10

// Limits of a group's in-memory bookkeeping.
const (
	maxFutureMessages  = 512              // messages of the next epoch kept until its commit
	futureMessageTTL   = 30 * time.Second // how long they are kept
	maxValidated       = 32               // commits verified by the validator, kept for the receive loop
	addedRefsRetention = time.Hour        // how long KeyPackageRefs seen in Add proposals are remembered
)

// Message is one application message of a group, as delivered on
// Group.Messages and kept in Group.History.
type Message struct {
	// Group is the topic ID of the group.
	Group gossip.TopicID
	// ID is the sender's random message ID, carried in the MLS
	// authenticated_data; copies with the same sender and ID are delivered
	// once.
	ID commitorder.MessageID
	// Sender is the peer that sent the message, taken from the MLS
	// credential of the leaf that signed it (RFC 9420 §6.1, §5.3.1), never
	// from the payload.
	Sender peer.ID
	// SenderLeaf is the sender's leaf index in Epoch.
	SenderLeaf uint32
	// Epoch is the MLS epoch the message was sent in.
	Epoch uint64
	// Seq counts the sender's messages in the group, from 1.
	Seq uint64
	// SentAt is the sender's clock at sending (authenticated, not
	// verified).
	SentAt time.Time
	// ReceivedAt is this node's clock at delivery (SentAt for own ones).
	ReceivedAt time.Time
	// Own marks a message this node sent (history only).
	Own bool
	// Data is the application payload.
	Data []byte
}

// Member is one member of a group.
type Member struct {
	// PeerID is the member's peer ID, its MLS credential identity.
	PeerID peer.ID
	// Leaf is the member's leaf index (RFC 9420 §4.1.1).
	Leaf uint32
	// Self marks this node.
	Self bool
}

// GroupOptions configures CreateGroup.
type GroupOptions struct {
	// Name is a label shown to members (at most 255 bytes).
	Name string
	// Policy decides who may join by topic ID (default Open).
	Policy Policy
}

// Group is this node's membership in one group: its MLS state, its topic,
// and its message stream. It is safe for concurrent use.
type Group struct {
	n       *Node
	topicID gossip.TopicID
	topic   *gossip.Topic
	ctx     context.Context
	cancel  context.CancelFunc
	joined  chan struct{} // closed once the node holds a state
	msgs    chan Message
	poke    chan struct{}

	// opMu serializes local operations that create a message and publish
	// it (sends, commits, outbox flushes), so that they leave in the order
	// they were made.
	opMu sync.Mutex

	mu          sync.Mutex // guards everything below
	state       *mls.Group
	groupID     []byte
	meta        *groupMeta
	stateID     commitorder.StateID
	rec         groupRecord // State unused; counters only
	removed     bool
	dirty       bool // state changed (keys consumed) since last persisted
	msgsClosed  bool
	overflow    uint64
	nextHistory uint64
	nextOutbox  uint64
	outboxLen   int
	inflight    map[uint64]bool // Welcome outbox entries being delivered
	dedup       *commitorder.Dedup
	validated   map[[32]byte]*validatedCommit
	own         map[[32]byte]int
	future      []futureMessage
	admissions  map[string]*admission
	addedRefs   map[string]time.Time
	join        *pendingJoin
	jitter      time.Duration
	order       map[peer.ID]*senderOrder
	tracker     *commitorder.Tracker                   // decides which commit wins each epoch
	syncDue     bool                                   // a catch-up over syncProtocol is due
	lastSync    time.Time                              // last sync attempt
	syncing     bool                                   // a sync runs
	ownCommits  map[[32]byte]*ownCommit                // own commits by hash, while their parent is held
	sentData    map[commitorder.MessageID]*sentMessage // own messages, to re-send if their branch loses
	syncMore    peer.ID                                // member to ask again (its last answer moved us), or ""
	syncStats   syncStats                              // syncs started and requests sent
	groupInfo   struct {                               // the current state's GroupInfo, signed once
		state commitorder.StateID
		data  []byte
	}
	syncJoined        map[peer.ID]struct{} // members that joined the topic, to ask (bounded)
	syncTurn          int                  // round robin of the periodic sync
	appLogLen         int                  // entries in the application log; -1 until counted
	unusable          map[logHash]uint64   // application messages received that will never be used here, by epoch (bounded)
	unusableHandshake map[logHash]uint64   // commits and proposals received that will never be used here (or wait for a parent), by epoch (bounded)
	serving           map[logHash]bool     // entries of a sync response being processed: opened?
	rotation          *pendingRotation     // own rotation wanted in by Update proposal, or nil
	late              lateResync           // rejoining a winning branch (rejoin.go)

	// testHoldPublish keeps the outbox from being published and the
	// group's log from being served by sync (tests: a crash between
	// persisting and publishing, commits released in a chosen order).
	testHoldPublish atomic.Bool
	// testDropApplication makes the receive loop drop application
	// messages from the topic (tests: a message gossip did not deliver);
	// testDropped counts them.
	testDropApplication atomic.Bool
	testDropped         atomic.Int64
}

// validatedCommit is a commit the topic validator processed, kept so the
// receive loop does not process it again.
type validatedCommit struct {
	base commitorder.StateID
	r    *mls.Received
	at   time.Time
}

// futureMessage is a message of the next epoch, waiting for its commit.
type futureMessage struct {
	data []byte
	at   time.Time
}

// newGroupHandle builds a Group around a topic without subscribing yet.
func (n *Node) newGroupHandle(topic gossip.TopicID) *Group {
	ctx, cancel := context.WithCancel(n.ctx)
	var j [8]byte
	_, _ = rand.Read(j[:])
	return &Group{
		n:                 n,
		topicID:           topic,
		ctx:               ctx,
		cancel:            cancel,
		joined:            make(chan struct{}),
		msgs:              make(chan Message, n.cfg.MessageBuffer),
		poke:              make(chan struct{}, 1),
		inflight:          make(map[uint64]bool),
		dedup:             commitorder.NewDedup(0, 0),
		validated:         make(map[[32]byte]*validatedCommit),
		own:               make(map[[32]byte]int),
		admissions:        make(map[string]*admission),
		addedRefs:         make(map[string]time.Time),
		order:             make(map[peer.ID]*senderOrder),
		ownCommits:        make(map[[32]byte]*ownCommit),
		sentData:          make(map[commitorder.MessageID]*sentMessage),
		syncJoined:        make(map[peer.ID]struct{}),
		appLogLen:         -1,
		unusable:          make(map[logHash]uint64),
		unusableHandshake: make(map[logHash]uint64),
		serving:           make(map[logHash]bool),
		// Up to a tenth of the rotation interval, so that members do not
		// all rotate at once.
		jitter: time.Duration(uint64(j[0])|uint64(j[1])<<8) * max(n.cfg.RotateInterval, 0) / 10 / 65536,
	}
}

// openGroup subscribes g to its topic (unless the node was removed from it),
// registers it under its topic ID and starts its loops. If g has a state it
// must have been persisted already. g.topic is set before g becomes visible
// to other goroutines and never changes afterwards.
func (n *Node) openGroup(g *Group) error {
	n.mu.Lock()
	_, dup := n.groups[g.topicID]
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if dup {
		return fmt.Errorf("open group %s: %w", g.topicID, ErrAlreadyMember)
	}
	if !g.Removed() {
		topic, err := n.gs.Join(g.topicID, g)
		if err != nil {
			return fmt.Errorf("open group %s: %w", g.topicID, err)
		}
		g.topic = topic
	}
	n.mu.Lock()
	if _, dup := n.groups[g.topicID]; dup || n.closed {
		n.mu.Unlock()
		if g.topic != nil {
			g.topic.Close()
		}
		if dup {
			return fmt.Errorf("open group %s: %w", g.topicID, ErrAlreadyMember)
		}
		return ErrClosed
	}
	n.groups[g.topicID] = g
	if g.topic != nil {
		n.wg.Go(g.receive)
		n.wg.Go(g.housekeeping)
		n.wg.Go(g.watchTopic)
	}
	n.mu.Unlock()
	return nil
}

// setStateLocked installs st as the group's state.
func (g *Group) setStateLocked(st *mls.Group) {
	first := g.state == nil
	g.state = st
	if first {
		g.groupID = st.ID() // never changes: readers outside the lock rely on it
	}
	g.stateID = commitorder.NewStateID(st.EpochAuthenticator())
	if g.tracker == nil || g.tracker.Current().ID() != g.stateID {
		// A state that did not come from the tracker (created, joined,
		// loaded) starts a new history.
		g.newTrackerLocked()
	}
	if meta, err := groupMetaOf(st); err == nil {
		g.meta = meta
	}
	if st.Removed() && !g.removed {
		g.removed = true
		g.closeMessagesLocked()
	}
	if first {
		close(g.joined)
	}
}

// closeMessagesLocked closes the message channel once.
func (g *Group) closeMessagesLocked() {
	if !g.msgsClosed {
		g.msgsClosed = true
		close(g.msgs)
	}
}

// loadIndexesLocked reads the next history and outbox indexes, the outbox
// length and the recent message IDs (for de-duplication) from the store.
func (g *Group) loadIndexesLocked() error {
	prefix := groupKey(g.groupID)
	now := time.Now()
	return g.n.store.View(func(tx Tx) error {
		if k := tx.Last(bucketHistory, prefix); k != nil {
			g.nextHistory = indexOf(k) + 1
		}
		if k := tx.Last(bucketOutbox, prefix); k != nil {
			g.nextOutbox = indexOf(k) + 1
		}
		g.outboxLen = 0
		if err := tx.ForEach(bucketOutbox, prefix, func(_, _ []byte) error {
			g.outboxLen++
			return nil
		}); err != nil {
			return err
		}
		return tx.ForEach(bucketHistory, prefix, func(_, v []byte) error {
			m, err := parseHistory(v)
			if err != nil {
				return nil
			}
			g.dedup.First(dedupKey(m.Sender, m.ID), now)
			g.rememberSentLocked(m, now)
			return nil
		})
	})
}

// rememberSentLocked hands an own message of the stored history, sealed in
// the current epoch, back to the commit tracker after a restart: should the
// state it was sealed in lose to a late commit, it is sealed again on the
// winning branch (commitorder rule 3) like a message sent before the
// restart never was.
func (g *Group) rememberSentLocked(m *Message, now time.Time) {
	if !m.Own || g.state == nil || g.tracker == nil || m.Epoch != g.state.Epoch() ||
		now.Sub(m.SentAt) > commitorder.DefaultRetention {
		return
	}
	g.sentData[m.ID] = &sentMessage{data: m.Data, sentAt: m.SentAt, seq: m.Seq, at: now}
	g.tracker.Sent(m.ID, now)
}

// dedupKey binds a message ID to its authenticated sender, so that one
// member cannot suppress another's message by reusing its ID.
func dedupKey(sender peer.ID, id commitorder.MessageID) commitorder.MessageID {
	h := sha256.New()
	h.Write([]byte("meshchat dedup v1"))
	h.Write([]byte{byte(len(sender))})
	h.Write([]byte(sender))
	h.Write(id[:])
	var out commitorder.MessageID
	copy(out[:], h.Sum(nil))
	return out
}

// recordLocked encodes the group record with state st.
func (g *Group) recordLocked(st *mls.Group, removed bool) ([]byte, error) {
	state, err := st.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(state)
	rec := g.rec
	rec.State = state
	rec.Removed = removed
	return rec.marshal()
}

// persistLocked stores the group record with state st (and whatever extra
// writes) in one transaction.
func (g *Group) persistLocked(st *mls.Group, extra func(Tx) error) error {
	data, err := g.recordLocked(st, g.removed || st.Removed())
	if err != nil {
		return fmt.Errorf("persist group: %w", err)
	}
	defer clear(data)
	id := st.ID()
	if err := g.n.store.Update(func(tx Tx) error {
		if err := tx.Put(bucketGroups, id, data); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("persist group: %w", err)
	}
	return nil
}

// flushState persists the state if messages opened since the last write
// consumed keys.
func (g *Group) flushState() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.dirty || g.state == nil {
		return
	}
	if err := g.persistLocked(g.state, nil); err != nil {
		g.n.log.Warn("persist group state", "group", g.topicID, "err", err)
		return
	}
	g.dirty = false
}

// stop ends the group's loops and leaves its topic (node shutdown, removal).
func (g *Group) stop() {
	g.cancel()
	if g.topic != nil {
		g.topic.Close()
	}
}

// joinedYet reports whether the node holds a state for the group.
func (g *Group) joinedYet() bool {
	select {
	case <-g.joined:
		return true
	default:
		return false
	}
}

// TopicID returns the group's topic ID, which others use to join.
func (g *Group) TopicID() gossip.TopicID { return g.topicID }

// ID returns the MLS group ID (RFC 9420 §8.1).
func (g *Group) ID() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Clone(g.groupID)
}

// Name returns the group's name.
func (g *Group) Name() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.meta == nil {
		return ""
	}
	return g.meta.Name
}

// Policy returns the group's admission policy.
func (g *Group) Policy() Policy {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.meta == nil {
		return 0
	}
	return g.meta.Policy
}

// Epoch returns the current MLS epoch (RFC 9420 §8).
func (g *Group) Epoch() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil {
		return 0
	}
	return g.state.Epoch()
}

// EpochAuthenticator returns the current epoch's authenticator (RFC 9420
// §8.7): members that see equal values share the same group state.
func (g *Group) EpochAuthenticator() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil {
		return nil
	}
	return g.state.EpochAuthenticator()
}

// Export derives a secret from the current epoch (RFC 9420 §8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil || g.removed {
		return nil, ErrNotMember
	}
	return g.state.Export(label, context, length)
}

// Removed reports whether this node was removed from the group.
func (g *Group) Removed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.removed
}

// Members lists the members of the current epoch in leaf order.
func (g *Group) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil {
		return nil
	}
	var out []Member
	for _, m := range g.state.Members() {
		id, err := peer.IDFromBytes(m.Identity)
		if err != nil {
			continue
		}
		out = append(out, Member{PeerID: id, Leaf: m.Index, Self: m.Index == g.state.LeafIndex() && !g.removed})
	}
	return out
}

// memberLeafLocked returns the leaf of the member whose identity is id.
func (g *Group) memberLeafLocked(id peer.ID) (uint32, bool) {
	for _, m := range g.state.Members() {
		if bytes.Equal(m.Identity, []byte(id)) {
			return m.Index, true
		}
	}
	return 0, false
}

// Messages returns the channel on which the group's application messages
// from other members are delivered, each once, and each sender's messages in
// the order it sent them (a message that arrives after a later one of the
// same sender is held back up to Config.ReorderWindow; see Message.Seq). It holds Config.MessageBuffer
// messages; when the application falls behind, further messages are kept in
// History only and counted by Overflow. It is closed when the node is
// removed from the group or the node closes.
func (g *Group) Messages() <-chan Message { return g.msgs }

// Overflow returns how many messages were not put on the Messages channel
// because it was full (they are in History).
func (g *Group) Overflow() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.overflow
}

// History returns up to limit most recent stored messages of the group,
// sent and received, oldest first (limit <= 0: all).
func (g *Group) History(limit int) ([]Message, error) {
	g.mu.Lock()
	prefix := groupKey(g.groupID)
	g.mu.Unlock()
	var out []Message
	err := g.n.store.View(func(tx Tx) error {
		return tx.ForEach(bucketHistory, prefix, func(_, v []byte) error {
			m, err := parseHistory(v)
			if err != nil {
				return err
			}
			m.Group = g.topicID
			out = append(out, *m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// WaitForPeers waits until at least count peers are known on the group's
// topic, bounded by ctx.
func (g *Group) WaitForPeers(ctx context.Context, count int) error {
	if g.topic == nil {
		return ErrNotMember
	}
	return g.topic.WaitForPeers(ctx, count)
}

// Peers returns the peers currently known on the group's topic.
func (g *Group) Peers() []peer.ID {
	if g.topic == nil {
		return nil
	}
	return g.topic.Peers()
}

// CreateGroup creates a group with this node as its only member, in epoch 0,
// and subscribes to its topic. The group ID is random (32 bytes), which makes
// the topic ID unguessable.
func (n *Node) CreateGroup(ctx context.Context, opts GroupOptions) (*Group, error) {
	if opts.Policy == 0 {
		opts.Policy = Open
	}
	meta := &groupMeta{Name: opts.Name, Policy: opts.Policy}
	if _, err := rand.Read(meta.InviteRoot[:]); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	ext, err := meta.marshal()
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	groupID := make([]byte, 32)
	if _, err := rand.Read(groupID); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	st, err := mls.NewGroup(n.mlsID, n.mlsCfg, &mls.GroupOptions{
		GroupID:    groupID,
		Extensions: []mls.Extension{{Type: groupExtensionType, Data: ext}},
	})
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	g := n.newGroupHandle(gossip.TopicIDForGroup(groupID))
	g.rec = groupRecord{NextSeq: 1, LastRotation: time.Now()}
	g.mu.Lock()
	err = g.persistLocked(st, nil)
	if err == nil {
		g.setStateLocked(st)
	}
	g.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	if err := n.openGroup(g); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	n.log.Info("created group", "topic", g.topicID, "name", opts.Name, "policy", opts.Policy)
	return g, nil
}

// resumeGroups reopens every stored group at its stored epoch.
func (n *Node) resumeGroups() error {
	type stored struct {
		id  []byte
		rec *groupRecord
	}
	var all []stored
	err := n.store.View(func(tx Tx) error {
		return tx.ForEach(bucketGroups, nil, func(k, v []byte) error {
			rec, err := parseGroupRecord(v)
			if err != nil {
				n.log.Warn("skipping corrupt group record", "err", err)
				return nil
			}
			rec.State = bytes.Clone(rec.State)
			all = append(all, stored{id: bytes.Clone(k), rec: rec})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("resume groups: %w", err)
	}
	for _, s := range all {
		st, err := mls.LoadGroup(s.rec.State, n.mlsCfg)
		clear(s.rec.State)
		if err != nil {
			n.log.Warn("skipping unloadable group", "err", err)
			continue
		}
		g := n.newGroupHandle(gossip.TopicIDForGroup(st.ID()))
		g.rec = *s.rec
		g.rec.State = nil
		g.mu.Lock()
		g.removed = s.rec.Removed
		g.setStateLocked(st)
		if g.removed {
			g.closeMessagesLocked()
		}
		err = g.loadIndexesLocked()
		g.mu.Unlock()
		if err != nil {
			return fmt.Errorf("resume group %s: %w", g.topicID, err)
		}
		if err := n.openGroup(g); err != nil {
			return fmt.Errorf("resume group: %w", err)
		}
		n.log.Info("resumed group", "topic", g.topicID, "epoch", st.Epoch())
	}
	return nil
}

// receive is the group's receive loop: every validated message of its topic
// passes here, in order.
func (g *Group) receive() {
	for {
		m, err := g.topic.Next(g.ctx)
		if err != nil {
			return
		}
		if m.Local {
			continue
		}
		if g.testDropApplication.Load() {
			if h, err := peekMessage(m.Data); err == nil && h.WireFormat == wireFormatPrivateMessage && h.ContentType == contentTypeApplication {
				g.testDropped.Add(1)
				continue
			}
		}
		g.handle(m.Data, m.From)
	}
}

// handle dispatches one topic message.
func (g *Group) handle(data []byte, from peer.ID) {
	if isEnvelope(data) {
		if jr, err := parseJoinRequest(data); err == nil {
			g.onJoinRequest(jr, from)
		}
		return
	}
	info, err := mls.Inspect(data)
	if err != nil {
		return
	}
	switch info.WireFormat {
	case mls.WireFormatWelcome:
		if _, err := g.n.acceptWelcome(data, "topic"); err != nil && !errors.Is(err, errWelcomeNotForUs) {
			g.n.log.Debug("topic Welcome", "group", g.topicID, "err", err)
		}
	case mls.WireFormatPublicMessage, mls.WireFormatPrivateMessage:
		g.onGroupMessage(data)
	}
}

// onGroupMessage processes a PublicMessage or PrivateMessage, then retries
// the messages that were waiting for the epoch it may have started.
func (g *Group) onGroupMessage(data []byte) {
	queue := [][]byte{data}
	for len(queue) > 0 {
		msg := queue[0]
		queue = queue[1:]
		g.mu.Lock()
		retry, leave := g.processLocked(msg)
		g.mu.Unlock()
		if leave {
			g.n.log.Info("removed from group", "group", g.topicID)
			g.topic.Close()
			return
		}
		queue = append(queue, retry...)
	}
}

// processLocked runs one group message through the MLS state. It returns the
// buffered messages to retry (after a commit) and whether the node was just
// removed from the group.
func (g *Group) processLocked(data []byte) (retry [][]byte, removed bool) {
	if g.state == nil && g.join != nil {
		g.bufferFutureLocked(data)
		return nil, false
	}
	if g.state == nil || g.removed {
		return nil, false
	}
	h, err := peekMessage(data)
	if err != nil {
		return nil, false
	}
	if h.WireFormat == wireFormatPublicMessage && h.ContentType == contentTypeCommit {
		return g.onCommitLocked(data, h)
	}
	if h.WireFormat == wireFormatPublicMessage && h.ContentType == contentTypeProposal {
		return g.onProposalLocked(data, h)
	}
	application := h.WireFormat == wireFormatPrivateMessage && h.ContentType == contentTypeApplication
	r, err := g.state.ProcessMessage(data)
	switch {
	case err == nil:
	case errors.Is(err, mls.ErrFutureEpoch):
		g.bufferFutureLocked(data)
		return nil, false
	case errors.Is(err, mls.ErrOwnMessage), errors.Is(err, mls.ErrReplay):
		// Our own, or a copy of one whose key is consumed (opened
		// before, served again by a sync): nothing to do, nobody to
		// blame.
		if application {
			g.rememberUnusableLocked(h.Epoch, data, false)
		}
		return nil, false
	case h.WireFormat == wireFormatPrivateMessage && !g.tracker.Settled(g.stateID):
		// It may belong to a competing branch of this epoch that wins
		// yet: try again after the next change of state.
		g.bufferFutureLocked(data)
		return nil, false
	default:
		g.n.log.Debug("dropping group message", "group", g.topicID, "err", err)
		if application {
			g.rememberUnusableLocked(h.Epoch, data, false)
		}
		return nil, false
	}
	switch r.Kind {
	case mls.ApplicationMessage:
		g.dirty = true
		g.receivedApplicationLocked(r, data)
	case mls.ProposalMessage:
		// Cached in the state for the next commit (RFC 9420 §12.1).
		g.dirty = true
	case mls.CommitMessage:
		// Own commits are always PublicMessages; a commit in a
		// PrivateMessage hides its committer from the ordering rule.
		g.n.log.Debug("dropping commit in a PrivateMessage", "group", g.topicID)
	}
	return nil, false
}

// onCommitLocked hands a PublicMessage commit to the tracker. It returns
// the buffered messages to retry if the state changed, and whether the node
// was just removed from the group.
func (g *Group) onCommitLocked(data []byte, h *mlsHeader) (retry [][]byte, removed bool) {
	meta, err := parseCommitMeta(h.AuthenticatedData)
	if err != nil {
		g.n.log.Debug("dropping commit without metadata", "group", g.topicID, "err", err)
		return nil, false
	}
	committer, err := committerOf(h)
	if err == nil {
		err = meta.checkSender(h)
	}
	if err != nil {
		g.n.log.Debug("dropping commit", "group", g.topicID, "err", err)
		return nil, false
	}
	before := g.stateID
	// RejoinSince: the members re-send what a rejoining member could not
	// read (commitorder rule 3).
	c := commitorder.Commit{Epoch: h.Epoch, Parent: meta.Parent, Committer: committer, RejoinSince: meta.RejoinSince, Bytes: data}
	if _, err := g.receiveCommitLocked(c, nil); err != nil {
		g.n.log.Debug("commit not applied", "group", g.topicID, "err", err)
		return nil, false
	}
	return g.afterMoveLocked(before)
}

// afterMoveLocked hands back, if the state moved away from before, the
// buffered messages to retry on the new state, and whether this member was
// removed.
func (g *Group) afterMoveLocked(before commitorder.StateID) (retry [][]byte, removed bool) {
	if g.stateID == before {
		return nil, false
	}
	for _, f := range g.future {
		retry = append(retry, f.data)
	}
	g.future = nil
	return retry, g.removed
}

// retryBuffered processes the messages kept while joining or waiting for a
// commit.
func (g *Group) retryBuffered() {
	g.mu.Lock()
	buffered := g.future
	g.future = nil
	g.mu.Unlock()
	for _, f := range buffered {
		g.onGroupMessage(f.data)
	}
}

// bufferFutureLocked keeps a message of a later epoch until its commit (or,
// while joining, until the Welcome).
func (g *Group) bufferFutureLocked(data []byte) {
	now := time.Now()
	kept := g.future[:0]
	for _, f := range g.future {
		if now.Sub(f.at) < futureMessageTTL {
			kept = append(kept, f)
		}
	}
	g.future = kept
	if len(g.future) >= maxFutureMessages {
		g.future = g.future[1:]
	}
	g.future = append(g.future, futureMessage{data: data, at: now})
}

// receivedApplicationLocked logs an opened application message (data, as
// received) for the members that may miss it, and de-duplicates, stores and
// delivers it.
func (g *Group) receivedApplicationLocked(r *mls.Received, data []byte) {
	if len(g.serving) > 0 {
		if h := hashOf(g.groupID, data); !g.serving[h] {
			if _, served := g.serving[h]; served {
				g.serving[h] = true
			}
		}
	}
	meta, err := parseAppMeta(r.AuthenticatedData)
	if err != nil {
		g.n.log.Debug("dropping application message without metadata", "group", g.topicID, "err", err)
		return
	}
	sender, err := peer.IDFromBytes(r.Sender.Identity)
	if err != nil {
		g.n.log.Debug("dropping application message from a non-peer credential", "group", g.topicID)
		return
	}
	now := time.Now()
	if !g.dedup.First(dedupKey(sender, meta.ID), now) {
		// A copy (re-sealed in a winning branch): logged so that syncs
		// stop serving it, not delivered again.
		if err := g.logApplicationLocked(nil, r.Epoch, data); err != nil {
			g.n.log.Warn("application log", "group", g.topicID, "err", err)
		}
		return
	}
	m := Message{
		Group:      g.topicID,
		ID:         meta.ID,
		Sender:     sender,
		SenderLeaf: r.Sender.Index,
		Epoch:      r.Epoch,
		Seq:        meta.Seq,
		SentAt:     meta.SentAt,
		ReceivedAt: now,
		Data:       r.Data,
	}
	if err := g.n.store.Update(func(tx Tx) error {
		if err := g.appendHistoryLocked(&m, tx); err != nil {
			return err
		}
		return g.logApplicationLocked(tx, r.Epoch, data)
	}); err != nil {
		g.n.log.Warn("store message", "group", g.topicID, "err", err)
	}
	g.orderLocked(m, now)
}

// senderOrder puts one sender's messages back in the order it sent them
// (appMeta.Seq): GossipSub may deliver them out of order when they take
// different paths (for example while the mesh forms).
type senderOrder struct {
	next uint64                 // next Seq to deliver
	held map[uint64]heldMessage // later messages waiting for a gap to fill
}

type heldMessage struct {
	m     Message
	since time.Time
}

// maxHeldPerSender bounds the messages held back for one sender.
const maxHeldPerSender = 256

// orderLocked delivers m in its sender's order. The first message of a
// sender (since this node joined or started) sets the expected sequence; a
// message after a gap waits up to Config.ReorderWindow for the missing ones,
// after which the gap is skipped; a message older than the expected one
// (after a skipped gap) is delivered at once.
func (g *Group) orderLocked(m Message, now time.Time) {
	so := g.order[m.Sender]
	if so == nil {
		so = &senderOrder{next: m.Seq, held: make(map[uint64]heldMessage)}
		g.order[m.Sender] = so
	}
	switch {
	case m.Seq < so.next:
		g.emitLocked(m)
	case m.Seq == so.next:
		g.emitLocked(m)
		so.next++
		g.flushHeldLocked(so)
	default:
		so.held[m.Seq] = heldMessage{m: m, since: now}
		if len(so.held) > maxHeldPerSender {
			g.skipGapLocked(so)
		}
	}
}

// flushHeldLocked delivers held messages that follow so.next without a gap.
func (g *Group) flushHeldLocked(so *senderOrder) {
	for {
		h, ok := so.held[so.next]
		if !ok {
			return
		}
		delete(so.held, so.next)
		g.emitLocked(h.m)
		so.next++
	}
}

// skipGapLocked gives up on the missing messages before the oldest held one.
func (g *Group) skipGapLocked(so *senderOrder) {
	lowest := uint64(0)
	for seq := range so.held {
		if lowest == 0 || seq < lowest {
			lowest = seq
		}
	}
	if lowest == 0 {
		return
	}
	so.next = lowest
	g.flushHeldLocked(so)
}

// releaseHeldLocked skips gaps that have waited longer than the reorder
// window.
func (g *Group) releaseHeldLocked(now time.Time) {
	for _, so := range g.order {
		for _, h := range so.held {
			if now.Sub(h.since) >= g.n.cfg.ReorderWindow {
				g.skipGapLocked(so)
				break
			}
		}
	}
}

// emitLocked puts m on the message channel.
func (g *Group) emitLocked(m Message) {
	if g.msgsClosed {
		return
	}
	select {
	case g.msgs <- m:
	default:
		g.overflow++
	}
}

// appendHistoryLocked stores m in the history (in tx if given).
func (g *Group) appendHistoryLocked(m *Message, tx Tx) error {
	rec, err := marshalHistory(m)
	if err != nil {
		return err
	}
	key := indexKey(g.groupID, g.nextHistory)
	g.nextHistory++
	if tx != nil {
		return tx.Put(bucketHistory, key, rec)
	}
	return g.n.store.Update(func(tx Tx) error { return tx.Put(bucketHistory, key, rec) })
}

// Send seals data as an application message for the group (RFC 9420 §15)
// and publishes it. The message, its history entry and the consumed key are
// persisted before it is published; if no peer is on the topic yet, Send
// waits up to Config.PublishWait (bounded by ctx) and otherwise leaves the
// message in the outbox, which is flushed once peers appear, also after a
// restart. It returns the message's ID.
func (g *Group) Send(ctx context.Context, data []byte) (commitorder.MessageID, error) {
	if len(data) > MaxMessageSize {
		return commitorder.MessageID{}, fmt.Errorf("send: %d bytes exceeds %d", len(data), MaxMessageSize)
	}
	g.opMu.Lock()
	id, err := g.seal(ctx, data)
	g.opMu.Unlock()
	if err != nil {
		return id, fmt.Errorf("send: %w", err)
	}
	g.waitPeers(ctx)
	g.opMu.Lock()
	g.flushOutbox(ctx)
	g.opMu.Unlock()
	g.wake()
	return id, nil
}

// seal encrypts data and queues it in the outbox. The caller holds opMu.
func (g *Group) seal(ctx context.Context, data []byte) (commitorder.MessageID, error) {
	var id commitorder.MessageID
	if _, err := rand.Read(id[:]); err != nil {
		return id, err
	}
	for attempt := 0; ; attempt++ {
		err := g.sealOnce(id, data)
		if !errors.Is(err, mls.ErrPendingProposals) || attempt > 0 {
			return id, err
		}
		// RFC 9420 §12.4: proposals received in the epoch must be
		// committed before application data is sent; by the time the
		// state has settled, another member's commit may have done it.
		if err := g.commitLocked(ctx, func() (*mls.CommitOptions, []peer.ID, error) {
			if len(g.state.PendingProposals()) == 0 {
				return nil, nil, nil
			}
			return &mls.CommitOptions{}, nil, nil
		}, nil); err != nil {
			return id, err
		}
	}
}

func (g *Group) sealOnce(id commitorder.MessageID, data []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil || g.removed {
		return ErrNotMember
	}
	now := time.Now()
	meta := appMeta{ID: id, SentAt: now, Seq: g.rec.NextSeq}
	ct, err := g.state.Seal(data, meta.marshal())
	if err != nil {
		return err
	}
	g.rec.NextSeq++
	g.rec.SentSinceRotation++
	g.dedup.First(dedupKey(g.n.id, id), now)
	g.sentData[id] = &sentMessage{data: data, sentAt: now, seq: meta.Seq, at: now}
	g.tracker.Sent(id, now)
	m := Message{
		Group: g.topicID, ID: id, Sender: g.n.id, SenderLeaf: g.state.LeafIndex(), Epoch: g.state.Epoch(),
		Seq: meta.Seq, SentAt: now, ReceivedAt: now, Own: true, Data: data,
	}
	out := &outboxRecord{Kind: outboxApplication, Message: ct, ID: id}
	alone := len(g.state.Members()) == 1 // nobody could ever read it
	err = g.persistLocked(g.state, func(tx Tx) error {
		if err := g.appendHistoryLocked(&m, tx); err != nil {
			return err
		}
		if alone {
			return nil
		}
		return g.appendOutboxLocked(tx, out)
	})
	if err != nil {
		return err
	}
	g.dirty = false
	return nil
}

// appendOutboxLocked queues r in the outbox within tx.
func (g *Group) appendOutboxLocked(tx Tx, r *outboxRecord) error {
	enc, err := r.marshal()
	if err != nil {
		return err
	}
	r.Index = g.nextOutbox
	g.nextOutbox++
	g.outboxLen++
	return tx.Put(bucketOutbox, indexKey(g.groupID, r.Index), enc)
}

// waitPeers waits, bounded by PublishWait and ctx, until someone is on the
// topic, if the group has other members to hear it.
func (g *Group) waitPeers(ctx context.Context) {
	if g.topic == nil || len(g.topic.Peers()) > 0 {
		return
	}
	g.mu.Lock()
	alone := g.state == nil || len(g.state.Members()) < 2
	g.mu.Unlock()
	if alone {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, g.n.cfg.PublishWait)
	defer cancel()
	_ = g.topic.WaitForPeers(wctx, 1)
}

// wake nudges the housekeeping loop.
func (g *Group) wake() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// publish sends one message on the topic, telling the validator it is ours.
func (g *Group) publish(ctx context.Context, data []byte) error {
	h := sha256.Sum256(data)
	g.mu.Lock()
	g.own[h]++
	g.mu.Unlock()
	err := g.topic.Publish(ctx, data)
	g.mu.Lock()
	if g.own[h]--; g.own[h] <= 0 {
		delete(g.own, h)
	}
	g.mu.Unlock()
	return err
}

// flushOutbox publishes the queued messages in order, as far as anyone is on
// the topic. Application messages and commits leave the outbox once
// published. A Welcome is also published on the topic if anyone is there,
// and in any case handed directly to the peers it adds and filed in their
// mailboxes (in the background); it leaves the outbox after that. The caller
// holds opMu.
func (g *Group) flushOutbox(ctx context.Context) {
	if g.topic == nil || g.testHoldPublish.Load() {
		return
	}
	g.mu.Lock()
	if g.outboxLen <= len(g.inflight) {
		g.mu.Unlock()
		return
	}
	prefix := groupKey(g.groupID)
	g.mu.Unlock()
	var entries []*outboxRecord
	err := g.n.store.View(func(tx Tx) error {
		return tx.ForEach(bucketOutbox, prefix, func(k, v []byte) error {
			r, err := parseOutboxRecord(v)
			if err != nil {
				g.n.log.Warn("corrupt outbox entry", "group", g.topicID, "err", err)
				return nil
			}
			r.Index = indexOf(k)
			entries = append(entries, r)
			return nil
		})
	})
	if err != nil {
		g.n.log.Warn("read outbox", "group", g.topicID, "err", err)
		return
	}
	// Once a message cannot be published, later ones wait too, so that
	// they leave in order.
	blocked := len(g.topic.Peers()) == 0
	for _, r := range entries {
		if r.Kind == outboxWelcome && !r.State.IsZero() {
			// RFC 9750 §5.2.3: a Welcome waits until its commit has
			// settled, so that no joiner lands on a losing branch.
			g.mu.Lock()
			var lost, wait bool
			if g.tracker != nil {
				lost = g.tracker.Lost(r.State)
				_, held := g.tracker.State(r.State)
				wait = !lost && held && !g.tracker.Settled(r.State)
			}
			g.mu.Unlock()
			if lost {
				g.deleteOutbox(r.Index)
				continue
			}
			if wait {
				continue
			}
		}
		if r.Kind == outboxWelcome {
			g.mu.Lock()
			busy := g.inflight[r.Index]
			if !busy {
				// Delivered since the outbox was read?
				busy = !g.outboxHasLocked(r.Index)
			}
			if !busy {
				g.inflight[r.Index] = true
			}
			g.mu.Unlock()
			if busy {
				continue
			}
			if !blocked {
				if err := g.publish(ctx, r.Message); err != nil {
					g.n.log.Debug("publish Welcome", "group", g.topicID, "err", err)
				}
			}
			if !g.n.spawn(func() { g.deliverWelcome(r) }) {
				g.mu.Lock()
				delete(g.inflight, r.Index)
				g.mu.Unlock()
			}
			continue
		}
		if blocked {
			continue
		}
		if err := g.publish(ctx, r.Message); err != nil {
			g.n.log.Debug("publish from outbox", "group", g.topicID, "err", err)
			blocked = true
			continue
		}
		if r.Kind == outboxApplication {
			// Published: members that missed it can get it by sync.
			g.deleteOutboxLogging(r.Index, r.Message)
			continue
		}
		g.deleteOutbox(r.Index)
	}
}

// outboxHasLocked reports whether the outbox still holds entry index.
func (g *Group) outboxHasLocked(index uint64) bool {
	has := false
	_ = g.n.store.View(func(tx Tx) error {
		has = tx.Get(bucketOutbox, indexKey(g.groupID, index)) != nil
		return nil
	})
	return has
}

// deleteOutbox removes a published entry.
func (g *Group) deleteOutbox(index uint64) { g.deleteOutboxLogging(index, nil) }

// deleteOutboxLogging removes a published entry and, in the same
// transaction, adds app (an own application message) to the application
// log.
func (g *Group) deleteOutboxLogging(index uint64, app []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := indexKey(g.groupID, index)
	existed := false
	if err := g.n.store.Update(func(tx Tx) error {
		if app != nil {
			if h, err := peekMessage(app); err == nil {
				if err := g.logApplicationLocked(tx, h.Epoch, app); err != nil {
					return err
				}
			}
		}
		// An entry may be deleted twice (a flush that read the outbox
		// before a Welcome's delivery finished): count it once, or the
		// count drifts below the entries and the outbox stops flushing.
		existed = tx.Get(bucketOutbox, key) != nil
		return tx.Delete(bucketOutbox, key)
	}); err != nil {
		g.n.log.Warn("delete outbox entry", "group", g.topicID, "err", err)
		return
	}
	if existed {
		g.outboxLen--
	}
	delete(g.inflight, index)
}

// deliverWelcome hands a Welcome to the peers it adds directly and files it
// in the DHT mailbox of every KeyPackageRef it is for (a few attempts while
// the DHT has no peers), then drops it from the outbox: a crash before that
// point delivers it again after restart.
func (g *Group) deliverWelcome(r *outboxRecord) {
	defer func() {
		if g.n.ctx.Err() == nil {
			g.deleteOutbox(r.Index)
			return
		}
		g.mu.Lock()
		delete(g.inflight, r.Index)
		g.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(g.n.ctx, 2*time.Minute)
	defer cancel()
	for _, p := range r.Peers {
		if err := g.n.sendWelcomeDirect(ctx, p, r.Message); err != nil {
			g.n.log.Debug("direct Welcome", "peer", p, "err", err)
		}
	}
	refs, err := mls.WelcomeKeyPackageRefs(r.Message)
	if err != nil {
		return
	}
	for _, ref := range refs {
		for attempt := 0; attempt < 3; attempt++ {
			err := g.n.dir.PutWelcome(ctx, ref, r.Message)
			if err == nil {
				break
			}
			g.n.log.Debug("file Welcome", "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
	}
}
