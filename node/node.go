package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/dht"
	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/mls"
	ma "github.com/multiformats/go-multiaddr"
)

// Defaults for Config fields left zero; see the package documentation.
const (
	// DefaultCipherSuite is the MLS cipher suite of new groups and
	// KeyPackages: the mandatory-to-implement suite of RFC 9420 §17.1.
	DefaultCipherSuite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	// DefaultKeyPackages is how many one-time KeyPackages the node keeps
	// in its DHT bundle, beside the last-resort one.
	DefaultKeyPackages = 5
	// DefaultRepublishInterval is how often the bundle is published again
	// (the DHT drops records of peers that leave; new peers need copies).
	DefaultRepublishInterval = time.Hour
	// DefaultMailboxInterval is how often the node checks its Welcome
	// mailbox while running (it also checks at start).
	DefaultMailboxInterval = time.Minute
	// DefaultAdmitTakeover is how long each member waits per member of
	// lower leaf index before it admits a joiner itself (see
	// "Admission").
	DefaultAdmitTakeover = 3 * time.Second
	// DefaultJoinRetry is how often a joiner repeats its join request
	// until it is admitted.
	DefaultJoinRetry = 3 * time.Second
	// DefaultRotateInterval is how long a member goes without updating its
	// own keys before it issues an update commit.
	DefaultRotateInterval = 24 * time.Hour
	// DefaultRotateAfterMessages is how many messages a member sends before
	// it issues an update commit.
	DefaultRotateAfterMessages = 1000
	// DefaultMessageBuffer is the capacity of a group's message channel.
	DefaultMessageBuffer = 256
	// DefaultPublishWait is how long a send waits for a first peer on the
	// group's topic before it leaves the message in the outbox.
	DefaultPublishWait = 5 * time.Second
	// DefaultTick is the period of each group's housekeeping.
	DefaultTick = 250 * time.Millisecond
	// DefaultReorderWindow is how long a message that overtook an earlier
	// one of the same sender waits for it.
	DefaultReorderWindow = time.Second
	// DefaultSyncInterval is how often a member asks one connected member
	// for the messages it may have missed (anti-entropy, see "Catch-up").
	DefaultSyncInterval = 30 * time.Second

	// keyPackageLifetime is the validity of the node's KeyPackages; they
	// are replaced once less than keyPackageRenew of it is left.
	keyPackageLifetime = 30 * 24 * time.Hour
	keyPackageRenew    = 8 * 24 * time.Hour
	// maxKeyPackageLifetime is the longest lifetime accepted in others'
	// KeyPackages (RFC 9420 §7.2 asks applications to set one).
	maxKeyPackageLifetime = 100 * 24 * time.Hour
	// joinKeyPackageTTL is how long the private part of a KeyPackage sent
	// in a join request is kept for a late Welcome.
	joinKeyPackageTTL = dht.MaxMailboxLifetime
)

// Errors callers can branch on with errors.Is.
var (
	// ErrClosed reports use of a closed Node or of a group of one.
	ErrClosed = errors.New("node: closed")
	// ErrNotMember reports an operation on a group this node is not (or
	// no longer) a member of.
	ErrNotMember = errors.New("node: not a member of the group")
	// ErrAlreadyMember reports adding a peer that is already a member.
	ErrAlreadyMember = errors.New("node: peer is already a member")
	// ErrUnknownGroup reports a topic ID of no group this node is in.
	ErrUnknownGroup = errors.New("node: unknown group")
	// ErrPeerNotMember reports removing a peer that is not a member.
	ErrPeerNotMember = errors.New("node: peer is not a member")
)

// Config configures a Node. Zero values select the documented defaults.
type Config struct {
	// DataDir holds the node's identity key, and its store (bbolt file).
	// Required.
	DataDir string
	// ListenAddrs are multiaddrs to listen on, e.g.
	// "/ip4/0.0.0.0/tcp/4001" and "/ip4/0.0.0.0/udp/4001/quic-v1".
	ListenAddrs []string
	// BootstrapPeers are full multiaddrs (ending in /p2p/<peer ID>) of
	// peers to connect to at start; they are the only way into the
	// network.
	BootstrapPeers []string
	// Logger receives the node's diagnostics; nil discards them.
	Logger *slog.Logger

	// CipherSuite of new groups and KeyPackages (DefaultCipherSuite).
	CipherSuite mls.CipherSuite
	// KeyPackages is the number of one-time KeyPackages in the bundle
	// (DefaultKeyPackages).
	KeyPackages int
	// RepublishInterval (DefaultRepublishInterval).
	RepublishInterval time.Duration
	// MailboxInterval (DefaultMailboxInterval).
	MailboxInterval time.Duration
	// AdmitTakeover (DefaultAdmitTakeover).
	AdmitTakeover time.Duration
	// JoinRetry (DefaultJoinRetry).
	JoinRetry time.Duration
	// RotateInterval (DefaultRotateInterval); negative disables
	// time-based rotation.
	RotateInterval time.Duration
	// RotateAfterMessages (DefaultRotateAfterMessages); negative disables
	// count-based rotation.
	RotateAfterMessages int
	// MessageBuffer (DefaultMessageBuffer).
	MessageBuffer int
	// PublishWait (DefaultPublishWait).
	PublishWait time.Duration
	// Tick (DefaultTick).
	Tick time.Duration
	// ReorderWindow (DefaultReorderWindow).
	ReorderWindow time.Duration
	// SettleWindow is how long a group state is kept after a commit on it
	// was applied, so that a competing commit of a lower-index member can
	// still replace it (commitorder.Config.SettleWindow); own commits wait
	// until the current state has settled. Default
	// commitorder.DefaultSettleWindow (3 s).
	SettleWindow time.Duration
	// SyncInterval is how often a member asks one connected member of
	// each group, in turn, for the commits and application messages it
	// lacks (DefaultSyncInterval); negative disables the periodic ask
	// (syncs on start, on a missing commit and on a member joining the
	// topic remain).
	SyncInterval time.Duration
	// NoSync skips fsync on store commits: faster, but a machine crash
	// may lose recent state. For tests and benchmarks only.
	NoSync bool

	// newHost replaces the libp2p host (tests: mocknet).
	newHost func(key crypto.PrivKey) (host.Host, error)
	// dhtQueryTimeout overrides the DHT's query timeout (tests).
	dhtQueryTimeout time.Duration
	// handshakeRetention is how many epochs the handshake log keeps
	// (default 64; lowered in tests).
	handshakeRetention uint64
	// appLogLimit bounds each group's application log (default
	// defaultAppLogLimit; lowered in tests).
	appLogLimit int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CipherSuite == 0 {
		c.CipherSuite = DefaultCipherSuite
	}
	if c.KeyPackages <= 0 {
		c.KeyPackages = DefaultKeyPackages
	}
	if c.KeyPackages > dht.MaxBundleKeyPackages-1 {
		c.KeyPackages = dht.MaxBundleKeyPackages - 1
	}
	if c.RepublishInterval <= 0 {
		c.RepublishInterval = DefaultRepublishInterval
	}
	if c.MailboxInterval <= 0 {
		c.MailboxInterval = DefaultMailboxInterval
	}
	if c.AdmitTakeover <= 0 {
		c.AdmitTakeover = DefaultAdmitTakeover
	}
	if c.JoinRetry <= 0 {
		c.JoinRetry = DefaultJoinRetry
	}
	if c.RotateInterval == 0 {
		c.RotateInterval = DefaultRotateInterval
	}
	if c.RotateAfterMessages == 0 {
		c.RotateAfterMessages = DefaultRotateAfterMessages
	}
	if c.MessageBuffer <= 0 {
		c.MessageBuffer = DefaultMessageBuffer
	}
	if c.PublishWait <= 0 {
		c.PublishWait = DefaultPublishWait
	}
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	if c.ReorderWindow <= 0 {
		c.ReorderWindow = DefaultReorderWindow
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.appLogLimit <= 0 {
		c.appLogLimit = defaultAppLogLimit
	}
	if c.handshakeRetention == 0 {
		c.handshakeRetention = defaultHandshakeRetention
	}
	if c.SettleWindow <= 0 {
		c.SettleWindow = commitorder.DefaultSettleWindow
	}
}

// Node is a running meshchat peer: a libp2p host with the meshchat DHT and
// GossipSub, an MLS identity bound to the host's peer ID, and the groups it
// is a member of. It is safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	key    crypto.PrivKey
	id     peer.ID
	host   host.Host
	dir    *dht.Directory
	gs     *gossip.Service
	store  Store
	mlsID  *mls.Identity
	mlsCfg *mls.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	kpMu sync.Mutex // guards kps
	kps  map[string]*ownKeyPackage

	welcomeMu sync.Mutex                  // serializes Welcome processing
	welcomes  map[[32]byte]gossip.TopicID // Welcomes processed, and the group each led to

	closeOnce sync.Once
	mu        sync.Mutex // guards groups, closed
	groups    map[gossip.TopicID]*Group
	closed    bool
	newGroups chan *Group
}

// New starts a node: it loads or creates the identity in cfg.DataDir, opens
// the store, starts the libp2p host, the DHT and GossipSub, connects to the
// bootstrap peers, resumes the stored groups, and in the background
// publishes its KeyPackages and checks its Welcome mailbox. ctx bounds the
// start-up only; Close stops the node.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("node: Config.DataDir is required")
	}
	cfg.setDefaults()
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger,
		kps:       make(map[string]*ownKeyPackage),
		welcomes:  make(map[[32]byte]gossip.TopicID),
		groups:    make(map[gossip.TopicID]*Group),
		newGroups: make(chan *Group, 64),
	}
	n.mlsCfg = &mls.Config{
		KeyPackageLifetime:  keyPackageLifetime,
		MaxLifetime:         maxKeyPackageLifetime,
		SupportedExtensions: []mls.ExtensionType{groupExtensionType},
	}
	ok := false
	defer func() {
		if !ok {
			n.teardown()
		}
	}()

	var err error
	if n.key, err = loadOrCreateIdentity(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n.id, err = peerIDFromKey(n.key); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	st, err := openBoltStore(cfg.DataDir, cfg.NoSync)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.store = st
	if err := n.loadMLSIdentity(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	bootstrap, err := parseBootstrapPeers(cfg.BootstrapPeers)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if cfg.newHost != nil {
		n.host, err = cfg.newHost(n.key)
	} else {
		var listen []ma.Multiaddr
		for _, s := range cfg.ListenAddrs {
			a, perr := ma.NewMultiaddr(s)
			if perr != nil {
				return nil, fmt.Errorf("node: listen address %q: %w", s, perr)
			}
			listen = append(listen, a)
		}
		n.host, err = newHost(hostConfig{Key: n.key, ListenAddrs: listen})
	}
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n.host.ID() != n.id {
		return nil, fmt.Errorf("node: host runs as %s, identity is %s", n.host.ID(), n.id)
	}
	n.dir, err = dht.New(n.host, dht.Config{
		KeyPackageVerifier: keyPackageVerifier{cfg: n.mlsCfg},
		WelcomeVerifier:    welcomeVerifier{},
		BootstrapPeers:     bootstrap,
		QueryTimeout:       cfg.dhtQueryTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.gs, err = gossip.New(n.host, gossip.Config{OrderedValidation: true})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.host.SetStreamHandler(welcomeProtocol, n.handleWelcomeStream)
	n.host.SetStreamHandler(syncProtocol, n.handleSyncStream)

	if err := n.loadKeyPackages(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := n.ensureBundle(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if len(bootstrap) > 0 {
		if _, err := connectBootstrapPeers(ctx, n.host, bootstrap); err != nil {
			// Not fatal: the maintenance loop keeps trying.
			n.log.Warn("no bootstrap peer reachable", "err", err)
		}
	}
	if err := n.dir.Bootstrap(ctx); err != nil {
		n.log.Debug("dht bootstrap", "err", err)
	}
	if err := n.resumeGroups(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.spawn(func() { n.maintain(bootstrap) })
	ok = true
	return n, nil
}

// teardown releases whatever New built, in reverse order.
func (n *Node) teardown() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	if n.cancel != nil {
		n.cancel()
	}
	if n.host != nil {
		n.host.RemoveStreamHandler(welcomeProtocol)
		n.host.RemoveStreamHandler(syncProtocol)
	}
	n.mu.Lock()
	groups := make([]*Group, 0, len(n.groups))
	for _, g := range n.groups {
		groups = append(groups, g)
	}
	n.mu.Unlock()
	for _, g := range groups {
		g.stop()
	}
	n.wg.Wait()
	for _, g := range groups {
		g.flushState()
	}
	if n.gs != nil {
		n.gs.Close()
	}
	if n.dir != nil {
		n.dir.Close()
	}
	if n.host != nil {
		n.host.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

// Close stops the node: it leaves every topic, stops every background task,
// persists the groups, and closes the DHT, GossipSub, the host and the store.
// It returns once every goroutine the node started has ended. It is
// idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(n.teardown)
	return nil
}

// ID returns the node's peer ID, which is also its MLS credential identity.
func (n *Node) ID() peer.ID { return n.id }

// Addrs returns the node's listen addresses as full multiaddrs ending in
// /p2p/<peer ID>, ready to be given to another node as a bootstrap peer.
func (n *Node) Addrs() []string {
	addrs := n.host.Addrs()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String()+"/p2p/"+n.id.String())
	}
	return out
}

// Host returns the node's libp2p host, for diagnostics and for connecting
// nodes directly.
func (n *Node) Host() host.Host { return n.host }

// Groups returns the groups this node is in (removed ones included, see
// Group.Removed), in no particular order. Groups still being joined are not
// listed.
func (n *Node) Groups() []*Group {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Group, 0, len(n.groups))
	for _, g := range n.groups {
		if g.joinedYet() {
			out = append(out, g)
		}
	}
	return out
}

// Group returns the group with the given topic ID.
func (n *Node) Group(topic gossip.TopicID) (*Group, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	g, ok := n.groups[topic]
	if !ok || !g.joinedYet() {
		return nil, false
	}
	return g, true
}

// NewGroups delivers each group this node joins without a Join call of its
// own: added by a member (directly or through the Welcome mailbox). The
// channel is buffered; when it is full further groups are only listed by
// Groups. It is never closed.
func (n *Node) NewGroups() <-chan *Group { return n.newGroups }

// maintain is the node's background loop: KeyPackage publication and
// republication, mailbox checks, and reconnecting to bootstrap peers when
// the node has lost every connection.
func (n *Node) maintain(bootstrap []peer.AddrInfo) {
	n.publishBundle(n.ctx)
	n.checkMailbox(n.ctx)
	republish := time.NewTicker(n.cfg.RepublishInterval)
	defer republish.Stop()
	mailbox := time.NewTicker(n.cfg.MailboxInterval)
	defer mailbox.Stop()
	reconnect := time.NewTicker(30 * time.Second)
	defer reconnect.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-republish.C:
			n.renewKeyPackages()
			n.publishBundle(n.ctx)
		case <-mailbox.C:
			n.checkMailbox(n.ctx)
		case <-reconnect.C:
			if len(bootstrap) > 0 && len(n.host.Network().Peers()) == 0 {
				if c, err := connectBootstrapPeers(n.ctx, n.host, bootstrap); err == nil && c > 0 {
					_ = n.dir.Bootstrap(n.ctx)
					n.publishBundle(n.ctx)
				}
			}
		}
	}
}

// spawn runs f in a goroutine that Close waits for, unless Close has begun.
func (n *Node) spawn(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Go(f)
	return true
}

// isClosed reports whether Close has begun.
func (n *Node) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}
