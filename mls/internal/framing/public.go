package framing

import (
	"crypto/hmac"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// membershipTag is MAC(membership_key, AuthenticatedContentTBM)
// (RFC 9420 §6.2).
func (e *Epoch) membershipTag(ac *wire.AuthenticatedContent) ([]byte, error) {
	if e.keys.MembershipKey == nil {
		return nil, fmt.Errorf("%w: no membership_key", ErrMissingKeys)
	}
	tbm, err := wire.Marshal(&wire.AuthenticatedContentTBM{ContentTBS: *ac.TBS(e.groupContext), Auth: ac.Auth})
	if err != nil {
		return nil, err
	}
	return e.suite.MAC(e.keys.MembershipKey, tbm), nil
}

// ProtectPublic frames signed content as a PublicMessage (RFC 9420 §6.2),
// adding the membership tag when the sender is a member. ac must have been
// made by Sign for wire.WireFormatPublicMessage in this epoch and, for a
// commit, carry its confirmation tag. Application data is refused with
// ErrApplicationInPublic. The result shares ac's fields.
func (e *Epoch) ProtectPublic(ac *wire.AuthenticatedContent) (*wire.PublicMessage, error) {
	if ac.WireFormat != wire.WireFormatPublicMessage {
		return nil, fmt.Errorf("framing: protect public: content signed for %v: %w", ac.WireFormat, ErrWrongWireFormat)
	}
	if err := e.checkGroupEpoch(ac.Content.GroupID, ac.Content.Epoch); err != nil {
		return nil, fmt.Errorf("framing: protect public: %w", err)
	}
	if err := checkSender(ac.WireFormat, &ac.Content); err != nil {
		return nil, fmt.Errorf("framing: protect public: %w", err)
	}
	if err := e.checkConfirmationTagPresent(ac); err != nil {
		return nil, fmt.Errorf("framing: protect public: %w", err)
	}
	pm := &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.SenderType == wire.SenderTypeMember {
		tag, err := e.membershipTag(ac)
		if err != nil {
			return nil, fmt.Errorf("framing: protect public: %w", err)
		}
		pm.MembershipTag = tag
	}
	return pm, nil
}

// UnprotectPublic checks a received PublicMessage (RFC 9420 §6.2): its
// group and epoch, that its content type is not application and is one its
// sender type may send (§6.1), and for a member sender its membership tag,
// compared in constant time over the full MAC length (an empty or truncated
// tag fails with ErrBadMembershipTag). The signature is checked next, by
// Verify. The result shares pm's fields; pm must not be modified afterwards.
func (e *Epoch) UnprotectPublic(pm *wire.PublicMessage) (*Unverified, error) {
	if err := e.checkGroupEpoch(pm.Content.GroupID, pm.Content.Epoch); err != nil {
		return nil, fmt.Errorf("framing: unprotect public: %w", err)
	}
	ac := pm.AuthenticatedContent()
	if err := checkSender(ac.WireFormat, &ac.Content); err != nil {
		return nil, fmt.Errorf("framing: unprotect public: %w", err)
	}
	if ac.Content.Sender.SenderType == wire.SenderTypeMember {
		want, err := e.membershipTag(ac)
		if err != nil {
			return nil, fmt.Errorf("framing: unprotect public: %w", err)
		}
		// hmac.Equal is false for tags of different lengths, so a short
		// tag is never compared over its own length only.
		if !hmac.Equal(want, pm.MembershipTag) {
			return nil, fmt.Errorf("framing: unprotect public from leaf %d: %w", ac.Content.Sender.LeafIndex, ErrBadMembershipTag)
		}
	}
	return &Unverified{epoch: e, content: ac}, nil
}
