// Package node is the embeddable meshchat peer: it owns the libp2p host, the
// DHT directory (package dht) and the group topics (package gossip), and
// wires them to the MLS state machine (package mls).
//
// This first part holds the node's long-term identity and its libp2p host.
//
// # Identity
//
// A node's identity is a libp2p Ed25519 key stored as the protobuf encoding
// of libp2p's crypto.MarshalPrivateKey in <DataDir>/identity.key, mode 0600,
// inside a data directory created with mode 0700. Its peer ID is the identity
// multihash of the public key. The node's MLS basic credential carries the
// raw bytes of that peer ID as its identity (RFC 9420 §5.3.1), so a peer ID
// names one MLS member unambiguously.
//
// # Host
//
// The host speaks TCP and QUIC v1, secures connections with Noise or TLS 1.3,
// runs the libp2p resource manager, and finds peers only through the
// bootstrap peers the user names: no mDNS, no public bootstrap list, no relay.
package node
