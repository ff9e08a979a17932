// Package framing protects and unprotects MLS handshake and application
// messages (RFC 9420 §6): it signs FramedContent into an AuthenticatedContent
// (§6.1), wraps it as a PublicMessage with a membership tag (§6.2) or as a
// PrivateMessage with padded, encrypted content and encrypted sender data
// (§6.3, §6.3.1, §6.3.2), and on receipt performs every check of those
// sections before handing content to the group.
//
// Receiving is two steps, so that content whose signature has not been
// checked cannot be mistaken for content that has:
//
//	u, err := epoch.UnprotectPrivate(msg, roster) // or UnprotectPublic: group, epoch, MAC/AEAD
//	v, err := u.Verify(roster)                    // signature with the sender's key
//
// Only Verify makes a *Verified, the type the group layer accepts. Unprotect
// does both steps for an MLSMessage. A commit's confirmation tag depends on
// the key schedule of the next epoch, so the group checks it afterwards with
// Verified.VerifyConfirmationTag.
//
// Sending mirrors it: Epoch.Sign, then (for a commit) setting
// Auth.ConfirmationTag, then ProtectPublic or ProtectPrivate.
package framing

import (
	"errors"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/secrettree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Errors callers branch on with errors.Is. Failures of the secret tree and of
// decoding keep their own sentinels, repeated here under the names
// ErrGenerationTooFar, ErrKeyConsumed and ErrMalformed so that callers of
// this package need no other.
var (
	// ErrGenerationTooFar reports a PrivateMessage whose generation lies
	// beyond the secret tree's forward window (RFC 9420 §9.2).
	ErrGenerationTooFar = secrettree.ErrGenerationTooFar
	// ErrKeyConsumed reports a PrivateMessage whose key was used already (a
	// replay) or dropped from the out-of-order window (RFC 9420 §9.2).
	ErrKeyConsumed = secrettree.ErrKeyConsumed
	// ErrMalformed reports a decrypted PrivateMessageContent or SenderData
	// that does not parse (RFC 9420 §6.3).
	ErrMalformed = wire.ErrMalformed

	// ErrBadSignature reports a FramedContentTBS signature that does not
	// verify under the sender's signature key (RFC 9420 §6.1).
	ErrBadSignature = errors.New("framing: bad signature")
	// ErrBadMembershipTag reports a PublicMessage from a member whose
	// membership_tag is not MAC(membership_key, AuthenticatedContentTBM),
	// including a tag of the wrong length or an empty one (RFC 9420 §6.2).
	ErrBadMembershipTag = errors.New("framing: bad membership tag")
	// ErrBadConfirmationTag reports a commit whose confirmation_tag is not
	// MAC(confirmation_key, confirmed_transcript_hash) (RFC 9420 §6.1, §8.2).
	ErrBadConfirmationTag = errors.New("framing: bad confirmation tag")
	// ErrWrongGroup reports a message whose group_id is not the group's.
	ErrWrongGroup = errors.New("framing: message for another group")
	// ErrWrongEpoch reports a message whose epoch is not the epoch used to
	// process it.
	ErrWrongEpoch = errors.New("framing: message for another epoch")
	// ErrSenderNotMember reports a member sender whose leaf index is blank
	// or outside the tree (RFC 9420 §6.1, §6.3.2).
	ErrSenderNotMember = errors.New("framing: sender is not a member")
	// ErrUnknownExternalSender reports an external sender whose
	// sender_index is not in the group's external_senders extension
	// (RFC 9420 §6.1, §12.1.8.1).
	ErrUnknownExternalSender = errors.New("framing: unknown external sender")
	// ErrSenderNotAllowed reports a sender type that may not send this
	// content or wire format (RFC 9420 §6.1, §12.1.8): an external sender
	// with anything but an allowed proposal, a new_member_proposal sender
	// with anything but an Add, a new_member_commit sender with anything but
	// a commit carrying a path, or a non-member in a PrivateMessage.
	ErrSenderNotAllowed = errors.New("framing: sender type not allowed for this content")
	// ErrApplicationInPublic reports application data framed as a
	// PublicMessage, which MLS never accepts (RFC 9420 §6).
	ErrApplicationInPublic = errors.New("framing: application data in a PublicMessage")
	// ErrDecryption reports a PrivateMessage whose sender data or content
	// fails AEAD decryption (RFC 9420 §6.3). The secret tree is unchanged.
	ErrDecryption = errors.New("framing: decryption failed")
	// ErrNonZeroPadding reports a PrivateMessageContent whose padding holds
	// a non-zero byte; the message is malformed (RFC 9420 §6.3.1).
	ErrNonZeroPadding = errors.New("framing: non-zero padding")
	// ErrWrongWireFormat reports content framed for one wire format handed
	// to the other, or an MLSMessage that is not a Public/PrivateMessage.
	ErrWrongWireFormat = errors.New("framing: wrong wire format")
	// ErrMissingKeys reports an Epoch built without the key a message needs
	// (membership key, sender data secret or secret tree).
	ErrMissingKeys = errors.New("framing: epoch lacks the key this message needs")
)

// Roster answers the questions about senders that only the group's state can
// answer (RFC 9420 §6.1, §6.3.2). The group implements it over its ratchet
// tree and GroupContext extensions.
type Roster interface {
	// MemberSignatureKey returns the signature_key of the LeafNode at leaf,
	// and false when that leaf is blank or outside the tree.
	MemberSignatureKey(leaf treemath.LeafIndex) (key []byte, ok bool)
	// ExternalSenderSignatureKey returns the signature_key of entry index
	// of the group's external_senders extension, and false when there is
	// no such entry.
	ExternalSenderSignatureKey(index uint32) (key []byte, ok bool)
}

// EpochKeys are the secrets of one epoch that message protection uses
// (RFC 9420 §8, §9). Each may be nil when no message needs it: a new joiner
// signing an external commit has none of them.
type EpochKeys struct {
	// MembershipKey keys the membership tag of PublicMessages from members.
	MembershipKey []byte
	// SenderDataSecret derives the sender data key and nonce of
	// PrivateMessages.
	SenderDataSecret []byte
	// SecretTree gives the content keys of PrivateMessages; protecting and
	// unprotecting advance its ratchets.
	SecretTree *secrettree.Tree
}

// Epoch protects and unprotects the messages of one epoch of one group. It
// keeps references to the keys it was given, not copies: their owner (the
// group's key schedule) zeroes them when the epoch is retired. An Epoch is
// not safe for concurrent use, because its secret tree is not.
type Epoch struct {
	suite        *ciphersuite.Suite
	groupContext []byte // encoded GroupContext
	groupID      []byte
	epoch        uint64
	keys         EpochKeys
}

// NewEpoch prepares message protection for the epoch that groupContext
// describes, in suite. Keys that are present must have the suite's length.
func NewEpoch(suite *ciphersuite.Suite, groupContext *wire.GroupContext, keys EpochKeys) (*Epoch, error) {
	if suite == nil || groupContext == nil {
		return nil, errors.New("framing: new epoch: nil suite or group context")
	}
	if uint16(groupContext.CipherSuite) != uint16(suite.ID()) {
		return nil, fmt.Errorf("framing: new epoch: group context of suite 0x%04x used with %v", uint16(groupContext.CipherSuite), suite)
	}
	for _, k := range []struct {
		name   string
		secret []byte
	}{{"membership_key", keys.MembershipKey}, {"sender_data_secret", keys.SenderDataSecret}} {
		if k.secret != nil && len(k.secret) != suite.HashSize() {
			return nil, fmt.Errorf("framing: new epoch: %s of %d bytes, want %d", k.name, len(k.secret), suite.HashSize())
		}
	}
	gc, err := wire.Marshal(groupContext)
	if err != nil {
		return nil, fmt.Errorf("framing: new epoch: %w", err)
	}
	return &Epoch{
		suite:        suite,
		groupContext: gc,
		groupID:      append([]byte(nil), groupContext.GroupID...),
		epoch:        groupContext.Epoch,
		keys:         keys,
	}, nil
}

// Suite is the epoch's cipher suite.
func (e *Epoch) Suite() *ciphersuite.Suite { return e.suite }

// GroupContext is the encoded GroupContext of the epoch, which member and
// new_member_commit signatures cover. The caller must not modify it.
func (e *Epoch) GroupContext() []byte { return e.groupContext }

// checkGroupEpoch checks that a message's group_id and epoch are this
// epoch's.
func (e *Epoch) checkGroupEpoch(groupID []byte, epoch uint64) error {
	if string(groupID) != string(e.groupID) {
		return ErrWrongGroup
	}
	if epoch != e.epoch {
		return fmt.Errorf("%w: message epoch %d, group epoch %d", ErrWrongEpoch, epoch, e.epoch)
	}
	return nil
}

// Unprotect is UnprotectPublic or UnprotectPrivate, as msg's wire format
// says, followed by Verify: the whole receive path for a handshake or
// application message. Other wire formats yield ErrWrongWireFormat.
func (e *Epoch) Unprotect(msg *wire.MLSMessage, roster Roster) (*Verified, error) {
	var u *Unverified
	var err error
	switch {
	case msg.WireFormat == wire.WireFormatPublicMessage && msg.PublicMessage != nil:
		u, err = e.UnprotectPublic(msg.PublicMessage)
	case msg.WireFormat == wire.WireFormatPrivateMessage && msg.PrivateMessage != nil:
		u, err = e.UnprotectPrivate(msg.PrivateMessage, roster)
	default:
		return nil, fmt.Errorf("framing: unprotect %v: %w", msg.WireFormat, ErrWrongWireFormat)
	}
	if err != nil {
		return nil, err
	}
	return u.Verify(roster)
}
