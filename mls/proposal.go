package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/framing"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// ProposeAdd proposes adding the owner of kp (RFC 9420 §12.1.1) and
// returns the proposal message to send to the group. The proposal is cached
// in g, so that g's next commit includes it.
func (g *Group) ProposeAdd(kp *KeyPackage) ([]byte, error) {
	return g.propose(Proposal{Type: ProposalAdd, KeyPackage: kp})
}

// ProposeRemove proposes removing the member at leaf (RFC 9420 §12.1.3).
func (g *Group) ProposeRemove(leaf uint32) ([]byte, error) {
	return g.propose(Proposal{Type: ProposalRemove, Leaf: leaf})
}

// ProposeUpdate proposes replacing this client's leaf with a fresh
// encryption key (RFC 9420 §12.1.2). Another member must commit it; to
// update in one step, use Update.
func (g *Group) ProposeUpdate() ([]byte, error) {
	return g.propose(Proposal{Type: ProposalUpdate})
}

// ProposeExternalPSK proposes injecting the external pre-shared key named id
// into the next epoch (RFC 9420 §12.1.4). Every member must know it
// (Config.ExternalPSK).
func (g *Group) ProposeExternalPSK(id []byte) ([]byte, error) {
	return g.propose(Proposal{Type: ProposalPSK, PSKID: id})
}

// ProposeGroupContextExtensions proposes replacing the GroupContext
// extensions wholesale with exts (RFC 9420 §12.1.7).
func (g *Group) ProposeGroupContextExtensions(exts []Extension) ([]byte, error) {
	return g.propose(Proposal{Type: ProposalGroupContextExtensions, Extensions: exts})
}

// ProposeReInit proposes reinitializing the group with new parameters
// (RFC 9420 §12.1.5, §11.2).
func (g *Group) ProposeReInit(params ReInitParams) ([]byte, error) {
	return g.propose(Proposal{Type: ProposalReInit, ReInit: &params})
}

// propose builds, sends and caches a proposal of this member.
func (g *Group) propose(p Proposal) ([]byte, error) {
	if err := g.canSend(); err != nil {
		return nil, fmt.Errorf("propose %v: %w", p.Type, err)
	}
	wp, leafPriv, err := g.buildProposal(p)
	if err != nil {
		return nil, fmt.Errorf("propose %v: %w", p.Type, err)
	}
	if err := g.checkProposal(wp, wire.MemberSender(g.myLeaf), false); err != nil {
		return nil, fmt.Errorf("propose %v: %w", p.Type, err)
	}
	content := &wire.FramedContent{
		GroupID:     g.ctx.GroupID,
		Epoch:       g.ctx.Epoch,
		Sender:      wire.MemberSender(g.myLeaf),
		ContentType: wire.ContentTypeProposal,
		Proposal:    wp,
	}
	msg, ac, err := g.sendHandshake(content)
	if err != nil {
		return nil, fmt.Errorf("propose %v: %w", p.Type, err)
	}
	ref, err := proposalRef(g.cs, ac)
	if err != nil {
		return nil, fmt.Errorf("propose %v: %w", p.Type, err)
	}
	g.proposals = append(g.proposals, &cachedProposal{ref: ref, proposal: wp, sender: content.Sender, leafPriv: leafPriv})
	return msg, nil
}

// buildProposal turns a public proposal description into its wire form.
// For an Update it also returns the new leaf's private key.
func (g *Group) buildProposal(p Proposal) (*wire.Proposal, []byte, error) {
	switch p.Type {
	case ProposalUpdate:
		priv, pub, err := g.cs.GenerateHPKEKey(g.cfg.rand())
		if err != nil {
			return nil, nil, err
		}
		leaf := *g.tree.Leaf(treemath.LeafIndex(g.myLeaf))
		leaf.EncryptionKey = pub
		leaf.LeafNodeSource = wire.LeafNodeSourceUpdate
		leaf.Lifetime = wire.Lifetime{}
		leaf.ParentHash = nil
		leaf.Capabilities = advertisedCapabilities(g.cfg, leaf.Extensions)
		if err := tree.SignLeafNode(g.cs, &leaf, g.id.key, g.ctx.GroupID, treemath.LeafIndex(g.myLeaf)); err != nil {
			return nil, nil, err
		}
		return &wire.Proposal{ProposalType: wire.ProposalTypeUpdate, Update: &wire.Update{LeafNode: leaf}}, priv, nil
	case ProposalPSK:
		if p.PSKID == nil {
			return nil, nil, fmt.Errorf("resumption PSK proposals are made with CommitOptions: %w", ErrInvalidProposalList)
		}
		id, err := newExternalPSKID(g.cs, p.PSKID, g.cfg.rand())
		if err != nil {
			return nil, nil, err
		}
		return &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: id}}, nil, nil
	}
	wp, err := toWireProposal(p)
	return wp, nil, err
}

// toWireProposal builds the wire form of the proposal types that need no
// group state: Add, Remove, GroupContextExtensions, ReInit, and a PSK with
// its nonce already chosen by the caller of newExternalPSKID.
func toWireProposal(p Proposal) (*wire.Proposal, error) {
	switch p.Type {
	case ProposalAdd:
		if p.KeyPackage == nil {
			return nil, errors.New("add proposal without a key package")
		}
		return &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: p.KeyPackage.kp}}, nil
	case ProposalRemove:
		return &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: p.Leaf}}, nil
	case ProposalGroupContextExtensions:
		exts, err := toWireExtensions(p.Extensions)
		if err != nil {
			return nil, err
		}
		return &wire.Proposal{ProposalType: wire.ProposalTypeGroupContextExtensions, GroupContextExtensions: &wire.GroupContextExtensions{Extensions: exts}}, nil
	case ProposalReInit:
		if p.ReInit == nil {
			return nil, errors.New("reinit proposal without parameters")
		}
		exts, err := toWireExtensions(p.ReInit.Extensions)
		if err != nil {
			return nil, err
		}
		return &wire.Proposal{ProposalType: wire.ProposalTypeReInit, ReInit: &wire.ReInit{
			GroupID:     bytes.Clone(p.ReInit.GroupID),
			Version:     wire.ProtocolVersionMLS10,
			CipherSuite: wire.CipherSuite(p.ReInit.CipherSuite),
			Extensions:  exts,
		}}, nil
	}
	return nil, fmt.Errorf("cannot build a %v proposal: %w", p.Type, ErrInvalidProposalList)
}

// newExternalPSKID names external PSK id with a fresh nonce of KDF.Nh bytes
// (RFC 9420 §8.4).
func newExternalPSKID(cs *ciphersuite.Suite, id []byte, rand io.Reader) (wire.PreSharedKeyID, error) {
	nonce := make([]byte, cs.HashSize())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return wire.PreSharedKeyID{}, fmt.Errorf("psk nonce: %w", err)
	}
	return wire.PreSharedKeyID{PSKType: wire.PSKTypeExternal, PSKID: bytes.Clone(id), PSKNonce: nonce}, nil
}

// newResumptionPSKID names the resumption PSK of groupID's epoch with a
// fresh nonce (RFC 9420 §8.4, §8.6).
func newResumptionPSKID(cs *ciphersuite.Suite, groupID []byte, epoch uint64, rand io.Reader) (wire.PreSharedKeyID, error) {
	nonce := make([]byte, cs.HashSize())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return wire.PreSharedKeyID{}, fmt.Errorf("psk nonce: %w", err)
	}
	return wire.PreSharedKeyID{PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageApplication,
		PSKGroupID: bytes.Clone(groupID), PSKEpoch: epoch, PSKNonce: nonce}, nil
}

// sendHandshake signs and protects a handshake content of this member in
// the current epoch, as PublicMessage or PrivateMessage per the Config. It
// returns the encoded MLSMessage and the AuthenticatedContent.
func (g *Group) sendHandshake(content *wire.FramedContent) ([]byte, *wire.AuthenticatedContent, error) {
	wf := wire.WireFormatPublicMessage
	if g.cfg.encryptHandshake() {
		wf = wire.WireFormatPrivateMessage
	}
	ac, err := g.framer.Sign(g.id.key, wf, content)
	if err != nil {
		return nil, nil, err
	}
	msg, err := g.protect(ac)
	if err != nil {
		return nil, nil, err
	}
	return msg, ac, nil
}

// protect wraps signed content (with its confirmation tag, for a commit) in
// its wire format and encodes the MLSMessage.
func (g *Group) protect(ac *wire.AuthenticatedContent) ([]byte, error) {
	var body wire.Encoder
	switch ac.WireFormat {
	case wire.WireFormatPublicMessage:
		pm, err := g.framer.ProtectPublic(ac)
		if err != nil {
			return nil, err
		}
		body = pm
	default:
		pm, err := g.framer.ProtectPrivate(ac, g.padding(), g.cfg.rand())
		if err != nil {
			return nil, err
		}
		body = pm
	}
	m, err := wire.NewMLSMessage(body)
	if err != nil {
		return nil, err
	}
	return wire.Marshal(m)
}

func (g *Group) padding() framing.PaddingPolicy {
	if b := g.cfg.paddingBlock(); b > 0 {
		return framing.PadToMultiple(b)
	}
	return framing.NoPadding
}

// proposalRef is the ProposalRef of a proposal sent on its own: the
// RefHash of its AuthenticatedContent (RFC 9420 §5.2).
func proposalRef(cs *ciphersuite.Suite, ac *wire.AuthenticatedContent) ([]byte, error) {
	raw, err := wire.Marshal(ac)
	if err != nil {
		return nil, err
	}
	return cs.RefHash(labelProposalRef, raw)
}

// checkProposal applies the rules of RFC 9420 §12.1 that a proposal must
// meet on its own, whoever sends it, before it is cached or committed. The
// rules that depend on the rest of the proposal list and on the tree as the
// list changes it are checked when a commit applies it.
//
// inCommit is set for a proposal inline in a commit: applying the commit
// validates an Add's leaf node against the tree, signature included, so it
// is not verified twice.
func (g *Group) checkProposal(p *wire.Proposal, sender wire.Sender, inCommit bool) error {
	switch p.ProposalType {
	case wire.ProposalTypeAdd:
		kp := &p.Add.KeyPackage
		if kp.Version != wire.ProtocolVersionMLS10 || kp.CipherSuite != g.ctx.CipherSuite {
			return fmt.Errorf("%w: add: key package for %v/0x%04x in a %v group: %w", ErrInvalidProposalList, kp.Version, uint16(kp.CipherSuite), g.CipherSuite(), ErrKeyPackageInvalid)
		}
		if err := validateKeyPackage(g.cs, kp, g.cfg, true, !inCommit); err != nil {
			return fmt.Errorf("%w: add: %w", ErrInvalidProposalList, err)
		}
	case wire.ProposalTypeUpdate:
		if sender.SenderType != wire.SenderTypeMember {
			return fmt.Errorf("%w: update from a %v sender", ErrInvalidProposalList, sender.SenderType)
		}
		if err := g.tree.ValidateLeafNode(&p.Update.LeafNode, wire.LeafNodeSourceUpdate, treemath.LeafIndex(sender.LeafIndex), g.leafNodeParams(&g.ctx, false)); err != nil {
			return fmt.Errorf("%w: update: %w", ErrInvalidProposalList, mapTreeError(err))
		}
	case wire.ProposalTypeRemove:
		if g.tree.Leaf(treemath.LeafIndex(p.Remove.Removed)) == nil {
			return fmt.Errorf("%w: remove: leaf %d is not a member", ErrInvalidProposalList, p.Remove.Removed)
		}
	case wire.ProposalTypePSK:
		if err := checkPSKID(g.cs, &p.PreSharedKey.PSK); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposalList, err)
		}
	case wire.ProposalTypeReInit:
		if p.ReInit.Version < wire.ProtocolVersionMLS10 {
			return fmt.Errorf("%w: reinit to version %v, older than the group's", ErrInvalidProposalList, p.ReInit.Version)
		}
	case wire.ProposalTypeExternalInit:
		if sender.SenderType != wire.SenderTypeNewMemberCommit {
			return fmt.Errorf("%w: external_init outside an external commit", ErrInvalidProposalList)
		}
	case wire.ProposalTypeGroupContextExtensions:
		if err := g.checkOwnSupport(p.GroupContextExtensions.Extensions); err != nil {
			return fmt.Errorf("%w: group_context_extensions: %w", ErrInvalidProposalList, err)
		}
	default:
		return fmt.Errorf("%w: unsupported proposal type %v", ErrInvalidProposalList, p.ProposalType)
	}
	return nil
}

// checkPSKID applies RFC 9420 §12.1.4 to a PreSharedKeyID: a nonce of
// KDF.Nh bytes, and no resumption PSK of usage reinit or branch outside a
// reinitialization or branch.
func checkPSKID(cs *ciphersuite.Suite, id *wire.PreSharedKeyID) error {
	if len(id.PSKNonce) != cs.HashSize() {
		return fmt.Errorf("psk: nonce of %d bytes, want %d", len(id.PSKNonce), cs.HashSize())
	}
	if id.PSKType == wire.PSKTypeResumption && id.Usage != wire.ResumptionPSKUsageApplication {
		return fmt.Errorf("psk: resumption PSK of usage %v in a proposal", id.Usage)
	}
	return nil
}

// checkOwnSupport reports whether this client supports every extension of
// a GroupContext extension list: the default ones, the types in
// Config.SupportedExtensions, and whether it meets its
// required_capabilities (RFC 9420 §11.1, §13.4).
func (g *Group) checkOwnSupport(exts wire.Extensions) error {
	return checkOwnSupport(g.cfg, exts)
}

func checkOwnSupport(cfg *Config, exts wire.Extensions) error {
	caps := ownCapabilities(cfg)
	for _, e := range exts {
		if !e.ExtensionType.IsDefault() && !listsExtension(caps, e.ExtensionType) {
			return fmt.Errorf("extension %v: %w", e.ExtensionType, ErrUnsupportedExtension)
		}
	}
	var rc wire.RequiredCapabilities
	ok, err := exts.Get(&rc)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ok {
		for _, t := range rc.ExtensionTypes {
			if !t.IsDefault() && !listsExtension(caps, t) {
				return fmt.Errorf("required extension %v: %w", t, ErrUnsupportedExtension)
			}
		}
		for _, t := range rc.ProposalTypes {
			if !t.IsDefault() && !listsProposal(caps, t) {
				return fmt.Errorf("required proposal %v: %w", t, ErrUnsupportedExtension)
			}
		}
		for _, t := range rc.CredentialTypes {
			if !listsCredential(caps, t) {
				return fmt.Errorf("required credential %v: %w", t, ErrUnsupportedExtension)
			}
		}
	}
	return nil
}

// PendingProposals lists the proposals received or sent in the current
// epoch, which the next commit of this client includes.
func (g *Group) PendingProposals() []Proposal {
	out := make([]Proposal, 0, len(g.proposals))
	for _, cp := range g.proposals {
		out = append(out, g.describe(cp.proposal, cp.sender, cp.ref, g.tree))
	}
	return out
}

// DropProposal removes the cached proposal with ProposalRef ref (as
// Proposal.Ref reports it), for a proposal the application's policy rejects
// (RFC 9420 §12.2 lets applications add rules). A commit by another member
// that references it is then rejected with ErrUnknownProposal. It reports
// whether the proposal was cached.
func (g *Group) DropProposal(ref []byte) bool {
	for i, cp := range g.proposals {
		if bytes.Equal(cp.ref, ref) {
			g.proposals = append(g.proposals[:i:i], g.proposals[i+1:]...)
			return true
		}
	}
	return false
}

// describe turns a wire proposal into its public description. t is the
// tree the sender is looked up in.
func (g *Group) describe(p *wire.Proposal, sender wire.Sender, ref []byte, t *tree.Tree) Proposal {
	out := Proposal{Type: ProposalType(p.ProposalType), Sender: g.describeSender(sender, t, p), Ref: bytes.Clone(ref)}
	switch p.ProposalType {
	case wire.ProposalTypeAdd:
		if kp, err := newKeyPackage(g.cs, p.Add.KeyPackage); err == nil {
			out.KeyPackage = kp
		}
	case wire.ProposalTypeUpdate:
		out.Leaf = sender.LeafIndex
	case wire.ProposalTypeRemove:
		out.Leaf = p.Remove.Removed
	case wire.ProposalTypePSK:
		id := &p.PreSharedKey.PSK
		if id.PSKType == wire.PSKTypeExternal {
			out.PSKID = bytes.Clone(id.PSKID)
		} else {
			out.PSKGroupID, out.PSKEpoch = bytes.Clone(id.PSKGroupID), id.PSKEpoch
		}
	case wire.ProposalTypeGroupContextExtensions:
		out.Extensions = fromWireExtensions(p.GroupContextExtensions.Extensions)
	case wire.ProposalTypeReInit:
		out.ReInit = reInitParams(p.ReInit)
		out.Extensions = out.ReInit.Extensions
	}
	return out
}

// describeSender turns a wire sender into its public description.
func (g *Group) describeSender(s wire.Sender, t *tree.Tree, p *wire.Proposal) Sender {
	switch s.SenderType {
	case wire.SenderTypeMember:
		return memberSender(t, s.LeafIndex)
	case wire.SenderTypeExternal:
		out := Sender{Kind: SenderExternal, Index: s.SenderIndex}
		if es, ok := externalSender(&g.ctx, s.SenderIndex); ok {
			out.Identity, out.SignatureKey = bytes.Clone(es.Credential.Identity), bytes.Clone(es.SignatureKey)
		}
		return out
	case wire.SenderTypeNewMemberProposal:
		out := Sender{Kind: SenderNewMemberProposal}
		if p != nil && p.Add != nil {
			leaf := &p.Add.KeyPackage.LeafNode
			out.Identity, out.SignatureKey = bytes.Clone(leaf.Credential.Identity), bytes.Clone(leaf.SignatureKey)
		}
		return out
	}
	return Sender{Kind: SenderKind(s.SenderType)}
}

// ExternalProposal builds a proposal from a party outside the group that the
// group lists in its external_senders extension at senderIndex
// (RFC 9420 §12.1.8): one of Add (p.KeyPackage), Remove (p.Leaf), PSK
// (p.PSKID), GroupContextExtensions (p.Extensions) or ReInit (p.ReInit),
// for the group groupID in epoch epoch. It is sent as a PublicMessage.
func ExternalProposal(signer *Identity, senderIndex uint32, groupID []byte, epoch uint64, p Proposal, cfg *Config) ([]byte, error) {
	var wp *wire.Proposal
	var err error
	if p.Type == ProposalPSK {
		if p.PSKID == nil {
			return nil, fmt.Errorf("external proposal: psk without an id: %w", ErrInvalidProposalList)
		}
		id, err := newExternalPSKID(signer.cs, p.PSKID, cfg.rand())
		if err != nil {
			return nil, fmt.Errorf("external proposal: %w", err)
		}
		wp = &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: id}}
	} else if wp, err = toWireProposal(p); err != nil {
		return nil, fmt.Errorf("external proposal: %w", err)
	}
	sender := wire.Sender{SenderType: wire.SenderTypeExternal, SenderIndex: senderIndex}
	return publicFromOutside(signer, groupID, epoch, sender, wp)
}

// NewMemberProposal builds the Add proposal by which the owner of kp asks to
// join the group groupID in epoch epoch (RFC 9420 §12.1.8, sender type
// new_member_proposal). A member must commit it; the Welcome then goes to
// kp as usual.
func NewMemberProposal(kp *PrivateKeyPackage, groupID []byte, epoch uint64) ([]byte, error) {
	wp := &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: kp.pub.kp}}
	return publicFromOutside(kp.id, groupID, epoch, wire.Sender{SenderType: wire.SenderTypeNewMemberProposal}, wp)
}

// publicFromOutside signs a proposal from a non-member into a PublicMessage.
func publicFromOutside(signer *Identity, groupID []byte, epoch uint64, sender wire.Sender, wp *wire.Proposal) ([]byte, error) {
	ctx := &wire.GroupContext{Version: wire.ProtocolVersionMLS10, CipherSuite: wire.CipherSuite(signer.suite), GroupID: groupID, Epoch: epoch}
	f, err := framing.NewEpoch(signer.cs, ctx, framing.EpochKeys{})
	if err != nil {
		return nil, fmt.Errorf("external proposal: %w", err)
	}
	content := &wire.FramedContent{GroupID: bytes.Clone(groupID), Epoch: epoch, Sender: sender, ContentType: wire.ContentTypeProposal, Proposal: wp}
	ac, err := f.Sign(signer.key, wire.WireFormatPublicMessage, content)
	if err != nil {
		return nil, fmt.Errorf("external proposal: %w", mapFramingError(err))
	}
	pm, err := f.ProtectPublic(ac)
	if err != nil {
		return nil, fmt.Errorf("external proposal: %w", mapFramingError(err))
	}
	m, err := wire.NewMLSMessage(pm)
	if err != nil {
		return nil, err
	}
	return wire.Marshal(m)
}
