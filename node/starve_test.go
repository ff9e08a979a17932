package node

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// leafKey returns the encryption key of leaf in g's current state.
func leafKey(t *testing.T, g *Group, leaf uint32) []byte {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.state.Member(leaf)
	if !ok {
		t.Fatalf("no member at leaf %d", leaf)
	}
	return m.EncryptionKey
}

// waitConverged waits until every group is on the same state (the same
// epoch authenticator), whichever it is.
func waitConverged(t *testing.T, groups ...*Group) {
	t.Helper()
	waitFor(t, 30*time.Second, "convergence on one state", func() bool {
		want := groups[0].EpochAuthenticator()
		for _, g := range groups[1:] {
			if !bytes.Equal(g.EpochAuthenticator(), want) {
				return false
			}
		}
		return true
	})
}

// TestStarvedRotationLands (commitorder rule 4, no starvation): leaf 3, the
// highest, rotates while leaves 0, 1 and 2 commit continuously (each round
// all three rotate on the same state, and leaf 0 wins). Leaf 3's commit is
// made on the same state as the first round's and loses to leaf 0's; it
// could never win a round. Leaf 3 then proposes an Update of its leaf,
// which a lower leaf's commit includes by reference: in the state everyone
// converges on, leaf 3's encryption key has changed.
func TestStarvedRotationLands(t *testing.T) {
	nodes := clusterWith(t, 4, func(c *Config) { c.SettleWindow = raceSettleWindow })
	groups := groupOfNodes(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const starved = 3
	before := leafKey(t, groups[0], starved)
	g3 := groups[starved]
	// Leaf 3's commit is held back until the first round is over, so that
	// it certainly competes with (and loses to) leaf 0's on the same state.
	// The lower leaves commit once that state has settled for them; leaf 3
	// waits for that too, so that it still holds the state when their
	// commits arrive (a joiner's first state counts as settled at once).
	waitFor(t, 20*time.Second, "the current state settled everywhere", func() bool {
		for _, g := range groups {
			g.mu.Lock()
			settled := g.tracker.Settled(g.stateID)
			g.mu.Unlock()
			if !settled {
				return false
			}
		}
		return true
	})
	g3.testHoldPublish.Store(true)
	if err := g3.Rotate(ctx); err != nil {
		t.Fatalf("member 3 rotate: %v", err)
	}
	if bytes.Equal(leafKey(t, g3, starved), before) {
		t.Fatal("member 3's own commit did not change its leaf")
	}
	const rounds = 8
	landed := -1
	for r := range rounds {
		errs := make([]error, starved)
		var wg sync.WaitGroup
		for i, g := range groups[:starved] {
			wg.Go(func() { errs[i] = g.Rotate(ctx) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: member %d rotate: %v", r, i, err)
			}
		}
		waitConverged(t, groups...)
		if r == 0 {
			// Leaf 3 is on leaf 0's branch now: its commit lost. Its
			// outbox (the losing commit, then what it sends instead) goes
			// out from here on.
			g3.testHoldPublish.Store(false)
			g3.wake()
		}
		if landed < 0 && !bytes.Equal(leafKey(t, groups[0], starved), before) {
			landed = r
		}
	}
	waitConverged(t, groups...)
	after := leafKey(t, groups[0], starved)
	if bytes.Equal(after, before) {
		t.Fatalf("leaf 3's rotation never landed in %d rounds of commits by lower leaves", rounds)
	}
	for i, g := range groups {
		if !bytes.Equal(leafKey(t, g, starved), after) {
			t.Fatalf("member %d disagrees on leaf 3's key", i)
		}
	}
	t.Logf("leaf 3's rotation landed in round %d of %d (group at epoch %d)", landed, rounds, groups[0].Epoch())
}
