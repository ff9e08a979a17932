package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/framing"
	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// CommitOptions says what a commit does besides committing the proposals
// cached in the epoch. The zero value commits the cached proposals (or, with
// none, refreshes this member's path: an "empty" commit, RFC 9420 §12.4).
type CommitOptions struct {
	// Add lists KeyPackages to add, as Add proposals inline in the commit
	// (RFC 9420 §12.1.1). The new members are placed in the order given;
	// one Welcome covers them all.
	Add []*KeyPackage
	// Remove lists leaf indices to remove (RFC 9420 §12.1.3).
	Remove []uint32
	// ExternalPSKs lists ids of external pre-shared keys to inject
	// (RFC 9420 §12.1.4); every member must know them.
	ExternalPSKs [][]byte
	// ResumptionPSKEpochs lists epochs of this group whose resumption PSK
	// to inject (RFC 9420 §8.6); they must be retained by every member.
	ResumptionPSKEpochs []uint64
	// GroupContextExtensions, when non-nil, replaces the GroupContext
	// extensions wholesale (RFC 9420 §12.1.7); an empty non-nil slice
	// removes them all.
	GroupContextExtensions []Extension
	// ReInit, when set, commits a ReInit proposal alone (RFC 9420 §11.2).
	ReInit *ReInitParams

	// ForcePath includes an UpdatePath even when the proposals do not
	// require one (only Add, PreSharedKey and ReInit), refreshing this
	// member's keys. A path is always included when required.
	ForcePath bool
	// OmitPending leaves the proposals cached in the epoch out of the
	// commit. By default every cached proposal that keeps the list valid is
	// included by reference (RFC 9420 §12.4 SHOULD).
	OmitPending bool
	// AuthenticatedData is sent in clear with the commit and covered by its
	// signature (RFC 9420 §6).
	AuthenticatedData []byte
	// OmitRatchetTree leaves the ratchet_tree extension out of the
	// Welcome's GroupInfo; the new members must then get the tree
	// (Group.RatchetTree) another way (RFC 9420 §12.4.3.3).
	OmitRatchetTree bool

	// reinitPSK is the resumption PSK of usage reinit that the first
	// commit of a reinitialized group carries (RFC 9420 §11.2); only
	// Group.ReInitGroup sets it.
	reinitPSK *wire.PreSharedKeyID
}

// PendingCommit is a commit this client created. Nothing has changed yet:
// send Commit to the group and Welcome to the new members, and adopt Next
// once the commit is accepted (RFC 9420 §14). If another commit wins the
// epoch instead, drop the PendingCommit and process that one with the
// *Group it was created from.
type PendingCommit struct {
	// Commit is the commit message (an MLSMessage) to send to the group.
	Commit []byte
	// Welcome is the Welcome message (an MLSMessage) for every member the
	// commit adds, or nil when it adds none. Deliver it only once the
	// commit is accepted (RFC 9420 §14).
	Welcome []byte
	// Proposals lists the proposals the commit applies, in commit order.
	Proposals []Proposal
	// Next is the group state of the new epoch.
	Next *Group
}

// AddMembers commits adding the owners of kps (RFC 9420 §12.1.1), together
// with any proposals cached in the epoch; the PendingCommit carries one
// Welcome for all of them.
func (g *Group) AddMembers(kps ...*KeyPackage) (*PendingCommit, error) {
	return g.Commit(&CommitOptions{Add: kps})
}

// RemoveMembers commits removing the members at the given leaf indices
// (RFC 9420 §12.1.3), together with any proposals cached in the epoch.
func (g *Group) RemoveMembers(leaves ...uint32) (*PendingCommit, error) {
	return g.Commit(&CommitOptions{Remove: leaves})
}

// Update commits a fresh UpdatePath for this member (an "empty" commit,
// RFC 9420 §12.4), rotating its keys and the group's: forward secrecy and
// post-compromise security with regard to this member. Cached proposals are
// included.
func (g *Group) Update() (*PendingCommit, error) {
	return g.Commit(&CommitOptions{ForcePath: true})
}

// applied is the outcome of applying a proposal list to a copy of the tree
// and GroupContext (RFC 9420 §12.3).
type applied struct {
	tree *tree.Tree
	// ctx is the provisional GroupContext: next epoch, new extensions, the
	// old confirmed transcript hash; TreeHash is filled in later.
	ctx          wire.GroupContext
	added        []addedMember
	addedLeaves  []treemath.LeafIndex
	removedIDs   map[uint32][]byte // identity of each removed leaf
	pskIDs       []wire.PreSharedKeyID
	externalInit *wire.ExternalInit
	reinit       *wire.ReInit
	removedMe    bool
	myLeafPriv   []byte // this member's committed Update
	pathRequired bool
}

type addedMember struct {
	leaf treemath.LeafIndex
	kp   *wire.KeyPackage
}

// applyProposals applies a validated list to a copy of the tree and
// GroupContext in the order of RFC 9420 §12.3, checking on the way the
// rules that depend on the tree: leaf validity (§7.3), a Remove of a member,
// an Add of a client not in the group (§12.2), and member support for new
// GroupContext extensions (§12.1.7).
func (g *Group) applyProposals(list []resolved) (*applied, error) {
	ap := &applied{tree: g.tree.Clone(), ctx: g.ctx}
	ap.ctx.Epoch++
	ap.ctx.TreeHash = nil
	rule := func(err error) error { return fmt.Errorf("%w: %w", ErrInvalidProposalList, err) }
	gce := false
	for _, r := range list {
		if pathRequired(r.p.ProposalType) {
			ap.pathRequired = true
		}
		if r.p.ProposalType == wire.ProposalTypeGroupContextExtensions {
			ap.ctx.Extensions = r.p.GroupContextExtensions.Extensions
			gce = true
		}
	}
	params := g.leafNodeParams(&ap.ctx, false)
	for _, r := range list {
		if r.p.ProposalType != wire.ProposalTypeUpdate {
			continue
		}
		leaf := treemath.LeafIndex(r.sender.LeafIndex)
		if err := ap.tree.ValidateLeafNode(&r.p.Update.LeafNode, wire.LeafNodeSourceUpdate, leaf, params); err != nil {
			return nil, rule(fmt.Errorf("update of leaf %d: %w", leaf, mapTreeError(err)))
		}
		if err := ap.tree.UpdateLeaf(leaf, &r.p.Update.LeafNode); err != nil {
			return nil, rule(fmt.Errorf("update of leaf %d: %w", leaf, mapTreeError(err)))
		}
		if uint32(leaf) == g.myLeaf {
			if r.leafPriv == nil {
				return nil, fmt.Errorf("%w: the commit applies an update of this member whose private key is unknown", ErrInvalidCommit)
			}
			ap.myLeafPriv = r.leafPriv
		}
	}
	for _, r := range list {
		if r.p.ProposalType != wire.ProposalTypeRemove {
			continue
		}
		leaf := treemath.LeafIndex(r.p.Remove.Removed)
		l := ap.tree.Leaf(leaf)
		if l == nil {
			return nil, rule(fmt.Errorf("leaf %d: %w", leaf, errRuleRemoveBlank))
		}
		if ap.removedIDs == nil {
			ap.removedIDs = make(map[uint32][]byte)
		}
		ap.removedIDs[uint32(leaf)] = l.Credential.Identity
		if err := ap.tree.RemoveLeaf(leaf); err != nil {
			return nil, rule(fmt.Errorf("remove leaf %d: %w", leaf, mapTreeError(err)))
		}
		if uint32(leaf) == g.myLeaf {
			ap.removedMe = true
		}
	}
	addParams := g.leafNodeParams(&ap.ctx, true)
	for _, r := range list {
		if r.p.ProposalType != wire.ProposalTypeAdd {
			continue
		}
		kp := &r.p.Add.KeyPackage
		if at, ok := ap.tree.FindSignatureKey(kp.LeafNode.SignatureKey); ok {
			return nil, rule(fmt.Errorf("leaf %d: %w", at, errRuleAddExistingMember))
		}
		if err := ap.tree.ValidateLeafNode(&kp.LeafNode, wire.LeafNodeSourceKeyPackage, 0, addParams); err != nil {
			return nil, rule(fmt.Errorf("add: %w", mapTreeError(err)))
		}
		if err := supportsExtensions(&kp.LeafNode, ap.ctx.Extensions); err != nil {
			return nil, rule(fmt.Errorf("add: %w", err))
		}
		leaf, err := ap.tree.AddLeaf(&kp.LeafNode)
		if err != nil {
			return nil, rule(fmt.Errorf("add: %w", mapTreeError(err)))
		}
		ap.added = append(ap.added, addedMember{leaf: leaf, kp: kp})
		ap.addedLeaves = append(ap.addedLeaves, leaf)
	}
	for _, r := range list {
		switch r.p.ProposalType {
		case wire.ProposalTypePSK:
			ap.pskIDs = append(ap.pskIDs, r.p.PreSharedKey.PSK)
		case wire.ProposalTypeExternalInit:
			ap.externalInit = r.p.ExternalInit
		case wire.ProposalTypeReInit:
			ap.reinit = r.p.ReInit
		}
	}
	if gce {
		if err := checkMembersSupport(ap.tree, ap.ctx.Extensions); err != nil {
			return nil, rule(err)
		}
	}
	return ap, nil
}

// supportsExtensions checks that a new member's leaf lists every
// non-default GroupContext extension (RFC 9420 §13.4: a client adding a
// member MUST verify it).
func supportsExtensions(leaf *wire.LeafNode, exts wire.Extensions) error {
	for _, e := range exts {
		if !e.ExtensionType.IsDefault() && !listsExtension(leaf.Capabilities, e.ExtensionType) {
			return fmt.Errorf("leaf lacks group context extension %v: %w", e.ExtensionType, ErrUnsupportedExtension)
		}
	}
	return nil
}

// checkMembersSupport checks that every member of t supports every
// non-default extension of exts and the required_capabilities among them
// (RFC 9420 §11.1, §12.1.7, §13.4).
func checkMembersSupport(t *tree.Tree, exts wire.Extensions) error {
	var rc wire.RequiredCapabilities
	hasRC, err := exts.Get(&rc)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for i := uint32(0); i < t.LeafCount(); i++ {
		l := t.Leaf(treemath.LeafIndex(i))
		if l == nil {
			continue
		}
		for _, e := range exts {
			if !e.ExtensionType.IsDefault() && !listsExtension(l.Capabilities, e.ExtensionType) {
				return fmt.Errorf("leaf %d lacks extension %v: %w", i, e.ExtensionType, errRuleUnsupportedByMember)
			}
		}
		if !hasRC {
			continue
		}
		for _, x := range rc.ExtensionTypes {
			if !x.IsDefault() && !listsExtension(l.Capabilities, x) {
				return fmt.Errorf("leaf %d lacks required extension %v: %w", i, x, errRuleUnsupportedByMember)
			}
		}
		for _, x := range rc.ProposalTypes {
			if !x.IsDefault() && !listsProposal(l.Capabilities, x) {
				return fmt.Errorf("leaf %d lacks required proposal %v: %w", i, x, errRuleUnsupportedByMember)
			}
		}
		for _, x := range rc.CredentialTypes {
			if !listsCredential(l.Capabilities, x) {
				return fmt.Errorf("leaf %d lacks required credential %v: %w", i, x, errRuleUnsupportedByMember)
			}
		}
	}
	return nil
}

// processCommit applies a verified commit of another sender (RFC 9420
// §12.4.2) and returns the next epoch's state; g is not modified.
// consumed is the secret tree of the current epoch after unprotecting the
// commit (an independent copy), kept in the next state's retained epochs.
func (g *Group) processCommit(v *framing.Verified, consumed *secrettree.Tree) (*Received, error) {
	ac := v.AuthenticatedContent()
	commit := ac.Content.Commit
	sender := ac.Content.Sender
	external := sender.SenderType == wire.SenderTypeNewMemberCommit

	list, err := g.resolveProposals(commit.Proposals, sender)
	if err != nil {
		return nil, err
	}
	if err := validateList(list, sender, external); err != nil {
		return nil, err
	}
	ap, err := g.applyProposals(list)
	if err != nil {
		return nil, err
	}
	if commit.Path == nil && (len(list) == 0 || ap.pathRequired) {
		return nil, fmt.Errorf("%w: the commit's proposals require a path and it has none", ErrInvalidCommit)
	}

	committer := treemath.LeafIndex(sender.LeafIndex)
	if external {
		committer = ap.tree.AllocateLeaf()
		if err := checkResync(ap, &commit.Path.LeafNode); err != nil {
			return nil, err
		}
	}
	priv := g.priv
	if ap.myLeafPriv != nil {
		if priv, err = newPrivState(g.cs, treemath.LeafIndex(g.myLeaf), ap.myLeafPriv); err != nil {
			return nil, fmt.Errorf("%w: own updated leaf key: %v", ErrInvalidCommit, err)
		}
	}
	var commitSecret []byte
	if commit.Path != nil {
		params := g.leafNodeParams(&ap.ctx, false)
		if err := ap.tree.ValidateLeafNode(&commit.Path.LeafNode, wire.LeafNodeSourceCommit, committer, params); err != nil {
			return nil, fmt.Errorf("%w: path leaf node: %w", ErrInvalidCommit, mapTreeError(err))
		}
		if err := ap.tree.MergeUpdatePath(committer, commit.Path, ap.addedLeaves); err != nil {
			return nil, fmt.Errorf("%w: merge path: %w", ErrInvalidCommit, mapTreeError(err))
		}
	}
	if ap.ctx.TreeHash, err = ap.tree.TreeHash(); err != nil {
		return nil, fmt.Errorf("tree hash: %w", err)
	}
	if ap.removedMe {
		next, err := g.removedState(ap, consumed)
		if err != nil {
			return nil, err
		}
		return g.commitReceived(v, list, ap, next, committer), nil
	}
	if commit.Path != nil {
		provisional, err := wire.Marshal(&ap.ctx)
		if err != nil {
			return nil, fmt.Errorf("encode provisional group context: %w", err)
		}
		priv = priv.clone()
		if commitSecret, err = priv.decryptPath(ap.tree, committer, commit.Path, ap.addedLeaves, provisional); err != nil {
			return nil, fmt.Errorf("decrypt path: %w", err)
		}
	}

	initSecret := g.ks.init
	if external {
		if initSecret, err = g.externalInitSecret(ap.externalInit); err != nil {
			return nil, err
		}
	}
	next, ks, err := g.advance(ac, ap, initSecret, commitSecret, priv, consumed, func(ks *keyschedule.EpochSecrets, cth []byte) error {
		if err := v.VerifyConfirmationTag(ks.ConfirmationKey, cth); err != nil {
			return fmt.Errorf("%w: %w", ErrBadConfirmationTag, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ks.ForgetJoinerSecrets()
	return g.commitReceived(v, list, ap, next, committer), nil
}

// checkResync applies RFC 9420 §12.4.3.2 to an external commit that
// removes a member: the joiner must present the removed member's identity.
func checkResync(ap *applied, leaf *wire.LeafNode) error {
	for _, id := range ap.removedIDs {
		if !bytes.Equal(id, leaf.Credential.Identity) {
			return fmt.Errorf("%w: %w", ErrInvalidProposalList, errRuleExternalResync)
		}
	}
	return nil
}

// externalInitSecret derives the init secret of an external commit from
// its ExternalInit proposal and the epoch's external key pair (RFC 9420
// §8.3).
func (g *Group) externalInitSecret(ei *wire.ExternalInit) ([]byte, error) {
	priv, _, err := g.cs.DeriveKeyPair(g.ks.external)
	if err != nil {
		return nil, fmt.Errorf("external key pair: %w", err)
	}
	defer clear(priv)
	secret, err := g.cs.ExternalInitReceiver(priv, ei.KEMOutput)
	if err != nil {
		return nil, fmt.Errorf("%w: external init: %w", ErrInvalidCommit, err)
	}
	return secret, nil
}

// advance finishes an epoch change common to every commit (RFC 9420
// §12.4.1, §12.4.2): transcript hashes, the new GroupContext, the PSK
// secret, the key schedule, the confirmation tag (checked by confirm, or
// computed for a commit being created), and the new Group.
func (g *Group) advance(ac *wire.AuthenticatedContent, ap *applied, initSecret, commitSecret []byte, priv *privState,
	consumed *secrettree.Tree, confirm func(ks *keyschedule.EpochSecrets, cth []byte) error) (*Group, *keyschedule.EpochSecrets, error) {
	input, err := wire.Marshal(ac.ConfirmedTranscriptHashInput())
	if err != nil {
		return nil, nil, fmt.Errorf("encode transcript input: %w", err)
	}
	cth := keyschedule.ConfirmedTranscriptHash(g.cs, g.interim, input)
	newCtx := ap.ctx
	newCtx.ConfirmedTranscriptHash = cth
	newCtxRaw, err := wire.Marshal(&newCtx)
	if err != nil {
		return nil, nil, fmt.Errorf("encode group context: %w", err)
	}
	psks, err := pskInputs(ap.pskIDs, g.pskSecret)
	if err != nil {
		return nil, nil, err
	}
	pskSecret, err := keyschedule.PSKSecret(g.cs, psks)
	if err != nil {
		return nil, nil, fmt.Errorf("psk secret: %w", err)
	}
	ks, err := keyschedule.Advance(g.cs, initSecret, commitSecret, pskSecret, newCtxRaw)
	if err != nil {
		return nil, nil, fmt.Errorf("key schedule: %w", err)
	}
	if confirm != nil {
		if err := confirm(ks, cth); err != nil {
			return nil, nil, err
		}
	} else {
		ac.Auth.ConfirmationTag = keyschedule.ConfirmationTag(g.cs, ks.ConfirmationKey, cth)
	}
	interim, err := keyschedule.InterimTranscriptHash(g.cs, cth, ac.Auth.ConfirmationTag)
	if err != nil {
		return nil, nil, fmt.Errorf("interim transcript hash: %w", err)
	}
	priv = priv.clone()
	priv.prune(ap.tree)
	if consumed == nil && g.stree != nil {
		if consumed, err = cloneSecretTree(g.stree, g.cfg); err != nil {
			return nil, nil, err
		}
	}
	past, err := g.retainedAfterCommit(consumed)
	if err != nil {
		return nil, nil, err
	}
	next, err := newGroup(epochState{
		cfg: g.cfg, id: g.id, cs: g.cs,
		ctx: newCtx, interim: interim, confTag: bytes.Clone(ac.Auth.ConfirmationTag),
		tree: ap.tree, priv: priv, ks: ks, past: past, reinit: ap.reinit,
	})
	if err != nil {
		return nil, nil, err
	}
	return next, ks, nil
}

// removedState is the state after a commit that removes this client: the
// new epoch's public view, none of its keys, and the retained epochs.
func (g *Group) removedState(ap *applied, consumed *secrettree.Tree) (*Group, error) {
	var err error
	if consumed == nil {
		if consumed, err = cloneSecretTree(g.stree, g.cfg); err != nil {
			return nil, err
		}
	}
	past, err := g.retainedAfterCommit(consumed)
	if err != nil {
		return nil, err
	}
	ctx := ap.ctx
	ctxRaw, err := wire.Marshal(&ctx)
	if err != nil {
		return nil, err
	}
	return &Group{
		cfg: g.cfg, id: g.id, cs: g.cs,
		ctx: ctx, ctxRaw: ctxRaw,
		tree: ap.tree, priv: g.priv, myLeaf: g.myLeaf,
		past: past, removed: true,
	}, nil
}

// commitReceived describes a processed commit.
func (g *Group) commitReceived(v *framing.Verified, list []resolved, ap *applied, next *Group, committer treemath.LeafIndex) *Received {
	ac := v.AuthenticatedContent()
	r := &Received{
		Kind:              CommitMessage,
		Epoch:             ac.Content.Epoch,
		AuthenticatedData: bytes.Clone(ac.Content.AuthenticatedData),
		Next:              next,
	}
	if ac.Content.Sender.SenderType == wire.SenderTypeNewMemberCommit {
		leaf := ac.Content.Commit.Path.LeafNode
		r.Sender = Sender{Kind: SenderNewMemberCommit, Index: uint32(committer), Identity: bytes.Clone(leaf.Credential.Identity), SignatureKey: bytes.Clone(leaf.SignatureKey)}
	} else {
		r.Sender = memberSender(g.tree, ac.Content.Sender.LeafIndex)
	}
	r.Proposals = g.describeList(list, ap)
	return r
}

// describeList describes the proposals a commit applied; an Add gets the
// leaf it was placed at.
func (g *Group) describeList(list []resolved, ap *applied) []Proposal {
	out := make([]Proposal, 0, len(list))
	added := 0
	for _, r := range list {
		p := g.describe(r.p, r.sender, r.ref, g.tree)
		if r.p.ProposalType == wire.ProposalTypeAdd && added < len(ap.added) {
			p.Leaf = uint32(ap.added[added].leaf)
			added++
		}
		out = append(out, p)
	}
	return out
}

// Commit creates a commit of the proposals cached in the epoch plus those
// opts asks for (RFC 9420 §12.4.1), with a Welcome for the members it adds
// (§12.4.3). g is not modified, except that a commit sent as PrivateMessage
// uses up a handshake key: adopt PendingCommit.Next once the commit is
// accepted. Cached proposals that would make the list invalid (such as this
// member's own Update) are left out.
func (g *Group) Commit(opts *CommitOptions) (*PendingCommit, error) {
	if opts == nil {
		opts = &CommitOptions{}
	}
	if err := g.canSend(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	me := wire.MemberSender(g.myLeaf)
	list, refs, err := g.commitList(opts, me)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	ap, err := g.applyProposals(list)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	rand := g.cfg.rand()
	var ps *tree.PathSecrets
	var path *wire.UpdatePath
	var commitSecret []byte
	priv := g.priv
	if len(list) == 0 || ap.pathRequired || opts.ForcePath {
		template := *ap.tree.Leaf(treemath.LeafIndex(g.myLeaf))
		template.Capabilities = advertisedCapabilities(g.cfg, template.Extensions)
		if ps, priv, err = generatePath(g.cs, ap.tree, treemath.LeafIndex(g.myLeaf), &template, g.id.key, g.ctx.GroupID, rand); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		defer ps.Zero()
		if ap.ctx.TreeHash, err = ap.tree.TreeHash(); err != nil {
			return nil, fmt.Errorf("commit: tree hash: %w", err)
		}
		provisional, err := wire.Marshal(&ap.ctx)
		if err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		if path, err = ps.Encrypt(ap.tree, provisional, ap.addedLeaves, rand); err != nil {
			return nil, fmt.Errorf("commit: %w", mapTreeError(err))
		}
		commitSecret = ps.CommitSecret()
	} else if ap.ctx.TreeHash, err = ap.tree.TreeHash(); err != nil {
		return nil, fmt.Errorf("commit: tree hash: %w", err)
	}

	content := &wire.FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            me,
		AuthenticatedData: bytes.Clone(opts.AuthenticatedData),
		ContentType:       wire.ContentTypeCommit,
		Commit:            &wire.Commit{Proposals: refs, Path: path},
	}
	wf := wire.WireFormatPublicMessage
	if g.cfg.encryptHandshake() {
		wf = wire.WireFormatPrivateMessage
	}
	ac, err := g.framer.Sign(g.id.key, wf, content)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", mapFramingError(err))
	}
	// The next state is derived before the commit is protected, so that a
	// PrivateMessage commit's handshake key is consumed in g only once
	// everything else has succeeded; the retained copy of this epoch's
	// message keys is taken after protecting, below.
	next, ks, err := g.advanceOwn(ac, ap, commitSecret, priv)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	defer ks.ForgetJoinerSecrets()
	msg, err := g.protect(ac)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", mapFramingError(err))
	}
	if wf == wire.WireFormatPrivateMessage && len(next.past) > 0 {
		c, err := cloneSecretTree(g.stree, g.cfg)
		if err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		next.past[0].stree = c
		if err := next.past[0].initFramer(g.cs); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	}
	pc := &PendingCommit{Commit: msg, Next: next, Proposals: g.describeList(list, ap)}
	if len(ap.added) > 0 {
		if pc.Welcome, err = next.buildWelcome(ks, ap, ps, !opts.OmitRatchetTree); err != nil {
			return nil, fmt.Errorf("commit: welcome: %w", err)
		}
	}
	return pc, nil
}

// advanceOwn is advance for a commit this member creates: it computes the
// confirmation tag instead of checking it.
func (g *Group) advanceOwn(ac *wire.AuthenticatedContent, ap *applied, commitSecret []byte, priv *privState) (*Group, *keyschedule.EpochSecrets, error) {
	return g.advance(ac, ap, g.ks.init, commitSecret, priv, nil, nil)
}

// commitList builds the proposal list of a commit this member creates:
// inline proposals from opts first, then the cached proposals that keep the
// list valid, by reference. It returns the resolved list and its wire form.
func (g *Group) commitList(opts *CommitOptions, me wire.Sender) ([]resolved, []wire.ProposalOrRef, error) {
	var list []resolved
	var refs []wire.ProposalOrRef
	inline := func(p *wire.Proposal) error {
		if err := g.checkProposal(p, me, true); err != nil {
			return err
		}
		list = append(list, resolved{p: p, sender: me})
		refs = append(refs, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: p})
		return nil
	}
	if opts.ReInit != nil {
		p, err := toWireProposal(Proposal{Type: ProposalReInit, ReInit: opts.ReInit})
		if err != nil {
			return nil, nil, err
		}
		if err := inline(p); err != nil {
			return nil, nil, err
		}
	}
	if opts.GroupContextExtensions != nil {
		p, err := toWireProposal(Proposal{Type: ProposalGroupContextExtensions, Extensions: opts.GroupContextExtensions})
		if err != nil {
			return nil, nil, err
		}
		if err := inline(p); err != nil {
			return nil, nil, err
		}
	}
	for _, leaf := range opts.Remove {
		if err := inline(&wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: leaf}}); err != nil {
			return nil, nil, err
		}
	}
	for _, kp := range opts.Add {
		if kp == nil {
			return nil, nil, errors.New("nil key package")
		}
		if err := inline(&wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: kp.kp}}); err != nil {
			return nil, nil, err
		}
	}
	for _, id := range opts.ExternalPSKs {
		pid, err := newExternalPSKID(g.cs, id, g.cfg.rand())
		if err != nil {
			return nil, nil, err
		}
		if err := inline(&wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: pid}}); err != nil {
			return nil, nil, err
		}
	}
	for _, epoch := range opts.ResumptionPSKEpochs {
		pid, err := newResumptionPSKID(g.cs, g.ctx.GroupID, epoch, g.cfg.rand())
		if err != nil {
			return nil, nil, err
		}
		if err := inline(&wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: pid}}); err != nil {
			return nil, nil, err
		}
	}
	if opts.reinitPSK != nil {
		// Valid only here: in the commit that sets up a reinitialized group
		// (RFC 9420 §11.2, §12.1.4).
		p := &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: *opts.reinitPSK}}
		list = append(list, resolved{p: p, sender: me})
		refs = append(refs, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: p})
	}
	if err := validateList(list, me, false); err != nil {
		return nil, nil, err
	}
	if opts.OmitPending {
		return list, refs, nil
	}
	// Cached proposals: prefer Removes over Updates for the same leaf
	// (RFC 9420 §12.2), and keep each one only if the list stays valid.
	ordered := make([]*cachedProposal, 0, len(g.proposals))
	for _, cp := range g.proposals {
		if cp.proposal.ProposalType == wire.ProposalTypeRemove {
			ordered = append(ordered, cp)
		}
	}
	for _, cp := range g.proposals {
		if cp.proposal.ProposalType != wire.ProposalTypeRemove {
			ordered = append(ordered, cp)
		}
	}
	for _, cp := range ordered {
		cand := append(list[:len(list):len(list)], resolved{p: cp.proposal, sender: cp.sender, ref: cp.ref, leafPriv: cp.leafPriv})
		if validateList(cand, me, false) != nil {
			continue
		}
		if _, err := g.applyProposals(cand); err != nil {
			continue
		}
		list = cand
		refs = append(refs, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeReference, Reference: cp.ref})
	}
	return list, refs, nil
}
