package node

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/meshchat/meshchat/gossip"
)

// Invite codes (see the package documentation, "Admission").
//
// A group's invite root R (32 random bytes in the group extension) is known to
// members only. An invite is an 8-byte random ID; its key is
//
//	K = HMAC-SHA256(R, "meshchat invite key v1" || id)
//
// and the code handed to the invitee is "<topic ID>.<base32(id || K)>". The
// invitee proves it holds the code with
//
//	MAC = HMAC-SHA256(K, "meshchat invite proof v1" || topic ID || KeyPackageRef)
//
// sent with its ID in the join request. Any member recomputes K from R and
// the ID, so invites need no distribution among members; the MAC binds the
// proof to the joiner's KeyPackage, so a proof copied off the topic admits
// only the KeyPackage it was made for, whose private keys only the invitee
// holds. K never appears on the topic.

const (
	inviteKeyLabel   = "meshchat invite key v1"
	inviteProofLabel = "meshchat invite proof v1"
)

// ErrBadInviteCode reports a string that is neither a topic ID nor an invite
// code.
var ErrBadInviteCode = errors.New("malformed invite code")

// codeEncoding is lowercase, unpadded RFC 4648 base32, as topic IDs use.
var codeEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// inviteKey derives the key of invite id from the group's invite root.
func inviteKey(root []byte, id [inviteIDSize]byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, root)
	m.Write([]byte(inviteKeyLabel))
	m.Write(id[:])
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// inviteMAC computes the proof of holding key for a join request on topic
// with the KeyPackage whose KeyPackageRef is ref.
func inviteMAC(key []byte, topic gossip.TopicID, ref []byte) [inviteMACSize]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(inviteProofLabel))
	m.Write([]byte(topic))
	m.Write(ref)
	var mac [inviteMACSize]byte
	m.Sum(mac[:0])
	return mac
}

// verifyInvite checks an invite proof against the group's invite root.
func verifyInvite(root []byte, topic gossip.TopicID, ref []byte, p *inviteProof) bool {
	key := inviteKey(root, p.ID)
	defer clear(key[:])
	want := inviteMAC(key[:], topic, ref)
	return hmac.Equal(want[:], p.MAC[:])
}

// formatInviteCode prints an invite code.
func formatInviteCode(topic gossip.TopicID, id [inviteIDSize]byte, key [sha256.Size]byte) string {
	raw := make([]byte, 0, inviteIDSize+sha256.Size)
	raw = append(raw, id[:]...)
	raw = append(raw, key[:]...)
	return string(topic) + "." + codeEncoding.EncodeToString(raw)
}

// joinCode is what Join was given: a topic ID and, for an invite code, the
// invite's ID and key.
type joinCode struct {
	Topic  gossip.TopicID
	Invite bool
	ID     [inviteIDSize]byte
	Key    [sha256.Size]byte
}

// parseJoinCode accepts a bare topic ID or an invite code.
func parseJoinCode(s string) (*joinCode, error) {
	topicPart, secretPart, hasSecret := strings.Cut(strings.TrimSpace(s), ".")
	topic, err := gossip.ParseTopicID(topicPart)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInviteCode, err)
	}
	c := &joinCode{Topic: topic}
	if !hasSecret {
		return c, nil
	}
	raw, err := codeEncoding.DecodeString(secretPart)
	if err != nil || len(raw) != inviteIDSize+sha256.Size || codeEncoding.EncodeToString(raw) != secretPart {
		return nil, fmt.Errorf("%w: bad secret part", ErrBadInviteCode)
	}
	c.Invite = true
	copy(c.ID[:], raw[:inviteIDSize])
	copy(c.Key[:], raw[inviteIDSize:])
	clear(raw)
	return c, nil
}

// NewInvite issues an invite code for the group: the topic ID and a secret
// from which any member can check a joiner's proof (see "Admission"). In an
// invite-only group, Join with the code admits its holder; in an open group
// the code works like the bare topic ID. Codes stay valid as long as the
// group exists; hand them out over a channel you trust.
func (g *Group) NewInvite() (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == nil || g.removed || g.meta == nil {
		return "", ErrNotMember
	}
	var id [inviteIDSize]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("invite: %w", err)
	}
	key := inviteKey(g.meta.InviteRoot[:], id)
	defer clear(key[:])
	return formatInviteCode(g.topicID, id, key), nil
}
