package mls

import (
	"bytes"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/framing"
	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Group is one client's state of one MLS group in one epoch (RFC 9420 §8):
// the GroupContext, the ratchet tree with this client's private keys, the
// epoch's key schedule and message keys, the proposals received in the
// epoch, and the message keys of a few earlier epochs.
//
// Epochs are values. Creating a commit (Commit, AddMembers, ...) or
// processing one (ProcessMessage) never changes the *Group it is called on:
// it returns the state of the next epoch, which the caller adopts once the
// commit is accepted (RFC 9420 §14). A commit that fails any check leaves the
// state exactly as it was. Within an epoch a Group does change: sending and
// opening messages consume message keys (RFC 9420 §9.2), and proposals are
// cached until the next commit.
//
// A Group is not safe for concurrent use. It does no I/O and starts no
// goroutines, except that validating a received ratchet tree verifies leaf
// signatures in parallel.
type Group struct {
	cfg *Config
	id  *Identity
	cs  *ciphersuite.Suite

	ctx     wire.GroupContext
	ctxRaw  []byte
	interim []byte
	confTag []byte // confirmation tag of the commit that began the epoch

	// tree and priv are never modified once the Group is built: every
	// change works on a clone.
	tree   *tree.Tree
	priv   *privState
	myLeaf uint32

	// ks is shared with the states derived from this one and never
	// modified.
	ks *epochSecrets

	// stree and framer are owned by this Group and change as messages are
	// sent and opened.
	stree  *secrettree.Tree
	framer *framing.Epoch

	// proposals are the proposals received or sent in this epoch, in
	// arrival order.
	proposals []*cachedProposal

	// past holds the retained earlier epochs, newest first.
	past []*pastEpoch

	// removed is set in the state that follows a commit removing this
	// client: the epoch is known but none of its keys.
	removed bool
	// reinit is the ReInit proposal of the commit that began this epoch.
	reinit *wire.ReInit
}

// epochSecrets are the secrets of the current epoch a Group uses after
// the epoch has begun (RFC 9420 §8, "Epoch-Derived Secrets"): the
// encryption secret lives on in the secret tree, and joiner and welcome
// secrets are forgotten. The slices are never modified.
type epochSecrets struct {
	senderData, exporter, external, confirmation, membership, resumption, authenticator, init []byte
}

func newEpochSecrets(ks *keyschedule.EpochSecrets) *epochSecrets {
	return &epochSecrets{
		senderData:    ks.SenderDataSecret,
		exporter:      ks.ExporterSecret,
		external:      ks.ExternalSecret,
		confirmation:  ks.ConfirmationKey,
		membership:    ks.MembershipKey,
		resumption:    ks.ResumptionPSK,
		authenticator: ks.EpochAuthenticator,
		init:          ks.InitSecret,
	}
}

// all lists the secrets in their persisted order.
func (e *epochSecrets) all() []*[]byte {
	return []*[]byte{&e.senderData, &e.exporter, &e.external, &e.confirmation, &e.membership, &e.resumption, &e.authenticator, &e.init}
}

// export is MLS-Exporter(Label, Context, Length) (RFC 9420 §8.5):
// ExpandWithLabel(DeriveSecret(exporter_secret, Label), "exported",
// Hash(Context), Length).
func (e *epochSecrets) export(cs *ciphersuite.Suite, label string, context []byte, length int) ([]byte, error) {
	secret, err := cs.DeriveSecret(e.exporter, label)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	return cs.ExpandWithLabel(secret, "exported", cs.Hash(context), length)
}

// pastEpoch is what is kept of an earlier epoch to open its delayed
// application messages (RFC 9420 §15.3) and to resolve resumption PSKs
// naming it (§8.6).
type pastEpoch struct {
	epoch         uint64
	ctx           wire.GroupContext
	tree          *tree.Tree // never modified
	senderData    []byte
	stree         *secrettree.Tree
	framer        *framing.Epoch
	resumptionPSK []byte
}

// cachedProposal is a proposal received or sent in the current epoch,
// retrievable by its ProposalRef (RFC 9420 §12.1).
type cachedProposal struct {
	ref      []byte
	proposal *wire.Proposal
	sender   wire.Sender
	// leafPriv is, for an Update this client proposed, the private key of
	// its new leaf, needed when another member commits it.
	leafPriv []byte
}

// roster answers framing's questions about senders from one epoch's tree
// and extensions.
type roster struct {
	tree *tree.Tree
	ctx  *wire.GroupContext
}

// MemberSignatureKey implements framing.Roster: the signature key of the
// member at leaf (RFC 9420 §6.1).
func (r roster) MemberSignatureKey(leaf treemath.LeafIndex) ([]byte, bool) {
	l := r.tree.Leaf(leaf)
	if l == nil {
		return nil, false
	}
	return l.SignatureKey, true
}

// ExternalSenderSignatureKey implements framing.Roster: the signature key
// of entry index of the external_senders extension (RFC 9420 §12.1.8.1).
func (r roster) ExternalSenderSignatureKey(index uint32) ([]byte, bool) {
	s, ok := externalSender(r.ctx, index)
	if !ok {
		return nil, false
	}
	return s.SignatureKey, true
}

// externalSender returns entry index of the external_senders extension.
func externalSender(ctx *wire.GroupContext, index uint32) (*wire.ExternalSender, bool) {
	var list wire.ExternalSenders
	if ok, err := ctx.Extensions.Get(&list); !ok || err != nil || uint64(index) >= uint64(len(list)) {
		return nil, false
	}
	return &list[index], true
}

// secretTreeConfig is the out-of-order policy of the secret trees.
func secretTreeConfig(cfg *Config) secrettree.Config {
	return secrettree.Config{MaxForward: cfg.maxGenerationGap()}
}

// epochState is everything that defines a new epoch's Group, gathered by
// group creation, commit processing, commit creation and joining.
type epochState struct {
	cfg     *Config
	id      *Identity
	cs      *ciphersuite.Suite
	ctx     wire.GroupContext
	interim []byte
	confTag []byte
	tree    *tree.Tree
	priv    *privState
	ks      *keyschedule.EpochSecrets
	past    []*pastEpoch
	reinit  *wire.ReInit
}

// newGroup builds the Group of a new epoch, with a fresh secret tree.
func newGroup(st epochState) (*Group, error) {
	ctxRaw, err := wire.Marshal(&st.ctx)
	if err != nil {
		return nil, fmt.Errorf("encode group context: %w", err)
	}
	stree, err := secrettree.New(st.cs, st.ks.EncryptionSecret, treemath.LeafCount(st.tree.LeafCount()), secretTreeConfig(st.cfg))
	if err != nil {
		return nil, fmt.Errorf("secret tree: %w", err)
	}
	g := &Group{
		cfg:     st.cfg,
		id:      st.id,
		cs:      st.cs,
		ctx:     st.ctx,
		ctxRaw:  ctxRaw,
		interim: st.interim,
		confTag: st.confTag,
		tree:    st.tree,
		priv:    st.priv,
		myLeaf:  uint32(st.priv.leaf),
		ks:      newEpochSecrets(st.ks),
		stree:   stree,
		past:    st.past,
		reinit:  st.reinit,
	}
	if g.framer, err = g.newFramer(); err != nil {
		return nil, err
	}
	return g, nil
}

// newFramer builds the message protection of the current epoch over the
// Group's own secret tree.
func (g *Group) newFramer() (*framing.Epoch, error) {
	f, err := framing.NewEpoch(g.cs, &g.ctx, framing.EpochKeys{
		MembershipKey:    g.ks.membership,
		SenderDataSecret: g.ks.senderData,
		SecretTree:       g.stree,
	})
	if err != nil {
		return nil, fmt.Errorf("message protection: %w", err)
	}
	return f, nil
}

// retainedAfterCommit returns the past epochs the next epoch keeps: this
// one (with its message keys in cur, an independent copy) and the newest of
// the earlier ones, each copied so that the two states stay independent.
func (g *Group) retainedAfterCommit(cur *secrettree.Tree) ([]*pastEpoch, error) {
	n := g.cfg.retainedEpochs()
	if n == 0 {
		return nil, nil
	}
	out := make([]*pastEpoch, 0, n)
	if !g.removed && g.ks != nil && cur != nil {
		pe := &pastEpoch{
			epoch:         g.ctx.Epoch,
			ctx:           g.ctx,
			tree:          g.tree,
			senderData:    g.ks.senderData,
			stree:         cur,
			resumptionPSK: g.ks.resumption,
		}
		if err := pe.initFramer(g.cs); err != nil {
			return nil, err
		}
		out = append(out, pe)
	}
	for _, pe := range g.past {
		if len(out) == n {
			break
		}
		c, err := pe.clone(g.cs, g.cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (pe *pastEpoch) initFramer(cs *ciphersuite.Suite) error {
	f, err := framing.NewEpoch(cs, &pe.ctx, framing.EpochKeys{SenderDataSecret: pe.senderData, SecretTree: pe.stree})
	if err != nil {
		return fmt.Errorf("message protection of epoch %d: %w", pe.epoch, err)
	}
	pe.framer = f
	return nil
}

// clone copies a past epoch with an independent secret tree.
func (pe *pastEpoch) clone(cs *ciphersuite.Suite, cfg *Config) (*pastEpoch, error) {
	st, err := cloneSecretTree(pe.stree, cfg)
	if err != nil {
		return nil, err
	}
	c := *pe
	c.stree = st
	if err := c.initFramer(cs); err != nil {
		return nil, err
	}
	return &c, nil
}

// cloneSecretTree returns an independent copy of a secret tree, consumed
// keys included.
func cloneSecretTree(st *secrettree.Tree, cfg *Config) (*secrettree.Tree, error) {
	data, err := st.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("copy secret tree: %w", err)
	}
	defer clear(data)
	c, err := secrettree.Unmarshal(data, secretTreeConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("copy secret tree: %w", err)
	}
	return c, nil
}

// ID returns the group ID (RFC 9420 §8.1).
func (g *Group) ID() []byte { return bytes.Clone(g.ctx.GroupID) }

// Epoch returns the current epoch number (RFC 9420 §8.1).
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return CipherSuite(g.ctx.CipherSuite) }

// Identity returns the identity this client uses in the group.
func (g *Group) Identity() *Identity { return g.id }

// LeafIndex returns this client's leaf index, the Member.Index others see
// it as.
func (g *Group) LeafIndex() uint32 { return g.myLeaf }

// Removed reports whether this state follows a commit that removed this
// client from the group. A removed state cannot send, and reports
// ErrRemoved for messages of its epoch or later.
func (g *Group) Removed() bool { return g.removed }

// Extensions returns the GroupContext extensions (RFC 9420 §8.1, §13.4).
func (g *Group) Extensions() []Extension { return fromWireExtensions(g.ctx.Extensions) }

// Members lists the members of the current epoch in leaf order.
func (g *Group) Members() []Member {
	var out []Member
	for i := uint32(0); i < g.tree.LeafCount(); i++ {
		if m, ok := g.Member(i); ok {
			out = append(out, m)
		}
	}
	return out
}

// Member returns the member at leaf index, and false when that leaf is
// blank or outside the tree.
func (g *Group) Member(index uint32) (Member, bool) {
	l := g.tree.Leaf(treemath.LeafIndex(index))
	if l == nil {
		return Member{}, false
	}
	return Member{
		Index:         index,
		Identity:      bytes.Clone(l.Credential.Identity),
		SignatureKey:  bytes.Clone(l.SignatureKey),
		EncryptionKey: bytes.Clone(l.EncryptionKey),
	}, true
}

// EpochAuthenticator returns the epoch_authenticator of the current epoch
// (RFC 9420 §8.7): members that compare equal values (out of band) share the
// same view of the group. It is nil in a removed state.
func (g *Group) EpochAuthenticator() []byte {
	if g.removed {
		return nil
	}
	return bytes.Clone(g.ks.authenticator)
}

// Export derives length bytes bound to the current epoch, label and context
// with MLS-Exporter (RFC 9420 §8.5), for use outside MLS. Every member
// derives the same value; refresh it after each commit.
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	if g.removed {
		return nil, fmt.Errorf("export: %w", ErrRemoved)
	}
	out, err := g.ks.export(g.cs, label, context, length)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return out, nil
}

// ResumptionPSK returns the resumption_psk of the current epoch
// (RFC 9420 §8.6), which a later group may inject to prove membership here.
func (g *Group) ResumptionPSK() []byte {
	if g.removed {
		return nil
	}
	return bytes.Clone(g.ks.resumption)
}

// RatchetTree returns the encoded ratchet tree (RFC 9420 §12.4.3.3), for
// joiners that receive Welcome messages or GroupInfo without it.
func (g *Group) RatchetTree() []byte {
	out, err := g.tree.Encode()
	if err != nil {
		return nil
	}
	return out
}

// ReInit returns the parameters of the ReInit committed in the commit that
// began this epoch (RFC 9420 §11.2), or nil. Such a group can no longer
// send messages; the members move to a new group with these parameters.
func (g *Group) ReInit() *ReInitParams {
	if g.reinit == nil {
		return nil
	}
	return reInitParams(g.reinit)
}

func reInitParams(r *wire.ReInit) *ReInitParams {
	return &ReInitParams{GroupID: bytes.Clone(r.GroupID), CipherSuite: CipherSuite(r.CipherSuite), Extensions: fromWireExtensions(r.Extensions)}
}

// canSend reports why the group cannot send, if it cannot.
func (g *Group) canSend() error {
	switch {
	case g.removed:
		return ErrRemoved
	case g.reinit != nil:
		return ErrReInitPending
	}
	return nil
}

// leafNodeParams returns the leaf validation parameters for a GroupContext
// (RFC 9420 §7.3).
func (g *Group) leafNodeParams(ctx *wire.GroupContext, checkLifetime bool) *tree.Params {
	p := &tree.Params{GroupContext: ctx, MaxLifetime: g.cfg.maxLifetime()}
	if checkLifetime {
		p.Now = g.cfg.now()
	}
	return p
}

// memberSender describes the member at leaf in tree t.
func memberSender(t *tree.Tree, leaf uint32) Sender {
	s := Sender{Kind: SenderMember, Index: leaf}
	if l := t.Leaf(treemath.LeafIndex(leaf)); l != nil {
		s.Identity = bytes.Clone(l.Credential.Identity)
		s.SignatureKey = bytes.Clone(l.SignatureKey)
	}
	return s
}
