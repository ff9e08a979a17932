package mls

import (
	"bytes"
	"fmt"
	"io"

	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// GroupOptions tunes NewGroup. The zero value makes a group with a random
// ID and no GroupContext extensions.
type GroupOptions struct {
	// GroupID is the group's identifier; nil means KDF.Nh random bytes
	// (RFC 9420 §11 recommends a fresh random value).
	GroupID []byte
	// Extensions are the initial GroupContext extensions (RFC 9420 §11,
	// §13.4), such as RequiredCapabilitiesExtension or
	// ExternalSendersExtension. Every member must support them.
	Extensions []Extension
	// LeafExtensions are added to the creator's leaf node.
	LeafExtensions []Extension
}

// NewGroup creates a group whose only member is id, in epoch 0
// (RFC 9420 §11). Add members with AddMembers.
func NewGroup(id *Identity, cfg *Config, opts *GroupOptions) (*Group, error) {
	if opts == nil {
		opts = &GroupOptions{}
	}
	cs := id.cs
	rand := cfg.rand()
	groupID := bytes.Clone(opts.GroupID)
	if groupID == nil {
		groupID = make([]byte, cs.HashSize())
		if _, err := io.ReadFull(rand, groupID); err != nil {
			return nil, fmt.Errorf("new group: group id: %w", err)
		}
	}
	exts, err := toWireExtensions(opts.Extensions)
	if err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	if err := checkOwnSupport(cfg, exts); err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	leafExts, err := toWireExtensions(opts.LeafExtensions)
	if err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	encPriv, encPub, err := cs.GenerateHPKEKey(rand)
	if err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	now := cfg.now()
	leaf := &wire.LeafNode{
		EncryptionKey:  encPub,
		SignatureKey:   id.SignaturePublicKey(),
		Credential:     id.credential(),
		Capabilities:   advertisedCapabilities(cfg, leafExts),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime: wire.Lifetime{
			NotBefore: unixSeconds(now.Add(-keyPackageClockSkew)),
			NotAfter:  unixSeconds(now.Add(cfg.keyPackageLifetime())),
		},
		Extensions: leafExts,
	}
	if err := tree.SignLeafNode(cs, leaf, id.key, groupID, 0); err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	t := tree.New(cs)
	if _, err := t.AddLeaf(leaf); err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	priv, err := newPrivState(cs, 0, encPriv)
	clear(encPriv)
	if err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	ctx := wire.GroupContext{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: wire.CipherSuite(id.suite),
		GroupID:     groupID,
		Epoch:       0,
		Extensions:  exts,
	}
	if ctx.TreeHash, err = t.TreeHash(); err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	ctxRaw, err := wire.Marshal(&ctx)
	if err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	// The first epoch's secrets come from a fresh random secret (RFC 9420
	// §11); it enters the schedule in the joiner_secret position.
	seed := make([]byte, cs.HashSize())
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("new group: epoch secret: %w", err)
	}
	ks, err := keyschedule.Join(cs, seed, nil, ctxRaw)
	clear(seed)
	if err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	ks.ForgetJoinerSecrets()
	confTag := keyschedule.ConfirmationTag(cs, ks.ConfirmationKey, nil)
	interim, err := keyschedule.InterimTranscriptHash(cs, nil, confTag)
	if err != nil {
		return nil, fmt.Errorf("new group: %w", err)
	}
	return newGroup(epochState{
		cfg: cfg, id: id, cs: cs,
		ctx: ctx, interim: interim, confTag: confTag,
		tree: t, priv: priv, ks: ks,
	})
}
