package main

import (
	"encoding/hex"
	"time"

	"github.com/meshchat/meshchat/node"
)

// The JSON shapes of the control API, shared by the server (api.go) and the
// client (client.go). Field names are part of the CLI's contract: "id --json"
// prints idInfo and "read --json" prints messageInfo lines.

// idInfo is the daemon's identity: GET /v1/id, and "meshchat id --json".
type idInfo struct {
	// PeerID is the node's libp2p peer ID, also its MLS identity.
	PeerID string `json:"peer_id"`
	// Addrs are full multiaddrs ending in /p2p/<peer_id>, usable as
	// --bootstrap values for another node.
	Addrs []string `json:"addrs"`
}

// memberInfo is one group member.
type memberInfo struct {
	PeerID string `json:"peer_id"`
	Leaf   uint32 `json:"leaf"`
	Self   bool   `json:"self"`
}

// groupInfo describes one group as the node sees it.
type groupInfo struct {
	Topic  string `json:"topic"`
	Name   string `json:"name"`
	Policy string `json:"policy"`
	Epoch  uint64 `json:"epoch"`
	// EpochAuthenticator is hex; members with equal values share the
	// same group state (RFC 9420 §8.7).
	EpochAuthenticator string       `json:"epoch_authenticator"`
	Members            []memberInfo `json:"members"`
	// Removed reports that this node was removed from the group; its
	// history stays readable, nothing new arrives.
	Removed bool `json:"removed"`
	// TopicPeers are the peers this node currently sees on the group's
	// GossipSub topic: online members, and anyone else who subscribed.
	TopicPeers []string `json:"topic_peers"`
}

// messageInfo is one application message: a line of "read --json".
type messageInfo struct {
	Topic  string `json:"topic"`
	ID     string `json:"id"`
	Sender string `json:"sender"`
	Epoch  uint64 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	// Time is the sender's clock at sending (authenticated by MLS, not
	// checked against ours).
	Time       time.Time `json:"time"`
	ReceivedAt time.Time `json:"received_at"`
	Own        bool      `json:"own"`
	Text       string    `json:"text"`
}

// streamEvent ends a followed message stream with a reason instead of a
// message: "removed" (this node was removed from the group), "lagged" (the
// reader fell too far behind), "shutdown" (the daemon is stopping).
type streamEvent struct {
	Event string `json:"event"`
	Topic string `json:"topic"`
}

// Request bodies.
type (
	createRequest struct {
		Name   string `json:"name"`
		Policy string `json:"policy"`
	}
	joinRequest struct {
		Code      string `json:"code"`
		TimeoutMS int64  `json:"timeout_ms"`
	}
	sendRequest struct {
		Text string `json:"text"`
	}
	addRequest struct {
		PeerID string `json:"peer_id"`
	}
	inviteResponse struct {
		Code string `json:"code"`
	}
	errorResponse struct {
		Error string `json:"error"`
	}
)

func messageInfoOf(m node.Message) messageInfo {
	return messageInfo{
		Topic:      m.Group.String(),
		ID:         hex.EncodeToString(m.ID[:]),
		Sender:     m.Sender.String(),
		Epoch:      m.Epoch,
		Seq:        m.Seq,
		Time:       m.SentAt,
		ReceivedAt: m.ReceivedAt,
		Own:        m.Own,
		Text:       string(m.Data),
	}
}

func groupInfoOf(g *node.Group) groupInfo {
	info := groupInfo{
		Topic:              g.TopicID().String(),
		Name:               g.Name(),
		Policy:             g.Policy().String(),
		Epoch:              g.Epoch(),
		EpochAuthenticator: hex.EncodeToString(g.EpochAuthenticator()),
		Removed:            g.Removed(),
		Members:            []memberInfo{},
		TopicPeers:         []string{},
	}
	for _, p := range g.Peers() {
		info.TopicPeers = append(info.TopicPeers, p.String())
	}
	for _, m := range g.Members() {
		info.Members = append(info.Members, memberInfo{PeerID: m.PeerID.String(), Leaf: m.Leaf, Self: m.Self})
	}
	return info
}
