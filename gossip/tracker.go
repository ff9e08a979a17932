package gossip

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// meshTracker follows the GossipSub router's mesh per topic, and counts
// messages dropped because a subscriber was too slow, through the
// pubsub.RawTracer hooks. The router calls the hooks from its event loop, so
// each one only updates a map under a mutex.
type meshTracker struct {
	mu      sync.Mutex
	mesh    map[string]map[peer.ID]struct{}
	dropped map[string]uint64
	changed chan struct{} // closed and replaced on every mesh change

	sentBytes, receivedBytes atomic.Uint64
}

var _ pubsub.RawTracer = (*meshTracker)(nil)

func newMeshTracker() *meshTracker {
	return &meshTracker{
		mesh:    make(map[string]map[peer.ID]struct{}),
		dropped: make(map[string]uint64),
		changed: make(chan struct{}),
	}
}

// meshSize returns how many peers are in our mesh for topic, and a channel
// that is closed at the next change.
func (m *meshTracker) meshSize(topic string) (int, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mesh[topic]), m.changed
}

func (m *meshTracker) droppedCount(topic string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped[topic]
}

// signalLocked wakes every waiter.
func (m *meshTracker) signalLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *meshTracker) Graft(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	peers := m.mesh[topic]
	if peers == nil {
		peers = make(map[peer.ID]struct{})
		m.mesh[topic] = peers
	}
	peers[p] = struct{}{}
	m.signalLocked()
}

func (m *meshTracker) Prune(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh[topic], p)
	m.signalLocked()
}

func (m *meshTracker) Leave(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh, topic)
	delete(m.dropped, topic)
	m.signalLocked()
}

// OnClosedOutboundStream is when the router forgets a peer, in every mesh.
func (m *meshTracker) OnClosedOutboundStream(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, peers := range m.mesh {
		delete(peers, p)
	}
	m.signalLocked()
}

func (m *meshTracker) UndeliverableMessage(msg *pubsub.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropped[msg.GetTopic()]++
}

// The remaining hooks carry nothing the tracker needs.

func (m *meshTracker) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (m *meshTracker) Join(string)                              {}
func (m *meshTracker) ValidateMessage(*pubsub.Message)          {}
func (m *meshTracker) DeliverMessage(*pubsub.Message)           {}
func (m *meshTracker) RejectMessage(*pubsub.Message, string)    {}
func (m *meshTracker) DuplicateMessage(*pubsub.Message)         {}
func (m *meshTracker) ThrottlePeer(peer.ID)                     {}

// RecvRPC and SendRPC count RPC bytes for Service.Traffic.
func (m *meshTracker) RecvRPC(rpc *pubsub.RPC) {
	m.receivedBytes.Add(uint64(proto.Size(&rpc.RPC)))
}

func (m *meshTracker) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	m.sentBytes.Add(uint64(proto.Size(&rpc.RPC)))
}

func (m *meshTracker) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (m *meshTracker) DropRPC(*pubsub.RPC, peer.ID)                         {}
