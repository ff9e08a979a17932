package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/meshchat/meshchat/gossip"
	ma "github.com/multiformats/go-multiaddr"
)

// testConfig is a node configuration with short timers, no rotation and no
// fsync, listening on loopback TCP.
func testConfig(t testing.TB, dataDir string, bootstrap ...string) Config {
	t.Helper()
	return Config{
		DataDir:             dataDir,
		ListenAddrs:         []string{"/ip4/127.0.0.1/tcp/0"},
		BootstrapPeers:      bootstrap,
		Logger:              testLogger(t).With("node", filepath.Base(dataDir)),
		KeyPackages:         3,
		MailboxInterval:     time.Second,
		AdmitTakeover:       time.Second,
		JoinRetry:           500 * time.Millisecond,
		RotateInterval:      -1,
		RotateAfterMessages: -1,
		PublishWait:         3 * time.Second,
		Tick:                50 * time.Millisecond,
		SettleWindow:        500 * time.Millisecond,
		SyncInterval:        time.Second,
		NoSync:              true,
		dhtQueryTimeout:     10 * time.Second,
	}
}

// testLogs holds the log buffer of each running test (testing.TB ->
// *testLog).
var testLogs sync.Map

// testLog is the debug log of every node of one test, kept in memory and
// shown only if the test fails.
type testLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// testLogKeep bounds what a failing test shows of its nodes' log: the tail.
const testLogKeep = 256 << 10

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 2*testLogKeep {
		tail := bytes.Clone(l.buf.Bytes()[l.buf.Len()-testLogKeep:])
		l.buf.Reset()
		l.buf.Write(tail)
	}
	return l.buf.Write(p)
}

// testLogger returns the debug logger of t's nodes. With NODE_TEST_LOG set
// it writes to stderr as it goes; otherwise the log is kept, and if the test
// fails its tail goes to a file in $NODE_TEST_LOG_DIR (CI prints those) or,
// without that variable, to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	if os.Getenv("NODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	v, loaded := testLogs.LoadOrStore(t, new(testLog))
	l := v.(*testLog)
	if !loaded {
		t.Cleanup(func() {
			testLogs.Delete(t)
			if !t.Failed() {
				return
			}
			l.mu.Lock()
			out := l.buf.Bytes()
			if len(out) > testLogKeep {
				out = out[len(out)-testLogKeep:]
			}
			l.mu.Unlock()
			if dir := os.Getenv("NODE_TEST_LOG_DIR"); dir != "" {
				name := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log")
				if err := os.WriteFile(name, out, 0o644); err == nil {
					t.Logf("node log tail in %s", name)
					return
				}
			}
			t.Logf("node log tail:\n%s", out)
		})
	}
	return slog.New(slog.NewTextHandler(l, opts))
}

// startNode starts a node that is closed at the end of the test.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// cluster starts k nodes on loopback TCP; all bootstrap from the first.
func cluster(t testing.TB, k int) []*Node { return clusterWith(t, k, nil) }

// clusterWith is cluster with each node's configuration adjusted by mod.
func clusterWith(t testing.TB, k int, mod func(*Config)) []*Node {
	t.Helper()
	config := func(bootstrap ...string) Config {
		cfg := testConfig(t, t.TempDir(), bootstrap...)
		if mod != nil {
			mod(&cfg)
		}
		return cfg
	}
	nodes := []*Node{startNode(t, config())}
	for i := 1; i < k; i++ {
		nodes = append(nodes, startNode(t, config(nodes[0].Addrs()...)))
	}
	// Connect every pair, so that any node can go away without cutting the
	// others apart.
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := a.host.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.host.Addrs()})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, fmt.Sprintf("routing table of %s", n.ID()), func() bool {
			return n.dir.RoutingTableSize() >= 1
		})
	}
	// Let every node's bundle reach the others' DHT stores.
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n.publishBundle(ctx)
		cancel()
	}
	return nodes
}

// mockCluster starts k nodes on a mocknet. Each node connects to up to
// degree others (a ring plus random chords), so messages need several hops.
func mockCluster(t testing.TB, k, degree int) ([]*Node, mocknet.Mocknet) {
	return mockClusterWith(t, k, degree, nil)
}

// mockClusterWith is mockCluster with each node's configuration adjusted by
// mod.
func mockClusterWith(t testing.TB, k, degree int, mod func(*Config)) ([]*Node, mocknet.Mocknet) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := make([]*Node, k)
	for i := range k {
		cfg := testConfig(t, t.TempDir())
		cfg.ListenAddrs = nil
		cfg.dhtQueryTimeout = time.Minute
		ip := fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i/65536%256, i/256%256, i%256+1)
		cfg.newHost = func(key crypto.PrivKey) (host.Host, error) {
			return mn.AddPeer(key, ma.StringCast(ip))
		}
		if mod != nil {
			mod(&cfg) // may wrap newHost
		}
		nodes[i] = startNode(t, cfg)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range k {
		for d := 1; d <= degree/2; d++ {
			j := (i + d*d) % k
			if j == i {
				continue
			}
			if _, err := mn.ConnectPeers(nodes[i].ID(), nodes[j].ID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range nodes {
		if err := n.dir.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Publish only once routing tables are filled, so that records land
	// on the peers closest to their keys.
	want := min(k-1, 8)
	for _, n := range nodes {
		waitFor(t, 120*time.Second, "routing table", func() bool { return n.dir.RoutingTableSize() >= want })
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.publishBundle(ctx) })
	}
	wg.Wait()
	return nodes, mn
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			dumpGoroutines(t)
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dumpGoroutines writes the stacks of the goroutines running node code to
// $NODE_TEST_LOG_DIR (CI prints it), to tell a stuck lock from a lost
// message when a wait times out.
func dumpGoroutines(t testing.TB) {
	dir := os.Getenv("NODE_TEST_LOG_DIR")
	if dir == "" {
		return
	}
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out bytes.Buffer
	for _, stack := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(stack, []byte("meshchat/node.")) {
			out.Write(stack)
			out.WriteString("\n\n")
		}
	}
	name := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".goroutines.log")
	if err := os.WriteFile(name, out.Bytes(), 0o644); err == nil {
		t.Logf("goroutines running node code in %s", name)
	}
}

// createAndAddTwo has nodes[0] create a group and add nodes[1] and nodes[2]
// in one commit, and waits until all three are at epoch 1 and see each
// other on the group's topic.
func createAndAddTwo(ctx context.Context, t testing.TB, nodes []*Node, name string) (g0, g1, g2 *Group) {
	t.Helper()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := g0.Add(ctx, nodes[1].ID(), nodes[2].ID()); err != nil {
		t.Fatal(err)
	}
	g1 = groupOf(t, nodes[1], g0.TopicID(), 15*time.Second)
	g2 = groupOf(t, nodes[2], g0.TopicID(), 15*time.Second)
	waitEpoch(t, 1, g0, g1, g2)
	waitTopicPeers(t, 2, g0, g1, g2)
	return g0, g1, g2
}

// groupOf waits until n is in the group with the given topic.
func groupOf(t testing.TB, n *Node, topic gossip.TopicID, timeout time.Duration) *Group {
	t.Helper()
	var g *Group
	waitFor(t, timeout, fmt.Sprintf("%s to join %s", n.ID(), topic), func() bool {
		var ok bool
		g, ok = n.Group(topic)
		return ok
	})
	return g
}

// waitEpoch waits until every group is at epoch and they agree on its
// authenticator.
func waitEpoch(t testing.TB, epoch uint64, groups ...*Group) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("epoch %d everywhere", epoch), func() bool {
		for _, g := range groups {
			if g.Epoch() != epoch {
				return false
			}
		}
		return true
	})
	want := groups[0].EpochAuthenticator()
	for _, g := range groups[1:] {
		if !bytes.Equal(g.EpochAuthenticator(), want) {
			t.Fatalf("epoch %d: members disagree on the epoch authenticator", epoch)
		}
	}
}

// waitTopicPeers waits until each group sees at least k peers on its topic.
func waitTopicPeers(t testing.TB, k int, groups ...*Group) {
	t.Helper()
	for _, g := range groups {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := g.WaitForPeers(ctx, k)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// receive collects exactly want messages from g within timeout.
func receive(t testing.TB, g *Group, want int, timeout time.Duration) []Message {
	t.Helper()
	var got []Message
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(got) < want {
		select {
		case m, ok := <-g.Messages():
			if !ok {
				t.Fatalf("message channel closed after %d of %d messages", len(got), want)
			}
			got = append(got, m)
		case <-timer.C:
			dumpGoroutines(t)
			texts := make([]string, len(got))
			for i, m := range got {
				texts[i] = fmt.Sprintf("%q from %s", m.Data, m.Sender.ShortString())
			}
			t.Fatalf("%s received %d of %d messages within %v: %s", g.n.ID().ShortString(), len(got), want, timeout, strings.Join(texts, ", "))
		}
	}
	return got
}

// expectQuiet fails if g delivers anything within d.
func expectQuiet(t testing.TB, g *Group, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-g.Messages():
		if ok {
			t.Fatalf("unexpected message %q from %s", m.Data, m.Sender)
		}
	case <-time.After(d):
	}
}

// send sends text on g, failing the test on error.
func send(t testing.TB, g *Group, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.Send(ctx, []byte(text)); err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
}

// checkExactlyOnceInOrder checks that msgs holds, for every sender in
// senders, exactly its texts "<sender index>:<i>" for i in [0, perSender),
// in order.
func checkExactlyOnceInOrder(t testing.TB, who string, msgs []Message, senders map[peer.ID]int, perSender int) {
	t.Helper()
	next := make(map[peer.ID]int)
	lastSeq := make(map[peer.ID]uint64)
	for _, m := range msgs {
		idx, ok := senders[m.Sender]
		if !ok {
			t.Fatalf("%s: message from unexpected sender %s", who, m.Sender)
		}
		want := fmt.Sprintf("%d:%d", idx, next[m.Sender])
		if string(m.Data) != want {
			t.Fatalf("%s: from sender %d got %q, want %q (duplicate, loss or reordering)", who, idx, m.Data, want)
		}
		if m.Seq <= lastSeq[m.Sender] {
			t.Fatalf("%s: sender %d message %q has seq %d after %d", who, idx, m.Data, m.Seq, lastSeq[m.Sender])
		}
		lastSeq[m.Sender] = m.Seq
		next[m.Sender]++
	}
	for s, idx := range senders {
		if next[s] != perSender {
			t.Fatalf("%s: %d messages from sender %d, want %d", who, next[s], idx, perSender)
		}
	}
}
