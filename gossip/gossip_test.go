package gossip

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The real checker lives in package mls. This double understands a tiny
// format of its own so that tests can produce each verdict on purpose:
//
//	"TMSG" || group_id [8] || payload   accepted if group_id matches
//	"TFUT" || group_id [8] || payload   ErrUnverifiable (an unknown epoch)
//	anything else                        rejected
type testChecker struct {
	group    []byte
	accepted atomic.Int64
	ignored  atomic.Int64
	rejected atomic.Int64
}

func (c *testChecker) CheckMessage(msg []byte) error {
	if len(msg) < 12 {
		c.rejected.Add(1)
		return errors.New("test message: too short")
	}
	if !bytes.Equal(msg[4:12], c.group) {
		c.rejected.Add(1)
		return errors.New("test message: wrong group")
	}
	switch string(msg[:4]) {
	case "TMSG":
		c.accepted.Add(1)
		return nil
	case "TFUT":
		c.ignored.Add(1)
		return fmt.Errorf("test message: unknown epoch: %w", ErrUnverifiable)
	default:
		c.rejected.Add(1)
		return errors.New("test message: bad magic")
	}
}

// acceptAll is the checker of a misbehaving peer, so that its own Publish
// lets garbage out.
type acceptAll struct{}

func (acceptAll) CheckMessage([]byte) error { return nil }

var testGroup = []byte("group-01")

func msgFor(magic string, group []byte, payload string) []byte {
	return append(append([]byte(magic), group...), payload...)
}

func TestTopicID(t *testing.T) {
	id := TopicIDForGroup([]byte("some group id"))
	sum := sha256.Sum256([]byte("meshchat topic v1some group id"))
	want := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
	if string(id) != want {
		t.Fatalf("TopicIDForGroup = %s, want %s", id, want)
	}
	if len(id) != TopicIDLength {
		t.Fatalf("length %d, want %d", len(id), TopicIDLength)
	}
	if TopicIDForGroup([]byte("another group id")) == id {
		t.Fatal("two groups share a topic ID")
	}
	if got := id.PubsubTopic(); got != "/meshchat/group/1/"+want {
		t.Fatalf("PubsubTopic = %s", got)
	}
	if parsed, err := ParseTopicID(string(id)); err != nil || parsed != id {
		t.Fatalf("ParseTopicID(own) = %s, %v", parsed, err)
	}
	// The last character of a canonical ID has its 4 low bits zero; "b"
	// sets one of them.
	noncanon := string(id[:TopicIDLength-1]) + string(rune(id[TopicIDLength-1]+1))
	for _, bad := range []string{
		"",
		strings.ToUpper(string(id)),
		string(id[:TopicIDLength-1]),
		string(id) + "a",
		string(id[:TopicIDLength-1]) + "1",
		string(id[:TopicIDLength-1]) + "=",
		noncanon,
	} {
		if _, err := ParseTopicID(bad); !errors.Is(err, ErrBadTopicID) {
			t.Errorf("ParseTopicID(%q) = %v, want ErrBadTopicID", bad, err)
		}
	}
}

// testNet is a mocknet of hosts, each running a Service.
type testNet struct {
	mn       mocknet.Mocknet
	hosts    []host.Host
	services []*Service
}

func newTestNet(t *testing.T, n int, cfg func(i int) Config) *testNet {
	t.Helper()
	tn := &testNet{mn: mocknet.New()}
	t.Cleanup(func() {
		for _, s := range tn.services {
			s.Close()
		}
		tn.mn.Close()
	})
	for i := range n {
		h, err := tn.mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		c := Config{}
		if cfg != nil {
			c = cfg(i)
		}
		s, err := New(h, c)
		if err != nil {
			t.Fatal(err)
		}
		tn.hosts = append(tn.hosts, h)
		tn.services = append(tn.services, s)
	}
	if err := tn.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	return tn
}

func (tn *testNet) connect(t *testing.T, a, b int) {
	t.Helper()
	if _, err := tn.mn.ConnectPeers(tn.hosts[a].ID(), tn.hosts[b].ID()); err != nil {
		t.Fatal(err)
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// collect reads messages from topic until want distinct payloads have
// arrived, failing on any message that is not wanted or arrives twice.
func collect(t *testing.T, ctx context.Context, name string, topic *Topic, want map[string]peer.ID, self peer.ID) {
	t.Helper()
	seen := map[string]bool{}
	for len(seen) < len(want) {
		m, err := topic.Next(ctx)
		if err != nil {
			t.Errorf("%s: got %d of %d messages: %v", name, len(seen), len(want), err)
			return
		}
		author, ok := want[string(m.Data)]
		if !ok {
			t.Errorf("%s: delivered unexpected message %.40q from %s", name, m.Data, m.From)
			continue
		}
		if seen[string(m.Data)] {
			t.Errorf("%s: message %q delivered twice", name, m.Data)
		}
		seen[string(m.Data)] = true
		if m.From != author {
			t.Errorf("%s: message %q From = %s, want %s", name, m.Data, m.From, author)
		}
		if m.Local != (author == self) || (m.Local && m.ReceivedFrom != self) {
			t.Errorf("%s: message %q Local = %v (author %s, self %s)", name, m.Data, m.Local, author, self)
		}
	}
}

// TestEveryMessageDeliveredOnceAcrossRing joins six nodes connected only in a
// ring, so most messages travel several hops, and has each publish five
// messages.
func TestEveryMessageDeliveredOnceAcrossRing(t *testing.T) {
	const n, perNode = 6, 5
	tn := newTestNet(t, n, nil)
	for i := range n {
		tn.connect(t, i, (i+1)%n)
	}
	id := TopicIDForGroup(testGroup)
	topics := make([]*Topic, n)
	for i, s := range tn.services {
		topic, err := s.Join(id, &testChecker{group: testGroup})
		if err != nil {
			t.Fatal(err)
		}
		topics[i] = topic
	}
	ctx := testCtx(t, 30*time.Second)
	for i, topic := range topics {
		if err := topic.WaitForMesh(ctx, 2); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	want := map[string]peer.ID{}
	for i, topic := range topics {
		for j := range perNode {
			payload := msgFor("TMSG", testGroup, fmt.Sprintf("node %d message %d", i, j))
			want[string(payload)] = tn.hosts[i].ID()
			if err := topic.Publish(ctx, payload); err != nil {
				t.Fatalf("node %d publish: %v", i, err)
			}
		}
	}
	var wg sync.WaitGroup
	for i, topic := range topics {
		wg.Go(func() { collect(t, ctx, fmt.Sprintf("node %d", i), topic, want, tn.hosts[i].ID()) })
	}
	wg.Wait()
	for i, topic := range topics {
		if d := topic.Dropped(); d != 0 {
			t.Errorf("node %d dropped %d messages", i, d)
		}
	}
}

// TestPublishAfterWaitForPeers publishes as soon as the other side is known
// on the topic, without waiting for a heartbeat to build the mesh: flood
// publishing delivers it.
func TestPublishAfterWaitForPeers(t *testing.T) {
	tn := newTestNet(t, 2, nil)
	tn.connect(t, 0, 1)
	id := TopicIDForGroup(testGroup)
	a, err := tn.services[0].Join(id, &testChecker{group: testGroup})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tn.services[1].Join(id, &testChecker{group: testGroup})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	if err := a.WaitForPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := a.Peers(); len(got) != 1 || got[0] != tn.hosts[1].ID() {
		t.Fatalf("Peers = %v", got)
	}
	msg := msgFor("TMSG", testGroup, "first words")
	if err := a.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	collect(t, ctx, "b", b, map[string]peer.ID{string(msg): tn.hosts[0].ID()}, tn.hosts[1].ID())
	collect(t, ctx, "a (own)", a, map[string]peer.ID{string(msg): tn.hosts[0].ID()}, tn.hosts[0].ID())
}

// scoreWatcher records the latest peer scores a node's router computed.
type scoreWatcher struct {
	mu     sync.Mutex
	scores map[peer.ID]float64
	tick   chan struct{}
}

func newScoreWatcher() *scoreWatcher {
	return &scoreWatcher{tick: make(chan struct{}, 1)}
}

func (w *scoreWatcher) inspect(scores map[peer.ID]float64) {
	w.mu.Lock()
	w.scores = scores
	w.mu.Unlock()
	select {
	case w.tick <- struct{}{}:
	default:
	}
}

// waitScore waits (bounded by ctx) until cond holds for p's score.
func (w *scoreWatcher) waitScore(ctx context.Context, p peer.ID, cond func(float64) bool) (float64, error) {
	for {
		w.mu.Lock()
		s, ok := w.scores[p]
		w.mu.Unlock()
		if ok && cond(s) {
			return s, nil
		}
		select {
		case <-w.tick:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// freshScore returns p's score from the second inspection after the call,
// so it reflects everything processed before the call.
func (w *scoreWatcher) freshScore(ctx context.Context, p peer.ID) (float64, error) {
	for range 2 {
		select {
		case <-w.tick:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.scores[p], nil
}

// TestBadMessagesDroppedAndPenalised has a misbehaving peer (whose own
// checker accepts anything and whose size limit is large) send one kind of
// bad message into a ring of five honest nodes. Honest nodes never deliver
// it, still deliver honest traffic, and — for rejects — score the sender
// below the graylist threshold; an unverifiable message is dropped without
// penalty.
func TestBadMessagesDroppedAndPenalised(t *testing.T) {
	const honestLimit = 4096
	cases := []struct {
		name     string
		msg      []byte
		penalise bool
	}{
		{"garbage", []byte("\x00\x01 this is not an MLSMessage at all"), true},
		{"wrong group", msgFor("TMSG", []byte("group-02"), "hello"), true},
		{"oversize", msgFor("TMSG", testGroup, strings.Repeat("x", 3*honestLimit)), true},
		{"unverifiable", msgFor("TFUT", testGroup, "from an epoch nobody knows"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const honest = 5
			attacker := honest
			watchers := make([]*scoreWatcher, honest)
			tn := newTestNet(t, honest+1, func(i int) Config {
				if i == attacker {
					return Config{MaxMessageSize: 1 << 20}
				}
				watchers[i] = newScoreWatcher()
				return Config{
					MaxMessageSize: honestLimit,
					pubsubOptions:  []pubsub.Option{pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(watchers[i].inspect), 50*time.Millisecond)},
				}
			})
			for i := range honest {
				tn.connect(t, i, (i+1)%honest)
			}
			tn.connect(t, attacker, 0)
			tn.connect(t, attacker, 1)

			id := TopicIDForGroup(testGroup)
			checkers := make([]*testChecker, honest)
			topics := make([]*Topic, honest+1)
			for i, s := range tn.services {
				var checker MessageChecker = acceptAll{}
				if i != attacker {
					checkers[i] = &testChecker{group: testGroup}
					checker = checkers[i]
				}
				topic, err := s.Join(id, checker)
				if err != nil {
					t.Fatal(err)
				}
				topics[i] = topic
			}
			ctx := testCtx(t, 30*time.Second)
			for i := range honest {
				if err := topics[i].WaitForMesh(ctx, 2); err != nil {
					t.Fatalf("node %d: %v", i, err)
				}
			}
			if err := topics[attacker].WaitForPeers(ctx, 2); err != nil {
				t.Fatal(err)
			}
			attackerID := tn.hosts[attacker].ID()
			for _, w := range watchers[:2] {
				if _, err := w.waitScore(ctx, attackerID, func(float64) bool { return true }); err != nil {
					t.Fatal("attacker never scored")
				}
			}

			if err := topics[attacker].Publish(ctx, tc.msg); err != nil {
				t.Fatalf("attacker publish: %v", err)
			}
			want := map[string]peer.ID{}
			for j := range 3 {
				payload := msgFor("TMSG", testGroup, fmt.Sprintf("honest %d", j))
				want[string(payload)] = tn.hosts[2].ID()
				if err := topics[2].Publish(ctx, payload); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for i := range honest {
				wg.Go(func() { collect(t, ctx, fmt.Sprintf("honest %d", i), topics[i], want, tn.hosts[i].ID()) })
			}
			wg.Wait()

			// The attacker's neighbours judged the message.
			if tc.penalise {
				for _, i := range []int{0, 1} {
					s, err := watchers[i].waitScore(ctx, attackerID, func(s float64) bool { return s < graylistThreshold })
					if err != nil {
						t.Errorf("honest %d: attacker score %v, want below %v", i, s, graylistThreshold)
					}
				}
			} else {
				// Wait until a neighbour's checker has seen the
				// message, then for scores computed after that.
				deadline := time.Now().Add(10 * time.Second)
				for checkers[0].ignored.Load()+checkers[1].ignored.Load() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the unverifiable message never reached a checker")
					}
					time.Sleep(10 * time.Millisecond)
				}
				for _, i := range []int{0, 1} {
					s, err := watchers[i].freshScore(ctx, attackerID)
					if err != nil || s < 0 {
						t.Errorf("honest %d: attacker score %v (%v), want >= 0 for an ignored message", i, s, err)
					}
				}
			}
			// Any buffered but unread message would be a bad one
			// delivered after the honest ones.
			for i := range honest {
				short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				m, err := topics[i].Next(short)
				cancel()
				if err == nil {
					t.Errorf("honest %d: extra message %.40q delivered", i, m.Data)
				}
			}
		})
	}
}

func TestOwnPublishChecked(t *testing.T) {
	tn := newTestNet(t, 1, func(int) Config { return Config{MaxMessageSize: 100} })
	topic, err := tn.services[0].Join(TopicIDForGroup(testGroup), &testChecker{group: testGroup})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 5*time.Second)
	if err := topic.Publish(ctx, msgFor("TMSG", testGroup, strings.Repeat("x", 100))); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversize publish: %v, want ErrMessageTooLarge", err)
	}
	if err := topic.Publish(ctx, []byte("garbage")); err == nil {
		t.Fatal("own garbage published")
	}
	ok := msgFor("TMSG", testGroup, "fine")
	if err := topic.Publish(ctx, ok); err != nil {
		t.Fatalf("valid publish with no peers: %v", err)
	}
	m, err := topic.Next(ctx)
	if err != nil || !bytes.Equal(m.Data, ok) || !m.Local {
		t.Fatalf("own message: %+v, %v", m, err)
	}
}

func TestLifecycle(t *testing.T) {
	tn := newTestNet(t, 1, nil)
	s := tn.services[0]
	id := TopicIDForGroup(testGroup)
	if _, err := s.Join("not-a-topic-id", &testChecker{group: testGroup}); !errors.Is(err, ErrBadTopicID) {
		t.Fatalf("Join(bad id) = %v", err)
	}
	if _, err := s.Join(id, nil); err == nil {
		t.Fatal("Join without checker accepted")
	}
	topic, err := s.Join(id, &testChecker{group: testGroup})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Join(id, &testChecker{group: testGroup}); !errors.Is(err, ErrAlreadyJoined) {
		t.Fatalf("second Join = %v, want ErrAlreadyJoined", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err = topic.WaitForPeers(short, 1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForPeers alone = %v, want deadline exceeded", err)
	}
	short, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	err = topic.WaitForMesh(short, 1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForMesh alone = %v, want deadline exceeded", err)
	}

	// A blocked reader is released by Close.
	done := make(chan error, 1)
	go func() {
		_, err := topic.Next(context.Background())
		done <- err
	}()
	if err := topic.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
	if err := topic.Publish(context.Background(), msgFor("TMSG", testGroup, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	// Rejoining after leaving works.
	again, err := s.Join(id, &testChecker{group: testGroup})
	if err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Service.Close = %v, want ErrClosed", err)
	}
	if _, err := s.Join(id, &testChecker{group: testGroup}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// BenchmarkDeliveryRing measures, on a six-node mocknet ring, the time from
// Publish at one node until every other node has read the message.
func BenchmarkDeliveryRing(b *testing.B) {
	const n = 6
	tn := &testNet{mn: mocknet.New()}
	defer func() {
		for _, s := range tn.services {
			s.Close()
		}
		tn.mn.Close()
	}()
	for range n {
		h, err := tn.mn.GenPeer()
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(h, Config{})
		if err != nil {
			b.Fatal(err)
		}
		tn.hosts = append(tn.hosts, h)
		tn.services = append(tn.services, s)
	}
	if err := tn.mn.LinkAll(); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := tn.mn.ConnectPeers(tn.hosts[i].ID(), tn.hosts[(i+1)%n].ID()); err != nil {
			b.Fatal(err)
		}
	}
	id := TopicIDForGroup(testGroup)
	topics := make([]*Topic, n)
	for i, s := range tn.services {
		topic, err := s.Join(id, &testChecker{group: testGroup})
		if err != nil {
			b.Fatal(err)
		}
		topics[i] = topic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, topic := range topics {
		if err := topic.WaitForMesh(ctx, 2); err != nil {
			b.Fatal(err)
		}
	}
	payload := msgFor("TMSG", testGroup, strings.Repeat("m", 200))
	i := 0
	for b.Loop() {
		i++
		msg := append(payload[:len(payload):len(payload)], fmt.Sprint(i)...)
		if err := topics[0].Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
		for _, topic := range topics {
			m, err := topic.Next(ctx)
			if err != nil || !bytes.Equal(m.Data, msg) {
				b.Fatalf("got %v, %v", m, err)
			}
		}
	}
}

// TestNextPeerJoin: a topic reports a peer that subscribes after it joined,
// and NextPeerJoin ends with ErrClosed once the topic is closed (which
// also shows the event handler does not keep Close from succeeding).
func TestNextPeerJoin(t *testing.T) {
	tn := newTestNet(t, 2, nil)
	tn.connect(t, 0, 1)
	id := TopicIDForGroup(testGroup)
	a, err := tn.services[0].Join(id, &testChecker{group: testGroup})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.services[1].Join(id, &testChecker{group: testGroup}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	p, err := a.NextPeerJoin(ctx)
	if err != nil || p != tn.hosts[1].ID() {
		t.Fatalf("NextPeerJoin = %v, %v; want %v", p, err, tn.hosts[1].ID())
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.NextPeerJoin(ctx)
		done <- err
	}()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("NextPeerJoin after Close: %v, want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("NextPeerJoin did not return after Close")
	}
}
