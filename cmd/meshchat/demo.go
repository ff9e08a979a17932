package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshchat/meshchat/node"
	"github.com/spf13/cobra"
)

// Demo bounds.
const (
	minDemoNodes = 3 // a creator, a member to remove later, a member to add later
	maxDemoNodes = 16
	// demoPollInterval is how often the demo checks a condition it waits
	// for.
	demoPollInterval = 20 * time.Millisecond
	// demoSilence is how long the demo waits to be sure a removed member
	// receives nothing after the others have received a message.
	demoSilence = time.Second
)

type demoOptions struct {
	nodes   int
	timeout time.Duration // per step
	verbose bool
}

func newDemoCommand() *cobra.Command {
	opts := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a mesh of in-process nodes on 127.0.0.1 and check that it works",
		Long: `Start N nodes in this process, each on 127.0.0.1 with its own temporary
data directory, and walk through a group's life step by step: create a group,
add members by peer ID (their KeyPackages come from the DHT), everyone chats,
a key rotation (every member shows the same epoch and epoch authenticator),
a member is added, a member is removed and shown unable to read, cleanup.

Every step is checked; the demo exits 0 only if every check passed.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.nodes < minDemoNodes || opts.nodes > maxDemoNodes {
				return usagef("--nodes must be between %d and %d", minDemoNodes, maxDemoNodes)
			}
			if opts.timeout <= 0 {
				return usagef("--step-timeout must be positive")
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return runDemo(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.nodes, "nodes", 4, fmt.Sprintf("number of nodes (%d to %d)", minDemoNodes, maxDemoNodes))
	cmd.Flags().DurationVar(&opts.timeout, "step-timeout", 20*time.Second, "how long each step may take")
	cmd.Flags().BoolVar(&opts.verbose, "verbose", false, "show the nodes' logs on stderr")
	return cmd
}

// demoNode is one in-process node of the demo and what it received.
type demoNode struct {
	name string
	n    *node.Node
	g    *node.Group // the demo group, once this node is in it

	mu       sync.Mutex
	received []node.Message
}

func (dn *demoNode) has(text string) bool {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	for _, m := range dn.received {
		if string(m.Data) == text {
			return true
		}
	}
	return false
}

// demo is the state of one demo run.
type demo struct {
	out     io.Writer
	opts    demoOptions
	nodes   []*demoNode
	topic   string
	steps   int
	step    int
	checks  int
	failed  []string
	readers sync.WaitGroup // collectors
	stop    chan struct{}  // closed to end the collectors
}

func (d *demo) begin(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n[%d/%d] %s\n", d.step, d.steps, fmt.Sprintf(format, args...))
}

func (d *demo) info(format string, args ...any) {
	fmt.Fprintf(d.out, "      %s\n", fmt.Sprintf(format, args...))
}

// check records and prints one verified claim.
func (d *demo) check(ok bool, format string, args ...any) bool {
	d.checks++
	msg := fmt.Sprintf(format, args...)
	if ok {
		fmt.Fprintf(d.out, "   ok %s\n", msg)
	} else {
		fmt.Fprintf(d.out, " FAIL %s\n", msg)
		d.failed = append(d.failed, fmt.Sprintf("step %d: %s", d.step, msg))
	}
	return ok
}

// waitFor polls cond until it holds or the step timeout passes.
func (d *demo) waitFor(ctx context.Context, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d.opts.timeout)
	defer cancel()
	t := time.NewTicker(demoPollInterval)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
	return true
}

// stepContext bounds one network operation of a step.
func (d *demo) stepContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.opts.timeout)
}

// collect starts draining dn's group messages into dn.received.
func (d *demo) collect(dn *demoNode) {
	msgs := dn.g.Messages()
	d.readers.Go(func() {
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					return // removed from the group
				}
				dn.mu.Lock()
				dn.received = append(dn.received, m)
				dn.mu.Unlock()
			case <-d.stop:
				return
			}
		}
	})
}

// members returns the demo nodes currently in the group (not removed).
func (d *demo) members() []*demoNode {
	var out []*demoNode
	for _, dn := range d.nodes {
		if dn.g != nil && !dn.g.Removed() {
			out = append(out, dn)
		}
	}
	return out
}

// agree waits until every group is at the same epoch, at least minEpoch,
// and they agree on the epoch authenticator; it prints each member's view.
func (d *demo) agree(ctx context.Context, minEpoch uint64, who []*demoNode) bool {
	same := func() bool {
		e := who[0].g.Epoch()
		a := who[0].g.EpochAuthenticator()
		if e < minEpoch {
			return false
		}
		for _, dn := range who[1:] {
			if dn.g.Epoch() != e || !bytes.Equal(dn.g.EpochAuthenticator(), a) {
				return false
			}
		}
		return true
	}
	ok := d.waitFor(ctx, same)
	for _, dn := range who {
		d.info("%-7s epoch %d  epoch authenticator %s  %d members", dn.name, dn.g.Epoch(), hex.EncodeToString(dn.g.EpochAuthenticator())[:16]+"…", len(dn.g.Members()))
	}
	return d.check(ok, "all %d members are at epoch %d with equal epoch authenticators", len(who), who[0].g.Epoch())
}

// add has adder add the demo nodes joiners by peer ID (KeyPackages from the
// DHT), retrying while the joiners' KeyPackages are not yet in the DHT, and
// waits until each joiner is in the group.
func (d *demo) add(ctx context.Context, adder *demoNode, joiners []*demoNode) bool {
	var err error
	start := time.Now()
	ok := d.waitFor(ctx, func() bool {
		actx, cancel := d.stepContext(ctx)
		defer cancel()
		err = adder.g.Add(actx, peerIDs(joiners)...)
		return err == nil
	})
	if !d.check(ok, "%s added %s in one commit (KeyPackages fetched from the DHT, Welcome sent) in %v", adder.name, names(joiners), time.Since(start).Round(time.Millisecond)) {
		d.info("last error: %v", err)
		return false
	}
	topic := adder.g.TopicID()
	for _, j := range joiners {
		ok := d.waitFor(ctx, func() bool {
			g, found := j.n.Group(topic)
			if found {
				j.g = g
			}
			return found
		})
		if !d.check(ok, "%s processed its Welcome and is in the group", j.name) {
			return false
		}
		d.collect(j)
	}
	// A member added by peer ID subscribes to the group's topic only once
	// it has the Welcome; GossipSub delivers nothing published before its
	// neighbours know that subscription, so wait for it to spread.
	return d.check(d.waitFor(ctx, d.topicSettled), "every member's GossipSub neighbours know it is on the group's topic")
}

// topicSettled reports whether every member is known as a subscriber of the
// group's topic by every other member it is connected to.
func (d *demo) topicSettled() bool {
	ms := d.members()
	for _, m := range ms {
		known := make(map[peer.ID]bool)
		for _, p := range m.g.Peers() {
			known[p] = true
		}
		for _, o := range ms {
			if o != m && m.n.Host().Network().Connectedness(o.n.ID()) == network.Connected && !known[o.n.ID()] {
				return false
			}
		}
	}
	return true
}

// send has from send text and checks that every node in to receives it.
func (d *demo) sendAndCheck(ctx context.Context, from *demoNode, text string, to []*demoNode) bool {
	sctx, cancel := d.stepContext(ctx)
	_, err := from.g.Send(sctx, []byte(text))
	cancel()
	if !d.check(err == nil, "%s sent %q", from.name, text) {
		d.info("error: %v", err)
		return false
	}
	all := true
	for _, dn := range to {
		ok := d.waitFor(ctx, func() bool { return dn.has(text) })
		all = d.check(ok, "%s received %q from %s", dn.name, text, from.name) && all
	}
	return all
}

func runDemo(ctx context.Context, out, errOut io.Writer, opts demoOptions) (err error) {
	d := &demo{out: out, opts: opts, steps: 7, stop: make(chan struct{})}
	logger := slog.New(slog.DiscardHandler)
	if opts.verbose {
		logger = slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	started := time.Now()
	fmt.Fprintf(out, "meshchat demo: %d nodes in this process, on 127.0.0.1, each with its own data directory\n", opts.nodes)

	root, err := os.MkdirTemp("", "meshchat-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		d.begin("cleanup")
		close(d.stop)
		d.readers.Wait()
		for _, dn := range d.nodes {
			if cerr := dn.n.Close(); cerr != nil {
				d.check(false, "%s closed: %v", dn.name, cerr)
			}
		}
		rerr := os.RemoveAll(root)
		d.check(rerr == nil, "closed %d nodes and removed their data directories", len(d.nodes))
		fmt.Fprintf(out, "\n%d checks, %d failed, %v\n", d.checks, len(d.failed), time.Since(started).Round(100*time.Millisecond))
		if err == nil && len(d.failed) > 0 {
			err = fmt.Errorf("demo failed: %s", strings.Join(d.failed, "; "))
		}
		if err == nil {
			fmt.Fprintln(out, "demo passed")
		}
	}()

	// 1. Nodes.
	d.begin("start %d nodes; each bootstraps from node1", opts.nodes)
	for i := range opts.nodes {
		cfg := node.Config{
			DataDir:             fmt.Sprintf("%s/node%d", root, i+1),
			ListenAddrs:         []string{"/ip4/127.0.0.1/tcp/0"},
			Logger:              logger.With("node", i+1),
			KeyPackages:         3,
			MailboxInterval:     time.Second,
			AdmitTakeover:       time.Second,
			JoinRetry:           500 * time.Millisecond,
			RotateInterval:      -1,
			RotateAfterMessages: -1,
			PublishWait:         3 * time.Second,
			Tick:                50 * time.Millisecond,
			NoSync:              true,
		}
		if i > 0 {
			cfg.BootstrapPeers = d.nodes[0].n.Addrs()
		}
		sctx, cancel := d.stepContext(ctx)
		n, nerr := node.New(sctx, cfg)
		cancel()
		if nerr != nil {
			d.check(false, "node%d started: %v", i+1, nerr)
			return fmt.Errorf("demo: start node%d: %w", i+1, nerr)
		}
		dn := &demoNode{name: fmt.Sprintf("node%d", i+1), n: n}
		d.nodes = append(d.nodes, dn)
		d.info("%-7s %s  %s", dn.name, n.ID(), strings.Join(n.Addrs(), " "))
	}
	connected := d.waitFor(ctx, func() bool {
		for _, dn := range d.nodes[1:] {
			if len(dn.n.Host().Network().Peers()) == 0 {
				return false
			}
		}
		return true
	})
	if !d.check(connected, "%d nodes up and connected", len(d.nodes)) {
		return errors.New("demo: nodes did not connect")
	}

	creator := d.nodes[0]
	later := d.nodes[len(d.nodes)-1]       // added in step 5
	initial := d.nodes[1 : len(d.nodes)-1] // added in step 2
	removed := initial[0]                  // removed in step 6

	// 2. Group.
	d.begin("%s creates an invite-only group and adds %s by peer ID", creator.name, names(initial))
	cctx, cancel := d.stepContext(ctx)
	creator.g, err = creator.n.CreateGroup(cctx, node.GroupOptions{Name: "demo", Policy: node.Invite})
	cancel()
	if !d.check(err == nil, "%s created group %q", creator.name, "demo") {
		return fmt.Errorf("demo: create group: %w", err)
	}
	d.topic = creator.g.TopicID().String()
	d.info("topic ID %s, epoch %d", d.topic, creator.g.Epoch())
	d.collect(creator)
	if !d.add(ctx, creator, initial) {
		return errors.New("demo: could not add the first members")
	}
	d.agree(ctx, 1, d.members())

	// 3. Chat.
	d.begin("everyone chats: each member sends a message, every other member must receive it")
	for _, dn := range d.members() {
		d.sendAndCheck(ctx, dn, "hello from "+dn.name, others(d.members(), dn))
	}

	// 4. Rotation.
	rotator := initial[len(initial)-1]
	d.begin("key rotation: %s updates its keys (new epoch for everyone)", rotator.name)
	before := rotator.g.Epoch()
	oldAuth := rotator.g.EpochAuthenticator()
	rctx, cancel := d.stepContext(ctx)
	err = rotator.g.Rotate(rctx)
	cancel()
	d.check(err == nil, "%s committed a self-update (was epoch %d)", rotator.name, before)
	if d.agree(ctx, before+1, d.members()) {
		d.check(!bytes.Equal(oldAuth, rotator.g.EpochAuthenticator()), "the epoch authenticator changed")
	}
	d.sendAndCheck(ctx, creator, "first message after the rotation", others(d.members(), creator))

	// 5. Add a member.
	d.begin("%s adds %s", creator.name, later.name)
	if d.add(ctx, creator, []*demoNode{later}) {
		d.agree(ctx, before+2, d.members())
		d.sendAndCheck(ctx, later, "hi, I am "+later.name, others(d.members(), later))
		hist, herr := later.g.History(0)
		older := 0
		for _, m := range hist {
			if strings.HasPrefix(string(m.Data), "hello from") {
				older++
			}
		}
		d.check(herr == nil && older == 0, "%s holds no message from before it joined (%d in its history)", later.name, len(hist))
	}

	// 6. Remove a member.
	d.begin("%s removes %s; it must not be able to read what follows", creator.name, removed.name)
	epoch := creator.g.Epoch()
	xctx, cancel := d.stepContext(ctx)
	err = creator.g.Remove(xctx, removed.n.ID())
	cancel()
	d.check(err == nil, "%s committed the removal of %s", creator.name, removed.name)
	d.check(d.waitFor(ctx, removed.g.Removed), "%s's group reports that it was removed", removed.name)
	stay := d.members()
	d.agree(ctx, epoch+1, stay)
	secret := "secret for the remaining members"
	d.sendAndCheck(ctx, creator, secret, others(stay, creator))
	time.Sleep(demoSilence)
	hist, _ := removed.g.History(0)
	inHistory := false
	for _, m := range hist {
		inHistory = inHistory || string(m.Data) == secret
	}
	d.check(!removed.has(secret) && !inHistory, "%s received nothing readable (not delivered, not in its history)", removed.name)
	sctx, cancel := d.stepContext(ctx)
	_, err = removed.g.Send(sctx, []byte("can I still talk?"))
	cancel()
	d.check(err != nil, "%s can no longer send (%v)", removed.name, err)
	err = nil
	return nil
}

// names lists the demo nodes' names.
func names(ns []*demoNode) string {
	s := make([]string, len(ns))
	for i, dn := range ns {
		s[i] = dn.name
	}
	return strings.Join(s, ", ")
}

// others returns ns without self.
func others(ns []*demoNode, self *demoNode) []*demoNode {
	var out []*demoNode
	for _, dn := range ns {
		if dn != self {
			out = append(out, dn)
		}
	}
	return out
}

// peerIDs returns the nodes' peer IDs.
func peerIDs(ns []*demoNode) []peer.ID {
	out := make([]peer.ID, len(ns))
	for i, dn := range ns {
		out[i] = dn.n.ID()
	}
	return out
}
