package node

import (
	"context"
	"testing"
	"time"

	"github.com/meshchat/meshchat/gossip"
	"github.com/meshchat/meshchat/mls"
)

// tap is a bystander on a group topic: it accepts and records every message
// (it is not a member and checks nothing), and can publish anything.
type tap struct {
	topic *gossip.Topic
	msgs  chan []byte
}

type acceptAll struct{}

func (acceptAll) CheckMessage([]byte) error { return nil }

// newTap joins topic on n's GossipSub with a permissive validator.
func newTap(t testing.TB, n *Node, topic gossip.TopicID) *tap {
	t.Helper()
	tp, err := n.gs.Join(topic, acceptAll{})
	if err != nil {
		t.Fatal(err)
	}
	tt := &tap{topic: tp, msgs: make(chan []byte, 256)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range tp.Messages(ctx) {
			if err != nil {
				return
			}
			if m.Local {
				continue
			}
			select {
			case tt.msgs <- m.Data:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		tp.Close()
		<-done
	})
	return tt
}

// wait returns the next k messages the tap records.
func (tt *tap) wait(t testing.TB, k int, timeout time.Duration) [][]byte {
	t.Helper()
	var out [][]byte
	deadline := time.After(timeout)
	for len(out) < k {
		select {
		case m := <-tt.msgs:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("tap recorded %d of %d messages", len(out), k)
		}
	}
	return out
}

// mustRef returns the KeyPackageRef of a KeyPackage MLSMessage.
func mustRef(t testing.TB, data []byte) []byte {
	t.Helper()
	kp, err := mls.ParseKeyPackage(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp.Ref()
}
