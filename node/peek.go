package node

import (
	"github.com/meshchat/meshchat/mls"
)

// Names of the MLS header values the node routes on (RFC 9420 §6).
const (
	wireFormatPublicMessage  = mls.WireFormatPublicMessage
	wireFormatPrivateMessage = mls.WireFormatPrivateMessage

	contentTypeApplication = mls.ApplicationMessage
	contentTypeProposal    = mls.ProposalMessage
	contentTypeCommit      = mls.CommitMessage

	senderTypeMember          = mls.SenderMember
	senderTypeNewMemberCommit = mls.SenderNewMemberCommit
)

// mlsHeader is the clear-text routing information of an MLSMessage: what the
// validator and the commit tracker need before a message is processed,
// notably the node's metadata in authenticated_data (message ID, parent
// state of a commit). Nothing in it is trusted beyond routing.
type mlsHeader struct {
	WireFormat mls.WireFormat
	// The fields below are set for PublicMessage and PrivateMessage only.
	GroupID           []byte
	Epoch             uint64
	ContentType       mls.MessageKind
	AuthenticatedData []byte
	// Sender is set for PublicMessage only (PrivateMessage encrypts it).
	SenderType  mls.SenderKind
	SenderIndex uint32
}

// peekMessage decodes an MLSMessage with mls.Inspect and returns its header.
func peekMessage(data []byte) (*mlsHeader, error) {
	info, err := mls.Inspect(data)
	if err != nil {
		return nil, err
	}
	return headerOf(info), nil
}

// headerOf is the routing header of an inspected message.
func headerOf(info *mls.MessageInfo) *mlsHeader {
	h := &mlsHeader{
		WireFormat:        info.WireFormat,
		GroupID:           info.GroupID,
		Epoch:             info.Epoch,
		ContentType:       info.Kind,
		AuthenticatedData: info.AuthenticatedData,
	}
	if info.Sender != nil {
		h.SenderType, h.SenderIndex = info.Sender.Kind, info.Sender.Index
	}
	return h
}
