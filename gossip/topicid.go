package gossip

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// topicIDLabel separates the topic ID hash from every other hash of a group
// ID.
const topicIDLabel = "meshchat topic v1"

// topicNamePrefix starts every meshchat group topic; the "1" is the version of
// this naming and of the message rules on the topic.
const topicNamePrefix = "/meshchat/group/1/"

// TopicIDLength is the length of a TopicID: 256 bits in base32.
const TopicIDLength = 52

// ErrBadTopicID reports a string that is not a well-formed TopicID.
var ErrBadTopicID = errors.New("malformed topic ID")

// topicEncoding is lowercase RFC 4648 base32 without padding.
var topicEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// TopicID names a group's GossipSub topic. It is the lowercase, unpadded
// base32 encoding of SHA-256("meshchat topic v1" || group_id), where group_id
// is the MLS group ID (RFC 9420 §8.1): 52 characters from [a-z2-7], safe to
// print, copy and type.
//
// A TopicID is as hard to guess as the group ID it comes from, so group IDs
// must be random (at least 16 bytes). Anyone who sees the group's traffic
// learns the group ID (it is in the clear in every MLS message, RFC 9420 §6),
// and with it the topic ID; the topic ID keeps outsiders off the topic, not
// members' observers.
type TopicID string

// TopicIDForGroup derives the TopicID of the MLS group with ID groupID.
func TopicIDForGroup(groupID []byte) TopicID {
	h := sha256.New()
	h.Write([]byte(topicIDLabel))
	h.Write(groupID)
	return TopicID(topicEncoding.EncodeToString(h.Sum(nil)))
}

// ParseTopicID checks that s is a TopicID as TopicIDForGroup prints it and
// returns it.
func ParseTopicID(s string) (TopicID, error) {
	if len(s) != TopicIDLength {
		return "", fmt.Errorf("topic ID of %d characters, want %d: %w", len(s), TopicIDLength, ErrBadTopicID)
	}
	if strings.ToLower(s) != s {
		return "", fmt.Errorf("topic ID %q is not lowercase: %w", s, ErrBadTopicID)
	}
	raw, err := topicEncoding.DecodeString(s)
	if err != nil || len(raw) != sha256.Size {
		return "", fmt.Errorf("topic ID %q is not base32 of 32 bytes: %w", s, ErrBadTopicID)
	}
	// The last character carries 4 unused bits; only the spelling with
	// them zero is accepted, so every ID has exactly one spelling.
	if topicEncoding.EncodeToString(raw) != s {
		return "", fmt.Errorf("topic ID %q is not canonical: %w", s, ErrBadTopicID)
	}
	return TopicID(s), nil
}

// PubsubTopic returns the GossipSub topic name of t:
// "/meshchat/group/1/<topic ID>".
func (t TopicID) PubsubTopic() string {
	return topicNamePrefix + string(t)
}

// String returns t itself.
func (t TopicID) String() string { return string(t) }
