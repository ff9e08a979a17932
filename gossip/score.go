package gossip

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer scoring (GossipSub v1.1). The numbers are chosen for chat groups: few
// peers, bursty and often silent traffic, and one rule that matters most —
// a peer that forwards a message our validator rejects is cut off quickly.
//
// Per topic (weight 1):
//   - P1 time in mesh: +0.1 per minute, capped at +10 (after 100 minutes).
//   - P2 first deliveries: +1 per message first received from the peer,
//     capped at +10, decaying to zero over 10 minutes.
//   - P3/P3b mesh delivery deficit: off. Quiet groups would otherwise
//     penalise honest peers for not forwarding traffic nobody sent.
//   - P4 invalid messages: -100 × (count)², decaying to zero over an hour.
//
// Globally: positive topic contributions are capped at +20; P5
// (application) is 0; P6 (IP colocation) is off because members of a group
// often share a NAT or a LAN, and membership, not IP diversity, is what a
// group trusts; P7 (behaviour: re-grafting during backoff, broken IWANT
// promises) is -10 × (count − 6)², decaying over 10 minutes.
//
// Thresholds: below -10 no gossip is exchanged with the peer, below -50 our
// own messages are not flood-published to it, and below -80 everything it
// sends is ignored (graylisted). A single rejected message gives -100, so
// the sender is graylisted at once and stays so for about a minute and a
// half (two rejects: about ten minutes). Only messages that the validator
// rejects count: ErrUnverifiable (ignore) costs the sender nothing. Peer
// exchange is off, so AcceptPXThreshold is unreachable on purpose.
const (
	gossipThreshold    = -10
	publishThreshold   = -50
	graylistThreshold  = -80
	acceptPXThreshold  = 1000
	opportunisticGraft = 1
	invalidWeight      = -100
	topicScoreCap      = 20
	decayInterval      = time.Second
	decayToZero        = 0.01
	scoreRetention     = time.Hour
)

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: opportunisticGraft,
	}
}

func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:             topicScoreCap,
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             decayInterval,
		DecayToZero:               decayToZero,
		RetainScore:               scoreRetention,
	}
}

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.1,
		TimeInMeshQuantum:              time.Minute,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      10,
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}
