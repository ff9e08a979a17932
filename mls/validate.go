package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// The rules of RFC 9420 §12.2 (and §12.4.3.2 for external commits), one
// error each. They are wrapped in ErrInvalidProposalList, so callers branch
// on that; the specific rule is in the message (and visible to errors.Is
// inside this package's tests).
var (
	errRuleUpdateByCommitter   = errors.New("update proposal from the committer")
	errRuleRemoveCommitter     = errors.New("remove proposal for the committer")
	errRuleSameLeafTwice       = errors.New("several update/remove proposals for the same leaf")
	errRuleDuplicateAdd        = errors.New("several add proposals for the same client")
	errRuleAddExistingMember   = errors.New("add proposal for a client already in the group")
	errRuleDuplicatePSK        = errors.New("several psk proposals for the same pre-shared key")
	errRuleMultipleGCE         = errors.New("several group_context_extensions proposals")
	errRuleReInitNotAlone      = errors.New("reinit proposal together with other proposals")
	errRuleExternalInit        = errors.New("external_init proposal in a regular commit")
	errRuleExternalInitCount   = errors.New("external commit without exactly one external_init proposal")
	errRuleExternalRemoveCount = errors.New("external commit with more than one remove proposal")
	errRuleExternalOther       = errors.New("external commit with a proposal other than external_init, remove or psk")
	errRuleExternalByReference = errors.New("external commit with a proposal by reference")
	errRuleExternalResync      = errors.New("external commit removes a member whose identity differs from the joiner's")
	errRuleRemoveBlank         = errors.New("remove proposal for a blank leaf")
	errRuleUnsupportedByMember = errors.New("group context extensions not supported by every member")
)

// resolved is one entry of a commit's proposal list, with its sender and,
// when it came by reference, its ProposalRef.
type resolved struct {
	p        *wire.Proposal
	sender   wire.Sender
	ref      []byte // nil for a proposal inline in the commit
	leafPriv []byte // this client's own Update: its new leaf key
}

// resolveProposals turns a commit's ProposalOrRef list into proposals:
// references are looked up in the epoch's cache (ErrUnknownProposal), inline
// proposals are the committer's and are checked on their own (§12.1).
func (g *Group) resolveProposals(list []wire.ProposalOrRef, committer wire.Sender) ([]resolved, error) {
	out := make([]resolved, 0, len(list))
	for i := range list {
		por := &list[i]
		switch por.Type {
		case wire.ProposalOrRefTypeProposal:
			if err := g.checkProposal(por.Proposal, committer, true); err != nil {
				return nil, err
			}
			out = append(out, resolved{p: por.Proposal, sender: committer})
		case wire.ProposalOrRefTypeReference:
			if committer.SenderType == wire.SenderTypeNewMemberCommit {
				return nil, fmt.Errorf("%w: %w", ErrInvalidProposalList, errRuleExternalByReference)
			}
			cp := g.findProposal(por.Reference)
			if cp == nil {
				return nil, fmt.Errorf("proposal %x: %w", por.Reference, ErrUnknownProposal)
			}
			out = append(out, resolved{p: cp.proposal, sender: cp.sender, ref: cp.ref, leafPriv: cp.leafPriv})
		default:
			return nil, fmt.Errorf("proposal or ref of type %v: %w", por.Type, ErrMalformed)
		}
	}
	return out, nil
}

func (g *Group) findProposal(ref []byte) *cachedProposal {
	for _, cp := range g.proposals {
		if bytes.Equal(cp.ref, ref) {
			return cp
		}
	}
	return nil
}

// validateList applies the list rules of RFC 9420 §12.2 to a commit's
// proposals: for a regular commit from leaf committer, or for an external
// commit. The rules that depend on the tree as the list changes it (a
// Remove of a blank leaf, an Add of a member not removed, leaf validity)
// are checked by applyProposals.
func validateList(list []resolved, committer wire.Sender, external bool) error {
	if external {
		return validateExternalList(list)
	}
	rule := func(err error) error { return fmt.Errorf("%w: %w", ErrInvalidProposalList, err) }
	touched := make(map[uint32]bool)
	var adds [][]byte
	var psks [][]byte
	gce, reinit := 0, 0
	for _, r := range list {
		switch r.p.ProposalType {
		case wire.ProposalTypeUpdate:
			if r.sender.SenderType != wire.SenderTypeMember {
				return rule(fmt.Errorf("update from a %v sender", r.sender.SenderType))
			}
			if r.sender.LeafIndex == committer.LeafIndex {
				return rule(errRuleUpdateByCommitter)
			}
			if touched[r.sender.LeafIndex] {
				return rule(fmt.Errorf("leaf %d: %w", r.sender.LeafIndex, errRuleSameLeafTwice))
			}
			touched[r.sender.LeafIndex] = true
		case wire.ProposalTypeRemove:
			if r.p.Remove.Removed == committer.LeafIndex {
				return rule(errRuleRemoveCommitter)
			}
			if touched[r.p.Remove.Removed] {
				return rule(fmt.Errorf("leaf %d: %w", r.p.Remove.Removed, errRuleSameLeafTwice))
			}
			touched[r.p.Remove.Removed] = true
		case wire.ProposalTypeAdd:
			adds = append(adds, r.p.Add.KeyPackage.LeafNode.SignatureKey)
		case wire.ProposalTypePSK:
			id, err := pskIdentity(&r.p.PreSharedKey.PSK)
			if err != nil {
				return rule(err)
			}
			psks = append(psks, id)
		case wire.ProposalTypeGroupContextExtensions:
			gce++
		case wire.ProposalTypeReInit:
			reinit++
		case wire.ProposalTypeExternalInit:
			return rule(errRuleExternalInit)
		}
	}
	if hasDuplicate(adds) {
		return rule(errRuleDuplicateAdd)
	}
	if hasDuplicate(psks) {
		return rule(errRuleDuplicatePSK)
	}
	if gce > 1 {
		return rule(errRuleMultipleGCE)
	}
	if reinit > 0 && len(list) > 1 {
		return rule(errRuleReInitNotAlone)
	}
	return nil
}

// validateExternalList is the external-commit variant of §12.2: exactly
// one ExternalInit, at most one Remove, any number of PreSharedKey, nothing
// else.
func validateExternalList(list []resolved) error {
	rule := func(err error) error { return fmt.Errorf("%w: %w", ErrInvalidProposalList, err) }
	inits, removes := 0, 0
	var psks [][]byte
	for _, r := range list {
		if r.ref != nil {
			return rule(errRuleExternalByReference)
		}
		switch r.p.ProposalType {
		case wire.ProposalTypeExternalInit:
			inits++
		case wire.ProposalTypeRemove:
			removes++
		case wire.ProposalTypePSK:
			id, err := pskIdentity(&r.p.PreSharedKey.PSK)
			if err != nil {
				return rule(err)
			}
			psks = append(psks, id)
		default:
			return rule(fmt.Errorf("%v: %w", r.p.ProposalType, errRuleExternalOther))
		}
	}
	switch {
	case inits != 1:
		return rule(errRuleExternalInitCount)
	case removes > 1:
		return rule(errRuleExternalRemoveCount)
	case hasDuplicate(psks):
		return rule(errRuleDuplicatePSK)
	}
	return nil
}

// pskIdentity is the part of a PreSharedKeyID that names the key, without
// its nonce: two proposals injecting the same key are duplicates whatever
// their nonces (RFC 9420 §12.2).
func pskIdentity(id *wire.PreSharedKeyID) ([]byte, error) {
	c := *id
	c.PSKNonce = nil
	return wire.Marshal(&c)
}

func hasDuplicate(list [][]byte) bool {
	seen := make(map[string]struct{}, len(list))
	for _, v := range list {
		if _, ok := seen[string(v)]; ok {
			return true
		}
		seen[string(v)] = struct{}{}
	}
	return false
}

// pathRequired reports whether a proposal type requires the commit to carry
// an UpdatePath (RFC 9420 §12.4).
func pathRequired(t wire.ProposalType) bool {
	switch t {
	case wire.ProposalTypeUpdate, wire.ProposalTypeRemove, wire.ProposalTypeExternalInit,
		wire.ProposalTypeGroupContextExtensions:
		return true
	}
	return false
}
