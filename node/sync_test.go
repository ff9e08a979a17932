package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshchat/meshchat/commitorder"
)

// TestCatchUpAfterOffline: a member's node is closed while the two others
// advance 20 epochs (rotations, alternating committers) and chat. Restarted
// from its data directory, it asks a member over /meshchat/sync/1.0.0 for
// the commits it missed, processes them in order through the commit
// tracker, ends on the same epoch authenticator as the others, and reads
// and sends new messages.
func TestCatchUpAfterOffline(t *testing.T) {
	nodes := cluster(t, 3)
	groups := groupOfNodes(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := nodes[2].cfg
	cfg.BootstrapPeers = nodes[0].Addrs()
	topic := groups[0].TopicID()
	offlineEpoch := groups[2].Epoch()
	nodes[2].Close()
	for i := range 20 {
		g := groups[i%2]
		if err := g.Rotate(ctx); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		waitEpoch(t, offlineEpoch+uint64(i)+1, groups[:2]...)
	}
	want := groups[0].EpochAuthenticator()
	start := time.Now()
	n2 := startNode(t, cfg)
	g2 := groupOf(t, n2, topic, 5*time.Second)
	if g2.Epoch() != offlineEpoch {
		t.Fatalf("restarted at epoch %d, want %d", g2.Epoch(), offlineEpoch)
	}
	groups[2], nodes[2] = g2, n2
	waitAuthenticator(t, want, groups...)
	t.Logf("caught up 20 epochs %v after restart", time.Since(start).Round(time.Millisecond))
	if g2.Epoch() != offlineEpoch+20 {
		t.Fatalf("caught up to epoch %d, want %d", g2.Epoch(), offlineEpoch+20)
	}
	waitTopicPeers(t, 1, groups...)
	texts := make(map[string]peer.ID)
	for i, g := range groups {
		text := fmt.Sprintf("%d:back", i)
		texts[text] = nodes[i].ID()
		send(t, g, text)
	}
	receiveExactlyOnce(t, groups, nodes, texts)
}

// TestSyncEnvelopes: the sync request and response decode what they
// encode, and reject trailing bytes, a wrong type and a bad commit list.
func TestSyncEnvelopes(t *testing.T) {
	req := &syncRequest{GroupID: []byte("group"), Since: 42}
	enc := req.marshal()
	got, err := parseSyncRequest(enc)
	if err != nil || !bytes.Equal(got.GroupID, req.GroupID) || got.Since != 42 {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	if _, err := parseSyncRequest(append(enc, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	commits := [][]byte{{1, 2, 3}, {4}}
	resp, err := (&syncResponse{Epoch: 7, State: commitorder.StateID{1}, GroupInfo: []byte{5}, Commits: commits}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseSyncResponse(resp)
	if err != nil || back.Epoch != 7 || back.State != (commitorder.StateID{1}) || !bytes.Equal(back.GroupInfo, []byte{5}) ||
		len(back.Commits) != 2 || !bytes.Equal(back.Commits[0], commits[0]) || !bytes.Equal(back.Commits[1], commits[1]) {
		t.Fatalf("response round trip: %+v, %v", back, err)
	}
	if _, err := parseSyncResponse(enc); err == nil {
		t.Fatal("request accepted as a response")
	}
	if _, err := parseSyncRequest(resp); err == nil {
		t.Fatal("response accepted as a request")
	}
	if _, err := parseSyncResponse(resp[:len(resp)-1]); err == nil {
		t.Fatal("truncated response accepted")
	}
}

// TestResyncPastRetention: with a handshake log of 4 epochs, a member's
// node is closed while the others advance 12 epochs. Restarted, it finds
// the log does not reach back to its epoch, rejoins at a member's current
// state by an external commit that replaces its old leaf (RFC 9420
// §12.4.3.2), everyone converges on the state that commit made, and it
// reads and sends new messages.
func TestResyncPastRetention(t *testing.T) {
	nodes := clusterWith(t, 3, func(c *Config) { c.handshakeRetention = 4 })
	groups := groupOfNodes(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := nodes[2].cfg
	cfg.BootstrapPeers = nodes[0].Addrs()
	topic := groups[0].TopicID()
	offlineEpoch := groups[2].Epoch()
	nodes[2].Close()
	for i := range 12 {
		if err := groups[i%2].Rotate(ctx); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		waitEpoch(t, offlineEpoch+uint64(i)+1, groups[:2]...)
	}
	start := time.Now()
	n2 := startNode(t, cfg)
	g2 := groupOf(t, n2, topic, 5*time.Second)
	groups[2], nodes[2] = g2, n2
	target := offlineEpoch + 13 // the 12 rotations, then the external commit
	waitFor(t, 30*time.Second, "convergence after the resync", func() bool {
		want := groups[0].EpochAuthenticator()
		for _, g := range groups {
			if g.Epoch() != target || !bytes.Equal(g.EpochAuthenticator(), want) {
				return false
			}
		}
		return true
	})
	t.Logf("resynced past the retention %v after restart", time.Since(start).Round(time.Millisecond))
	for i, g := range groups {
		if len(g.Members()) != 3 {
			t.Fatalf("member %d sees %d members, want 3", i, len(g.Members()))
		}
	}
	waitTopicPeers(t, 1, groups...)
	texts := make(map[string]peer.ID)
	for i, g := range groups {
		text := fmt.Sprintf("%d:resynced", i)
		texts[text] = nodes[i].ID()
		send(t, g, text)
	}
	receiveExactlyOnce(t, groups, nodes, texts)
}
