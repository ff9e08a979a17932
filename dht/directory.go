package dht

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// ProtocolPrefix is the DHT protocol prefix of meshchat; the Kademlia
// protocol is ProtocolPrefix + "/kad/1.0.0". It keeps meshchat off the public
// IPFS DHT.
const ProtocolPrefix = "/meshchat"

// Defaults for Config fields left zero.
const (
	// DefaultBundleLifetime is how long a published bundle stays valid.
	DefaultBundleLifetime = 24 * time.Hour
	// DefaultMailboxLifetime is how long a filed Welcome waits.
	DefaultMailboxLifetime = MaxMailboxLifetime
	// DefaultQueryTimeout bounds one DHT operation when the caller's
	// context has no earlier deadline.
	DefaultQueryTimeout = 30 * time.Second
	// mailboxConcurrency bounds parallel lookups in CheckMailbox.
	mailboxConcurrency = 4
)

// ErrNotFound reports that no valid record exists for the key asked about.
var ErrNotFound = errors.New("no valid record found")

// ErrNothingPublished reports a Republish or RemoveKeyPackages before any
// PublishKeyPackages.
var ErrNothingPublished = errors.New("no KeyPackage bundle published yet")

// Config configures a Directory.
type Config struct {
	// KeyPackageVerifier checks each KeyPackage of every bundle that is
	// stored, published or looked up. Required.
	KeyPackageVerifier KeyPackageVerifier
	// WelcomeVerifier checks each Welcome that is stored, filed or
	// fetched. Required.
	WelcomeVerifier WelcomeVerifier
	// BootstrapPeers are the only peers the DHT falls back to when its
	// routing table is empty. There are no default (public) peers.
	BootstrapPeers []peer.AddrInfo
	// ClientMode makes this node query the DHT without storing records for
	// others or answering their queries (for nodes that cannot be reached).
	// The default is server mode.
	ClientMode bool
	// BundleLifetime is the validity of published bundles
	// (DefaultBundleLifetime if zero, at most MaxBundleLifetime).
	BundleLifetime time.Duration
	// MailboxLifetime is the validity of filed Welcomes
	// (DefaultMailboxLifetime if zero, at most MaxMailboxLifetime).
	MailboxLifetime time.Duration
	// QueryTimeout bounds each DHT operation (DefaultQueryTimeout if zero).
	QueryTimeout time.Duration
	// Now is the clock used for expiry checks and sequences (time.Now if
	// nil).
	Now func() time.Time

	// kadOptions are appended to the DHT options; tests use them to shape
	// the routing topology.
	kadOptions []kaddht.Option
}

// Directory is a node's handle on the meshchat DHT: it publishes the node's
// KeyPackage bundle, looks up other peers' bundles, and files and fetches
// Welcomes. It is safe for concurrent use.
type Directory struct {
	kad    *kaddht.IpfsDHT
	self   peer.ID
	key    crypto.PrivKey
	bundle bundleValidator
	mbox   mailboxValidator

	bundleLifetime  time.Duration
	mailboxLifetime time.Duration
	queryTimeout    time.Duration
	now             func() time.Time

	mu        sync.Mutex // guards published and lastSeq; held across a publish
	published *Bundle
	lastSeq   uint64
}

// New starts the DHT on h with the meshchat protocol prefix and validators.
// It does not connect anywhere by itself; connect h to peers (or call
// Bootstrap) first. Close stops the DHT but not h.
func New(h host.Host, cfg Config) (*Directory, error) {
	if cfg.KeyPackageVerifier == nil || cfg.WelcomeVerifier == nil {
		return nil, errors.New("dht: KeyPackageVerifier and WelcomeVerifier are required")
	}
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil {
		return nil, errors.New("dht: host has no private key for its own peer ID")
	}
	d := &Directory{
		self:            h.ID(),
		key:             key,
		bundleLifetime:  cfg.BundleLifetime,
		mailboxLifetime: cfg.MailboxLifetime,
		queryTimeout:    cfg.QueryTimeout,
		now:             cfg.Now,
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.bundleLifetime == 0 {
		d.bundleLifetime = DefaultBundleLifetime
	}
	if d.mailboxLifetime == 0 {
		d.mailboxLifetime = DefaultMailboxLifetime
	}
	if d.queryTimeout == 0 {
		d.queryTimeout = DefaultQueryTimeout
	}
	if d.bundleLifetime < 0 || d.bundleLifetime > MaxBundleLifetime {
		return nil, fmt.Errorf("dht: bundle lifetime %v outside (0, %v]", d.bundleLifetime, MaxBundleLifetime)
	}
	if d.mailboxLifetime < 0 || d.mailboxLifetime > MaxMailboxLifetime {
		return nil, fmt.Errorf("dht: mailbox lifetime %v outside (0, %v]", d.mailboxLifetime, MaxMailboxLifetime)
	}
	if d.queryTimeout < 0 {
		return nil, fmt.Errorf("dht: negative query timeout %v", d.queryTimeout)
	}
	d.bundle = bundleValidator{verifier: cfg.KeyPackageVerifier, now: d.now}
	d.mbox = mailboxValidator{verifier: cfg.WelcomeVerifier, now: d.now}

	mode := kaddht.ModeServer
	if cfg.ClientMode {
		mode = kaddht.ModeClient
	}
	opts := []kaddht.Option{
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Validator(newValidator(cfg.KeyPackageVerifier, cfg.WelcomeVerifier, d.now)),
		kaddht.Mode(mode),
		kaddht.DisableProviders(),
		// Storers drop a record this long after receiving it; our own
		// expiry fields are the real bound, this only reclaims space.
		kaddht.MaxRecordAge(max(MaxBundleLifetime, MaxMailboxLifetime) + MaxClockSkew),
		kaddht.BootstrapPeers(cfg.BootstrapPeers...),
	}
	opts = append(opts, cfg.kadOptions...)
	kad, err := kaddht.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("dht: %w", err)
	}
	d.kad = kad
	return d, nil
}

// Close stops the DHT's background work. The host stays open.
func (d *Directory) Close() error {
	return d.kad.Close()
}

// Bootstrap refreshes the routing table from the peers the host is connected
// to (and the configured bootstrap peers if the table is empty). It returns
// once the refresh has been requested; the refresh itself runs in the
// background, bounded by the DHT's own timeouts.
func (d *Directory) Bootstrap(ctx context.Context) error {
	return d.kad.Bootstrap(ctx)
}

// RoutingTableSize returns how many DHT servers this node knows.
func (d *Directory) RoutingTableSize() int {
	return d.kad.RoutingTable().Size()
}

// withTimeout bounds ctx by the query timeout.
func (d *Directory) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.queryTimeout)
}

// PublishKeyPackages replaces this node's bundle with kps (exactly one marked
// LastResort) and stores it in the DHT with a fresh sequence and expiry. Every
// KeyPackage must verify with this node's peer ID as its credential identity,
// or nothing is published. If the bundle is valid but could not be offered
// to any peer (no peers yet), it is still this node's current bundle: the
// error is returned together with the bundle, and a later Republish spreads
// it. The node should republish (Republish) before RepublishAt and whenever
// KeyPackages get used (RemoveKeyPackages).
func (d *Directory) PublishKeyPackages(ctx context.Context, kps []KeyPackage) (*Bundle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.publishLocked(ctx, kps)
}

// Republish re-signs the current bundle with a new sequence and expiry and
// stores it again, which also refreshes copies on peers that joined since.
func (d *Directory) Republish(ctx context.Context) (*Bundle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.published == nil {
		return nil, ErrNothingPublished
	}
	return d.publishLocked(ctx, d.published.KeyPackages)
}

// RemoveKeyPackages republishes the bundle without the one-time KeyPackages
// whose bytes equal an element of used, and with fresh appended. The
// last-resort KeyPackage is kept unless fresh carries a new one, which then
// replaces it. Used KeyPackages no longer in the bundle are ignored.
func (d *Directory) RemoveKeyPackages(ctx context.Context, used [][]byte, fresh []KeyPackage) (*Bundle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.published == nil {
		return nil, ErrNothingPublished
	}
	freshLastResort := slices.ContainsFunc(fresh, func(kp KeyPackage) bool { return kp.LastResort })
	var next []KeyPackage
	for _, kp := range d.published.KeyPackages {
		if kp.LastResort && freshLastResort {
			continue
		}
		if !kp.LastResort && slices.ContainsFunc(used, func(u []byte) bool { return bytes.Equal(u, kp.Data) }) {
			continue
		}
		next = append(next, kp)
	}
	next = append(next, fresh...)
	return d.publishLocked(ctx, next)
}

// RepublishAt returns when the current bundle should be republished: halfway
// through its lifetime. It returns the zero time if nothing was published.
func (d *Directory) RepublishAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.published == nil {
		return time.Time{}
	}
	return d.published.Expires.Add(-d.bundleLifetime / 2)
}

// Published returns the bundle last published by this node, or nil.
func (d *Directory) Published() *Bundle {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.published
}

func (d *Directory) publishLocked(ctx context.Context, kps []KeyPackage) (*Bundle, error) {
	now := d.now()
	seq := max(uint64(now.UnixMicro()), d.lastSeq+1)
	b := &Bundle{
		PeerID:      d.self,
		Sequence:    seq,
		Expires:     now.Add(d.bundleLifetime).Truncate(time.Second),
		KeyPackages: slices.Clone(kps),
	}
	value, err := signBundle(b, d.key)
	if err != nil {
		return nil, fmt.Errorf("publish KeyPackages: %w", err)
	}
	if _, err := d.bundle.validate(keyPackageKey(d.self), value); err != nil {
		return nil, fmt.Errorf("publish KeyPackages: %w", err)
	}
	// From here on the bundle is ours: PutValue stores it locally before
	// it looks for peers, so even if the network part fails it is served
	// to whoever asks us, and Republish can retry.
	d.lastSeq = seq
	d.published = b
	ctx, cancel := d.withTimeout(ctx)
	defer cancel()
	// PutValue offers the record to the closest peers; their refusals are
	// only logged by the DHT.
	if err := d.kad.PutValue(ctx, keyPackageKey(d.self), value); err != nil {
		return b, fmt.Errorf("publish KeyPackages: stored locally, not on peers: %w", err)
	}
	return b, nil
}

// LookupKeyPackages fetches and validates id's current bundle. It returns an
// error wrapping ErrNotFound if no valid bundle exists (forged, tampered and
// expired ones are dropped along the way).
func (d *Directory) LookupKeyPackages(ctx context.Context, id peer.ID) (*Bundle, error) {
	ctx, cancel := d.withTimeout(ctx)
	defer cancel()
	key := keyPackageKey(id)
	value, err := d.kad.GetValue(ctx, key)
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("look up KeyPackages of %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("look up KeyPackages of %s: %w", id, err)
	}
	// The DHT already validated it; validating again costs little and
	// keeps this function correct whatever the DHT does.
	b, err := d.bundle.validate(key, value)
	if err != nil {
		return nil, fmt.Errorf("look up KeyPackages of %s: %w", id, err)
	}
	return &b.Bundle, nil
}

// PutWelcome files welcome (an MLSMessage carrying a Welcome) in the mailbox
// of the KeyPackage with reference ref, for a joiner who is offline. The
// Welcome must list ref among its recipients. Records on storers that leave
// the network are lost, so the sender should file it again from time to time
// until the joiner shows up or MailboxLifetime passes.
func (d *Directory) PutWelcome(ctx context.Context, ref, welcome []byte) error {
	if len(ref) == 0 || len(ref) > MaxRefSize {
		return fmt.Errorf("file Welcome: KeyPackageRef of %d bytes, want 1..%d", len(ref), MaxRefSize)
	}
	now := d.now()
	value, err := encodeMailbox(now, now.Add(d.mailboxLifetime).Truncate(time.Second), welcome)
	if err != nil {
		return fmt.Errorf("file Welcome: %w", err)
	}
	key := mailboxKey(ref)
	if _, err := d.mbox.validate(key, value); err != nil {
		return fmt.Errorf("file Welcome: %w", err)
	}
	ctx, cancel := d.withTimeout(ctx)
	defer cancel()
	if err := d.kad.PutValue(ctx, key, value); err != nil {
		return fmt.Errorf("file Welcome: %w", err)
	}
	return nil
}

// CheckMailbox looks up the mailbox of each KeyPackageRef in refs (the refs
// of this node's KeyPackages that may have been used) and returns the valid
// Welcomes found, in the order of refs. Empty mailboxes are skipped silently;
// other lookup failures are joined into the error, alongside whatever was
// found.
func (d *Directory) CheckMailbox(ctx context.Context, refs [][]byte) ([]Welcome, error) {
	ctx, cancel := d.withTimeout(ctx)
	defer cancel()
	found := make([]*Welcome, len(refs))
	errs := make([]error, len(refs))
	sem := make(chan struct{}, mailboxConcurrency)
	var wg sync.WaitGroup
	for i, ref := range refs {
		if len(ref) == 0 || len(ref) > MaxRefSize {
			errs[i] = fmt.Errorf("mailbox %x: KeyPackageRef of %d bytes, want 1..%d", ref, len(ref), MaxRefSize)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("mailbox %x: %w", ref, ctx.Err())
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			found[i], errs[i] = d.fetchWelcome(ctx, ref)
		})
	}
	wg.Wait()
	var out []Welcome
	for _, w := range found {
		if w != nil {
			out = append(out, *w)
		}
	}
	return out, errors.Join(errs...)
}

// fetchWelcome returns the Welcome filed under ref, or nil if there is none.
func (d *Directory) fetchWelcome(ctx context.Context, ref []byte) (*Welcome, error) {
	key := mailboxKey(ref)
	value, err := d.kad.GetValue(ctx, key)
	if errors.Is(err, routing.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox %x: %w", ref, err)
	}
	w, err := d.mbox.validate(key, value)
	if err != nil {
		return nil, fmt.Errorf("mailbox %x: %w", ref, err)
	}
	return w, nil
}
