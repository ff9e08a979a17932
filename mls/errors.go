package mls

import "errors"

// The errors below are the outcomes a caller can branch on with errors.Is.
// Every error returned by this package wraps at least one of them, with
// context naming the step that failed.
var (
	// ErrMalformed reports bytes that are not a valid encoding of the
	// expected MLS structure (RFC 9420 §2.1), or a message whose fields
	// contradict each other (a content type that does not match its sender
	// type, a proposal type an external sender may not send, ...).
	ErrMalformed = errors.New("mls: malformed message")

	// ErrUnsupportedCipherSuite reports a cipher suite this implementation
	// does not provide (RFC 9420 §17.1), or a message for another suite than
	// the group's.
	ErrUnsupportedCipherSuite = errors.New("mls: unsupported cipher suite")

	// ErrUnsupportedVersion reports a protocol version other than mls10
	// (RFC 9420 §6).
	ErrUnsupportedVersion = errors.New("mls: unsupported protocol version")

	// ErrUnsupportedExtension reports a GroupContext extension, required
	// capability or credential type this client does not support
	// (RFC 9420 §13.4): the group cannot be joined or the change applied.
	ErrUnsupportedExtension = errors.New("mls: unsupported extension")

	// ErrWrongGroup reports a message for another group (its group_id is not
	// this group's).
	ErrWrongGroup = errors.New("mls: message for another group")

	// ErrWrongEpoch reports a message whose epoch this state cannot process:
	// a handshake message for any epoch but the current one (RFC 9420 §12.1,
	// §12.4.2), or an application message from the future or from an epoch
	// whose keys were deleted. ErrFutureEpoch and ErrEpochNotRetained say
	// which, and both also match ErrWrongEpoch.
	ErrWrongEpoch = errors.New("mls: wrong epoch")

	// ErrFutureEpoch reports a message for an epoch after the current one;
	// the caller may keep it until it has processed the missing commits. It
	// also matches ErrWrongEpoch.
	ErrFutureEpoch = errors.New("mls: message from a future epoch")

	// ErrEpochNotRetained reports an application message from a past epoch
	// whose keys are no longer kept (Config.RetainedEpochs, RFC 9420 §15.3).
	// It also matches ErrWrongEpoch.
	ErrEpochNotRetained = errors.New("mls: epoch no longer retained")

	// ErrNotMember reports a sender that is not a member of the group in the
	// message's epoch: a blank or out-of-range leaf index, or an external
	// sender index the group does not list (RFC 9420 §6.3.2, §12.1.8).
	ErrNotMember = errors.New("mls: sender is not a member")

	// ErrRemoved reports that this client has been removed from the group:
	// the state can no longer send, nor read messages of epochs after its
	// removal (RFC 9420 §12.4.2).
	ErrRemoved = errors.New("mls: removed from the group")

	// ErrBadSignature reports a signature that does not verify: on a
	// FramedContent (RFC 9420 §6.1), a KeyPackage (§10), a LeafNode (§7.2) or
	// a GroupInfo (§12.4.3).
	ErrBadSignature = errors.New("mls: bad signature")

	// ErrBadMembershipTag reports a PublicMessage from a member whose
	// membership_tag is wrong (RFC 9420 §6.2).
	ErrBadMembershipTag = errors.New("mls: bad membership tag")

	// ErrBadConfirmationTag reports a Commit or GroupInfo whose
	// confirmation_tag does not match the new epoch's key schedule
	// (RFC 9420 §6.1, §12.4.2, §12.4.3.1): the sender and this client
	// disagree about the group state.
	ErrBadConfirmationTag = errors.New("mls: bad confirmation tag")

	// ErrDecrypt reports a PrivateMessage, path secret or Welcome that does
	// not decrypt (RFC 9420 §6.3, §12.4.3.1).
	ErrDecrypt = errors.New("mls: decryption failed")

	// ErrReplay reports a PrivateMessage whose key has already been used or
	// deleted (RFC 9420 §9.2): it was delivered before, or is too old, or
	// its generation is too far ahead of the sender's ratchet
	// (Config.MaxGenerationGap, §15.3).
	ErrReplay = errors.New("mls: message key already used or unavailable")

	// ErrOwnMessage reports a message sent by this client itself, echoed
	// back by the network: its keys were used up when it was sent, and its
	// content is already known.
	ErrOwnMessage = errors.New("mls: own message")

	// ErrOwnCommit reports a Commit created by this client itself, echoed
	// back by the network. The state is unchanged: the caller adopts the
	// PendingCommit.Next it kept when it created the commit. It also matches
	// ErrOwnMessage.
	ErrOwnCommit = errors.New("mls: own commit")

	// ErrInvalidProposalList reports a proposal list that breaks a rule of
	// RFC 9420 §12.2 (or of an individual proposal, §12.1); the wrapped
	// message names the rule.
	ErrInvalidProposalList = errors.New("mls: invalid proposal list")

	// ErrUnknownProposal reports a commit that references a proposal by a
	// ProposalRef this client has not received in the current epoch
	// (RFC 9420 §12.4).
	ErrUnknownProposal = errors.New("mls: unknown proposal reference")

	// ErrMissingPSK reports a pre-shared key named by a proposal or Welcome
	// that this client does not have (RFC 9420 §8.4, §12.4.2).
	ErrMissingPSK = errors.New("mls: pre-shared key not available")

	// ErrInvalidCommit reports a commit that breaks a structural rule of
	// RFC 9420 §12.4: a missing or unexpected path, a path whose leaf node or
	// keys are invalid, external-commit rules (§12.4.3.2).
	ErrInvalidCommit = errors.New("mls: invalid commit")

	// ErrInvalidLeafNode reports a LeafNode that fails RFC 9420 §7.3.
	ErrInvalidLeafNode = errors.New("mls: invalid leaf node")

	// ErrInvalidTree reports a ratchet tree that fails validation
	// (RFC 9420 §12.4.3.1): tree hash, parent hashes, unmerged leaves, leaf
	// nodes or duplicate keys.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")

	// ErrTreeRequired reports a Welcome or GroupInfo without a ratchet_tree
	// extension when no tree was supplied out of band (RFC 9420 §12.4.3.3).
	ErrTreeRequired = errors.New("mls: ratchet tree required")

	// ErrWelcomeNotForUs reports a Welcome with no entry for any of the
	// given KeyPackages (RFC 9420 §12.4.3.1).
	ErrWelcomeNotForUs = errors.New("mls: welcome is not for this client")

	// ErrInvalidGroupInfo reports a GroupInfo that cannot be used: wrong
	// signer, missing external_pub for an external join, inconsistent fields
	// (RFC 9420 §12.4.3).
	ErrInvalidGroupInfo = errors.New("mls: invalid group info")

	// ErrKeyPackageInvalid reports a KeyPackage that fails RFC 9420 §10.1.
	ErrKeyPackageInvalid = errors.New("mls: invalid key package")

	// ErrKeyPackageExpired reports a KeyPackage or LeafNode whose lifetime
	// does not cover the current time (RFC 9420 §7.2, §7.3). It also matches
	// ErrKeyPackageInvalid when it concerns a KeyPackage.
	ErrKeyPackageExpired = errors.New("mls: key package outside its lifetime")

	// ErrPendingProposals reports an attempt to send application data while
	// proposals of the current epoch are waiting to be committed
	// (RFC 9420 §12.4: a member that has seen valid proposals MUST commit
	// before sending application data).
	ErrPendingProposals = errors.New("mls: proposals pending, commit first")

	// ErrReInitPending reports an operation on a group that committed a
	// ReInit proposal: it must not be used to send messages any more
	// (RFC 9420 §12.4.2, §11.2).
	ErrReInitPending = errors.New("mls: group is being reinitialized")

	// ErrCorruptState reports persisted state that cannot be loaded: an
	// unknown format version, truncated or corrupt bytes.
	ErrCorruptState = errors.New("mls: corrupt persisted state")
)
