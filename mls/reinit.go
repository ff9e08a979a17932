package mls

import (
	"bytes"
	"fmt"
	"io"

	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// ReInitGroup creates the group that replaces g once a ReInit proposal has
// been committed (g.ReInit is set; RFC 9420 §11.2): a new group with the
// ReInit's group ID, cipher suite and extensions, created by id (an
// identity of the new suite), whose first commit adds the owners of kps
// (fresh KeyPackages of the other members, in the new suite) and injects
// the resumption PSK of g's epoch with usage reinit, linking the two groups.
// The new members join from the Welcome with JoinOptions.ReInitFrom set to
// their own state of g.
func (g *Group) ReInitGroup(id *Identity, kps []*KeyPackage) (*PendingCommit, error) {
	if g.reinit == nil || g.removed {
		return nil, fmt.Errorf("reinit group: the group has no committed ReInit: %w", ErrInvalidProposalList)
	}
	ri := g.reinit
	if id.suite != CipherSuite(ri.CipherSuite) {
		return nil, fmt.Errorf("reinit group: identity of %v for a group of 0x%04x: %w", id.suite, uint16(ri.CipherSuite), ErrUnsupportedCipherSuite)
	}
	if ri.Version != wire.ProtocolVersionMLS10 {
		return nil, fmt.Errorf("reinit group: version %v: %w", ri.Version, ErrUnsupportedVersion)
	}
	oldID, oldEpoch, oldPSK := g.ctx.GroupID, g.ctx.Epoch, g.ks.resumption
	base := g.cfg
	cfg := &Config{}
	if base != nil {
		*cfg = *base
	}
	cfg.ResumptionPSK = func(groupID []byte, epoch uint64) ([]byte, bool) {
		if bytes.Equal(groupID, oldID) && epoch == oldEpoch {
			return oldPSK, true
		}
		return base.resumptionPSK(groupID, epoch)
	}
	ng, err := NewGroup(id, cfg, &GroupOptions{GroupID: ri.GroupID, Extensions: fromWireExtensions(ri.Extensions)})
	if err != nil {
		return nil, fmt.Errorf("reinit group: %w", err)
	}
	nonce := make([]byte, id.cs.HashSize())
	if _, err := io.ReadFull(cfg.rand(), nonce); err != nil {
		return nil, fmt.Errorf("reinit group: psk nonce: %w", err)
	}
	psk := &wire.PreSharedKeyID{PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageReInit,
		PSKGroupID: bytes.Clone(oldID), PSKEpoch: oldEpoch, PSKNonce: nonce}
	pc, err := ng.Commit(&CommitOptions{Add: kps, reinitPSK: psk})
	if err != nil {
		return nil, fmt.Errorf("reinit group: %w", err)
	}
	return pc, nil
}

// checkReInitJoin applies the checks of RFC 9420 §12.4.3.1 to a group
// joined from a Welcome carrying a reinit PSK: the group is in epoch 1, its
// parameters are those of the old group's ReInit, and every member of the
// old group is a member of the new one (by credential identity).
func checkReInitJoin(old *Group, g *Group, psk *wire.PreSharedKeyID) error {
	ri := old.reinit
	if ri == nil {
		return fmt.Errorf("%w: the old group has no committed ReInit", ErrInvalidGroupInfo)
	}
	if !bytes.Equal(psk.PSKGroupID, old.ctx.GroupID) || psk.PSKEpoch != old.ctx.Epoch {
		return fmt.Errorf("%w: reinit PSK names group %x epoch %d, not the old group's epoch %d", ErrInvalidGroupInfo, psk.PSKGroupID, psk.PSKEpoch, old.ctx.Epoch)
	}
	if g.ctx.Epoch != 1 || !bytes.Equal(g.ctx.GroupID, ri.GroupID) || g.ctx.Version != ri.Version ||
		g.ctx.CipherSuite != ri.CipherSuite {
		return fmt.Errorf("%w: the new group does not match the ReInit", ErrInvalidGroupInfo)
	}
	a, err := wire.Marshal(&g.ctx.Extensions)
	if err != nil {
		return err
	}
	b, err := wire.Marshal(&ri.Extensions)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("%w: the new group's extensions differ from the ReInit's", ErrInvalidGroupInfo)
	}
	have := make(map[string]bool)
	for i := uint32(0); i < g.tree.LeafCount(); i++ {
		if l := g.tree.Leaf(treemath.LeafIndex(i)); l != nil {
			have[string(l.Credential.Identity)] = true
		}
	}
	for i := uint32(0); i < old.tree.LeafCount(); i++ {
		if l := old.tree.Leaf(treemath.LeafIndex(i)); l != nil && !have[string(l.Credential.Identity)] {
			return fmt.Errorf("%w: old member %q is missing from the new group", ErrInvalidGroupInfo, l.Credential.Identity)
		}
	}
	return nil
}
