package mls

// Member is one member of a group in the current epoch: its leaf index in
// the ratchet tree and what its leaf node says about it (RFC 9420 §7.2).
type Member struct {
	// Index is the member's leaf index, the number commits and Remove
	// proposals use to name it (RFC 9420 §4.1.1).
	Index uint32
	// Identity is the identity of the member's basic credential.
	Identity []byte
	// SignatureKey is the member's public signature key.
	SignatureKey []byte
	// EncryptionKey is the HPKE public key of the member's leaf node
	// (RFC 9420 §7.2, encryption_key). It changes whenever the member's
	// leaf is replaced: by a committed Update proposal (§12.1.2) or by the
	// UpdatePath of its own commit (§12.4.1), so comparing it across epochs
	// tells whether the member's keys were rotated.
	EncryptionKey []byte
}

// SenderKind says who sent a message (RFC 9420 §6).
type SenderKind uint8

// The sender kinds of RFC 9420 §6.
const (
	// SenderMember is a member of the group, at Sender.Index.
	SenderMember SenderKind = 1
	// SenderExternal is a party listed in the external_senders extension,
	// at position Sender.Index (RFC 9420 §12.1.8).
	SenderExternal SenderKind = 2
	// SenderNewMemberProposal is a client proposing its own addition
	// (RFC 9420 §12.1.8).
	SenderNewMemberProposal SenderKind = 3
	// SenderNewMemberCommit is a client joining by external commit
	// (RFC 9420 §12.4.3.2); Sender.Index is the leaf it takes.
	SenderNewMemberCommit SenderKind = 4
)

// String names the sender kind as RFC 9420 §6 does.
func (k SenderKind) String() string {
	switch k {
	case SenderMember:
		return "member"
	case SenderExternal:
		return "external"
	case SenderNewMemberProposal:
		return "new_member_proposal"
	case SenderNewMemberCommit:
		return "new_member_commit"
	}
	return "unknown"
}

// Sender identifies the authenticated sender of a received message.
type Sender struct {
	// Kind says how the sender relates to the group.
	Kind SenderKind
	// Index is the leaf index of a member or new member, or the position
	// of an external sender in the external_senders extension.
	Index uint32
	// Identity is the identity of the sender's credential.
	Identity []byte
	// SignatureKey is the key the message's signature was verified with.
	SignatureKey []byte
}

// MessageKind says what a received message carried.
type MessageKind uint8

// The kinds of group messages (RFC 9420 §6 content types).
const (
	// ApplicationMessage carries application data (RFC 9420 §15).
	ApplicationMessage MessageKind = 1
	// ProposalMessage carries a proposal (RFC 9420 §12.1), now cached for
	// the next commit.
	ProposalMessage MessageKind = 2
	// CommitMessage carries a commit (RFC 9420 §12.4); Received.Next is the
	// resulting state.
	CommitMessage MessageKind = 3
)

// String names the message kind.
func (k MessageKind) String() string {
	switch k {
	case ApplicationMessage:
		return "application"
	case ProposalMessage:
		return "proposal"
	case CommitMessage:
		return "commit"
	}
	return "unknown"
}

// Received is the outcome of processing a group message with
// Group.ProcessMessage.
type Received struct {
	// Kind says what the message carried.
	Kind MessageKind
	// Epoch is the epoch the message was sent in.
	Epoch uint64
	// Sender is the authenticated sender.
	Sender Sender
	// AuthenticatedData is the message's authenticated_data, sent in clear
	// but covered by its signature (RFC 9420 §6).
	AuthenticatedData []byte

	// Data is the application data of an ApplicationMessage.
	Data []byte

	// Proposal is the proposal of a ProposalMessage.
	Proposal *Proposal

	// Proposals lists, for a CommitMessage, the proposals the commit
	// applied, in commit order, each with its original sender.
	Proposals []Proposal

	// Next is, for a CommitMessage, the group state of the new epoch. The
	// *Group the message was processed with is left unchanged: adopt Next
	// when the commit is accepted (RFC 9420 §14). If the commit removed
	// this client, Next.Removed reports true; Next can still open
	// application messages of the epochs it retained.
	Next *Group
}

// Proposal describes one proposal (RFC 9420 §12.1), received or committed.
// Only the fields of its Type are set.
type Proposal struct {
	// Type is the proposal type.
	Type ProposalType
	// Sender is who proposed it.
	Sender Sender
	// Ref is the ProposalRef of a proposal sent on its own (RFC 9420
	// §5.2), nil for one sent inline in a commit.
	Ref []byte

	// KeyPackage is the KeyPackage an Add proposes to add.
	KeyPackage *KeyPackage
	// Leaf is the leaf index an Add added (once committed), an Update
	// updated or a Remove removes.
	Leaf uint32
	// PSKID is the psk_id of an external PreSharedKey proposal; for a
	// resumption PSK it is nil and PSKGroupID and PSKEpoch are set.
	PSKID []byte
	// PSKGroupID is the group of a resumption PreSharedKey proposal.
	PSKGroupID []byte
	// PSKEpoch is the epoch of a resumption PreSharedKey proposal.
	PSKEpoch uint64
	// Extensions are the new GroupContext extensions of a
	// GroupContextExtensions proposal, or the extensions of a ReInit.
	Extensions []Extension
	// ReInit describes a ReInit proposal.
	ReInit *ReInitParams
}

// ReInitParams are the parameters of the group that replaces a group being
// reinitialized (RFC 9420 §11.2, §12.1.5).
type ReInitParams struct {
	// GroupID is the new group's ID.
	GroupID []byte
	// CipherSuite is the new group's cipher suite.
	CipherSuite CipherSuite
	// Extensions are the new group's GroupContext extensions.
	Extensions []Extension
}
