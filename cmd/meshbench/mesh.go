package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/mls"
	"github.com/spf13/cobra"
)

// The mesh benchmark: n libp2p hosts on mocknet (in-process links), each
// running the gossip service of package gossip and holding its own member
// state of one MLS group of n members. One node seals 100-byte application
// messages (real MLS PrivateMessages) and publishes them on the group's
// topic; every other node receives them from GossipSub and opens them with
// its own Group. Measured: the delay from the start of Publish to each
// successful open (per delivery, and to the last member per message), and
// the bytes every node writes on its libp2p streams (GossipSub RPC frames:
// messages, signatures, control traffic; mocknet adds no transport
// encryption or muxer framing). Bytes are counted during the message phase
// and, for the same duration, with no messages (heartbeats only), so the
// per-message cost is reported both gross and net of idle traffic.
//
// The node package (a full meshchat node) is not used: this runs at the
// gossip level with real MLS ciphertexts.

func newMeshCommand() *cobra.Command {
	var sizes, out string
	var messages, degree int
	var latency time.Duration
	cmd := &cobra.Command{
		Use:   "mesh",
		Short: "Deliver MLS messages in meshes of 10..100 nodes on mocknet; latency and bytes per message per node vs pairwise encryption",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := parseSizes(sizes)
			if err != nil {
				return err
			}
			var rows []meshRow
			for i, n := range ns {
				fmt.Fprintf(cmd.ErrOrStderr(), "mesh %d/%d: %d nodes\n", i+1, len(ns), n)
				row, err := runMesh(cmd.Context(), n, messages, degree, latency, cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("%d nodes: %w", n, err)
				}
				row.print(cmd.OutOrStdout())
				rows = append(rows, row)
			}
			return writeMeshCSV(out, rows)
		},
	}
	cmd.Flags().StringVarP(&sizes, "sizes", "n", "10,25,50,100", "mesh sizes (nodes = group members), comma separated")
	cmd.Flags().IntVarP(&messages, "messages", "m", 100, "messages published")
	cmd.Flags().IntVar(&degree, "degree", 8, "connections each node opens (a ring plus random peers)")
	cmd.Flags().DurationVar(&latency, "latency", 0, "one-way latency of every mocknet link")
	cmd.Flags().StringVar(&out, "csv", "mesh.csv", "CSV file to write (- for stdout, empty for none)")
	return cmd
}

// meshRow is the outcome for one mesh size.
type meshRow struct {
	Nodes, Messages, Degree int
	Latency                 time.Duration
	// Delivery latency per (message, receiver), and per message to the
	// last receiver.
	Median, P99, AllMedian, AllP99 time.Duration
	// Ciphertext sizes: the group's PrivateMessage, and the same message
	// in a two-member group (what pairwise encryption sends per recipient).
	GroupCiphertext, PairCiphertext int
	// Bytes written on streams per message per node, gross and net of the
	// idle (heartbeat) traffic over the same time; bytes the publisher
	// wrote per message.
	PerNodeGross, PerNodeNet, Publisher float64
	// CPU is the process CPU time (all nodes, one process) per message
	// during the message phase: what the whole mesh spent delivering it.
	CPU time.Duration
}

// pairwise returns what pairwise encryption of one message to the n-1
// others costs: the sender's upload (n-1 ciphertexts sent directly) and
// that spread over n nodes.
func (r meshRow) pairwise() (sender, perNode float64) {
	sender = float64((r.Nodes - 1) * r.PairCiphertext)
	return sender, sender / float64(r.Nodes)
}

func (r meshRow) print(w io.Writer) {
	sender, perNode := r.pairwise()
	fmt.Fprintf(w, "%d nodes, %d messages (degree %d, link latency %v)\n", r.Nodes, r.Messages, r.Degree, r.Latency)
	fmt.Fprintf(w, "  delivery latency: median %v, p99 %v; to all members: median %v, p99 %v\n",
		r.Median.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.AllMedian.Round(time.Microsecond), r.AllP99.Round(time.Microsecond))
	fmt.Fprintf(w, "  CPU, all %d nodes together: %v per message\n", r.Nodes, r.CPU.Round(time.Microsecond))
	fmt.Fprintf(w, "  ciphertext: group %d B, two-member group %d B\n", r.GroupCiphertext, r.PairCiphertext)
	fmt.Fprintf(w, "  MLS over gossip: %.0f B per message per node (%.0f net of idle), publisher %.0f B per message\n", r.PerNodeGross, r.PerNodeNet, r.Publisher)
	fmt.Fprintf(w, "  pairwise to %d recipients, sent directly: sender %.0f B, %.0f B per node; over the same gossip: %.0f B per node\n",
		r.Nodes-1, sender, perNode, float64(r.Nodes-1)*r.PerNodeNet)
}

func writeMeshCSV(path string, rows []meshRow) error {
	return writeCSV(path, func(cw *csv.Writer) {
		cw.Write([]string{"nodes", "messages", "degree", "link_latency_ms", "median_ms", "p99_ms", "all_median_ms", "all_p99_ms",
			"group_ct_bytes", "pair_ct_bytes", "bytes_per_msg_per_node", "bytes_per_msg_per_node_net", "publisher_bytes_per_msg",
			"pairwise_sender_bytes", "pairwise_bytes_per_node", "pairwise_over_gossip_bytes_per_node", "cpu_ms_per_msg"})
		ms := func(d time.Duration) string {
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
		}
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
		for _, r := range rows {
			sender, perNode := r.pairwise()
			cw.Write([]string{strconv.Itoa(r.Nodes), strconv.Itoa(r.Messages), strconv.Itoa(r.Degree), ms(r.Latency),
				ms(r.Median), ms(r.P99), ms(r.AllMedian), ms(r.AllP99),
				strconv.Itoa(r.GroupCiphertext), strconv.Itoa(r.PairCiphertext), f(r.PerNodeGross), f(r.PerNodeNet), f(r.Publisher),
				f(sender), f(perNode), f(float64(r.Nodes-1) * r.PerNodeNet), ms(r.CPU)})
		}
	})
}

func readMeshCSV(path string) ([]meshRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows []meshRow
	for i, rec := range recs {
		if i == 0 || len(rec) < 13 {
			continue
		}
		num := func(j int) float64 { v, _ := strconv.ParseFloat(rec[j], 64); return v }
		dur := func(j int) time.Duration { return time.Duration(num(j) * float64(time.Millisecond)) }
		rows = append(rows, meshRow{
			Nodes: int(num(0)), Messages: int(num(1)), Degree: int(num(2)), Latency: dur(3),
			Median: dur(4), P99: dur(5), AllMedian: dur(6), AllP99: dur(7),
			GroupCiphertext: int(num(8)), PairCiphertext: int(num(9)),
			PerNodeGross: num(10), PerNodeNet: num(11), Publisher: num(12),
		})
		if len(rec) > 16 {
			rows[len(rows)-1].CPU = dur(16)
		}
	}
	return rows, nil
}

// countingHost counts the bytes written on every stream of a host.
type countingHost struct {
	host.Host
	sent atomic.Int64
}

type countingStream struct {
	network.Stream
	sent *atomic.Int64
}

func (s *countingStream) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	s.sent.Add(int64(n))
	return n, err
}

func (h *countingHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return &countingStream{Stream: s, sent: &h.sent}, nil
}

func (h *countingHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(&countingStream{Stream: s, sent: &h.sent}) })
}

func (h *countingHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(&countingStream{Stream: s, sent: &h.sent}) })
}

// groupChecker accepts MLS messages of one group (the clear header only, as
// a node's validator does before it has decrypted anything).
type groupChecker struct{ groupID []byte }

func (c groupChecker) CheckMessage(msg []byte) error {
	info, err := mls.Inspect(msg)
	if err != nil {
		return err
	}
	if !bytes.Equal(info.GroupID, c.groupID) {
		return errors.New("another group")
	}
	return nil
}

// buildGroup creates an MLS group of n members, every one joined from the
// Welcome, and returns their states (the creator first).
func buildGroup(n int, status io.Writer) ([]*mls.Group, error) {
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	creatorID, err := mls.NewIdentity(suite, []byte("node-0"), nil)
	if err != nil {
		return nil, err
	}
	creator, err := mls.NewGroup(creatorID, nil, nil)
	if err != nil {
		return nil, err
	}
	privs := make([]*mls.PrivateKeyPackage, n-1)
	kps := make([]*mls.KeyPackage, n-1)
	for i := range privs {
		id, err := mls.NewIdentity(suite, fmt.Appendf(nil, "node-%d", i+1), nil)
		if err != nil {
			return nil, err
		}
		if privs[i], err = mls.NewKeyPackage(id, nil, nil); err != nil {
			return nil, err
		}
		kps[i] = privs[i].KeyPackage()
	}
	pc, err := creator.AddMembers(kps...)
	if err != nil {
		return nil, err
	}
	groups := []*mls.Group{pc.Next}
	bar := newProgress(status, fmt.Sprintf("%d members joining", n), n-1)
	for _, kp := range privs {
		g, err := mls.Join(pc.Welcome, []*mls.PrivateKeyPackage{kp}, nil, nil)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
		bar.add(1)
	}
	bar.finish()
	return groups, nil
}

// pairCiphertextSize is the size of the PrivateMessage carrying payload in
// a group of two: what pairwise encryption sends to each recipient.
func pairCiphertextSize(payload []byte) (int, error) {
	gs, err := buildGroup(2, nil)
	if err != nil {
		return 0, err
	}
	ct, err := gs[0].Seal(payload, nil)
	if err != nil {
		return 0, err
	}
	return len(ct), nil
}

func runMesh(ctx context.Context, n, m, degree int, latency time.Duration, status io.Writer) (meshRow, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	row := meshRow{Nodes: n, Messages: m, Degree: degree, Latency: latency}
	groups, err := buildGroup(n, status)
	if err != nil {
		return row, err
	}
	payload := make([]byte, 100)
	if row.PairCiphertext, err = pairCiphertextSize(payload); err != nil {
		return row, err
	}

	mn := mocknet.New()
	defer mn.Close()
	hosts := make([]*countingHost, n)
	services := make([]*gossip.Service, n)
	defer func() {
		for _, s := range services {
			if s != nil {
				s.Close()
			}
		}
	}()
	for i := range n {
		h, err := mn.GenPeer()
		if err != nil {
			return row, err
		}
		hosts[i] = &countingHost{Host: h}
		if services[i], err = gossip.New(hosts[i], gossip.Config{}); err != nil {
			return row, err
		}
	}
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: latency})
	if err := mn.LinkAll(); err != nil {
		return row, err
	}
	// A ring keeps the mesh connected; random extra peers make it a mesh.
	prng := mrand.New(mrand.NewPCG(uint64(n), 1))
	connected := map[[2]int]bool{}
	connect := func(a, b int) error {
		if a == b || connected[[2]int{min(a, b), max(a, b)}] {
			return nil
		}
		connected[[2]int{min(a, b), max(a, b)}] = true
		_, err := mn.ConnectPeers(hosts[a].ID(), hosts[b].ID())
		return err
	}
	for i := range n {
		if err := connect(i, (i+1)%n); err != nil {
			return row, err
		}
		for range max(degree-2, 0) {
			if err := connect(i, prng.IntN(n)); err != nil {
				return row, err
			}
		}
	}
	topicID := gossip.TopicIDForGroup(groups[0].ID())
	topics := make([]*gossip.Topic, n)
	for i, s := range services {
		if topics[i], err = s.Join(topicID, groupChecker{groupID: groups[0].ID()}); err != nil {
			return row, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, t := range topics {
		if err := t.WaitForMesh(wctx, 1); err != nil {
			return row, fmt.Errorf("mesh did not form: %w", err)
		}
	}
	time.Sleep(3 * time.Second) // a few heartbeats for the mesh to settle

	// Receivers: each node opens what arrives with its own group state.
	sent := make([]atomic.Int64, m) // publish start, ns since base
	base := time.Now()
	lat := make([][]time.Duration, m)
	var latMu sync.Mutex
	done := make([]chan struct{}, m)
	remaining := make([]atomic.Int32, m)
	for k := range m {
		done[k] = make(chan struct{})
		remaining[k].Store(int32(n - 1))
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var wg sync.WaitGroup
	var recvErr atomic.Value
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func(g *mls.Group, t *gossip.Topic) {
			defer wg.Done()
			for msg, err := range t.Messages(rctx) {
				if err != nil {
					return
				}
				if msg.Local {
					continue
				}
				r, err := g.ProcessMessage(msg.Data)
				if err != nil {
					recvErr.Store(err)
					continue
				}
				if len(r.Data) < 4 {
					continue
				}
				k := int(binary.BigEndian.Uint32(r.Data))
				if k >= m {
					continue
				}
				d := time.Since(base) - time.Duration(sent[k].Load())
				latMu.Lock()
				lat[k] = append(lat[k], d)
				latMu.Unlock()
				if remaining[k].Add(-1) == 0 {
					close(done[k])
				}
			}
		}(groups[i], topics[i])
	}

	total := func() int64 {
		var s int64
		for _, h := range hosts {
			s += h.sent.Load()
		}
		return s
	}
	// Message phase.
	bar := newProgress(status, fmt.Sprintf("%d nodes: messages", n), m)
	startBytes, startPub := total(), hosts[0].sent.Load()
	phaseStart, cpuStart := time.Now(), processCPU()
	for k := range m {
		binary.BigEndian.PutUint32(payload, uint32(k))
		ct, err := groups[0].Seal(payload, nil)
		if err != nil {
			return row, err
		}
		row.GroupCiphertext = len(ct)
		sent[k].Store(int64(time.Since(base)))
		if err := topics[0].Publish(ctx, ct); err != nil {
			return row, err
		}
		select {
		case <-done[k]:
		case <-time.After(20 * time.Second):
			return row, fmt.Errorf("message %d reached %d of %d members in 20 s (last error: %v)", k, n-1-int(remaining[k].Load()), n-1, recvErr.Load())
		}
		bar.add(1)
	}
	phase := time.Since(phaseStart)
	row.CPU = (processCPU() - cpuStart) / time.Duration(m)
	msgBytes, pubBytes := total()-startBytes, hosts[0].sent.Load()-startPub
	bar.finish()
	// Idle phase of the same length: heartbeats and gossip control only.
	idleStart := total()
	time.Sleep(phase)
	idleBytes := total() - idleStart
	rcancel()
	wg.Wait()

	row.PerNodeGross = float64(msgBytes) / float64(m) / float64(n)
	row.PerNodeNet = float64(msgBytes-idleBytes) / float64(m) / float64(n)
	row.Publisher = float64(pubBytes) / float64(m)
	var all, last []time.Duration
	for k := range m {
		all = append(all, lat[k]...)
		last = append(last, slices.Max(lat[k]))
	}
	row.Median, row.P99 = quantile(all, 0.5), quantile(all, 0.99)
	row.AllMedian, row.AllP99 = quantile(last, 0.5), quantile(last, 0.99)
	return row, nil
}

// quantile is the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
