package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSenderOrder: messages of one sender that arrive out of order are
// delivered in order; a gap is waited for up to the reorder window and then
// skipped; a straggler after a skipped gap is still delivered; other
// senders are not held up.
func TestSenderOrder(t *testing.T) {
	n := &Node{cfg: Config{MessageBuffer: 64}, ctx: context.Background()}
	n.cfg.setDefaults()
	g := n.newGroupHandle(testTopic)
	alice, bob := peer.ID("alice"), peer.ID("bob")
	now := time.Now()
	in := func(from peer.ID, seq uint64) {
		g.orderLocked(Message{Sender: from, Seq: seq}, now)
	}
	out := func() []uint64 {
		var seqs []uint64
		for {
			select {
			case m := <-g.msgs:
				seqs = append(seqs, m.Seq)
			default:
				return seqs
			}
		}
	}
	expect := func(want ...uint64) {
		t.Helper()
		got := out()
		if len(got) != len(want) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("delivered %v, want %v", got, want)
			}
		}
	}
	in(alice, 5) // first message sets the baseline
	expect(5)
	in(alice, 7)
	in(alice, 8)
	expect()
	in(bob, 1) // another sender is not held up
	expect(1)
	in(alice, 6)
	expect(6, 7, 8)
	in(alice, 10) // 9 is missing
	expect()
	g.releaseHeldLocked(now.Add(n.cfg.ReorderWindow / 2))
	expect()
	g.releaseHeldLocked(now.Add(n.cfg.ReorderWindow))
	expect(10)
	in(alice, 9) // the straggler comes after all
	expect(9)
	in(alice, 11)
	expect(11)
}
