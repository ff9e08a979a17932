package mls

import (
	"bytes"
	"fmt"
	"math"

	"github.com/meshchat/meshchat/mls/internal/framing"
	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// ExternalJoinOptions tunes JoinExternal.
type ExternalJoinOptions struct {
	// RatchetTree is the group's ratchet tree, needed when the GroupInfo
	// has no ratchet_tree extension (RFC 9420 §12.4.3.3).
	RatchetTree []byte
	// Resync removes this client's old appearance in the group in the same
	// commit (RFC 9420 §12.4.3.2): the member with the identity's
	// signature key or, failing that, the one member with the same
	// credential identity.
	Resync bool
	// ExternalPSKs lists external pre-shared keys to inject
	// (RFC 9420 §12.4.3.2 allows PreSharedKey proposals).
	ExternalPSKs [][]byte
	// AuthenticatedData is sent in clear with the commit, covered by its
	// signature.
	AuthenticatedData []byte
}

// JoinExternal joins a group by external commit (RFC 9420 §12.4.3.2) from
// a GroupInfo carrying the group's external public key (Group.GroupInfo).
// It returns the commit to send to the group and, as PendingCommit.Next,
// this client's state in the new epoch, to use once the group has accepted
// the commit.
func JoinExternal(groupInfo []byte, id *Identity, cfg *Config, opts *ExternalJoinOptions) (*PendingCommit, error) {
	if opts == nil {
		opts = &ExternalJoinOptions{}
	}
	pc, err := joinExternal(groupInfo, id, cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("external join: %w", err)
	}
	return pc, nil
}

func joinExternal(groupInfo []byte, id *Identity, cfg *Config, opts *ExternalJoinOptions) (*PendingCommit, error) {
	var msg wire.MLSMessage
	if err := wire.Unmarshal(groupInfo, &msg); err != nil {
		return nil, fmt.Errorf("group info: %w: %v", ErrMalformed, err)
	}
	if msg.WireFormat != wire.WireFormatGroupInfo {
		return nil, fmt.Errorf("message holds a %v: %w", msg.WireFormat, ErrMalformed)
	}
	gi := msg.GroupInfo
	if CipherSuite(gi.GroupContext.CipherSuite) != id.suite {
		return nil, fmt.Errorf("group of suite 0x%04x, identity of %v: %w", uint16(gi.GroupContext.CipherSuite), id.suite, ErrUnsupportedCipherSuite)
	}
	cs := id.cs
	t, err := verifiedTree(cs, gi, opts.RatchetTree, cfg)
	if err != nil {
		return nil, err
	}
	var ep wire.ExternalPub
	if ok, err := gi.Extensions.Get(&ep); err != nil || !ok {
		return nil, fmt.Errorf("%w: no external_pub extension", ErrInvalidGroupInfo)
	}
	rand := cfg.rand()
	kemOutput, initSecret, err := cs.ExternalInitSender(ep.ExternalPub, rand)
	if err != nil {
		return nil, fmt.Errorf("%w: external init: %v", ErrInvalidGroupInfo, err)
	}
	defer clear(initSecret)
	interim, err := keyschedule.InterimTranscriptHash(cs, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err != nil {
		return nil, err
	}
	// base stands for the group's current epoch as the GroupInfo shows it:
	// public state only, and no leaf of ours.
	base := &Group{cfg: cfg, id: id, cs: cs, ctx: gi.GroupContext, interim: interim, tree: t, myLeaf: math.MaxUint32}

	sender := wire.Sender{SenderType: wire.SenderTypeNewMemberCommit}
	var list []resolved
	var refs []wire.ProposalOrRef
	add := func(p *wire.Proposal) {
		list = append(list, resolved{p: p, sender: sender})
		refs = append(refs, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: p})
	}
	add(&wire.Proposal{ProposalType: wire.ProposalTypeExternalInit, ExternalInit: &wire.ExternalInit{KEMOutput: kemOutput}})
	if opts.Resync {
		old, err := findOwnLeaf(base, id)
		if err != nil {
			return nil, err
		}
		add(&wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: old}})
	}
	for _, pskID := range opts.ExternalPSKs {
		pid, err := newExternalPSKID(cs, pskID, rand)
		if err != nil {
			return nil, err
		}
		add(&wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: pid}})
	}
	if err := validateList(list, sender, true); err != nil {
		return nil, err
	}
	ap, err := base.applyProposals(list)
	if err != nil {
		return nil, err
	}
	leaf := ap.tree.AllocateLeaf()
	encPriv, encPub, err := cs.GenerateHPKEKey(rand)
	if err != nil {
		return nil, err
	}
	clear(encPriv)
	template := &wire.LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  id.SignaturePublicKey(),
		Credential:    id.credential(),
		Capabilities:  advertisedCapabilities(cfg),
	}
	ps, priv, err := generatePath(cs, ap.tree, leaf, template, id.key, gi.GroupContext.GroupID, rand)
	if err != nil {
		return nil, err
	}
	defer ps.Zero()
	if ap.ctx.TreeHash, err = ap.tree.TreeHash(); err != nil {
		return nil, err
	}
	provisional, err := wire.Marshal(&ap.ctx)
	if err != nil {
		return nil, err
	}
	path, err := ps.Encrypt(ap.tree, provisional, nil, rand)
	if err != nil {
		return nil, mapTreeError(err)
	}
	framer, err := framing.NewEpoch(cs, &gi.GroupContext, framing.EpochKeys{})
	if err != nil {
		return nil, err
	}
	content := &wire.FramedContent{
		GroupID:           gi.GroupContext.GroupID,
		Epoch:             gi.GroupContext.Epoch,
		Sender:            sender,
		AuthenticatedData: bytes.Clone(opts.AuthenticatedData),
		ContentType:       wire.ContentTypeCommit,
		Commit:            &wire.Commit{Proposals: refs, Path: path},
	}
	ac, err := framer.Sign(id.key, wire.WireFormatPublicMessage, content)
	if err != nil {
		return nil, mapFramingError(err)
	}
	next, ks, err := base.advance(ac, ap, initSecret, ps.CommitSecret(), priv, nil, nil)
	if err != nil {
		return nil, err
	}
	ks.ForgetJoinerSecrets()
	pm, err := framer.ProtectPublic(ac)
	if err != nil {
		return nil, mapFramingError(err)
	}
	m, err := wire.NewMLSMessage(pm)
	if err != nil {
		return nil, err
	}
	out, err := wire.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &PendingCommit{Commit: out, Next: next, Proposals: base.describeList(list, ap)}, nil
}

// findOwnLeaf finds this client's old leaf for a resync: the member with
// the identity's signature key, or else the only member with its
// credential identity.
func findOwnLeaf(g *Group, id *Identity) (uint32, error) {
	if at, ok := g.tree.FindSignatureKey(id.pub); ok {
		return uint32(at), nil
	}
	found, n := uint32(0), 0
	for i := uint32(0); i < g.tree.LeafCount(); i++ {
		l := g.tree.Leaf(treemath.LeafIndex(i))
		if l != nil && bytes.Equal(l.Credential.Identity, id.name) {
			found, n = i, n+1
		}
	}
	if n != 1 {
		return 0, fmt.Errorf("resync: %d members with this identity: %w", n, ErrNotMember)
	}
	return found, nil
}
