package node

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/mls"
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
	offlineEpoch := groups[2].Epoch()
	restart := rotateWhileOffline(ctx, t, nodes, groups, 20)
	want := groups[0].EpochAuthenticator()
	start := time.Now()
	n2, g2 := restart()
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
	sendOneEach(t, groups, nodes, "back")
}

// rotateWhileOffline closes nodes[2] and has groups[0] and groups[1] rotate
// k times in turn, each time waiting until both are at the new epoch. It
// returns a function that restarts nodes[2] from its data directory and
// waits for its group.
func rotateWhileOffline(ctx context.Context, t *testing.T, nodes []*Node, groups []*Group, k int) func() (*Node, *Group) {
	t.Helper()
	cfg := nodes[2].cfg
	cfg.BootstrapPeers = nodes[0].Addrs()
	topic := groups[0].TopicID()
	offlineEpoch := groups[2].Epoch()
	nodes[2].Close()
	for i := range k {
		if err := groups[i%2].Rotate(ctx); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		waitEpoch(t, offlineEpoch+uint64(i)+1, groups[:2]...)
	}
	return func() (*Node, *Group) {
		t.Helper()
		n := startNode(t, cfg)
		return n, groupOf(t, n, topic, 5*time.Second)
	}
}

// TestSyncEnvelopes: the sync request and response decode what they
// encode, and reject trailing bytes, truncation, a wrong type, a bad entry
// list and a hash list that is unsorted, repeated, ragged or too long.
func TestSyncEnvelopes(t *testing.T) {
	req := &syncRequest{GroupID: []byte("group"), Since: 42, MessagesSince: 40, State: commitorder.StateID{9},
		Have: []logHash{{1}, {1, 2}, {3}}}
	enc := req.marshal()
	if len(enc) > maxSyncRequest {
		t.Fatalf("request of %d bytes exceeds maxSyncRequest", len(enc))
	}
	got, err := parseSyncRequest(enc)
	if err != nil || !bytes.Equal(got.GroupID, req.GroupID) || got.Since != 42 || got.MessagesSince != 40 ||
		got.State != req.State || len(got.Have) != 3 || got.Have[1] != req.Have[1] {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	if _, err := parseSyncRequest(append(enc, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	for i := range enc {
		if _, err := parseSyncRequest(enc[:i]); err == nil {
			t.Fatalf("request truncated to %d bytes accepted", i)
		}
	}
	for name, have := range map[string][]logHash{
		"unsorted": {{3}, {1}},
		"repeated": {{1}, {1}},
	} {
		bad := (&syncRequest{GroupID: []byte("g"), Have: have}).marshal()
		if _, err := parseSyncRequest(bad); err == nil {
			t.Fatalf("%s hash list accepted", name)
		}
	}
	// A hash list whose length is not a multiple of 8: cut one byte off
	// the list and fix its length prefix.
	ragged := bytes.Clone(enc[:len(enc)-1])
	n := len(req.Have)*8 - 1
	ragged[len(ragged)-n-2], ragged[len(ragged)-n-1] = byte(n>>8), byte(n)
	if _, err := parseSyncRequest(ragged); err == nil {
		t.Fatal("ragged hash list accepted")
	}
	full := &syncRequest{GroupID: bytes.Repeat([]byte{7}, 255)}
	for i := range maxSyncHave + 1 {
		var h logHash
		h[0], h[1] = byte(i>>8), byte(i)
		full.Have = append(full.Have, h)
	}
	if _, err := parseSyncRequest(full.marshal()); err == nil {
		t.Fatal("hash list longer than maxSyncHave accepted")
	}
	full.Have = full.Have[:maxSyncHave]
	if enc := full.marshal(); len(enc) > maxSyncRequest {
		t.Fatalf("largest request is %d bytes, maxSyncRequest %d", len(enc), maxSyncRequest)
	} else if _, err := parseSyncRequest(enc); err != nil {
		t.Fatalf("largest request rejected: %v", err)
	}

	entries := [][]byte{{1, 2, 3}, {4}}
	resp, err := (&syncResponse{Epoch: 7, State: commitorder.StateID{1}, GroupInfo: []byte{5}, Entries: entries}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseSyncResponse(resp)
	if err != nil || back.Epoch != 7 || back.State != (commitorder.StateID{1}) || !bytes.Equal(back.GroupInfo, []byte{5}) ||
		len(back.Entries) != 2 || !bytes.Equal(back.Entries[0], entries[0]) || !bytes.Equal(back.Entries[1], entries[1]) {
		t.Fatalf("response round trip: %+v, %v", back, err)
	}
	if _, err := parseSyncResponse(enc); err == nil {
		t.Fatal("request accepted as a response")
	}
	if _, err := parseSyncRequest(resp); err == nil {
		t.Fatal("response accepted as a request")
	}
	for i := range resp {
		if _, err := parseSyncResponse(resp[:i]); err == nil {
			t.Fatalf("response truncated to %d bytes accepted", i)
		}
	}
	if _, err := parseSyncResponse(append(bytes.Clone(resp), 0)); err == nil {
		t.Fatal("trailing byte after a response accepted")
	}
	empty, err := (&syncResponse{Entries: [][]byte{{}}}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseSyncResponse(empty); err == nil {
		t.Fatal("empty entry accepted")
	}
	many := make([][]byte, maxSyncCommits+1)
	for i := range many {
		many[i] = []byte{1}
	}
	if enc, err := (&syncResponse{Entries: many}).marshal(); err != nil {
		t.Fatal(err)
	} else if _, err := parseSyncResponse(enc); err == nil {
		t.Fatal("more than maxSyncCommits entries accepted")
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
	offlineEpoch := groups[2].Epoch()
	restart := rotateWhileOffline(ctx, t, nodes, groups, 12)
	start := time.Now()
	n2, g2 := restart()
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
	sendOneEach(t, groups, nodes, "resynced")
}

// TestSyncLogSelection: a server serves, from its handshake and application
// logs, exactly the entries the asker does not list, each epoch's
// application messages before its commits; a response cut at the entry
// limit never includes a commit past application messages it left out;
// the asker's list covers its logs and, past the cap, drops whole old
// epochs and asks for messages from a later epoch; the application log is
// trimmed to its limit, oldest epochs first.
func TestSyncLogSelection(t *testing.T) {
	st, err := openBoltStore(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gid := []byte("group-id")
	put := func(tx Tx, bucket string, epoch uint64, data string) {
		t.Helper()
		if err := tx.Put(bucket, handshakeKey(gid, epoch, []byte(data)), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	h := func(data string) logHash { return hashOf(gid, []byte(data)) }
	sortHashes := func(hs ...logHash) []logHash {
		slices.SortFunc(hs, func(a, b logHash) int { return bytes.Compare(a[:], b[:]) })
		return hs
	}
	if err := st.Update(func(tx Tx) error {
		for e, c := range []string{"c0", "c1", "c2", "c3"} {
			put(tx, bucketHandshake, uint64(e), c)
		}
		put(tx, bucketAppLog, 1, "a1x")
		put(tx, bucketAppLog, 1, "a1y")
		put(tx, bucketAppLog, 2, "a2")
		put(tx, bucketAppLog, 3, "a3")
		// Another group's entries must never be served.
		return tx.Put(bucketAppLog, handshakeKey([]byte("other"), 2, []byte("o")), []byte("o"))
	}); err != nil {
		t.Fatal(err)
	}
	serve := func(req *syncRequest) []string {
		t.Helper()
		var out []string
		if err := st.View(func(tx Tx) error {
			entries, err := readSyncLog(tx, gid, req)
			for _, e := range entries {
				out = append(out, string(e))
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := serve(&syncRequest{Since: 2, MessagesSince: 1, Have: sortHashes(h("a1y"), h("c2"))})
	if want := []string{"a1x", "a2", "a3", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("served %q, want %q", got, want)
	}
	got = serve(&syncRequest{Since: 0, MessagesSince: 3})
	if want := []string{"c0", "c1", "c2", "a3", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("served %q, want %q", got, want)
	}

	var have []logHash
	var from uint64
	extra := map[logHash]uint64{h("dead3"): 3, h("dead0"): 0}
	extraHandshake := map[logHash]uint64{h("orphan2"): 2, h("orphan0"): 0}
	if err := st.View(func(tx Tx) error {
		have, from, err = haveList(tx, gid, 1, 1, extraHandshake, extra)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := sortHashes(h("c1"), h("c2"), h("c3"), h("a1x"), h("a1y"), h("a2"), h("a3"), h("dead3"), h("orphan2"))
	if from != 1 || !slices.Equal(have, want) {
		t.Fatalf("haveList = %x from %d, want %x from 1", have, from, want)
	}
	if got := serve(&syncRequest{Since: 1, MessagesSince: from, Have: have}); len(got) != 0 {
		t.Fatalf("served %q to an asker that holds everything", got)
	}

	// Past the entry limit: 1100 messages of epoch 5 and commits of
	// epochs 5 and 6. The response stops inside epoch 5's messages,
	// without epoch 5's commit.
	if err := st.Update(func(tx Tx) error {
		put(tx, bucketHandshake, 5, "c5")
		put(tx, bucketHandshake, 6, "c6")
		for i := range 1100 {
			put(tx, bucketAppLog, 5, fmt.Sprintf("a5-%d", i))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got = serve(&syncRequest{Since: 5, MessagesSince: 5})
	if len(got) != maxSyncCommits || slices.Contains(got, "c5") || slices.Contains(got, "c6") {
		t.Fatalf("cut response: %d entries, commits included: %v", len(got), slices.Contains(got, "c5"))
	}
	// The asker's list is capped: the 1100 messages of epoch 5 and the
	// commits fit, epoch 4 (1000 more) does not, so messages are asked
	// for from epoch 5 on.
	if err := st.Update(func(tx Tx) error {
		for i := range 1000 {
			put(tx, bucketAppLog, 4, fmt.Sprintf("a4-%d", i))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.View(func(tx Tx) error {
		have, from, err = haveList(tx, gid, 0, 0, nil, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if from != 5 || len(have) != 6+1100 || len(have) > maxSyncHave {
		t.Fatalf("capped haveList: %d hashes from epoch %d, want %d from 5", len(have), from, 6+1100)
	}
	if got := serve(&syncRequest{Since: 0, MessagesSince: from, Have: have}); len(got) != 0 {
		t.Fatalf("served %d entries to an asker that holds everything from epoch 5", len(got))
	}

	// Handshake entries cut inside an epoch: that epoch's commits wait
	// for the next response (a proposal of the epoch may be missing),
	// unless they are all the response would hold.
	cutGID := []byte("cut-group")
	if err := st.Update(func(tx Tx) error {
		if err := tx.Put(bucketHandshake, handshakeKey(cutGID, 8, []byte("c8")), []byte("c8")); err != nil {
			return err
		}
		for i := range maxSyncCommits + 10 {
			data := []byte(fmt.Sprintf("c9-%d", i))
			if err := tx.Put(bucketHandshake, handshakeKey(cutGID, 9, data), data); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var cutServed [][]byte
	if err := st.View(func(tx Tx) error {
		var err error
		cutServed, err = readSyncLog(tx, cutGID, &syncRequest{Since: 8, MessagesSince: 8})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(cutServed) != 1 || string(cutServed[0]) != "c8" {
		t.Fatalf("cut inside epoch 9: served %d entries, want only c8", len(cutServed))
	}
	if err := st.View(func(tx Tx) error {
		var err error
		cutServed, err = readSyncLog(tx, cutGID, &syncRequest{Since: 9, MessagesSince: 9})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(cutServed) != maxSyncCommits {
		t.Fatalf("epoch 9 alone: served %d entries, want %d", len(cutServed), maxSyncCommits)
	}

	// The application log's limit drops the oldest epochs.
	g := &Group{n: &Node{store: st, cfg: Config{appLogLimit: 10}}, groupID: []byte("trimmed"), appLogLen: -1}
	for e := range 11 {
		if err := g.logApplicationLocked(nil, uint64(e), []byte(fmt.Sprintf("m%d", e))); err != nil {
			t.Fatal(err)
		}
	}
	var epochs []uint64
	prefix := groupKey(g.groupID)
	if err := st.View(func(tx Tx) error {
		return tx.ForEach(bucketAppLog, prefix, func(k, _ []byte) error {
			e, _, _ := logKeyParts(prefix, k)
			epochs = append(epochs, e)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(epochs, []uint64{6, 7, 8, 9, 10}) || g.appLogLen != 5 {
		t.Fatalf("trimmed log holds epochs %v (count %d), want 6..10", epochs, g.appLogLen)
	}
}

// TestSyncServesProposalsBeforeCommits: an epoch's proposals are served
// after its application messages and before its commits, whatever their
// hashes, so that a commit served finds the proposals it references.
func TestSyncServesProposalsBeforeCommits(t *testing.T) {
	st, err := openBoltStore(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, err := mls.NewIdentity(DefaultCipherSuite, []byte("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.NewGroup(id, nil, &mls.GroupOptions{GroupID: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := g.Commit(&mls.CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	commit := pc.Commit
	app, err := g.Seal([]byte("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gid := g.ID()
	put := func(data []byte) {
		t.Helper()
		if err := st.Update(func(tx Tx) error {
			bucket := bucketHandshake
			if !isProposal(data) && !bytes.Equal(data, commit) {
				bucket = bucketAppLog
			}
			return tx.Put(bucket, handshakeKey(gid, 0, data), data)
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(commit)
	put(app)
	// Proposals until one sorts after the commit in the log's key order
	// (so that key order alone would serve the commit first).
	var proposals [][]byte
	ck := handshakeKey(gid, 0, commit)
	for range 64 {
		p, err := g.ProposeUpdate()
		if err != nil {
			t.Fatal(err)
		}
		if !isProposal(p) {
			t.Fatal("ProposeUpdate's message not recognised as a proposal")
		}
		put(p)
		proposals = append(proposals, p)
		if bytes.Compare(handshakeKey(gid, 0, p), ck) > 0 {
			break
		}
	}
	var served [][]byte
	if err := st.View(func(tx Tx) error {
		served, err = readSyncLog(tx, gid, &syncRequest{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(served) != len(proposals)+2 {
		t.Fatalf("served %d entries, want %d", len(served), len(proposals)+2)
	}
	if !bytes.Equal(served[0], app) || !bytes.Equal(served[len(served)-1], commit) {
		t.Fatal("epoch not served as application message, proposals, commit")
	}
	for _, p := range proposals {
		if !slices.ContainsFunc(served[1:len(served)-1], func(e []byte) bool { return bytes.Equal(e, p) }) {
			t.Fatal("a proposal is not served between the message and the commit")
		}
	}
}

// TestAntiEntropyRecoversDroppedMessage: a member's receive loop drops
// the application messages gossip hands it (as if they never arrived);
// once it stops dropping, its periodic sync brings each of them, exactly
// once and in its sender's order, and keeps delivering nothing twice over
// several further rounds. A third member, which got everything by gossip,
// receives no duplicate from its own syncs.
func TestAntiEntropyRecoversDroppedMessage(t *testing.T) {
	nodes := cluster(t, 3)
	groups := groupOfNodes(t, nodes)
	waitTopicPeers(t, 2, groups...)
	deaf := groups[2]
	deaf.testDropApplication.Store(true)
	// No sync while dropping: wait out one in flight, then push the
	// last sync into the future.
	waitFor(t, 30*time.Second, "the deaf member's sync to end", func() bool {
		deaf.mu.Lock()
		defer deaf.mu.Unlock()
		if deaf.syncing {
			return false
		}
		deaf.lastSync = time.Now().Add(time.Hour)
		return true
	})
	for i := range 3 {
		send(t, groups[0], fmt.Sprintf("0:%d", i))
	}
	send(t, groups[1], "1:0")
	got := receive(t, groups[1], 3, 15*time.Second)
	checkExactlyOnceInOrder(t, "member 1", got, map[peer.ID]int{nodes[0].ID(): 0}, 3)
	if m := receive(t, groups[0], 1, 15*time.Second)[0]; string(m.Data) != "1:0" {
		t.Fatalf("member 0 got %q", m.Data)
	}
	waitFor(t, 15*time.Second, "gossip to hand the deaf member all 4 messages", func() bool {
		return deaf.testDropped.Load() >= 4
	})
	expectQuiet(t, deaf, 200*time.Millisecond)
	deaf.testDropApplication.Store(false)
	deaf.mu.Lock()
	deaf.lastSync = time.Time{}
	deaf.mu.Unlock()
	got = receive(t, deaf, 4, 30*time.Second)
	var texts []string
	for _, m := range got {
		texts = append(texts, string(m.Data))
	}
	from0 := slices.DeleteFunc(slices.Clone(texts), func(s string) bool { return s == "1:0" })
	if len(texts) != 4 || !slices.Contains(texts, "1:0") || !slices.Equal(from0, []string{"0:0", "0:1", "0:2"}) {
		t.Fatalf("deaf member got %q, want 0:0, 0:1, 0:2 in order and 1:0", texts)
	}
	// Several more rounds (SyncInterval is 1 s in tests) deliver nothing
	// again, to anyone.
	expectQuiet(t, deaf, 3500*time.Millisecond)
	expectQuiet(t, groups[0], 100*time.Millisecond)
	expectQuiet(t, groups[1], 100*time.Millisecond)
	hist, err := deaf.History(0)
	if err != nil || len(hist) != 4 {
		t.Fatalf("deaf member's history: %d messages, %v; want 4", len(hist), err)
	}
}

// TestOrphanCommitSyncsBounded: a member's handshake log holds a commit
// made on a state nobody else knows (an orphan, as a branch that lost
// leaves behind). With the periodic sync off, another member syncs in
// rounds the test starts: the orphan is served once, waits in the
// tracker without asking for another sync, is listed as held from then
// on (so it is not served again), and every round asks at most the two
// other members: the number of rounds and requests is bounded by the
// rounds started.
func TestOrphanCommitSyncsBounded(t *testing.T) {
	nodes := clusterWith(t, 3, func(c *Config) { c.SyncInterval = -1 })
	groups := groupOfNodes(t, nodes)
	waitTopicPeers(t, 2, groups...)
	asker, holder := groups[0], groups[2]
	idle := func(g *Group) bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return !g.syncing && !g.syncDue && g.syncMore == "" && len(g.syncJoined) == 0
	}
	waitFor(t, 30*time.Second, "the start-up syncs to end", func() bool {
		return idle(groups[0]) && idle(groups[1]) && idle(groups[2])
	})

	// The orphan: a commit on a state made by a commit never published.
	holder.mu.Lock()
	first, err := holder.state.Commit(&mls.CommitOptions{ForcePath: true,
		AuthenticatedData: (&commitMeta{Parent: holder.stateID}).marshal()})
	if err != nil {
		holder.mu.Unlock()
		t.Fatal(err)
	}
	orphan, err := first.Next.Commit(&mls.CommitOptions{ForcePath: true,
		AuthenticatedData: (&commitMeta{Parent: commitorder.NewStateID(first.Next.EpochAuthenticator())}).marshal()})
	if err != nil {
		holder.mu.Unlock()
		t.Fatal(err)
	}
	holder.logHandshakeLocked(nil, first.Next.Epoch(), orphan.Commit)
	holder.mu.Unlock()
	orphanHash := hashOf(asker.ID(), orphan.Commit)

	counts := func() (all, one, requests int) {
		asker.mu.Lock()
		defer asker.mu.Unlock()
		return asker.syncStats.rounds[syncAll], asker.syncStats.rounds[syncOne], asker.syncStats.requests
	}
	all0, one0, req0 := counts()
	const rounds = 4
	for r := range rounds {
		waitFor(t, 30*time.Second, "the asker to be idle", func() bool { return idle(asker) })
		asker.mu.Lock()
		asker.syncDue = true
		asker.mu.Unlock()
		asker.wake()
		waitFor(t, 30*time.Second, fmt.Sprintf("sync round %d", r), func() bool {
			all, _, _ := counts()
			return all >= all0+r+1 && idle(asker)
		})
		if r == 0 {
			asker.mu.Lock()
			_, listed := asker.unusableHandshake[orphanHash]
			asker.mu.Unlock()
			if !listed {
				t.Fatal("the served orphan is not listed as held")
			}
		}
	}
	// A few ticks more: nothing asks for another sync.
	time.Sleep(time.Second)
	all, one, requests := counts()
	if all-all0 != rounds || one != one0 {
		t.Fatalf("%d rounds asking several members and %d asking one, want %d and 0", all-all0, one-one0, rounds)
	}
	if requests-req0 > 2*rounds {
		t.Fatalf("%d sync requests in %d rounds, want at most %d", requests-req0, rounds, 2*rounds)
	}
	// What the asker lists now keeps the holder from serving the orphan.
	asker.mu.Lock()
	since := asker.tracker.SyncFrom()
	extraHandshake := maps.Clone(asker.unusableHandshake)
	asker.mu.Unlock()
	req := &syncRequest{GroupID: asker.ID(), Since: since, MessagesSince: since}
	if err := asker.n.store.View(func(tx Tx) error {
		var err error
		req.Have, req.MessagesSince, err = haveList(tx, req.GroupID, req.Since, req.MessagesSince, extraHandshake, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var served [][]byte
	if err := holder.n.store.View(func(tx Tx) error {
		var err error
		served, err = readSyncLog(tx, holder.ID(), req)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(served, func(e []byte) bool { return bytes.Equal(e, orphan.Commit) }) {
		t.Fatal("the orphan is served again")
	}
	t.Logf("%d rounds, %d sync requests", all-all0, requests-req0)
}
