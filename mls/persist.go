package mls

import (
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/codec"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
	"golang.org/x/crypto/cryptobyte"
)

// Every persisted object starts with a kind byte and a format version byte,
// so that bytes of one kind are never read as another and a future layout
// can be told apart from this one.
const (
	kindIdentity          uint8 = 1
	kindPrivateKeyPackage uint8 = 2
	kindGroup             uint8 = 3

	identityVersion          uint8 = 1
	privateKeyPackageVersion uint8 = 1
	groupVersion             uint8 = 1
)

// unmarshalState checks the kind and version header of data and decodes the
// body with read, which must consume it exactly. Every failure wraps
// ErrCorruptState.
func unmarshalState(data []byte, kind, version uint8, what string, read func(*cryptobyte.String) bool) error {
	s := cryptobyte.String(data)
	var k, v uint8
	if !s.ReadUint8(&k) || !s.ReadUint8(&v) {
		return fmt.Errorf("load %s: truncated header: %w", what, ErrCorruptState)
	}
	if k != kind {
		return fmt.Errorf("load %s: bytes hold object kind %d, not %d: %w", what, k, kind, ErrCorruptState)
	}
	if v != version {
		return fmt.Errorf("load %s: unknown format version %d (want %d): %w", what, v, version, ErrCorruptState)
	}
	if !read(&s) {
		return fmt.Errorf("load %s: truncated or corrupt body: %w", what, ErrCorruptState)
	}
	if !s.Empty() {
		return fmt.Errorf("load %s: %d trailing bytes: %w", what, len(s), ErrCorruptState)
	}
	return nil
}

// Persisted group layout (version 1), in the TLS presentation language:
//
//	uint8  kind = kindGroup;
//	uint8  version = 1;
//	Identity identity;                 (as in Identity.MarshalBinary, no header)
//	uint8  removed;
//	GroupContext group_context;
//	opaque interim_transcript_hash<V>;
//	opaque confirmation_tag<V>;
//	opaque ratchet_tree<V>;            (ratchet_tree extension body)
//	PrivateTree private;               (leaf index, leaf key, path secrets)
//	select (removed) {
//	  case 0: opaque epoch_secrets<V>[8]; opaque secret_tree<V>;
//	  case 1: struct{};
//	};
//	struct { opaque ref<V>; Proposal proposal; Sender sender; opaque leaf_key<V>; } proposals<V>;
//	optional<ReInit> reinit;
//	struct {
//	  GroupContext group_context; opaque ratchet_tree<V>;
//	  opaque sender_data_secret<V>; opaque resumption_psk<V>; opaque secret_tree<V>;
//	} retained_epochs<V>;              (newest first)

// MarshalBinary encodes the complete state of the group for storage: the
// GroupContext, ratchet tree, this client's private keys and identity, the
// epoch's secrets and message keys (consumed keys stay consumed), the cached
// proposals and the retained epochs. LoadGroup restores it exactly. The
// result holds secrets: store it as such, and replace it after every change
// (messages sent or opened consume keys).
func (g *Group) MarshalBinary() ([]byte, error) {
	treeRaw, err := g.tree.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode group: %w", err)
	}
	var stree []byte
	if !g.removed {
		if stree, err = g.stree.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("encode group: %w", err)
		}
		defer clear(stree)
	}
	past := make([][2][]byte, len(g.past))
	for i, pe := range g.past {
		if past[i][0], err = pe.tree.Encode(); err != nil {
			return nil, fmt.Errorf("encode group: %w", err)
		}
		if past[i][1], err = pe.stree.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("encode group: %w", err)
		}
		defer clear(past[i][1])
	}
	out, err := codec.Marshal(func(b *cryptobyte.Builder) {
		b.AddUint8(kindGroup)
		b.AddUint8(groupVersion)
		g.id.encode(b)
		codec.AddBool(b, g.removed)
		g.ctx.Encode(b)
		codec.AddOpaque(b, g.interim)
		codec.AddOpaque(b, g.confTag)
		codec.AddOpaque(b, treeRaw)
		g.priv.encode(b)
		if !g.removed {
			for _, s := range g.ks.all() {
				codec.AddOpaque(b, *s)
			}
			codec.AddOpaque(b, stree)
		}
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for _, cp := range g.proposals {
				codec.AddOpaque(b, cp.ref)
				cp.proposal.Encode(b)
				cp.sender.Encode(b)
				codec.AddOpaque(b, cp.leafPriv)
			}
		})
		codec.AddOptional(b, g.reinit != nil, func(b *cryptobyte.Builder) { g.reinit.Encode(b) })
		codec.AddVector(b, func(b *cryptobyte.Builder) {
			for i, pe := range g.past {
				pe.ctx.Encode(b)
				codec.AddOpaque(b, past[i][0])
				codec.AddOpaque(b, pe.senderData)
				codec.AddOpaque(b, pe.resumptionPSK)
				codec.AddOpaque(b, past[i][1])
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("encode group: %w", err)
	}
	return out, nil
}

// LoadGroup restores a group stored with Group.MarshalBinary, with cfg as
// its Config from now on. Bytes of another kind or an unknown version,
// truncated, corrupt or inconsistent state yield an error wrapping
// ErrCorruptState.
func LoadGroup(data []byte, cfg *Config) (*Group, error) {
	var g *Group
	var inner error
	err := unmarshalState(data, kindGroup, groupVersion, "group", func(s *cryptobyte.String) bool {
		g, inner = decodeGroup(s, cfg)
		return inner == nil
	})
	if err != nil {
		if inner != nil {
			return nil, fmt.Errorf("load group: %w: %w", ErrCorruptState, inner)
		}
		return nil, err
	}
	return g, nil
}

var errTruncated = errors.New("truncated or malformed field")

func decodeGroup(s *cryptobyte.String, cfg *Config) (*Group, error) {
	id, ok := decodeIdentity(s)
	if !ok {
		return nil, fmt.Errorf("identity: %w", errTruncated)
	}
	g := &Group{cfg: cfg, id: id, cs: id.cs}
	var treeRaw []byte
	if !codec.ReadBool(s, &g.removed) || !g.ctx.Decode(s) ||
		!codec.ReadOpaque(s, &g.interim) || !codec.ReadOpaque(s, &g.confTag) || !codec.ReadOpaque(s, &treeRaw) {
		return nil, fmt.Errorf("group context: %w", errTruncated)
	}
	if CipherSuite(g.ctx.CipherSuite) != id.suite {
		return nil, errors.New("identity and group of different cipher suites")
	}
	t, err := loadTree(g.cs, treeRaw, g.ctx.TreeHash)
	if err != nil {
		return nil, err
	}
	g.tree = t
	if g.priv, ok = decodePrivState(g.cs, s); !ok {
		return nil, fmt.Errorf("private keys: %w", errTruncated)
	}
	g.myLeaf = uint32(g.priv.leaf)
	if _, ok := g.priv.key(t, mustLeafNode(g.priv.leaf)); !ok && !g.removed {
		return nil, errors.New("private leaf key does not match the tree")
	}
	if !g.removed {
		g.ks = &epochSecrets{}
		for _, p := range g.ks.all() {
			if !codec.ReadOpaque(s, p) || len(*p) != g.cs.HashSize() {
				return nil, fmt.Errorf("epoch secrets: %w", errTruncated)
			}
		}
		var st []byte
		if !codec.ReadOpaque(s, &st) {
			return nil, fmt.Errorf("secret tree: %w", errTruncated)
		}
		if g.stree, err = loadSecretTree(st, cfg, t.LeafCount()); err != nil {
			return nil, err
		}
		if g.framer, err = g.newFramer(); err != nil {
			return nil, err
		}
	}
	if g.ctxRaw, err = wire.Marshal(&g.ctx); err != nil {
		return nil, err
	}
	if !codec.ReadList(s, func(s *cryptobyte.String) bool {
		cp := &cachedProposal{proposal: new(wire.Proposal)}
		if !codec.ReadOpaque(s, &cp.ref) || !cp.proposal.Decode(s) || !cp.sender.Decode(s) || !codec.ReadOpaque(s, &cp.leafPriv) {
			return false
		}
		if len(cp.leafPriv) == 0 {
			cp.leafPriv = nil
		}
		g.proposals = append(g.proposals, cp)
		return true
	}) {
		return nil, fmt.Errorf("proposals: %w", errTruncated)
	}
	var hasReInit bool
	if !codec.ReadOptional(s, &hasReInit, func(s *cryptobyte.String) bool {
		g.reinit = new(wire.ReInit)
		return g.reinit.Decode(s)
	}) {
		return nil, fmt.Errorf("reinit: %w", errTruncated)
	}
	var perr error
	if !codec.ReadList(s, func(s *cryptobyte.String) bool {
		pe := &pastEpoch{}
		var treeRaw, st []byte
		if !pe.ctx.Decode(s) || !codec.ReadOpaque(s, &treeRaw) || !codec.ReadOpaque(s, &pe.senderData) ||
			!codec.ReadOpaque(s, &pe.resumptionPSK) || !codec.ReadOpaque(s, &st) {
			return false
		}
		pe.epoch = pe.ctx.Epoch
		if pe.tree, perr = loadTree(g.cs, treeRaw, pe.ctx.TreeHash); perr != nil {
			return false
		}
		if pe.stree, perr = loadSecretTree(st, cfg, pe.tree.LeafCount()); perr != nil {
			return false
		}
		if perr = pe.initFramer(g.cs); perr != nil {
			return false
		}
		g.past = append(g.past, pe)
		return true
	}) {
		if perr != nil {
			return nil, fmt.Errorf("retained epoch: %w", perr)
		}
		return nil, fmt.Errorf("retained epochs: %w", errTruncated)
	}
	return g, nil
}

func mustLeafNode(l treemath.LeafIndex) treemath.NodeIndex {
	x, _ := treemath.LeafToNode(l)
	return x
}

// loadTree decodes a persisted ratchet tree and checks it against the tree
// hash it was stored with.
func loadTree(cs *ciphersuite.Suite, raw, treeHash []byte) (*tree.Tree, error) {
	t, err := tree.Decode(cs, raw)
	if err != nil {
		return nil, fmt.Errorf("ratchet tree: %w", err)
	}
	if err := t.VerifyTreeHash(treeHash); err != nil {
		return nil, fmt.Errorf("ratchet tree: %w", err)
	}
	return t, nil
}

// loadSecretTree decodes a persisted secret tree of an epoch with
// leafCount leaves.
func loadSecretTree(raw []byte, cfg *Config, leafCount uint32) (*secrettree.Tree, error) {
	st, err := secrettree.Unmarshal(raw, secretTreeConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("secret tree: %w", err)
	}
	if uint32(st.LeafCount()) != leafCount {
		return nil, fmt.Errorf("secret tree of %d leaves for a tree of %d", st.LeafCount(), leafCount)
	}
	return st, nil
}
