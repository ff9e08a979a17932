package dht

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNode is a real libp2p host on 127.0.0.1 running a Directory whose
// datastore the test can inspect.
type testNode struct {
	h     host.Host
	dir   *Directory
	store ds.Batching
	priv  crypto.PrivKey
}

func newTCPHost(t testing.TB) (host.Host, crypto.PrivKey) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	return h, priv
}

// newTestNode starts a host and a Directory. The node is closed at the end of
// the test unless closed earlier with close.
func newTestNode(t testing.TB, opts ...kaddht.Option) *testNode {
	t.Helper()
	h, priv := newTCPHost(t)
	store := dssync.MutexWrap(ds.NewMapDatastore())
	dir, err := New(h, Config{
		KeyPackageVerifier: testKPVerifier{},
		WelcomeVerifier:    testWelcomeVerifier{},
		QueryTimeout:       20 * time.Second,
		kadOptions:         append([]kaddht.Option{kaddht.Datastore(store)}, opts...),
	})
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	n := &testNode{h: h, dir: dir, store: store, priv: priv}
	t.Cleanup(n.close)
	return n
}

func (n *testNode) close() {
	if n.dir != nil {
		n.dir.Close()
		n.dir = nil
	}
	n.h.Close()
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.ID(), b.ID(), err)
	}
}

// waitRoutingTable waits (bounded) until n's routing table holds at least
// want peers.
func waitRoutingTable(t testing.TB, n *testNode, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.dir.RoutingTableSize() < want {
		if time.Now().After(deadline) {
			t.Fatalf("routing table of %s has %d peers, want %d", n.h.ID(), n.dir.RoutingTableSize(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holds reports whether n's datastore contains value in any record.
func (n *testNode) holds(t testing.TB, value []byte) bool {
	t.Helper()
	return holdsIn(t, n.store, value)
}

// holdsIn reports whether store contains value in any entry.
func holdsIn(t testing.TB, store ds.Datastore, value []byte) bool {
	t.Helper()
	res, err := store.Query(context.Background(), query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for e := range res.Next() {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		if bytes.Contains(e.Value, value) {
			return true
		}
	}
	return false
}

func testKPs(id peer.ID, n int) []KeyPackage {
	var kps []KeyPackage
	for i := range n {
		kps = append(kps, KeyPackage{Data: makeTestKP(id, time.Now().Add(48*time.Hour)), LastResort: i == n-1})
	}
	return kps
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestKeyPackageLookupThroughNonNeighbour arranges five hosts in a line
// L - X - P - S1 - S2 where P publishes and S1, S2 are the two peers closest
// to P's record key (the DHT stores on the 2 closest, BucketSize(2)). L's only
// neighbour X is not a storer, so L's lookup must reach P, S1 or S2 through X
// without ever having been connected to them.
func TestKeyPackageLookupThroughNonNeighbour(t *testing.T) {
	opts := []kaddht.Option{kaddht.BucketSize(2), kaddht.Concurrency(1), kaddht.DisableAutoRefresh()}
	nodes := make([]*testNode, 5)
	for i := range nodes {
		nodes[i] = newTestNode(t, opts...)
	}
	p := nodes[0]
	key := keyPackageKey(p.h.ID())
	byID := map[peer.ID]*testNode{}
	var others []peer.ID
	for _, n := range nodes[1:] {
		byID[n.h.ID()] = n
		others = append(others, n.h.ID())
	}
	sorted := kb.SortClosestPeers(others, kb.ConvertKey(key))
	s1, s2, x, l := byID[sorted[0]], byID[sorted[1]], byID[sorted[2]], byID[sorted[3]]

	line := []*testNode{l, x, p, s1, s2}
	for i := 0; i+1 < len(line); i++ {
		connect(t, line[i].h, line[i+1].h)
	}
	for i, n := range line {
		want := 2
		if i == 0 || i == len(line)-1 {
			want = 1
		}
		waitRoutingTable(t, n, want)
	}

	ctx := ctxTimeout(t)
	published, err := p.dir.PublishKeyPackages(ctx, testKPs(p.h.ID(), 3))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	value, err := signBundle(published, p.priv)
	if err != nil {
		t.Fatal(err)
	}
	if !s1.holds(t, value) || !s2.holds(t, value) {
		t.Fatal("the two closest peers did not store the bundle")
	}
	if x.holds(t, value) {
		t.Fatal("test setup: L's neighbour X stores the bundle")
	}
	for _, far := range []*testNode{p, s1, s2} {
		if l.h.Network().Connectedness(far.h.ID()) == network.Connected {
			t.Fatalf("test setup: L is already connected to %s", far.h.ID())
		}
	}

	start := time.Now()
	got, err := l.dir.LookupKeyPackages(ctx, p.h.ID())
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	t.Logf("KeyPackage lookup across the line took %v", elapsed)
	if got.PeerID != p.h.ID() || got.Sequence != published.Sequence || len(got.KeyPackages) != 3 {
		t.Fatalf("looked up %+v, want %+v", got, published)
	}
	for i := range got.KeyPackages {
		if !bytes.Equal(got.KeyPackages[i].Data, published.KeyPackages[i].Data) {
			t.Fatalf("KeyPackage %d differs", i)
		}
	}
	if x.holds(t, value) {
		t.Fatal("the value passed through X's store; the lookup did not reach a non-neighbour")
	}
}

// ring connects nodes i and i+1 (mod n) and waits for the routing tables.
func ring(t testing.TB, nodes []*testNode) {
	t.Helper()
	for i := range nodes {
		connect(t, nodes[i].h, nodes[(i+1)%len(nodes)].h)
	}
	for _, n := range nodes {
		waitRoutingTable(t, n, 2)
	}
}

// TestOfflinePublisherAndMailbox publishes a bundle and files a Welcome, takes
// both senders offline, and has a newcomer connected to one remaining node
// find both.
func TestOfflinePublisherAndMailbox(t *testing.T) {
	nodes := make([]*testNode, 5)
	for i := range nodes {
		nodes[i] = newTestNode(t)
	}
	ring(t, nodes)
	ctx := ctxTimeout(t)

	publisher, sender := nodes[0], nodes[1]
	published, err := publisher.dir.PublishKeyPackages(ctx, testKPs(publisher.h.ID(), 4))
	if err != nil {
		t.Fatal(err)
	}
	// Using a KeyPackage replaces the bundle: the used one disappears, a
	// fresh one is appended, the sequence grows.
	used := published.KeyPackages[0].Data
	fresh := testKPs(publisher.h.ID(), 2)[:1] // one one-time KeyPackage
	replaced, err := publisher.dir.RemoveKeyPackages(ctx, [][]byte{used}, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.Sequence <= published.Sequence || len(replaced.KeyPackages) != 4 {
		t.Fatalf("replacement: seq %d (was %d), %d KeyPackages", replaced.Sequence, published.Sequence, len(replaced.KeyPackages))
	}
	republished, err := publisher.dir.Republish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if republished.Sequence <= replaced.Sequence {
		t.Fatal("republish did not raise the sequence")
	}
	if ra := publisher.dir.RepublishAt(); !ra.After(time.Now()) || !ra.Before(republished.Expires) {
		t.Fatalf("RepublishAt %v not between now and expiry %v", ra, republished.Expires)
	}

	ref, otherRef := randomRef(), randomRef()
	welcome := makeTestWelcome(ref)
	if err := sender.dir.PutWelcome(ctx, ref, welcome); err != nil {
		t.Fatal(err)
	}
	if err := sender.dir.PutWelcome(ctx, randomRef(), welcome); err == nil {
		t.Fatal("PutWelcome accepted a ref the Welcome is not for")
	}

	publisher.close()
	sender.close()

	joiner := newTestNode(t)
	connect(t, joiner.h, nodes[3].h)
	waitRoutingTable(t, joiner, 1)

	got, err := joiner.dir.LookupKeyPackages(ctx, publisher.h.ID())
	if err != nil {
		t.Fatalf("lookup of offline publisher: %v", err)
	}
	if got.Sequence != republished.Sequence {
		t.Fatalf("got sequence %d, want newest %d", got.Sequence, republished.Sequence)
	}
	for _, kp := range got.KeyPackages {
		if bytes.Equal(kp.Data, used) {
			t.Fatal("used KeyPackage still offered")
		}
	}
	if !bytes.Equal(got.KeyPackages[len(got.KeyPackages)-1].Data, fresh[0].Data) {
		t.Fatal("fresh KeyPackage missing")
	}

	welcomes, err := joiner.dir.CheckMailbox(ctx, [][]byte{otherRef, ref})
	if err != nil {
		t.Fatalf("check mailbox: %v", err)
	}
	if len(welcomes) != 1 || !bytes.Equal(welcomes[0].Data, welcome) || !bytes.Equal(welcomes[0].Ref, ref) {
		t.Fatalf("mailbox returned %d Welcomes, want exactly the one filed", len(welcomes))
	}

	if _, err := joiner.dir.LookupKeyPackages(ctx, joiner.h.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of a peer that never published: %v, want ErrNotFound", err)
	}
}

// clearStore deletes every entry of store.
func clearStore(t testing.TB, store ds.Datastore) {
	t.Helper()
	res, err := store.Query(context.Background(), query.Query{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := store.Delete(context.Background(), ds.NewKey(e.Key)); err != nil {
			t.Fatal(err)
		}
	}
}

// permissive accepts every record; the malicious node uses it to store and
// spread what honest nodes must refuse.
type permissive struct{}

func (permissive) Validate(string, []byte) error        { return nil }
func (permissive) Select(string, [][]byte) (int, error) { return 0, nil }
func (permissive) String() string                       { return "permissive" }
func newAttacker(t *testing.T) (host.Host, *kaddht.IpfsDHT, ds.Batching) {
	t.Helper()
	h, _ := newTCPHost(t)
	store := dssync.MutexWrap(ds.NewMapDatastore())
	kad, err := kaddht.New(h,
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Validator(record.NamespacedValidator{keyPackageNamespace: permissive{}, mailboxNamespace: permissive{}}),
		kaddht.Mode(kaddht.ModeServer),
		kaddht.Datastore(store),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kad.Close(); h.Close() })
	return h, kad, store
}

// TestPoisonedRecordsRefusedEverywhere has a node with a permissive validator
// push forged, tampered, expired and stale records to five honest nodes. No
// honest node stores any of them, and no honest lookup returns them.
func TestPoisonedRecordsRefusedEverywhere(t *testing.T) {
	nodes := make([]*testNode, 5)
	for i := range nodes {
		nodes[i] = newTestNode(t)
	}
	ring(t, nodes)
	ah, attacker, attackerStore := newAttacker(t)
	for _, n := range nodes {
		connect(t, ah, n.h)
	}
	for _, n := range nodes {
		waitRoutingTable(t, n, 3)
	}
	ctx := ctxTimeout(t)
	now := time.Now()

	victimPriv, victim := newTestKey(t) // a peer that never published
	attackerPriv := ah.Peerstore().PrivKey(ah.ID())
	sign := func(b *Bundle, k crypto.PrivKey) []byte {
		enc, err := signBundle(b, k)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	lr := KeyPackage{Data: makeTestKP(victim, now.Add(48*time.Hour)), LastResort: true}
	bundleOf := func(kps ...KeyPackage) *Bundle {
		return &Bundle{PeerID: victim, Sequence: 7, Expires: now.Add(time.Hour), KeyPackages: kps}
	}
	ref := randomRef()
	mailbox := func(created, expires time.Time, w []byte) []byte {
		e, err := encodeMailbox(created, expires, w)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	poisoned := []struct {
		name, key string
		value     []byte
	}{
		{"wrong signer", keyPackageKey(victim), sign(bundleOf(lr), attackerPriv)},
		{"bad KeyPackage signature", keyPackageKey(victim), sign(bundleOf(KeyPackage{Data: tamper(makeTestKP(victim, now.Add(48*time.Hour)))}, lr), victimPriv)},
		{"KeyPackage naming the attacker", keyPackageKey(victim), sign(bundleOf(KeyPackage{Data: makeTestKP(ah.ID(), now.Add(48*time.Hour)), LastResort: true}), victimPriv)},
		{"expired bundle", keyPackageKey(victim), sign(&Bundle{PeerID: victim, Sequence: 9, Expires: now.Add(-time.Minute), KeyPackages: []KeyPackage{lr}}, victimPriv)},
		{"Welcome for another ref", mailboxKey(ref), mailbox(now, now.Add(time.Hour), makeTestWelcome(randomRef()))},
		{"expired Welcome", mailboxKey(ref), mailbox(now.Add(-2*time.Hour), now.Add(-time.Hour), makeTestWelcome(ref))},
		{"Welcome from the future", mailboxKey(ref), mailbox(now.Add(time.Hour), now.Add(2*time.Hour), makeTestWelcome(ref))},
		{"garbage", keyPackageKey(victim), []byte("garbage")},
	}
	for _, pc := range poisoned {
		t.Run(pc.name, func(t *testing.T) {
			if err := attacker.PutValue(ctx, pc.key, pc.value); err != nil {
				t.Fatalf("attacker put: %v", err)
			}
			for i, n := range nodes {
				if n.holds(t, pc.value) {
					t.Errorf("honest node %d stored the poisoned record", i)
				}
				if v, err := n.dir.kad.GetValue(ctx, pc.key); !errors.Is(err, routing.ErrNotFound) {
					t.Errorf("honest node %d GetValue = %d bytes, %v; want not found", i, len(v), err)
				}
			}
			if !holdsIn(t, attackerStore, pc.value) {
				t.Fatal("test setup: the attacker does not even hold the record")
			}
			// Clear the attacker's copy so the next case is not
			// shadowed by Select on the attacker.
			clearStore(t, attackerStore)
		})
	}

	// The public API reports not-found for the victim and the ref.
	if _, err := nodes[2].dir.LookupKeyPackages(ctx, victim); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupKeyPackages of poisoned key: %v, want ErrNotFound", err)
	}
	if w, err := nodes[2].dir.CheckMailbox(ctx, [][]byte{ref}); err != nil || len(w) != 0 {
		t.Fatalf("CheckMailbox of poisoned ref: %d Welcomes, %v", len(w), err)
	}

	// Replay: an honest publisher's old bundle, pushed after its newer
	// one, loses everywhere.
	pub := nodes[0]
	old, err := pub.dir.PublishKeyPackages(ctx, testKPs(pub.h.ID(), 2))
	if err != nil {
		t.Fatal(err)
	}
	oldValue := sign(old, pub.priv)
	newer, err := pub.dir.PublishKeyPackages(ctx, testKPs(pub.h.ID(), 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := attacker.PutValue(ctx, keyPackageKey(pub.h.ID()), oldValue); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		got, err := n.dir.LookupKeyPackages(ctx, pub.h.ID())
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if got.Sequence != newer.Sequence {
			t.Errorf("node %d got sequence %d after replay, want %d", i, got.Sequence, newer.Sequence)
		}
	}
}

// BenchmarkKeyPackageLookup measures one LookupKeyPackages across five hosts
// on 127.0.0.1 in a ring, from the node opposite the publisher.
func BenchmarkKeyPackageLookup(b *testing.B) {
	nodes := make([]*testNode, 5)
	for i := range nodes {
		nodes[i] = newTestNode(b)
	}
	ring(b, nodes)
	ctx := ctxTimeout(b)
	pub := nodes[0]
	if _, err := pub.dir.PublishKeyPackages(ctx, testKPs(pub.h.ID(), 8)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := nodes[2].dir.LookupKeyPackages(ctx, pub.h.ID()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPublishBeforeAnyPeer publishes on a node with no peers: the bundle is
// kept as current despite the error, and Republish spreads it once a peer is
// connected.
func TestPublishBeforeAnyPeer(t *testing.T) {
	lone := newTestNode(t)
	ctx := ctxTimeout(t)
	b, err := lone.dir.PublishKeyPackages(ctx, testKPs(lone.h.ID(), 2))
	if err == nil {
		t.Fatal("publish with no peers reported success")
	}
	if b == nil || lone.dir.Published() != b {
		t.Fatal("bundle not kept as current after a failed network put")
	}
	// A bundle that fails validation is not kept.
	if _, err := lone.dir.PublishKeyPackages(ctx, []KeyPackage{{Data: tamper(makeTestKP(lone.h.ID(), time.Now().Add(time.Hour))), LastResort: true}}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("invalid bundle: %v, want ErrInvalidRecord", err)
	}
	if lone.dir.Published() != b {
		t.Fatal("invalid bundle replaced the current one")
	}

	other := newTestNode(t)
	connect(t, other.h, lone.h)
	waitRoutingTable(t, lone, 1)
	waitRoutingTable(t, other, 1)
	rb, err := lone.dir.Republish(ctx)
	if err != nil {
		t.Fatalf("republish: %v", err)
	}
	value, err := signBundle(rb, lone.priv)
	if err != nil {
		t.Fatal(err)
	}
	if !other.holds(t, value) {
		t.Fatal("republished bundle not stored on the peer")
	}
	lone.close()
	got, err := other.dir.LookupKeyPackages(ctx, rb.PeerID)
	if err != nil || got.Sequence != rb.Sequence {
		t.Fatalf("lookup after publisher left: %v, %v", got, err)
	}
}
