package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshchat/meshchat/commitorder"
	"github.com/meshchat/meshchat/gossip"
	"golang.org/x/crypto/cryptobyte"
)

// The node's own wire formats (see the package documentation, "Wire
// formats"). They wrap or accompany MLS bytes, never change them. All start
// with the two bytes "mc" and a version, which an MLSMessage (first two bytes
// 0x00 0x01, ProtocolVersion mls10) can never start with, so a topic message
// is unambiguously one or the other.

// envelopeMagic starts every node envelope and metadata block.
const envelopeMagic = "mc"

// envelopeVersion is the only version of the formats below.
const envelopeVersion = 1

// Envelope and metadata types.
const (
	envelopeJoinRequest = 1 // topic message: a join request
	metaApplication     = 2 // authenticated_data of an application message
	metaCommit          = 3 // authenticated_data of a commit
	syncRequestType     = 4 // sync protocol: what the asker has (sync.go)
	syncResponseType    = 5 // sync protocol: what it lacks (sync.go)
	branchRequestType   = 6 // sync protocol: ask for a member's branch (rejoin.go)
	branchResponseType  = 7 // sync protocol: a GroupInfo and its Path (rejoin.go)
	metaRejoinCommit    = 8 // authenticated_data of an external commit rejoining a winning branch
)

// Sizes of fixed fields.
const (
	inviteIDSize  = 8
	inviteMACSize = 32
	messageIDSize = 16
)

// errBadEnvelope reports node envelope or metadata bytes that do not decode.
var errBadEnvelope = errors.New("malformed meshchat envelope")

// isEnvelope reports whether a topic message is a node envelope rather than
// an MLSMessage.
func isEnvelope(data []byte) bool {
	return len(data) >= 2 && string(data[:2]) == envelopeMagic
}

// addHeader appends magic, version and type.
func addHeader(b *cryptobyte.Builder, typ uint8) {
	b.AddBytes([]byte(envelopeMagic))
	b.AddUint8(envelopeVersion)
	b.AddUint8(typ)
}

// readHeader consumes magic, version and type and checks the type.
func readHeader(s *cryptobyte.String, typ uint8) error {
	var magic []byte
	var version, got uint8
	if !s.ReadBytes(&magic, 2) || !s.ReadUint8(&version) || !s.ReadUint8(&got) {
		return fmt.Errorf("%w: truncated header", errBadEnvelope)
	}
	if string(magic) != envelopeMagic {
		return fmt.Errorf("%w: bad magic", errBadEnvelope)
	}
	if version != envelopeVersion {
		return fmt.Errorf("%w: version %d", errBadEnvelope, version)
	}
	if got != typ {
		return fmt.Errorf("%w: type %d, want %d", errBadEnvelope, got, typ)
	}
	return nil
}

// inviteProof proves knowledge of an invite code's key without revealing it:
// the invite's ID and an HMAC under the invite key over the topic ID and the
// joiner's KeyPackageRef (see invite.go).
type inviteProof struct {
	ID  [inviteIDSize]byte
	MAC [inviteMACSize]byte
}

// joinRequest is what a joiner publishes on a group's topic to be admitted.
type joinRequest struct {
	// Topic is the topic the request is for; a request copied to another
	// topic is refused.
	Topic gossip.TopicID
	// KeyPackage is an MLSMessage carrying the joiner's KeyPackage, exactly
	// as mls produced it.
	KeyPackage []byte
	// Invite is the invite proof, for invite-only groups.
	Invite *inviteProof
}

// marshal encodes the request as a topic envelope:
//
//	opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 1;
//	opaque topic_id<1..2^8-1>;
//	opaque key_package<1..2^24-1>;
//	uint8 has_invite;                  // 0 or 1
//	select (has_invite) { case 1: opaque invite_id[8]; opaque invite_mac[32]; }
func (r *joinRequest) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	addHeader(&b, envelopeJoinRequest)
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(r.Topic)) })
	b.AddUint24LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(r.KeyPackage) })
	if r.Invite == nil {
		b.AddUint8(0)
	} else {
		b.AddUint8(1)
		b.AddBytes(r.Invite.ID[:])
		b.AddBytes(r.Invite.MAC[:])
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode join request: %w", err)
	}
	return out, nil
}

// parseJoinRequest decodes a join request envelope strictly.
func parseJoinRequest(data []byte) (*joinRequest, error) {
	s := cryptobyte.String(data)
	if err := readHeader(&s, envelopeJoinRequest); err != nil {
		return nil, err
	}
	var topic, kp cryptobyte.String
	var has uint8
	if !s.ReadUint8LengthPrefixed(&topic) || !s.ReadUint24LengthPrefixed(&kp) || !s.ReadUint8(&has) {
		return nil, fmt.Errorf("%w: truncated join request", errBadEnvelope)
	}
	tid, err := gossip.ParseTopicID(string(topic))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadEnvelope, err)
	}
	if len(kp) == 0 {
		return nil, fmt.Errorf("%w: empty KeyPackage", errBadEnvelope)
	}
	r := &joinRequest{Topic: tid, KeyPackage: []byte(kp)}
	switch has {
	case 0:
	case 1:
		r.Invite = new(inviteProof)
		if !s.CopyBytes(r.Invite.ID[:]) || !s.CopyBytes(r.Invite.MAC[:]) {
			return nil, fmt.Errorf("%w: truncated invite proof", errBadEnvelope)
		}
	default:
		return nil, fmt.Errorf("%w: has_invite %d", errBadEnvelope, has)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadEnvelope, len(s))
	}
	return r, nil
}

// appMeta is the authenticated_data of every application message the node
// sends. It travels in clear (RFC 9420 §6.3) but is covered by the AEAD and
// the sender's signature, so receivers can trust it as much as the content.
type appMeta struct {
	// ID names the message across re-sent copies (commitorder.MessageID).
	ID commitorder.MessageID
	// SentAt is the sender's clock when it sent the message (microseconds).
	SentAt time.Time
	// Seq counts the sender's messages in the group, from 1.
	Seq uint64
}

// marshal encodes the metadata:
//
//	opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 2;
//	opaque message_id[16];
//	uint64 sent_at;        // Unix microseconds
//	uint64 seq;
func (m *appMeta) marshal() []byte {
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, 4+messageIDSize+16))
	addHeader(b, metaApplication)
	b.AddBytes(m.ID[:])
	b.AddUint64(uint64(m.SentAt.UnixMicro()))
	b.AddUint64(m.Seq)
	return b.BytesOrPanic() // fixed size, cannot fail
}

// parseAppMeta decodes application metadata strictly.
func parseAppMeta(data []byte) (*appMeta, error) {
	s := cryptobyte.String(data)
	if err := readHeader(&s, metaApplication); err != nil {
		return nil, err
	}
	m := new(appMeta)
	var sent uint64
	if !s.CopyBytes(m.ID[:]) || !s.ReadUint64(&sent) || !s.ReadUint64(&m.Seq) || !s.Empty() {
		return nil, fmt.Errorf("%w: application metadata of %d bytes", errBadEnvelope, len(data))
	}
	if sent > 1<<62 {
		return nil, fmt.Errorf("%w: sent_at out of range", errBadEnvelope)
	}
	m.SentAt = time.UnixMicro(int64(sent))
	return m, nil
}

// commitMeta is the authenticated_data of every commit the node sends: the
// state the commit was made on, which commitorder.Commit.Parent needs before
// the commit is processed (issue 6), and which lets a validator tell a commit
// that claims our state (and must verify against it) from one made on a
// branch we do not hold. An external commit by which a member rejoins the
// group (RFC 9420 §12.4.3.2, resync) also names the last state the rejoiner
// shared with the group (commitorder.Commit.RejoinSince), so that the
// members re-send what it could not read.
type commitMeta struct {
	Parent commitorder.StateID
	// RejoinSince is zero except on a rejoin commit.
	RejoinSince commitorder.StateID
}

// marshal encodes the metadata, as a CommitMeta if RejoinSince is zero and
// as a RejoinCommitMeta otherwise:
//
//	opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 3;
//	opaque parent_state[32];   // commitorder.NewStateID(epoch_authenticator)
//
//	opaque magic[2] = "mc"; uint8 version = 1; uint8 type = 8;
//	opaque parent_state[32];
//	opaque rejoin_since[32];   // a StateID, never all zero
func (m *commitMeta) marshal() []byte {
	if m.RejoinSince.IsZero() {
		b := cryptobyte.NewFixedBuilder(make([]byte, 0, 4+len(m.Parent)))
		addHeader(b, metaCommit)
		b.AddBytes(m.Parent[:])
		return b.BytesOrPanic() // fixed size, cannot fail
	}
	b := cryptobyte.NewFixedBuilder(make([]byte, 0, 4+len(m.Parent)+len(m.RejoinSince)))
	addHeader(b, metaRejoinCommit)
	b.AddBytes(m.Parent[:])
	b.AddBytes(m.RejoinSince[:])
	return b.BytesOrPanic() // fixed size, cannot fail
}

// parseCommitMeta decodes commit metadata (either type) strictly.
func parseCommitMeta(data []byte) (*commitMeta, error) {
	typ := uint8(metaCommit)
	if len(data) >= 4 && data[3] == metaRejoinCommit {
		typ = metaRejoinCommit
	}
	s := cryptobyte.String(data)
	if err := readHeader(&s, typ); err != nil {
		return nil, err
	}
	m := new(commitMeta)
	if !s.CopyBytes(m.Parent[:]) {
		return nil, fmt.Errorf("%w: commit metadata of %d bytes", errBadEnvelope, len(data))
	}
	if typ == metaRejoinCommit && (!s.CopyBytes(m.RejoinSince[:]) || m.RejoinSince.IsZero()) {
		return nil, fmt.Errorf("%w: rejoin commit metadata of %d bytes", errBadEnvelope, len(data))
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: commit metadata of %d bytes", errBadEnvelope, len(data))
	}
	return m, nil
}

// checkSender reports a RejoinSince on a commit that is not an external
// commit (RFC 9420 §12.4.3.2, sender type new_member_commit): only a
// rejoining member may ask the others to re-send.
func (m *commitMeta) checkSender(h *mlsHeader) error {
	if !m.RejoinSince.IsZero() && h.SenderType != senderTypeNewMemberCommit {
		return fmt.Errorf("%w: rejoin metadata on a commit of sender type %d", errBadEnvelope, h.SenderType)
	}
	return nil
}
