package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// chat makes every group send perSender messages "<index>:<i>" concurrently
// and checks that every group receives every other group's messages exactly
// once and in each sender's order.
func chat(t *testing.T, groups []*Group, nodes []*Node, perSender int) {
	t.Helper()
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
