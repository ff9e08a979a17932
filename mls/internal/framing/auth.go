package framing

import (
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// signatureLabel is the SignWithLabel label of FramedContentTBS
// (RFC 9420 §6.1).
const signatureLabel = "FramedContentTBS"

// externalProposalAllowed reports whether an external sender may send a
// proposal of type t: the "Ext" column of the MLS Proposal Types registry
// (RFC 9420 §12.1.8, §17.4). Anything else is malformed from such a sender.
func externalProposalAllowed(t wire.ProposalType) bool {
	switch t {
	case wire.ProposalTypeAdd, wire.ProposalTypeRemove, wire.ProposalTypePSK,
		wire.ProposalTypeReInit, wire.ProposalTypeGroupContextExtensions:
		return true
	}
	return false
}

// checkSender enforces which sender types may send which content in which
// wire format (RFC 9420 §6, §6.1, §6.3.2, §12.1.8): application data only in
// a PrivateMessage; non-members only in a PublicMessage; external senders
// only allowed proposals, new_member_proposal senders only Add, and
// new_member_commit senders only commits with a path.
func checkSender(wf wire.WireFormat, c *wire.FramedContent) error {
	switch wf {
	case wire.WireFormatPublicMessage:
		if c.ContentType == wire.ContentTypeApplication {
			return ErrApplicationInPublic
		}
	case wire.WireFormatPrivateMessage:
		if c.Sender.SenderType != wire.SenderTypeMember {
			return fmt.Errorf("%w: %v sender in a PrivateMessage", ErrSenderNotAllowed, c.Sender.SenderType)
		}
	default:
		return fmt.Errorf("%w: %v is not a framed content wire format", ErrWrongWireFormat, wf)
	}
	switch c.Sender.SenderType {
	case wire.SenderTypeMember:
		return nil
	case wire.SenderTypeExternal:
		if c.ContentType != wire.ContentTypeProposal || c.Proposal == nil {
			return fmt.Errorf("%w: external sender with %v content", ErrSenderNotAllowed, c.ContentType)
		}
		if !externalProposalAllowed(c.Proposal.ProposalType) {
			return fmt.Errorf("%w: external sender with a %v proposal", ErrSenderNotAllowed, c.Proposal.ProposalType)
		}
		return nil
	case wire.SenderTypeNewMemberProposal:
		if c.ContentType != wire.ContentTypeProposal || c.Proposal == nil ||
			c.Proposal.ProposalType != wire.ProposalTypeAdd || c.Proposal.Add == nil {
			return fmt.Errorf("%w: new_member_proposal sender with anything but an Add", ErrSenderNotAllowed)
		}
		return nil
	case wire.SenderTypeNewMemberCommit:
		if c.ContentType != wire.ContentTypeCommit || c.Commit == nil {
			return fmt.Errorf("%w: new_member_commit sender with %v content", ErrSenderNotAllowed, c.ContentType)
		}
		// The path's LeafNode carries the joiner's signature key, so an
		// external commit without one cannot be authenticated (§12.4.3.2).
		if c.Commit.Path == nil {
			return fmt.Errorf("%w: external commit without a path", ErrSenderNotAllowed)
		}
		return nil
	}
	return fmt.Errorf("%w: sender type %v", ErrSenderNotAllowed, c.Sender.SenderType)
}

// Sign builds the AuthenticatedContent of content for wire format wf
// (wire.WireFormatPublicMessage or wire.WireFormatPrivateMessage), signed
// with SignWithLabel(signer, "FramedContentTBS", FramedContentTBS) where the
// TBS covers the epoch's GroupContext for member and new_member_commit
// senders (RFC 9420 §6.1). signer must be the key the receivers will look up
// for content.Sender. For a commit the caller then sets
// Auth.ConfirmationTag, which depends on this signature (§8.2), before
// protecting it. content is copied shallowly into the result.
func (e *Epoch) Sign(signer *ciphersuite.SigningKey, wf wire.WireFormat, content *wire.FramedContent) (*wire.AuthenticatedContent, error) {
	if err := e.checkGroupEpoch(content.GroupID, content.Epoch); err != nil {
		return nil, fmt.Errorf("framing: sign: %w", err)
	}
	if err := checkSender(wf, content); err != nil {
		return nil, fmt.Errorf("framing: sign: %w", err)
	}
	ac := &wire.AuthenticatedContent{WireFormat: wf, Content: *content}
	tbs, err := wire.Marshal(ac.TBS(e.groupContext))
	if err != nil {
		return nil, fmt.Errorf("framing: sign: %w", err)
	}
	ac.Auth.Signature, err = e.suite.SignWithLabel(signer, signatureLabel, tbs)
	if err != nil {
		return nil, fmt.Errorf("framing: sign: %w", err)
	}
	return ac, nil
}

// checkConfirmationTagPresent makes sure an outgoing commit carries a
// confirmation tag of the suite's MAC length (RFC 9420 §6.1), so that a
// commit is never sent with the tag forgotten.
func (e *Epoch) checkConfirmationTagPresent(ac *wire.AuthenticatedContent) error {
	if ac.Content.ContentType == wire.ContentTypeCommit && len(ac.Auth.ConfirmationTag) != e.suite.HashSize() {
		return fmt.Errorf("%w: commit with a confirmation tag of %d bytes, want %d",
			ErrBadConfirmationTag, len(ac.Auth.ConfirmationTag), e.suite.HashSize())
	}
	return nil
}

// Unverified is content that passed the symmetric protection of its wire
// format (membership tag or AEAD) and the group, epoch and sender-type
// checks, but whose signature has not been checked yet. It can only be made
// by UnprotectPublic or UnprotectPrivate, and turned into Verified only by
// Verify.
type Unverified struct {
	epoch   *Epoch
	content *wire.AuthenticatedContent
}

// Sender is the claimed sender, for looking up its key.
func (u *Unverified) Sender() wire.Sender { return u.content.Content.Sender }

// Content is the not yet signature-checked content, for the lookups that
// choosing the verification key needs. The caller must not modify it and
// must not act on it before Verify succeeds.
func (u *Unverified) Content() *wire.FramedContent { return &u.content.Content }

// Verify checks the signature with the sender's key as RFC 9420 §6.1 assigns
// it: for a member the signature_key of its leaf, for an external sender the
// entry of the external_senders extension, for a new_member_commit sender
// the LeafNode in the commit's path, for a new_member_proposal sender the
// LeafNode of the KeyPackage in its Add. roster answers the first two.
func (u *Unverified) Verify(roster Roster) (*Verified, error) {
	c := &u.content.Content
	if err := checkSender(u.content.WireFormat, c); err != nil {
		return nil, fmt.Errorf("framing: verify: %w", err)
	}
	key, err := signatureKey(roster, c)
	if err != nil {
		return nil, fmt.Errorf("framing: verify: %w", err)
	}
	return u.VerifyWithKey(key)
}

// VerifyWithKey checks the signature with a signature public key the caller
// chose, for callers that resolve the sender's key themselves. Verify is the
// safer choice: it picks the key RFC 9420 §6.1 requires.
func (u *Unverified) VerifyWithKey(signatureKey []byte) (*Verified, error) {
	tbs, err := wire.Marshal(u.content.TBS(u.epoch.groupContext))
	if err != nil {
		return nil, fmt.Errorf("framing: verify: %w", err)
	}
	if err := u.epoch.suite.VerifyWithLabel(signatureKey, signatureLabel, tbs, u.content.Auth.Signature); err != nil {
		// A key that does not parse cannot have made the signature either;
		// both errors stay visible to errors.Is.
		return nil, fmt.Errorf("framing: verify %v sender: %w: %w", u.content.Content.Sender.SenderType, ErrBadSignature, err)
	}
	return &Verified{suite: u.epoch.suite, content: u.content}, nil
}

// signatureKey returns the key the sender of c must have signed with
// (RFC 9420 §6.1).
func signatureKey(roster Roster, c *wire.FramedContent) ([]byte, error) {
	switch c.Sender.SenderType {
	case wire.SenderTypeMember:
		if roster != nil {
			if key, ok := roster.MemberSignatureKey(treemath.LeafIndex(c.Sender.LeafIndex)); ok {
				return key, nil
			}
		}
		return nil, fmt.Errorf("%w: leaf %d", ErrSenderNotMember, c.Sender.LeafIndex)
	case wire.SenderTypeExternal:
		if roster != nil {
			if key, ok := roster.ExternalSenderSignatureKey(c.Sender.SenderIndex); ok {
				return key, nil
			}
		}
		return nil, fmt.Errorf("%w: index %d", ErrUnknownExternalSender, c.Sender.SenderIndex)
	case wire.SenderTypeNewMemberCommit:
		if c.Commit == nil || c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: external commit without a path", ErrSenderNotAllowed)
		}
		return c.Commit.Path.LeafNode.SignatureKey, nil
	case wire.SenderTypeNewMemberProposal:
		if c.Proposal == nil || c.Proposal.Add == nil {
			return nil, fmt.Errorf("%w: new_member_proposal without an Add", ErrSenderNotAllowed)
		}
		return c.Proposal.Add.KeyPackage.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %v", ErrSenderNotAllowed, c.Sender.SenderType)
}

// Verified is content whose protection and signature have been checked
// (RFC 9420 §6): the only form of a received message the group acts on. It
// can only be made by Verify, VerifyWithKey or Epoch.Unprotect.
type Verified struct {
	suite   *ciphersuite.Suite
	content *wire.AuthenticatedContent
}

// AuthenticatedContent is the verified content with its wire format and
// auth data, as the transcript hashes and ProposalRef need it. The caller
// must not modify it.
func (v *Verified) AuthenticatedContent() *wire.AuthenticatedContent { return v.content }

// Content is the verified FramedContent. The caller must not modify it.
func (v *Verified) Content() *wire.FramedContent { return &v.content.Content }

// Sender is the verified sender.
func (v *Verified) Sender() wire.Sender { return v.content.Content.Sender }

// WireFormat is the wire format the content arrived in.
func (v *Verified) WireFormat() wire.WireFormat { return v.content.WireFormat }

// ConfirmationTag is the confirmation_tag of a commit (nil otherwise), which
// the group checks once it has the next epoch's confirmation_key
// (RFC 9420 §6.1, §12.4.2).
func (v *Verified) ConfirmationTag() []byte { return v.content.Auth.ConfirmationTag }

// VerifyConfirmationTag checks, in constant time, that the commit's
// confirmation_tag is MAC(confirmation_key, confirmed_transcript_hash) for
// the new epoch (RFC 9420 §6.1, §8.2), completing the validity of its
// FramedContentAuthData. It fails with ErrBadConfirmationTag, including for
// a tag of the wrong length and for content that is not a commit.
func (v *Verified) VerifyConfirmationTag(confirmationKey, confirmedTranscriptHash []byte) error {
	if v.content.Content.ContentType != wire.ContentTypeCommit ||
		!keyschedule.VerifyConfirmationTag(v.suite, confirmationKey, confirmedTranscriptHash, v.content.Auth.ConfirmationTag) {
		return ErrBadConfirmationTag
	}
	return nil
}
