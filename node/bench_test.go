package node

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// benchNodes is the mesh size of BenchmarkMeshDelivery (MESH_NODES
// overrides it).
func benchNodes() int {
	if v, err := strconv.Atoi(os.Getenv("MESH_NODES")); err == nil && v >= 3 {
		return v
	}
	return 50
}

// percentile returns the p-th percentile (0..100) of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

// BenchmarkMeshDelivery builds a group over a mocknet of benchNodes nodes,
// each connected to about six others (a message needs several hops), with
// every member added by peer ID in one commit from KeyPackages fetched from
// the DHT. Each iteration, one member (round robin) sends a message and the
// iteration ends when every other member has received it. It reports:
//
//   - p50-ms, p99-ms: end-to-end delivery latency (Send called to message on
//     the receiver's channel) over all receivers and messages;
//   - wire-B/msg/node: GossipSub bytes sent by all nodes during the
//     iterations (messages, forwarded copies, control traffic), per message
//     and node;
//   - kp-lookup-p50-ms, kp-lookup-p99-ms: time to fetch and validate one
//     peer's KeyPackage bundle from the DHT (10 peers sampled).
//
// mocknet links have no latency: the numbers are the cost of the software
// path (validation, MLS, storage, GossipSub hops), not of a real network.
func BenchmarkMeshDelivery(b *testing.B) {
	k := benchNodes()
	nodes, _ := mockCluster(b, k, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// KeyPackage lookups from the creator, one at a time, of up to 10
	// peers.
	var lookups []time.Duration
	for _, n := range nodes[1:min(k, 11)] {
		start := time.Now()
		if _, err := nodes[0].dir.LookupKeyPackages(ctx, n.ID()); err != nil {
			b.Fatalf("lookup %s: %v", n.ID(), err)
		}
		lookups = append(lookups, time.Since(start))
	}
	slices.Sort(lookups)

	g0, err := nodes[0].CreateGroup(ctx, GroupOptions{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]peer.ID, 0, k-1)
	for _, n := range nodes[1:] {
		ids = append(ids, n.ID())
	}
	addStart := time.Now()
	if err := g0.Add(ctx, ids...); err != nil {
		b.Fatal(err)
	}
	groups := []*Group{g0}
	for _, n := range nodes[1:] {
		groups = append(groups, groupOf(b, n, g0.TopicID(), 60*time.Second))
	}
	joinTime := time.Since(addStart)
	waitEpoch(b, 1, groups...)
	for _, g := range groups {
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		err := g.topic.WaitForMesh(wctx, 2)
		wcancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	// Warm-up: a message from every tenth member reaches everyone.
	deliverRound := func(sender int, text string) []time.Duration {
		start := time.Now()
		if _, err := groups[sender].Send(ctx, []byte(text)); err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, k-1)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, g := range groups {
			if i == sender {
				continue
			}
			wg.Go(func() {
				select {
				case m := <-g.Messages():
					if string(m.Data) != text {
						b.Errorf("member %d got %q, want %q", i, m.Data, text)
					}
					mu.Lock()
					lat = append(lat, m.ReceivedAt.Sub(start))
					mu.Unlock()
				case <-time.After(30 * time.Second):
					b.Errorf("member %d did not get %q", i, text)
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		return lat
	}
	for s := 0; s < k; s += 10 {
		deliverRound(s, fmt.Sprintf("warm-up %d", s))
	}

	var sentBefore uint64
	for _, n := range nodes {
		s, _ := n.gs.Traffic()
		sentBefore += s
	}
	var all []time.Duration
	for i := 0; b.Loop(); i++ {
		all = append(all, deliverRound(i%k, fmt.Sprintf("message %d", i))...)
	}
	b.StopTimer()
	var sentAfter uint64
	for _, n := range nodes {
		s, _ := n.gs.Traffic()
		sentAfter += s
	}
	msgs := len(all) / (k - 1)
	slices.Sort(all)
	b.ReportMetric(float64(percentile(all, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(all, 99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(sentAfter-sentBefore)/float64(msgs)/float64(k), "wire-B/msg/node")
	b.ReportMetric(float64(percentile(lookups, 50).Microseconds())/1000, "kp-lookup-p50-ms")
	b.ReportMetric(float64(percentile(lookups, 99).Microseconds())/1000, "kp-lookup-p99-ms")
	b.Logf("%d nodes: add-all-and-join %v, %d messages, KeyPackage lookups p50 %v p99 %v",
		k, joinTime, msgs, percentile(lookups, 50), percentile(lookups, 99))
}
