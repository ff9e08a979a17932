package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// GroupInfoOptions says what a GroupInfo carries besides the signed group
// state. The zero value includes both the ratchet tree and the external
// public key, which is what an external joiner needs.
type GroupInfoOptions struct {
	// OmitRatchetTree leaves out the ratchet_tree extension
	// (RFC 9420 §12.4.3.3); the joiner then needs Group.RatchetTree.
	OmitRatchetTree bool
	// OmitExternalPub leaves out the external_pub extension
	// (RFC 9420 §12.4.3.2), so the GroupInfo cannot be used to join by
	// external commit.
	OmitExternalPub bool
}

// GroupInfo returns a signed GroupInfo (an MLSMessage) describing the
// current epoch (RFC 9420 §12.4.3), with which a client can join by
// external commit (JoinExternal). It is valid for this epoch only.
func (g *Group) GroupInfo(opts *GroupInfoOptions) ([]byte, error) {
	if opts == nil {
		opts = &GroupInfoOptions{}
	}
	if err := g.canSend(); err != nil {
		return nil, fmt.Errorf("group info: %w", err)
	}
	gi, err := g.groupInfo(!opts.OmitRatchetTree, !opts.OmitExternalPub)
	if err != nil {
		return nil, fmt.Errorf("group info: %w", err)
	}
	m, err := wire.NewMLSMessage(gi)
	if err != nil {
		return nil, err
	}
	return wire.Marshal(m)
}

// groupInfo builds and signs the GroupInfo of the current epoch
// (RFC 9420 §12.4.3).
func (g *Group) groupInfo(withTree, withExternalPub bool) (*wire.GroupInfo, error) {
	gi := &wire.GroupInfo{GroupContext: g.ctx, ConfirmationTag: g.confTag, Signer: g.myLeaf}
	if withExternalPub {
		priv, pub, err := g.cs.DeriveKeyPair(g.ks.external)
		if err != nil {
			return nil, fmt.Errorf("external key pair: %w", err)
		}
		clear(priv)
		if err := gi.Extensions.Set(&wire.ExternalPub{ExternalPub: pub}); err != nil {
			return nil, err
		}
	}
	if withTree {
		rt := g.tree.Export()
		if err := gi.Extensions.Set(&rt); err != nil {
			return nil, err
		}
	}
	sig, err := g.id.sign(labelGroupInfoTBS, gi.TBS())
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	gi.Signature = sig
	return gi, nil
}

// buildWelcome makes the Welcome for the members a commit added
// (RFC 9420 §12.4.3.1), called on the new epoch's state: one encrypted
// GroupInfo, and for each new member its GroupSecrets encrypted to its
// KeyPackage's init key.
func (g *Group) buildWelcome(ks *keyschedule.EpochSecrets, ap *applied, ps *tree.PathSecrets, withTree bool) ([]byte, error) {
	gi, err := g.groupInfo(withTree, false)
	if err != nil {
		return nil, err
	}
	giRaw, err := wire.Marshal(gi)
	if err != nil {
		return nil, err
	}
	key, nonce, err := keyschedule.WelcomeKeyNonce(g.cs, ks.WelcomeSecret)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	defer clear(nonce)
	aead, err := g.cs.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	w := &wire.Welcome{CipherSuite: g.ctx.CipherSuite, EncryptedGroupInfo: aead.Seal(nil, nonce, giRaw, nil)}
	w.Secrets = make([]wire.EncryptedGroupSecrets, 0, len(ap.added))
	rand := g.cfg.rand()
	// Every entry is encrypted with the encrypted GroupInfo as context;
	// it is hashed once for all of them.
	enc, err := g.cs.NewLabeledEncryptor(labelWelcome, w.EncryptedGroupInfo)
	if err != nil {
		return nil, err
	}
	for _, a := range ap.added {
		gs := wire.GroupSecrets{JoinerSecret: ks.JoinerSecret, PSKs: ap.pskIDs}
		if ps != nil {
			if s, ok := ps.PathSecretFor(a.leaf); ok {
				gs.PathSecret = &wire.PathSecret{PathSecret: s}
			}
		}
		gsRaw, err := wire.Marshal(&gs)
		if err != nil {
			return nil, err
		}
		kem, ct, err := enc.Encrypt(a.kp.InitKey, gsRaw, rand)
		clear(gsRaw)
		if err != nil {
			return nil, fmt.Errorf("encrypt group secrets: %w", err)
		}
		kpRaw, err := wire.Marshal(a.kp)
		if err != nil {
			return nil, err
		}
		ref, err := g.cs.RefHash(labelKeyPackageRef, kpRaw)
		if err != nil {
			return nil, err
		}
		w.Secrets = append(w.Secrets, wire.EncryptedGroupSecrets{
			NewMember:             ref,
			EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct},
		})
	}
	m, err := wire.NewMLSMessage(w)
	if err != nil {
		return nil, err
	}
	return wire.Marshal(m)
}

// JoinOptions tunes Join.
type JoinOptions struct {
	// RatchetTree is the group's ratchet tree (Group.RatchetTree of a
	// member), needed when the Welcome's GroupInfo has no ratchet_tree
	// extension (RFC 9420 §12.4.3.3). It is verified against the signed
	// tree hash, so it may come from an untrusted source.
	RatchetTree []byte

	// ReInitFrom is this client's state of a group that committed a
	// ReInit, when the Welcome is for the group replacing it
	// (Group.ReInitGroup, RFC 9420 §11.2). The reinit PSK is taken from it,
	// and the new group is checked against the ReInit's parameters and
	// the old membership. A Welcome with a reinit PSK is refused without
	// it.
	ReInitFrom *Group

	// GroupExists reports whether this client already has a group with
	// the given ID. RFC 9420 §12.4.3.1 requires a joiner to check that the
	// group_id is unique among its groups; Join fails with ErrGroupExists
	// when it returns true, before anything of the Welcome is used. Nil
	// means the caller checks Group.ID itself before storing the result.
	GroupExists func(groupID []byte) bool
}

// WelcomeKeyPackageRefs returns the KeyPackageRefs a Welcome is addressed
// to (RFC 9420 §12.4.3.1), so that a client can find which of its
// KeyPackages (KeyPackage.Ref) to pass to Join.
func WelcomeKeyPackageRefs(welcome []byte) ([][]byte, error) {
	w, err := decodeWelcome(welcome)
	if err != nil {
		return nil, err
	}
	refs := make([][]byte, len(w.Secrets))
	for i := range w.Secrets {
		refs[i] = bytes.Clone(w.Secrets[i].NewMember)
	}
	return refs, nil
}

func decodeWelcome(data []byte) (*wire.Welcome, error) {
	msg, err := decodeMLSMessage(data)
	if err != nil {
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if msg.WireFormat != wire.WireFormatWelcome {
		return nil, fmt.Errorf("welcome: message holds a %v: %w", msg.WireFormat, ErrMalformed)
	}
	return msg.Welcome, nil
}

// openedWelcome is the decrypted content of a Welcome (RFC 9420
// §12.4.3.1), before the group state is built from it.
type openedWelcome struct {
	kp        *PrivateKeyPackage
	cs        *ciphersuite.Suite
	secrets   wire.GroupSecrets
	info      wire.GroupInfo
	pskSecret []byte
}

// openWelcome finds the entry of w for one of kps, decrypts its
// GroupSecrets, resolves its PSKs and decrypts the GroupInfo.
// reinitFrom, when set, supplies the resumption PSK of a reinitialized
// group.
func openWelcome(w *wire.Welcome, kps []*PrivateKeyPackage, cfg *Config, reinitFrom *Group) (*openedWelcome, error) {
	cs, err := lookupSuite(CipherSuite(w.CipherSuite))
	if err != nil {
		return nil, err
	}
	var kp *PrivateKeyPackage
	var entry *wire.EncryptedGroupSecrets
	for _, k := range kps {
		if k == nil || k.pub.kp.CipherSuite != w.CipherSuite {
			continue
		}
		if e := w.Find(k.pub.ref); e != nil {
			kp, entry = k, e
			break
		}
	}
	if kp == nil {
		return nil, ErrWelcomeNotForUs
	}
	gsRaw, err := cs.DecryptWithLabel(kp.initPriv, labelWelcome, w.EncryptedGroupInfo,
		entry.EncryptedGroupSecrets.KEMOutput, entry.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("group secrets: %w: %v", ErrDecrypt, err)
	}
	defer clear(gsRaw)
	ow := &openedWelcome{kp: kp, cs: cs}
	if err := wire.Unmarshal(gsRaw, &ow.secrets); err != nil {
		return nil, fmt.Errorf("group secrets: %w: %v", ErrMalformed, err)
	}
	if len(ow.secrets.JoinerSecret) != cs.HashSize() {
		return nil, fmt.Errorf("group secrets: joiner secret of %d bytes: %w", len(ow.secrets.JoinerSecret), ErrMalformed)
	}
	special := 0
	for i := range ow.secrets.PSKs {
		id := &ow.secrets.PSKs[i]
		if len(id.PSKNonce) != cs.HashSize() {
			return nil, fmt.Errorf("group secrets: psk nonce of %d bytes: %w", len(id.PSKNonce), ErrMalformed)
		}
		if id.PSKType == wire.PSKTypeResumption && id.Usage != wire.ResumptionPSKUsageApplication {
			special++
		}
	}
	if special > 1 {
		return nil, fmt.Errorf("group secrets: %d reinit/branch resumption PSKs: %w", special, ErrMalformed)
	}
	psks, err := pskInputs(ow.secrets.PSKs, func(id *wire.PreSharedKeyID) ([]byte, error) {
		if reinitFrom != nil && id.PSKType == wire.PSKTypeResumption && id.Usage == wire.ResumptionPSKUsageReInit {
			return reinitFrom.pskSecret(id)
		}
		return lookupPSK(cfg, id, nil)
	})
	if err != nil {
		return nil, err
	}
	if ow.pskSecret, err = keyschedule.PSKSecret(cs, psks); err != nil {
		return nil, fmt.Errorf("psk secret: %w", err)
	}
	// welcome_secret depends only on joiner_secret and psk_secret; the
	// GroupContext is not known until the GroupInfo is decrypted.
	welcomeSecret, err := keyschedule.WelcomeSecret(cs, ow.secrets.JoinerSecret, ow.pskSecret)
	if err != nil {
		return nil, fmt.Errorf("welcome secret: %w", err)
	}
	defer clear(welcomeSecret)
	key, nonce, err := keyschedule.WelcomeKeyNonce(cs, welcomeSecret)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	defer clear(nonce)
	aead, err := cs.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	giRaw, err := aead.Open(nil, nonce, w.EncryptedGroupInfo, nil)
	if err != nil {
		return nil, fmt.Errorf("group info: %w", ErrDecrypt)
	}
	if err := wire.Unmarshal(giRaw, &ow.info); err != nil {
		return nil, fmt.Errorf("group info: %w: %v", ErrMalformed, err)
	}
	if ow.info.GroupContext.CipherSuite != w.CipherSuite {
		return nil, fmt.Errorf("group info of suite 0x%04x in a Welcome of 0x%04x: %w", uint16(ow.info.GroupContext.CipherSuite), uint16(w.CipherSuite), ErrInvalidGroupInfo)
	}
	return ow, nil
}

// Join joins a group from a Welcome message (RFC 9420 §12.4.3.1), using
// whichever of kps the Welcome is addressed to. It decrypts the group
// secrets and GroupInfo, verifies the GroupInfo signature, validates the
// ratchet tree (from the Welcome or JoinOptions.RatchetTree) against the
// signed tree hash, installs the path secret, derives the epoch's key
// schedule and checks the confirmation tag.
//
// The group ID must not be one of a group the caller is already in
// (RFC 9420 §12.4.3.1): pass JoinOptions.GroupExists, or compare Group.ID
// before storing the result. The caller may delete the used KeyPackage
// unless it is a last-resort one.
func Join(welcome []byte, kps []*PrivateKeyPackage, cfg *Config, opts *JoinOptions) (*Group, error) {
	if opts == nil {
		opts = &JoinOptions{}
	}
	w, err := decodeWelcome(welcome)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	ow, err := openWelcome(w, kps, cfg, opts.ReInitFrom)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if opts.GroupExists != nil && opts.GroupExists(bytes.Clone(ow.info.GroupContext.GroupID)) {
		return nil, fmt.Errorf("join: group %x: %w", ow.info.GroupContext.GroupID, ErrGroupExists)
	}
	g, err := joinFromWelcome(ow, cfg, opts.RatchetTree)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	for i := range ow.secrets.PSKs {
		id := &ow.secrets.PSKs[i]
		if id.PSKType != wire.PSKTypeResumption || id.Usage == wire.ResumptionPSKUsageApplication {
			continue
		}
		if id.Usage != wire.ResumptionPSKUsageReInit || opts.ReInitFrom == nil {
			return nil, fmt.Errorf("join: %v resumption PSK: %w", id.Usage, ErrInvalidGroupInfo)
		}
		if err := checkReInitJoin(opts.ReInitFrom, g, id); err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
	}
	return g, nil
}

func joinFromWelcome(ow *openedWelcome, cfg *Config, treeBytes []byte) (*Group, error) {
	cs, gi, kp := ow.cs, &ow.info, ow.kp
	t, err := verifiedTree(cs, gi, treeBytes, cfg)
	if err != nil {
		return nil, err
	}
	myLeaf, ok := t.FindLeaf(&kp.pub.kp.LeafNode)
	if !ok {
		return nil, fmt.Errorf("%w: the tree has no leaf for the key package", ErrInvalidTree)
	}
	priv, err := newPrivState(cs, myLeaf, kp.encPriv)
	if err != nil {
		return nil, fmt.Errorf("%w: leaf key: %v", ErrInvalidTree, err)
	}
	if ow.secrets.PathSecret != nil {
		me, _ := treemath.LeafToNode(myLeaf)
		signer, _ := treemath.LeafToNode(treemath.LeafIndex(gi.Signer))
		lca, ok := treemath.CommonAncestor(me, signer, treemath.LeafCount(t.LeafCount()))
		if !ok || me == signer {
			return nil, fmt.Errorf("%w: path secret without a common ancestor", ErrInvalidGroupInfo)
		}
		if err := priv.installJoinerSecret(t, lca, ow.secrets.PathSecret.PathSecret); err != nil {
			return nil, err
		}
	}
	ctxRaw, err := wire.Marshal(&gi.GroupContext)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ks, err := keyschedule.Join(cs, ow.secrets.JoinerSecret, ow.pskSecret, ctxRaw)
	if err != nil {
		return nil, fmt.Errorf("key schedule: %w", err)
	}
	ks.ForgetJoinerSecrets()
	if !keyschedule.VerifyConfirmationTag(cs, ks.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		return nil, fmt.Errorf("group info: %w", ErrBadConfirmationTag)
	}
	for _, id := range ow.secrets.PSKs {
		if id.PSKType == wire.PSKTypeResumption && id.Usage != wire.ResumptionPSKUsageApplication && gi.GroupContext.Epoch != 1 {
			return nil, fmt.Errorf("%w: %v resumption PSK in epoch %d, want 1", ErrInvalidGroupInfo, id.Usage, gi.GroupContext.Epoch)
		}
	}
	interim, err := keyschedule.InterimTranscriptHash(cs, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err != nil {
		return nil, err
	}
	return newGroup(epochState{
		cfg: cfg, id: kp.id, cs: cs,
		ctx: gi.GroupContext, interim: interim, confTag: bytes.Clone(gi.ConfirmationTag),
		tree: t, priv: priv, ks: ks,
	})
}

// verifiedTree obtains the ratchet tree of a GroupInfo (its ratchet_tree
// extension, else treeBytes), verifies the GroupInfo's signature with the
// signer's leaf, checks that this client supports the group's extensions,
// and validates the tree (RFC 9420 §12.4.3.1).
func verifiedTree(cs *ciphersuite.Suite, gi *wire.GroupInfo, treeBytes []byte, cfg *Config) (*tree.Tree, error) {
	var t *tree.Tree
	var err error
	// The extension's body is decoded by the tree package, as a tree sent
	// out of band is, so that a defect is reported the same either way.
	if ext := gi.Extensions.Find(wire.ExtensionTypeRatchetTree); ext != nil {
		t, err = tree.Decode(cs, ext.ExtensionData)
	} else if treeBytes != nil {
		t, err = tree.Decode(cs, treeBytes)
	} else {
		return nil, ErrTreeRequired
	}
	if err != nil {
		return nil, invalidTree(err)
	}
	signer := t.Leaf(treemath.LeafIndex(gi.Signer))
	if signer == nil {
		return nil, fmt.Errorf("%w: signer leaf %d is blank", ErrInvalidGroupInfo, gi.Signer)
	}
	if err := verifySignature(cs, signer.SignatureKey, labelGroupInfoTBS, gi.TBS(), gi.Signature); err != nil {
		return nil, fmt.Errorf("group info: %w", err)
	}
	if err := checkOwnSupport(cfg, gi.GroupContext.Extensions); err != nil {
		return nil, fmt.Errorf("group context: %w", err)
	}
	if err := t.Validate(&tree.Params{GroupContext: &gi.GroupContext, MaxLifetime: cfg.maxLifetime()}); err != nil {
		return nil, invalidTree(err)
	}
	return t, nil
}

// invalidTree maps an error of decoding or validating a received tree: it
// always matches ErrInvalidTree, and the more specific sentinel
// (ErrInvalidLeafNode, ErrBadSignature, ...) where there is one.
func invalidTree(err error) error {
	err = mapTreeError(err)
	if errors.Is(err, ErrInvalidTree) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrInvalidTree, err)
}
