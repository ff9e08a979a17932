package node

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// raceSettleWindow is the settle window of the commit-race tests: wide
// enough for a commit to cross loopback on a loaded machine.
const raceSettleWindow = 3 * time.Second

// groupOfThree starts three loopback nodes and puts them in one group,
// leaf i on node i.
func groupOfThree(t *testing.T) ([]*Node, []*Group) {
	t.Helper()
	nodes := clusterWith(t, 3, func(c *Config) { c.SettleWindow = raceSettleWindow })
	return nodes, groupOfNodes(t, nodes)
}

// groupOfNodes puts nodes in one group, leaf i on node i.
func groupOfNodes(t *testing.T, nodes []*Node) []*Group {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "race", Policy: Invite})
	if err != nil {
		t.Fatal(err)
	}
	groups := []*Group{g0}
	for i := 1; i < len(nodes); i++ {
		if err := g0.Add(ctx, nodes[i].ID()); err != nil {
			t.Fatalf("add node %d: %v", i, err)
		}
		groups = append(groups, groupOf(t, nodes[i], g0.TopicID(), 15*time.Second))
		waitEpoch(t, uint64(i), groups...)
	}
	waitTopicPeers(t, len(nodes)-1, groups...)
	return groups
}

// waitAuthenticator waits until every group is on the state with the given
// epoch authenticator.
func waitAuthenticator(t *testing.T, want []byte, groups ...*Group) {
	t.Helper()
	waitFor(t, 20*time.Second, "convergence on the winning commit", func() bool {
		for _, g := range groups {
			if !bytes.Equal(g.EpochAuthenticator(), want) {
				return false
			}
		}
		return true
	})
}

// checkExactlyOnce checks that msgs holds each of want exactly once (in any
// order: a message re-sent in a winning branch may come after later ones).
func checkExactlyOnce(t *testing.T, who string, msgs []Message, want map[string]peer.ID) {
	t.Helper()
	seen := make(map[string]bool)
	for _, m := range msgs {
		text := string(m.Data)
		sender, ok := want[text]
		if !ok {
			t.Fatalf("%s: unexpected message %q", who, text)
		}
		if sender != m.Sender {
			t.Fatalf("%s: message %q from %s, want %s", who, text, m.Sender, sender)
		}
		if seen[text] {
			t.Fatalf("%s: message %q delivered twice", who, text)
		}
		seen[text] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("%s: %d of %d messages delivered", who, len(seen), len(want))
	}
}

// receiveExactlyOnce collects the messages of the other members and checks
// that each arrives once and nothing more follows.
func receiveExactlyOnce(t *testing.T, groups []*Group, nodes []*Node, texts map[string]peer.ID) {
	t.Helper()
	for i, g := range groups {
		want := make(map[string]peer.ID)
		for text, s := range texts {
			if s != nodes[i].ID() {
				want[text] = s
			}
		}
		got := receive(t, g, len(want), 30*time.Second)
		checkExactlyOnce(t, fmt.Sprintf("member %d", i), got, want)
	}
	for _, g := range groups {
		expectQuiet(t, g, 500*time.Millisecond)
	}
}

// sendOneEach makes every member send "<index>:<tag>" and checks that each
// message reaches every other member exactly once.
func sendOneEach(t *testing.T, groups []*Group, nodes []*Node, tag string) {
	t.Helper()
	texts := make(map[string]peer.ID)
	for i, g := range groups {
		text := fmt.Sprintf("%d:%s", i, tag)
		texts[text] = nodes[i].ID()
		send(t, g, text)
	}
	receiveExactlyOnce(t, groups, nodes, texts)
}

// TestCommitRaceLowestLeafWins: the three members rotate on the same state
// and each sends a message on the state its own commit made; the commits
// and messages are released at the same moment. All converge on the commit
// of leaf 0, and every message (those sent during the race, re-sent by
// leaves 1 and 2 on the winning branch, and those sent after) reaches every
// other member once.
func TestCommitRaceLowestLeafWins(t *testing.T) {
	nodes, groups := groupOfThree(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	texts := make(map[string]peer.ID)
	for i, g := range groups {
		g.testHoldPublish.Store(true)
		if err := g.Rotate(ctx); err != nil {
			t.Fatalf("member %d rotate: %v", i, err)
		}
		text := fmt.Sprintf("%d:0", i)
		texts[text] = nodes[i].ID()
		send(t, g, text)
	}
	winner := groups[0].EpochAuthenticator()
	start := time.Now()
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() {
			g.testHoldPublish.Store(false)
			g.opMu.Lock()
			g.flushOutbox(ctx)
			g.opMu.Unlock()
		})
	}
	wg.Wait()
	waitAuthenticator(t, winner, groups...)
	t.Logf("3-way commit race converged %v after the commits were published", time.Since(start).Round(time.Millisecond))
	for i, g := range groups {
		if g.Epoch() != 3 {
			t.Fatalf("member %d at epoch %d, want 3", i, g.Epoch())
		}
	}
	// Leaves 1 and 2 now propose Updates in place of their lost rotations,
	// so a send may first commit them (RFC 9420 §12.4) and move the epoch.
	for i, g := range groups {
		text := fmt.Sprintf("%d:1", i)
		texts[text] = nodes[i].ID()
		send(t, g, text)
	}
	receiveExactlyOnce(t, groups, nodes, texts)
}

// TestCommitRaceHigherIndexFirst: the commits of leaf 2 and leaf 1 are made
// on the same state, and leaf 2's is published first and applied by
// everyone else; leaf 1's arrives later. Applying commits in arrival order
// would keep leaf 2's; the rule switches everyone to leaf 1's, and the
// messages sent on leaf 2's branch are re-sent on leaf 1's and delivered
// once.
func TestCommitRaceHigherIndexFirst(t *testing.T) {
	nodes, groups := groupOfThree(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	groups[1].testHoldPublish.Store(true)
	groups[2].testHoldPublish.Store(true)
	for _, i := range []int{1, 2} {
		if err := groups[i].Rotate(ctx); err != nil {
			t.Fatalf("member %d rotate: %v", i, err)
		}
	}
	loser := groups[2].EpochAuthenticator()
	winner := groups[1].EpochAuthenticator()
	if bytes.Equal(loser, winner) {
		t.Fatal("the two commits lead to the same state")
	}
	// Leaf 2's commit goes out first; leaf 0 applies it.
	groups[2].testHoldPublish.Store(false)
	groups[2].opMu.Lock()
	groups[2].flushOutbox(ctx)
	groups[2].opMu.Unlock()
	waitAuthenticator(t, loser, groups[0], groups[2])
	texts := map[string]peer.ID{"0:0": nodes[0].ID(), "2:0": nodes[2].ID()}
	send(t, groups[0], "0:0")
	send(t, groups[2], "2:0")
	// Then leaf 1's.
	start := time.Now()
	groups[1].testHoldPublish.Store(false)
	groups[1].opMu.Lock()
	groups[1].flushOutbox(ctx)
	groups[1].opMu.Unlock()
	waitAuthenticator(t, winner, groups...)
	t.Logf("late lower-index commit adopted everywhere %v after it was published", time.Since(start).Round(time.Millisecond))
	texts["1:0"] = nodes[1].ID()
	send(t, groups[1], "1:0")
	receiveExactlyOnce(t, groups, nodes, texts)
	// Leaf 2, whose rotation lost, proposed an Update on the winning state
	// (no starvation), which the first send after it commits: all members
	// must still be on one state.
	waitFor(t, 20*time.Second, "one state everywhere", func() bool {
		for _, g := range groups[1:] {
			if !bytes.Equal(g.EpochAuthenticator(), groups[0].EpochAuthenticator()) {
				return false
			}
		}
		return groups[0].Epoch() >= 3
	})
}

// TestCrashBetweenPersistAndPublish: a member commits and sends, both
// persisted with their outbox entries, and its node dies (network cut, then
// shut down) before either is published. Restarted from its data
// directory, it resumes at the epoch of its own commit, publishes the
// commit and the message from its outbox, and the others follow: same
// epoch authenticator everywhere, the message delivered once.
func TestCrashBetweenPersistAndPublish(t *testing.T) {
	nodes, groups := groupOfThree(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g2 := groups[2]
	g2.testHoldPublish.Store(true)
	if err := g2.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	send(t, g2, "2:0")
	after := g2.EpochAuthenticator()
	if g2.Epoch() != 3 {
		t.Fatalf("committer at epoch %d, want 3", g2.Epoch())
	}
	cfg := nodes[2].cfg
	cfg.BootstrapPeers = nodes[0].Addrs()
	// The crash: the network goes first, so nothing can leave while the
	// node shuts down.
	if err := nodes[2].host.Close(); err != nil {
		t.Fatal(err)
	}
	nodes[2].Close()
	for i, g := range groups[:2] {
		if g.Epoch() != 2 {
			t.Fatalf("member %d at epoch %d: the commit left before the crash", i, g.Epoch())
		}
	}
	n2 := startNode(t, cfg)
	g2 = groupOf(t, n2, groups[0].TopicID(), 5*time.Second)
	if g2.Epoch() != 3 || !bytes.Equal(g2.EpochAuthenticator(), after) {
		t.Fatalf("restarted at epoch %d, want 3 with its own commit", g2.Epoch())
	}
	start := time.Now()
	groups[2] = g2
	waitAuthenticator(t, after, groups...)
	t.Logf("commit from the outbox adopted everywhere %v after restart", time.Since(start).Round(time.Millisecond))
	nodes[2] = n2
	texts := map[string]peer.ID{"2:0": n2.ID()}
	for i, g := range groups[:2] {
		text := fmt.Sprintf("%d:0", i)
		texts[text] = nodes[i].ID()
		send(t, g, text)
	}
	receiveExactlyOnce(t, groups, nodes, texts)
}

// TestLostAddCommittedAgain: leaf 1 rotates and leaf 2 adds a newcomer on
// the same state; both commits go out together and leaf 1's wins. The
// Welcome of the losing Add is never delivered (it waits for its state to
// settle, and that state loses); leaf 2 commits the Add again on the
// winning branch, and the newcomer joins there: same epoch authenticator
// as everyone, and it reads the messages sent after.
func TestLostAddCommittedAgain(t *testing.T) {
	nodes := clusterWith(t, 4, func(c *Config) { c.SettleWindow = raceSettleWindow })
	groups := groupOfNodes(t, nodes[:3])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	groups[1].testHoldPublish.Store(true)
	groups[2].testHoldPublish.Store(true)
	if err := groups[1].Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := groups[2].Add(ctx, nodes[3].ID()); err != nil {
		t.Fatal(err)
	}
	winner := groups[1].EpochAuthenticator()
	var wg sync.WaitGroup
	for _, g := range groups[1:] {
		wg.Go(func() {
			g.testHoldPublish.Store(false)
			g.opMu.Lock()
			g.flushOutbox(ctx)
			g.opMu.Unlock()
		})
	}
	wg.Wait()
	start := time.Now()
	waitAuthenticator(t, winner, groups...)
	newcomer := groupOf(t, nodes[3], groups[0].TopicID(), 30*time.Second)
	groups = append(groups, newcomer)
	waitFor(t, 30*time.Second, "everyone on the re-committed Add", func() bool {
		want := groups[0].EpochAuthenticator()
		for _, g := range groups {
			if g.Epoch() != 4 || !bytes.Equal(g.EpochAuthenticator(), want) {
				return false
			}
		}
		return true
	})
	t.Logf("newcomer in the group on the winning branch %v after the race", time.Since(start).Round(time.Millisecond))
	if len(newcomer.Members()) != 4 {
		t.Fatalf("newcomer sees %d members, want 4", len(newcomer.Members()))
	}
	waitTopicPeers(t, 3, groups...)
	sendOneEach(t, groups, nodes, "after")
}
