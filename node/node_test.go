package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/mls"
	"go.uber.org/goleak"
)

// chat makes every group send perSender messages "<index>:<i>" concurrently
// and checks that every group receives every other group's messages exactly
// once and in each sender's order.
func chat(t *testing.T, groups []*Group, nodes []*Node, perSender int) {
	t.Helper()
	waitTopicPeers(t, len(groups)-1, groups...)
	senders := make(map[peer.ID]int)
	for i, n := range nodes {
		senders[n.ID()] = i
	}
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			for k := range perSender {
				send(t, g, fmt.Sprintf("%d:%d", i, k))
			}
		})
	}
	wg.Wait()
	for i, g := range groups {
		others := make(map[peer.ID]int)
		for id, idx := range senders {
			if idx != i {
				others[id] = idx
			}
		}
		got := receive(t, g, perSender*(len(groups)-1), 20*time.Second)
		checkExactlyOnceInOrder(t, fmt.Sprintf("member %d", i), got, others, perSender)
	}
	for _, g := range groups {
		expectQuiet(t, g, 300*time.Millisecond)
	}
}

// TestGroupOfFiveByPeerID: five real loopback nodes; the first creates a
// group and adds the other four one at a time by peer ID, each KeyPackage
// fetched from the DHT; everyone then chats.
func TestGroupOfFiveByPeerID(t *testing.T) {
	nodes := cluster(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "five", Policy: Invite})
	if err != nil {
		t.Fatal(err)
	}
	groups := []*Group{g0}
	for i := 1; i < 5; i++ {
		if err := g0.Add(ctx, nodes[i].ID()); err != nil {
			t.Fatalf("add node %d: %v", i, err)
		}
		g := groupOf(t, nodes[i], g0.TopicID(), 15*time.Second)
		groups = append(groups, g)
		waitEpoch(t, uint64(i), groups...)
		waitTopicPeers(t, 1, groups...)
	}
	waitTopicPeers(t, 2, groups...)
	for i, g := range groups {
		if g.Name() != "five" || g.Policy() != Invite {
			t.Fatalf("member %d sees name %q policy %v", i, g.Name(), g.Policy())
		}
		members := g.Members()
		if len(members) != 5 {
			t.Fatalf("member %d sees %d members", i, len(members))
		}
		for j, m := range members {
			if m.PeerID != nodes[j].ID() || m.Self != (i == j) {
				t.Fatalf("member %d: leaf %d is %s (self %v), want node %d", i, m.Leaf, m.PeerID, m.Self, j)
			}
		}
	}
	chat(t, groups, nodes, 5)
	// Adding a member twice is refused.
	if err := g0.Add(ctx, nodes[1].ID()); !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("second add: %v, want ErrAlreadyMember", err)
	}
}

// TestJoinByTopicOpen: an open group admits peers that know only the topic
// ID; the lowest-leaf member admits, and every joiner ends up in the same
// epoch with everyone.
func TestJoinByTopicOpen(t *testing.T) {
	nodes := cluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "open"})
	if err != nil {
		t.Fatal(err)
	}
	groups := []*Group{g0}
	for i := 1; i < 4; i++ {
		g, err := nodes[i].Join(ctx, string(g0.TopicID()))
		if err != nil {
			t.Fatalf("node %d join: %v", i, err)
		}
		// Right after the join, without waiting for anything, the
		// admitter and the joiner talk; neither message may be lost.
		send(t, g0, fmt.Sprintf("welcome %d", i))
		send(t, g, fmt.Sprintf("hello from %d", i))
		if m := receive(t, g, 1, 10*time.Second)[0]; string(m.Data) != fmt.Sprintf("welcome %d", i) {
			t.Fatalf("joiner %d got %q", i, m.Data)
		}
		if m := receive(t, g0, 1, 10*time.Second)[0]; string(m.Data) != fmt.Sprintf("hello from %d", i) {
			t.Fatalf("admitter got %q", m.Data)
		}
		for _, other := range groups[1:] {
			got := receive(t, other, 2, 10*time.Second)
			texts := map[string]bool{string(got[0].Data): true, string(got[1].Data): true}
			if !texts[fmt.Sprintf("welcome %d", i)] || !texts[fmt.Sprintf("hello from %d", i)] {
				t.Fatalf("member got %q and %q", got[0].Data, got[1].Data)
			}
		}
		groups = append(groups, g)
		waitEpoch(t, uint64(i), groups...)
		waitTopicPeers(t, 1, groups...)
	}
	if got := len(g0.Members()); got != 4 {
		t.Fatalf("%d members, want 4", got)
	}
	waitTopicPeers(t, 2, groups...)
	chat(t, groups, nodes, 3)
}

// TestJoinInviteOnly: an invite-only group refuses a peer that knows only the
// topic ID, and admits one that presents an invite code; a forged code is
// refused too.
func TestJoinInviteOnly(t *testing.T) {
	nodes := cluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "closed", Policy: Invite})
	if err != nil {
		t.Fatal(err)
	}
	// Uninvited: knows the topic ID only.
	short, cancelShort := context.WithTimeout(ctx, 4*time.Second)
	_, err = nodes[1].Join(short, string(g0.TopicID()))
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("uninvited join: %v, want a timeout", err)
	}
	// Forged: a well-formed code with a key the group never issued.
	code, err := g0.NewInvite()
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(code)
	last := len(forged) - 2
	if forged[last] == 'a' {
		forged[last] = 'b'
	} else {
		forged[last] = 'a'
	}
	short, cancelShort = context.WithTimeout(ctx, 3*time.Second)
	_, err = nodes[3].Join(short, string(forged))
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("join with forged code: %v, want a timeout", err)
	}
	if got := len(g0.Members()); got != 1 || g0.Epoch() != 0 {
		t.Fatalf("after refused joins: %d members at epoch %d, want 1 at 0", got, g0.Epoch())
	}
	// Invited.
	g2, err := nodes[2].Join(ctx, code)
	if err != nil {
		t.Fatalf("invited join: %v", err)
	}
	waitEpoch(t, 1, g0, g2)
	members := g0.Members()
	if len(members) != 2 || members[1].PeerID != nodes[2].ID() {
		t.Fatalf("members after invited join: %+v", members)
	}
	for _, m := range members {
		if m.PeerID == nodes[1].ID() || m.PeerID == nodes[3].ID() {
			t.Fatalf("refused peer %s is a member", m.PeerID)
		}
	}
	waitTopicPeers(t, 1, g0, g2)
	chat(t, []*Group{g0, g2}, []*Node{nodes[0], nodes[2]}, 2)
}

// TestOfflineJoinerFromMailbox: a peer that published its KeyPackages and
// went offline is added while down; when it starts again it finds the
// Welcome in its DHT mailbox, joins, and chats. The one-time KeyPackage it
// joined with leaves its bundle and is replaced.
func TestOfflineJoinerFromMailbox(t *testing.T) {
	nodes := cluster(t, 3)
	offlineDir := t.TempDir()
	offlineCfg := testConfig(t, offlineDir, nodes[0].Addrs()...)
	off := startNode(t, offlineCfg)
	offID := off.ID()
	waitFor(t, 10*time.Second, "routing table", func() bool { return off.dir.RoutingTableSize() >= 1 })
	pubCtx, pubCancel := context.WithTimeout(context.Background(), 10*time.Second)
	off.publishBundle(pubCtx)
	pubCancel()
	off.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "mailbox", Policy: Invite})
	if err != nil {
		t.Fatal(err)
	}
	if err := g0.Add(ctx, nodes[1].ID(), offID); err != nil {
		t.Fatalf("add: %v", err)
	}
	g1 := groupOf(t, nodes[1], g0.TopicID(), 15*time.Second)
	waitEpoch(t, 1, g0, g1)

	// Give the Welcome time to be filed, then start the offline peer.
	waitFor(t, 20*time.Second, "Welcome filed", func() bool {
		g0.mu.Lock()
		defer g0.mu.Unlock()
		return g0.outboxLen == 0
	})
	back := startNode(t, offlineCfg)
	if back.ID() != offID {
		t.Fatalf("restarted with peer ID %s, want %s", back.ID(), offID)
	}
	var g3 *Group
	select {
	case g3 = <-back.NewGroups():
	case <-time.After(20 * time.Second):
		t.Fatal("the restarted peer did not join from its mailbox")
	}
	if g3.TopicID() != g0.TopicID() {
		t.Fatalf("joined %s, want %s", g3.TopicID(), g0.TopicID())
	}
	waitEpoch(t, 1, g0, g1, g3)
	waitTopicPeers(t, 1, g0, g1, g3)
	waitTopicPeers(t, 2, g0, g1, g3)
	chat(t, []*Group{g0, g1, g3}, []*Node{nodes[0], nodes[1], back}, 3)

	// The KeyPackage used is gone from the private store and the bundle,
	// and the bundle is back to full strength.
	waitFor(t, 10*time.Second, "bundle without the used KeyPackage", func() bool {
		b := back.dir.Published()
		if b == nil || len(b.KeyPackages) != offlineCfg.KeyPackages+1 {
			return false
		}
		for _, kp := range b.KeyPackages {
			back.kpMu.Lock()
			_, held := back.kps[string(mustRef(t, kp.Data))]
			back.kpMu.Unlock()
			if !held {
				return false
			}
		}
		return true
	})
}

// TestRemoveMember: a removed member's channel closes, it cannot read what
// the group sends afterwards even with its last state, and the remaining
// members go on.
func TestRemoveMember(t *testing.T) {
	nodes := cluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, g1, g2 := createAndAddTwo(ctx, t, nodes, "remove")

	// A bystander records the topic's raw traffic.
	tap := newTap(t, nodes[3], g0.TopicID())
	waitTopicPeers(t, 3, g0)

	g2.mu.Lock()
	lastState, err := g2.state.MarshalBinary()
	g2.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := g0.Remove(ctx, nodes[2].ID()); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, 2, g0, g1)
	waitFor(t, 10*time.Second, "removal noticed", g2.Removed)
	if _, ok := <-g2.Messages(); ok {
		t.Fatal("removed member's channel delivered a message")
	}
	if got := len(g1.Members()); got != 2 {
		t.Fatalf("%d members after removal, want 2", got)
	}
	send(t, g0, "after removal")
	if m := receive(t, g1, 1, 10*time.Second)[0]; string(m.Data) != "after removal" {
		t.Fatalf("remaining member got %q", m.Data)
	}
	// With its last state, the removed member can process the removal
	// commit but not read the message sent after it.
	frames := tap.wait(t, 2, 10*time.Second)
	st, err := mls.LoadGroup(lastState, nodes[2].mlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.ProcessMessage(frames[0])
	if err != nil || r.Kind != mls.CommitMessage || !r.Next.Removed() {
		t.Fatalf("removal commit on the removed member's state: %v", err)
	}
	if _, err := r.Next.ProcessMessage(frames[1]); err == nil {
		t.Fatal("removed member opened a message sent after its removal")
	}
	if _, err := st.ProcessMessage(frames[1]); err == nil {
		t.Fatal("removed member's old state opened a message of the next epoch")
	}
	if err := g2.Rotate(ctx); !errors.Is(err, ErrNotMember) {
		t.Fatalf("rotate after removal: %v, want ErrNotMember", err)
	}
}

// TestGarbageOnTopicDropped: a peer on the topic that publishes garbage
// (random bytes, broken envelopes, messages of another group, truncated or
// tampered real messages) gets none of it delivered, and a real message
// after it arrives exactly once.
func TestGarbageOnTopicDropped(t *testing.T) {
	nodes := cluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "garbage"})
	if err != nil {
		t.Fatal(err)
	}
	g1, err := nodes[1].Join(ctx, string(g0.TopicID()))
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, 1, g0, g1)
	tap := newTap(t, nodes[2], g0.TopicID())
	waitTopicPeers(t, 2, g0, g1)
	send(t, g0, "real 1")
	receive(t, g1, 1, 10*time.Second)
	real := tap.wait(t, 1, 10*time.Second)[0]

	other, err := nodes[2].CreateGroup(ctx, GroupOptions{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	other.mu.Lock()
	foreign, err := other.state.Seal([]byte("foreign"), (&appMeta{Seq: 1, SentAt: time.Now()}).marshal())
	other.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), real...)
	tampered[len(tampered)-1] ^= 1
	garbage := [][]byte{
		[]byte("hello"),
		{0x00, 0x01, 0x00, 0x02},
		[]byte("mc\x01\x01garbage"),
		real[:len(real)/2],
		append(append([]byte(nil), real...), 0),
		foreign,
		tampered,
		real, // a replay of a delivered message
	}
	for _, m := range garbage {
		if err := tap.topic.Publish(ctx, m); err != nil {
			t.Fatalf("tap publish: %v", err)
		}
	}
	send(t, g1, "real 2")
	if m := receive(t, g0, 1, 10*time.Second)[0]; string(m.Data) != "real 2" {
		t.Fatalf("got %q, want the real message", m.Data)
	}
	expectQuiet(t, g0, 500*time.Millisecond)
	expectQuiet(t, g1, 200*time.Millisecond)
}

// TestRestartResumesGroup: a node restarted from its data directory is in
// the group at the epoch it left, receives new messages exactly once (by
// gossip, or by anti-entropy if the publish reached nobody because n0's
// GossipSub did not know the new subscription yet), and a message it queued
// while nobody could hear it is sent after the restart.
func TestRestartResumesGroup(t *testing.T) {
	nodes := cluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "restart"})
	if err != nil {
		t.Fatal(err)
	}
	cfg1 := testConfig(t, t.TempDir(), nodes[0].Addrs()...)
	cfg1.PublishWait = 100 * time.Millisecond
	n1 := startNode(t, cfg1)
	g1, err := n1.Join(ctx, string(g0.TopicID()))
	if err != nil {
		t.Fatal(err)
	}
	if err := g0.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, 2, g0, g1)
	send(t, g0, "before")
	receive(t, g1, 1, 10*time.Second)
	epochAuth := g1.EpochAuthenticator()

	// n1 queues a message that never leaves (as if it crashed before
	// publishing), and stops. Holding the publish instead of cutting the
	// connection keeps libp2p from reconnecting behind the test's back.
	g1.testHoldPublish.Store(true)
	send(t, g1, "queued while alone")
	g1.mu.Lock()
	queued := g1.outboxLen
	g1.mu.Unlock()
	if queued != 1 {
		t.Fatalf("outbox holds %d messages, want 1", queued)
	}
	n1.Close()

	n1 = startNode(t, cfg1)
	g1 = groupOf(t, n1, g0.TopicID(), 5*time.Second)
	if g1.Epoch() != 2 || !bytes.Equal(g1.EpochAuthenticator(), epochAuth) {
		t.Fatalf("restarted at epoch %d, want 2 with the same authenticator", g1.Epoch())
	}
	// The own message sealed in this epoch is known to the commit tracker
	// again, to be re-sent should the epoch lose to a late commit.
	g1.mu.Lock()
	var remembered []string
	for _, s := range g1.sentData {
		remembered = append(remembered, string(s.data))
	}
	g1.mu.Unlock()
	if len(remembered) != 1 || remembered[0] != "queued while alone" {
		t.Fatalf("after restart the tracker remembers %q, want the queued message", remembered)
	}
	if m := receive(t, g0, 1, 15*time.Second)[0]; string(m.Data) != "queued while alone" || m.Sender != n1.ID() {
		t.Fatalf("got %q from %s", m.Data, m.Sender)
	}
	hist, err := g1.History(0)
	if err != nil || len(hist) != 2 || string(hist[0].Data) != "before" || !hist[1].Own {
		t.Fatalf("history after restart: %v %+v", err, hist)
	}
	// No wait for n0's GossipSub router to learn the restarted node's
	// subscription: if "after" goes to nobody (or to the old connection),
	// anti-entropy (Config.SyncInterval, or n0 appearing on n1's topic)
	// brings it to n1, once.
	send(t, g0, "after")
	if m := receive(t, g1, 1, 20*time.Second)[0]; string(m.Data) != "after" {
		t.Fatalf("got %q", m.Data)
	}
	send(t, g1, "reply")
	if m := receive(t, g0, 1, 20*time.Second)[0]; string(m.Data) != "reply" {
		t.Fatalf("got %q", m.Data)
	}
	// Several anti-entropy rounds later, nothing arrives twice.
	expectQuiet(t, g1, 2500*time.Millisecond)
	expectQuiet(t, g0, 100*time.Millisecond)
}

// TestOutboxDeleteCountsOnce: an outbox entry deleted twice (a flush that
// read the outbox before a Welcome's delivery removed it) is counted once;
// a count below the entries would stop the outbox from ever flushing.
func TestOutboxDeleteCountsOnce(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := n.CreateGroup(ctx, GroupOptions{Name: "outbox"})
	if err != nil {
		t.Fatal(err)
	}
	g.testHoldPublish.Store(true)
	g.mu.Lock()
	before := g.outboxLen
	var index uint64
	err = n.store.Update(func(tx Tx) error {
		r := &outboxRecord{Kind: outboxCommit, Message: []byte("entry")}
		if err := g.appendOutboxLocked(tx, r); err != nil {
			return err
		}
		index = r.Index
		return nil
	})
	g.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	g.deleteOutbox(index)
	g.deleteOutbox(index)
	g.mu.Lock()
	after := g.outboxLen
	g.mu.Unlock()
	if after != before {
		t.Fatalf("outbox count %d after adding and deleting (twice) one entry, want %d", after, before)
	}
}

// TestAutomaticRotation: with RotateAfterMessages set, a member issues an
// update commit after that many messages and the group moves on.
func TestAutomaticRotation(t *testing.T) {
	n0 := startNode(t, testConfig(t, t.TempDir()))
	cfg := testConfig(t, t.TempDir(), n0.Addrs()...)
	cfg.RotateAfterMessages = 3
	n1 := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, err := n0.CreateGroup(ctx, GroupOptions{Name: "rotate"})
	if err != nil {
		t.Fatal(err)
	}
	g1, err := n1.Join(ctx, string(g0.TopicID()))
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, 1, g0, g1)
	waitTopicPeers(t, 1, g0, g1)
	before := g1.EpochAuthenticator()
	for i := range 3 {
		send(t, g1, fmt.Sprintf("m%d", i))
	}
	waitEpoch(t, 2, g0, g1)
	if bytes.Equal(before, g1.EpochAuthenticator()) {
		t.Fatal("epoch authenticator unchanged after rotation")
	}
	got := receive(t, g0, 3, 10*time.Second)
	for i, m := range got {
		if string(m.Data) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: %q", i, m.Data)
		}
	}
	send(t, g1, "after rotation")
	if m := receive(t, g0, 1, 10*time.Second)[0]; string(m.Data) != "after rotation" || m.Epoch != 2 {
		t.Fatalf("got %q in epoch %d", m.Data, m.Epoch)
	}
}

// TestCloseLeavesNoGoroutines: after Close, nothing the node started is
// still running.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	dir0, dir1 := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n0, err := New(ctx, testConfig(t, dir0))
	if err != nil {
		t.Fatal(err)
	}
	n1, err := New(ctx, testConfig(t, dir1, n0.Addrs()...))
	if err != nil {
		n0.Close()
		t.Fatal(err)
	}
	g0, err := n0.CreateGroup(ctx, GroupOptions{})
	if err == nil {
		_, err = n1.Join(ctx, string(g0.TopicID()))
	}
	if err == nil {
		_, err = g0.Send(ctx, []byte("bye"))
	}
	n1.Close()
	n0.Close()
	if err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}

// TestAdmissionOnceAndTakeover: when every member hears a join request, only
// the lowest-leaf member admits (one commit, one new leaf); when that member
// is offline, the next one takes over after AdmitTakeover.
func TestAdmissionOnceAndTakeover(t *testing.T) {
	nodes := cluster(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g0, g1, g2 := createAndAddTwo(ctx, t, nodes, "admission")

	g3, err := nodes[3].Join(ctx, string(g0.TopicID()))
	if err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, 2, g0, g1, g2, g3)
	// Longer than every member's takeover delay: a second admission
	// would have moved the epoch on.
	time.Sleep(3 * nodes[0].cfg.AdmitTakeover)
	waitEpoch(t, 2, g0, g1, g2, g3)
	checkMembers(t, g2, nodes[:4])

	// The lowest-leaf member goes away; leaf 1 takes over.
	nodes[0].Close()
	start := time.Now()
	g4, err := nodes[4].Join(ctx, string(g0.TopicID()))
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	waitEpoch(t, 3, g1, g2, g3, g4)
	time.Sleep(3 * nodes[1].cfg.AdmitTakeover)
	waitEpoch(t, 3, g1, g2, g3, g4)
	checkMembers(t, g4, nodes)
	if took < nodes[1].cfg.AdmitTakeover {
		t.Fatalf("admitted after %v, before leaf 1's takeover delay", took)
	}
}

// checkMembers checks that g's members are exactly nodes, in leaf order.
func checkMembers(t *testing.T, g *Group, nodes []*Node) {
	t.Helper()
	members := g.Members()
	if len(members) != len(nodes) {
		t.Fatalf("%d members, want %d: %+v", len(members), len(nodes), members)
	}
	for i, m := range members {
		if m.PeerID != nodes[i].ID() {
			t.Fatalf("leaf %d is %s, want node %d", m.Leaf, m.PeerID, i)
		}
	}
}
