// Package gossip carries a meshchat group's MLS traffic on a GossipSub topic
// of its own.
//
// # Topics
//
// Each group has one topic, named "/meshchat/group/1/<TopicID>" where the
// TopicID (see TopicIDForGroup) is derived from the MLS group ID. Messages on
// the topic are MLSMessage bytes exactly as RFC 9420 §6 defines them
// (PublicMessage, PrivateMessage, Welcome, GroupInfo, KeyPackage), each
// signed at the GossipSub layer by its author's libp2p key (StrictSign).
//
// # Validation
//
// Every message, including our own on Publish, passes the topic validator
// before it is delivered or forwarded:
//
//   - larger than Config.MaxMessageSize: reject;
//   - the injected MessageChecker's verdict: nil accepts; an error wrapping
//     ErrUnverifiable ignores (the message may be fine but cannot be judged
//     now, e.g. an epoch this node does not know); any other error rejects
//     (undecodable bytes, another group's ID, a PublicMessage whose
//     signature or membership tag fails, RFC 9420 §6.2).
//
// Rejected and ignored messages are neither delivered to this node's
// subscriber nor forwarded. Rejects also lower the score of the peer that
// delivered the message (see score.go), which cuts it off after one reject.
//
// # Publishing before the mesh forms
//
// GossipSub forwards along a mesh that forms over heartbeats (1 s). A message
// published right after Join, before any peer is known on the topic, reaches
// nobody. This package turns flood publishing on, so a node's own messages go
// to every peer known to be on the topic (with an acceptable score), mesh or
// not, and offers Topic.WaitForPeers and Topic.WaitForMesh to wait, bounded
// by a context, until there is someone to publish to or forward through.
// Messages can still be lost (peers joining later, slow subscribers: see
// Topic.Dropped); the node's catch-up path must cover that.
//
// # Own messages
//
// A node receives its own published messages on its subscription;
// Message.Local tells them apart.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults for Config fields left zero.
const (
	// DefaultMaxMessageSize is the largest MLSMessage accepted on a topic.
	DefaultMaxMessageSize = 1 << 20
	// DefaultValidatorTimeout bounds one MessageChecker call; a message
	// whose check takes longer is ignored.
	DefaultValidatorTimeout = 5 * time.Second
	// DefaultWaitTimeout bounds WaitForPeers and WaitForMesh when the
	// caller's context has no deadline.
	DefaultWaitTimeout = 30 * time.Second
	// DefaultSubscriptionBuffer is how many validated messages wait for the
	// application before newer ones are dropped (see Topic.Dropped).
	DefaultSubscriptionBuffer = 256

	// rpcOverhead is the room left in a GossipSub RPC beyond one maximal
	// message: framing, signature, author, sequence number, control data.
	rpcOverhead = 64 << 10
)

var (
	// ErrUnverifiable is wrapped by a MessageChecker's error when the
	// message may be valid but cannot be judged now (for example, it
	// belongs to an epoch this node has not reached or no longer keeps).
	// Such messages are ignored: not delivered, not forwarded, and not held
	// against the peer that sent them.
	ErrUnverifiable = errors.New("message cannot be verified now")
	// ErrMessageTooLarge reports a publish above Config.MaxMessageSize.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrClosed reports use of a closed Topic or Service.
	ErrClosed = errors.New("gossip: closed")
	// ErrAlreadyJoined reports a second Join of the same topic.
	ErrAlreadyJoined = errors.New("gossip: topic already joined")
)

// MessageChecker judges one message on a group's topic before it is
// delivered or forwarded. It must decode msg as an MLSMessage (RFC 9420 §6),
// check that it belongs to the group, and for a PublicMessage verify the
// signature and membership tag against the current or a retained epoch
// (RFC 9420 §6.1, §6.2). It returns nil to accept, an error wrapping
// ErrUnverifiable to ignore, and any other error to reject. It is called
// concurrently and must be cheap: no decryption, no state change.
type MessageChecker interface {
	CheckMessage(msg []byte) error
}

// Config configures a Service.
type Config struct {
	// MaxMessageSize is the largest message accepted or published
	// (DefaultMaxMessageSize if zero).
	MaxMessageSize int
	// ValidatorTimeout bounds each MessageChecker call
	// (DefaultValidatorTimeout if zero).
	ValidatorTimeout time.Duration
	// SubscriptionBuffer is the per-topic delivery buffer
	// (DefaultSubscriptionBuffer if zero).
	SubscriptionBuffer int
	// OrderedValidation validates messages one at a time, in the order
	// they arrive, instead of concurrently: messages of one author that
	// reach this node in order are then delivered (and forwarded) in that
	// order. GossipSub otherwise validates on several workers and may
	// reorder them. It costs validation parallelism, so MessageCheckers
	// must stay cheap.
	OrderedValidation bool

	// pubsubOptions are appended to the GossipSub options (tests).
	pubsubOptions []pubsub.Option
}

// Service is a node's GossipSub router with meshchat's settings: flood
// publishing, peer scoring, message size limit and strict message signing.
// It is safe for concurrent use.
type Service struct {
	ps      *pubsub.PubSub
	cancel  context.CancelFunc
	self    peer.ID
	tracker *meshTracker

	maxSize          int
	validatorTimeout time.Duration
	bufferSize       int
	ordered          bool

	mu     sync.Mutex
	topics map[TopicID]*Topic
	closed bool
}

// New starts GossipSub on h. It runs until Close; h must outlive it.
func New(h host.Host, cfg Config) (*Service, error) {
	s := &Service{
		self:             h.ID(),
		tracker:          newMeshTracker(),
		maxSize:          cfg.MaxMessageSize,
		validatorTimeout: cfg.ValidatorTimeout,
		bufferSize:       cfg.SubscriptionBuffer,
		ordered:          cfg.OrderedValidation,
		topics:           make(map[TopicID]*Topic),
	}
	if s.maxSize == 0 {
		s.maxSize = DefaultMaxMessageSize
	}
	if s.validatorTimeout == 0 {
		s.validatorTimeout = DefaultValidatorTimeout
	}
	if s.bufferSize == 0 {
		s.bufferSize = DefaultSubscriptionBuffer
	}
	if s.maxSize < 0 || s.validatorTimeout < 0 || s.bufferSize < 0 {
		return nil, errors.New("gossip: negative limit in Config")
	}
	opts := []pubsub.Option{
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(s.maxSize + rpcOverhead),
		pubsub.WithRawTracer(s.tracker),
	}
	if cfg.OrderedValidation {
		opts = append(opts, pubsub.WithValidateWorkers(1))
	}
	opts = append(opts, cfg.pubsubOptions...)
	ctx, cancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("gossip: %w", err)
	}
	s.ps, s.cancel = ps, cancel
	return s, nil
}

// Traffic returns the bytes of GossipSub RPCs this node has sent and
// received so far, on all topics: messages, forwarded copies and control
// traffic (the protobuf size of each RPC, without stream framing or transport
// encryption). RPCs dropped because a peer's queue was full are not counted.
func (s *Service) Traffic() (sent, received uint64) {
	return s.tracker.sentBytes.Load(), s.tracker.receivedBytes.Load()
}

// Close leaves every topic and stops the router. It is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	topics := make([]*Topic, 0, len(s.topics))
	for _, t := range s.topics {
		topics = append(topics, t)
	}
	s.mu.Unlock()
	var errs []error
	for _, t := range topics {
		errs = append(errs, t.Close())
	}
	s.cancel()
	return errors.Join(errs...)
}

// Join subscribes to the topic id, with checker as its validator, and starts
// taking part in its mesh.
func (s *Service) Join(id TopicID, checker MessageChecker) (*Topic, error) {
	if checker == nil {
		return nil, errors.New("gossip: Join needs a MessageChecker")
	}
	if _, err := ParseTopicID(string(id)); err != nil {
		return nil, fmt.Errorf("gossip: join: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.topics[id]; ok {
		return nil, fmt.Errorf("gossip: join %s: %w", id, ErrAlreadyJoined)
	}
	name := id.PubsubTopic()
	valOpts := []pubsub.ValidatorOpt{pubsub.WithValidatorTimeout(s.validatorTimeout)}
	if s.ordered {
		valOpts = append(valOpts, pubsub.WithValidatorInline(true))
	}
	if err := s.ps.RegisterTopicValidator(name, s.validator(checker), valOpts...); err != nil {
		return nil, fmt.Errorf("gossip: join %s: %w", id, err)
	}
	topic, err := s.ps.Join(name)
	if err != nil {
		s.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("gossip: join %s: %w", id, err)
	}
	if err := topic.SetScoreParams(topicScoreParams()); err != nil {
		topic.Close()
		s.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("gossip: join %s: %w", id, err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(s.bufferSize))
	if err != nil {
		topic.Close()
		s.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("gossip: join %s: %w", id, err)
	}
	joins, err := topic.EventHandler()
	if err != nil {
		sub.Cancel()
		topic.Close()
		s.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("gossip: join %s: %w", id, err)
	}
	t := &Topic{id: id, s: s, topic: topic, sub: sub, joins: joins}
	t.done, t.cancel = context.WithCancel(context.Background())
	s.topics[id] = t
	return t, nil
}

// validator adapts a MessageChecker to GossipSub's validation results.
func (s *Service) validator(checker MessageChecker) pubsub.ValidatorEx {
	return func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if len(m.Data) > s.maxSize {
			return pubsub.ValidationReject
		}
		err := checker.CheckMessage(m.Data)
		switch {
		case err == nil:
			return pubsub.ValidationAccept
		case errors.Is(err, ErrUnverifiable):
			return pubsub.ValidationIgnore
		default:
			return pubsub.ValidationReject
		}
	}
}

// Message is one validated message from a group topic.
type Message struct {
	// Data is the MLSMessage.
	Data []byte
	// From is the libp2p peer that authored and signed the message.
	From peer.ID
	// ReceivedFrom is the peer that handed it to us (ourselves for our own
	// messages).
	ReceivedFrom peer.ID
	// Local is true for a message this node published itself.
	Local bool
	// ID is GossipSub's message ID (author and sequence number).
	ID string
}

// Topic is this node's membership in one group topic.
type Topic struct {
	id    TopicID
	s     *Service
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	// joins reports peers joining the topic (NextPeerJoin); it is
	// cancelled before the topic is closed, which pubsub requires.
	joins  *pubsub.TopicEventHandler
	done   context.Context // ended by Close
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// ID returns the topic's ID.
func (t *Topic) ID() TopicID { return t.id }

// Publish sends msg (an MLSMessage) to the topic. The validator runs on it
// first, so a message this node's own checker rejects is refused with an
// error. It goes to every peer currently known on the topic; with none, it
// reaches nobody (see WaitForPeers).
func (t *Topic) Publish(ctx context.Context, msg []byte) error {
	if len(msg) > t.s.maxSize {
		return fmt.Errorf("gossip: publish %d bytes (limit %d): %w", len(msg), t.s.maxSize, ErrMessageTooLarge)
	}
	if err := t.topic.Publish(ctx, msg); err != nil {
		if errors.Is(err, pubsub.ErrTopicClosed) {
			return ErrClosed
		}
		return fmt.Errorf("gossip: publish: %w", err)
	}
	return nil
}

// Next waits for the next validated message on the topic, own messages
// included.
func (t *Topic) Next(ctx context.Context) (*Message, error) {
	m, err := t.sub.Next(ctx)
	if err != nil {
		if errors.Is(err, pubsub.ErrSubscriptionCancelled) {
			return nil, ErrClosed
		}
		return nil, err
	}
	return &Message{
		Data:         m.Data,
		From:         m.GetFrom(),
		ReceivedFrom: m.ReceivedFrom,
		Local:        m.ReceivedFrom == t.s.self,
		ID:           m.ID,
	}, nil
}

// Messages iterates over the topic's messages until ctx ends, the topic is
// closed, or the loop breaks; the final error (if any) is yielded once.
func (t *Topic) Messages(ctx context.Context) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		for {
			m, err := t.Next(ctx)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(m, nil) {
				return
			}
		}
	}
}

// Peers returns the peers known to be subscribed to the topic.
func (t *Topic) Peers() []peer.ID {
	return t.topic.ListPeers()
}

// Dropped returns how many validated messages were dropped because the
// application did not read them fast enough.
func (t *Topic) Dropped() uint64 {
	return t.s.tracker.droppedCount(t.id.PubsubTopic())
}

// WaitForPeers waits until at least n peers are known on the topic, which is
// when a flood-published message reaches someone. It waits at most until ctx
// ends, or DefaultWaitTimeout if ctx has no deadline.
func (t *Topic) WaitForPeers(ctx context.Context, n int) error {
	ctx, cancel := boundWait(ctx)
	defer cancel()
	events, err := t.topic.EventHandler()
	if err != nil {
		return fmt.Errorf("gossip: wait for peers: %w", err)
	}
	defer events.Cancel()
	// A join that pubsub processes while the handler is being registered
	// can go unannounced, so the peer list is also re-read at a short
	// interval rather than trusting the events alone.
	for len(t.topic.ListPeers()) < n {
		step, stop := context.WithTimeout(ctx, peerPollInterval)
		_, err := events.NextPeerEvent(step)
		stop()
		if ctx.Err() != nil {
			return fmt.Errorf("gossip: wait for %d peers on %s (have %d): %w", n, t.id, len(t.topic.ListPeers()), ctx.Err())
		}
		if err != nil && step.Err() == nil {
			return fmt.Errorf("gossip: wait for peers on %s: %w", t.id, err)
		}
	}
	return nil
}

// WaitForMesh waits until at least n peers are in this node's GossipSub mesh
// for the topic, which is when messages it receives are forwarded onwards.
// It waits at most until ctx ends, or DefaultWaitTimeout if ctx has no
// deadline.
func (t *Topic) WaitForMesh(ctx context.Context, n int) error {
	ctx, cancel := boundWait(ctx)
	defer cancel()
	name := t.id.PubsubTopic()
	for {
		size, changed := t.s.tracker.meshSize(name)
		if size >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("gossip: wait for mesh of %d on %s (have %d): %w", n, t.id, size, ctx.Err())
		}
	}
}

// NextPeerJoin waits for the next peer that GossipSub reports as newly
// subscribed to the topic and returns it. Peers already on the topic when
// it was joined are reported first. Events are coalesced per peer (a peer
// that joins and leaves before it is reported is not reported), so nothing
// queues without bound. It returns ErrClosed once the topic is closed, or
// ctx's error. The node uses it to ask a member that (re)appears on the
// topic for the messages it may have missed: a message published while
// GossipSub did not know a subscription reaches nobody.
func (t *Topic) NextPeerJoin(ctx context.Context) (peer.ID, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.done, cancel)
	defer stop()
	for {
		ev, err := t.joins.NextPeerEvent(ctx)
		if err != nil {
			if t.done.Err() != nil {
				return "", ErrClosed
			}
			return "", err
		}
		if ev.Type == pubsub.PeerJoin {
			return ev.Peer, nil
		}
	}
}

// peerPollInterval is how often WaitForPeers re-reads the topic's peers.
const peerPollInterval = 100 * time.Millisecond

// boundWait applies DefaultWaitTimeout to a context without a deadline.
func boundWait(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultWaitTimeout)
}

// Close leaves the topic: it ends the subscription, removes the validator
// and stops taking part in the mesh. It is idempotent.
func (t *Topic) Close() error {
	t.closeOnce.Do(func() {
		t.sub.Cancel()
		t.cancel()
		t.joins.Cancel()
		name := t.id.PubsubTopic()
		errs := []error{t.topic.Close()}
		if err := t.s.ps.UnregisterTopicValidator(name); err != nil {
			errs = append(errs, err)
		}
		t.s.mu.Lock()
		delete(t.s.topics, t.id)
		t.s.mu.Unlock()
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}
