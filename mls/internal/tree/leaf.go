package tree

import (
	"fmt"
	"slices"
	"time"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// leafNodeTBSLabel is the signature label of a LeafNode (RFC 9420 §7.2).
const leafNodeTBSLabel = "LeafNodeTBS"

// Params is what validating a leaf node or a tree needs to know about the
// group and the application (RFC 9420 §7.3, §12.4.3.1).
type Params struct {
	// GroupContext supplies the group_id bound into update and commit leaf
	// signatures, the required_capabilities extension and, for Validate,
	// the expected tree_hash (checked when non-empty). Required.
	GroupContext *wire.GroupContext

	// Now, when non-zero, is the time against which the lifetime of
	// key_package leaves is checked. RFC 9420 §7.3 requires the check for
	// leaves a client sends and recommends it for leaves it receives.
	Now time.Time

	// MaxLifetime, when non-zero, is the application's maximum total
	// lifetime (not_after - not_before) of a key_package leaf (§7.2).
	MaxLifetime time.Duration

	// ValidateCredential, when set, is the application's credential check
	// (RFC 9420 §5.3.1); an error rejects the leaf with
	// ErrCredentialInvalid. It is called from one goroutine at a time.
	ValidateCredential func(cred *wire.Credential, signatureKey []byte) error
}

// requiredCapabilities returns the group's required_capabilities, if any.
func (p *Params) requiredCapabilities() (*wire.RequiredCapabilities, error) {
	var rc wire.RequiredCapabilities
	ok, err := p.GroupContext.Extensions.Get(&rc)
	if err != nil {
		return nil, fmt.Errorf("required_capabilities extension: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return &rc, nil
}

// SignLeafNode fills leaf.Signature with the signature over its LeafNodeTBS
// (RFC 9420 §7.2); groupID and index are bound for the update and commit
// sources and ignored for key_package.
func SignLeafNode(suite *ciphersuite.Suite, leaf *wire.LeafNode, signer *ciphersuite.SigningKey, groupID []byte, index LeafIndex) error {
	tbs, err := wire.Marshal(leaf.TBS(groupID, uint32(index)))
	if err != nil {
		return fmt.Errorf("sign leaf node: %w", err)
	}
	sig, err := suite.SignWithLabel(signer, leafNodeTBSLabel, tbs)
	if err != nil {
		return fmt.Errorf("sign leaf node: %w", err)
	}
	leaf.Signature = sig
	return nil
}

// VerifyLeafSignature checks the signature of leaf at index in group
// groupID (RFC 9420 §7.2), failing with ErrLeafSignatureInvalid.
func VerifyLeafSignature(suite *ciphersuite.Suite, leaf *wire.LeafNode, groupID []byte, index LeafIndex) error {
	tbs, err := wire.Marshal(leaf.TBS(groupID, uint32(index)))
	if err != nil {
		return fmt.Errorf("leaf %d: %w: %w", index, ErrLeafSignatureInvalid, err)
	}
	if err := suite.VerifyWithLabel(leaf.SignatureKey, leafNodeTBSLabel, tbs, leaf.Signature); err != nil {
		return fmt.Errorf("leaf %d: %w: %w", index, ErrLeafSignatureInvalid, err)
	}
	return nil
}

// ValidateLeafNode runs the leaf node validation of RFC 9420 §7.3 on a
// LeafNode arriving in a KeyPackage or Add (source key_package), an Update
// proposal (source update) or an UpdatePath (source commit), against the
// current tree t (before the leaf is placed in it):
//
//   - leaf_node_source is source (ErrLeafNodeSource);
//   - the application accepts the credential (ErrCredentialInvalid);
//   - the signature verifies; for update and commit it binds the group_id
//     and index, the leaf the node will occupy (ErrLeafSignatureInvalid);
//   - the required_capabilities of the group are listed
//     (ErrRequiredCapabilities);
//   - the leaf's credential type is in its own capabilities and supported
//     by every other member, and the leaf supports every credential type the
//     other members use (ErrCredentialTypeUnsupported);
//   - for key_package, the lifetime contains p.Now and is no longer than
//     p.MaxLifetime, when those are set (ErrLifetimeExpired);
//   - every non-default extension is in its capabilities
//     (ErrExtensionUnsupported);
//   - its encryption key is in no node of t, which also makes it differ from
//     the leaf it replaces (ErrDuplicateEncryptionKey), and its signature
//     key is used by no member other than the one at index for update and
//     commit (ErrDuplicateSignatureKey).
//
// For key_package, index is ignored.
func (t *Tree) ValidateLeafNode(leaf *wire.LeafNode, source wire.LeafNodeSource, index LeafIndex, p *Params) error {
	if p == nil || p.GroupContext == nil {
		return fmt.Errorf("validate leaf node: no group context")
	}
	replaced := -1
	if source != wire.LeafNodeSourceKeyPackage {
		if err := t.checkLeaf(index); err != nil {
			return fmt.Errorf("validate leaf node: %w", err)
		}
		replaced = int(index)
	}
	if err := t.validateLeafContent(leaf, source, replaced, p, true); err != nil {
		return err
	}
	if at, dup := t.HasEncryptionKey(leaf.EncryptionKey); dup {
		return fmt.Errorf("validate leaf node: encryption key already at node %d: %w", at, ErrDuplicateEncryptionKey)
	}
	if at, dup := t.FindSignatureKey(leaf.SignatureKey); dup && int(at) != replaced {
		return fmt.Errorf("validate leaf node: signature key already used by leaf %d: %w", at, ErrDuplicateSignatureKey)
	}
	return nil
}

// validateLeafContent runs the per-leaf checks of §7.3 that do not involve
// key uniqueness. replaced is the leaf the node replaces (excluded from the
// credential-type rule), or -1. The signature is checked only when
// checkSignature is set (Validate checks signatures in parallel).
func (t *Tree) validateLeafContent(leaf *wire.LeafNode, source wire.LeafNodeSource, replaced int, p *Params, checkSignature bool) error {
	idx := "key package leaf"
	if replaced >= 0 {
		idx = fmt.Sprintf("leaf %d", replaced)
	}
	if source != 0 && leaf.LeafNodeSource != source {
		return fmt.Errorf("leaf node: source %v where %v is required: %w", leaf.LeafNodeSource, source, ErrLeafNodeSource)
	}
	if p.ValidateCredential != nil {
		if err := p.ValidateCredential(&leaf.Credential, leaf.SignatureKey); err != nil {
			return fmt.Errorf("%s: %w: %w", idx, ErrCredentialInvalid, err)
		}
	}
	if checkSignature {
		if err := VerifyLeafSignature(t.suite, leaf, p.GroupContext.GroupID, LeafIndex(max(replaced, 0))); err != nil {
			return err
		}
	}
	rc, err := p.requiredCapabilities()
	if err != nil {
		return fmt.Errorf("%s: %w", idx, err)
	}
	if err := checkRequiredCapabilities(leaf, rc); err != nil {
		return fmt.Errorf("%s: %w", idx, err)
	}
	if err := t.checkCredentialSupport(leaf, replaced); err != nil {
		return fmt.Errorf("%s: %w", idx, err)
	}
	if err := checkLifetime(leaf, p); err != nil {
		return fmt.Errorf("%s: %w", idx, err)
	}
	for _, ext := range leaf.Extensions {
		if !ext.ExtensionType.IsDefault() && !slices.Contains(leaf.Capabilities.Extensions, ext.ExtensionType) {
			return fmt.Errorf("%s: extension %v: %w", idx, ext.ExtensionType, ErrExtensionUnsupported)
		}
	}
	return nil
}

// checkRequiredCapabilities checks leaf against the group's
// required_capabilities (RFC 9420 §11.1). Default proposal and extension
// types count as supported without being listed; credential types must
// always be listed.
func checkRequiredCapabilities(leaf *wire.LeafNode, rc *wire.RequiredCapabilities) error {
	if rc == nil {
		return nil
	}
	caps := &leaf.Capabilities
	for _, e := range rc.ExtensionTypes {
		if !e.IsDefault() && !slices.Contains(caps.Extensions, e) {
			return fmt.Errorf("extension %v: %w", e, ErrRequiredCapabilities)
		}
	}
	for _, pt := range rc.ProposalTypes {
		if !pt.IsDefault() && !slices.Contains(caps.Proposals, pt) {
			return fmt.Errorf("proposal %v: %w", pt, ErrRequiredCapabilities)
		}
	}
	for _, ct := range rc.CredentialTypes {
		if !slices.Contains(caps.Credentials, ct) {
			return fmt.Errorf("credential %v: %w", ct, ErrRequiredCapabilities)
		}
	}
	return nil
}

// checkCredentialSupport checks the credential-type rules of RFC 9420 §7.2
// and §7.3 for leaf joining the members of t other than leaf replaced.
func (t *Tree) checkCredentialSupport(leaf *wire.LeafNode, replaced int) error {
	own := leaf.Credential.CredentialType
	if !slices.Contains(leaf.Capabilities.Credentials, own) {
		return fmt.Errorf("credential type %v not in the leaf's capabilities: %w", own, ErrCredentialTypeUnsupported)
	}
	// Counts over the other members: drop the replaced leaf's contribution.
	var old *wire.LeafNode
	if replaced >= 0 {
		old = t.Leaf(LeafIndex(replaced))
	}
	others := t.creds.members
	if old != nil {
		others--
	}
	supporters := t.creds.support[own]
	if old != nil && slices.Contains(old.Capabilities.Credentials, own) {
		supporters--
	}
	if supporters != others {
		return fmt.Errorf("credential type %v not supported by %d of the other members: %w", own, others-supporters, ErrCredentialTypeUnsupported)
	}
	for ct, n := range t.creds.inUse {
		if old != nil && old.Credential.CredentialType == ct {
			n--
		}
		if n > 0 && !slices.Contains(leaf.Capabilities.Credentials, ct) {
			return fmt.Errorf("leaf does not support credential type %v used by other members: %w", ct, ErrCredentialTypeUnsupported)
		}
	}
	return nil
}

// checkLifetime checks the lifetime of a key_package leaf (RFC 9420 §7.2,
// §7.3); other sources carry none.
func checkLifetime(leaf *wire.LeafNode, p *Params) error {
	if leaf.LeafNodeSource != wire.LeafNodeSourceKeyPackage {
		return nil
	}
	lt := leaf.Lifetime
	if lt.NotAfter < lt.NotBefore {
		return fmt.Errorf("lifetime ends before it starts: %w", ErrLifetimeExpired)
	}
	if p.MaxLifetime > 0 && lt.NotAfter-lt.NotBefore > uint64(p.MaxLifetime/time.Second) {
		return fmt.Errorf("lifetime of %d s exceeds the maximum %v: %w", lt.NotAfter-lt.NotBefore, p.MaxLifetime, ErrLifetimeExpired)
	}
	if !p.Now.IsZero() {
		now := p.Now.Unix()
		if now < 0 || uint64(now) < lt.NotBefore || uint64(now) > lt.NotAfter {
			return fmt.Errorf("lifetime [%d, %d] does not contain %d: %w", lt.NotBefore, lt.NotAfter, now, ErrLifetimeExpired)
		}
	}
	return nil
}
