package node

import (
	"fmt"

	"github.com/meshchat/meshchat/mls"
	"golang.org/x/crypto/cryptobyte"
)

// Policy is a group's admission policy for peers that ask to join by topic
// ID (see the package documentation, "Admission"). It is fixed at creation
// and carried in the group's GroupContext, so every member enforces the same
// one.
type Policy uint8

const (
	// Open admits any peer that knows the topic ID.
	Open Policy = 1
	// Invite admits only peers a member adds explicitly (Group.Add) and
	// peers that prove they hold an invite code a member issued
	// (Group.NewInvite).
	Invite Policy = 2
)

// String names the policy.
func (p Policy) String() string {
	switch p {
	case Open:
		return "open"
	case Invite:
		return "invite"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// groupExtensionType is the GroupContext extension (RFC 9420 §13.4) holding
// the group's name, policy and invite root. It is in the private-use range
// 0xF000..0xFFFF of RFC 9420 §17.3; every node lists it in
// mls.Config.SupportedExtensions, so its KeyPackages advertise it.
const groupExtensionType mls.ExtensionType = 0xF0C1

// groupMetaVersion is the only version of the extension's content.
const groupMetaVersion = 1

// inviteRootSize is the size of a group's invite root.
const inviteRootSize = 32

// maxGroupNameSize bounds a group name in bytes.
const maxGroupNameSize = 255

// groupMeta is the content of the group extension:
//
//	struct {
//	    uint8  version = 1;
//	    opaque name<0..255>;
//	    uint8  policy;                 // 1 = open, 2 = invite
//	    opaque invite_root[32];
//	} MeshchatGroup;
//
// The invite root is a secret of the members: the GroupContext travels only
// inside encrypted Welcomes and in GroupInfos, never in clear on the topic
// (see the package documentation, "Admission").
type groupMeta struct {
	Name       string
	Policy     Policy
	InviteRoot [inviteRootSize]byte
}

func (m *groupMeta) marshal() ([]byte, error) {
	if len(m.Name) > maxGroupNameSize {
		return nil, fmt.Errorf("group name of %d bytes exceeds %d", len(m.Name), maxGroupNameSize)
	}
	if m.Policy != Open && m.Policy != Invite {
		return nil, fmt.Errorf("unknown admission policy %d", m.Policy)
	}
	var b cryptobyte.Builder
	b.AddUint8(groupMetaVersion)
	b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes([]byte(m.Name)) })
	b.AddUint8(uint8(m.Policy))
	b.AddBytes(m.InviteRoot[:])
	return b.Bytes()
}

func parseGroupMeta(data []byte) (*groupMeta, error) {
	s := cryptobyte.String(data)
	var version, policy uint8
	var name cryptobyte.String
	m := new(groupMeta)
	if !s.ReadUint8(&version) || version != groupMetaVersion || !s.ReadUint8LengthPrefixed(&name) ||
		!s.ReadUint8(&policy) || !s.CopyBytes(m.InviteRoot[:]) || !s.Empty() {
		return nil, fmt.Errorf("group extension: %w", errBadEnvelope)
	}
	m.Name, m.Policy = string(name), Policy(policy)
	if m.Policy != Open && m.Policy != Invite {
		return nil, fmt.Errorf("group extension: policy %d: %w", policy, errBadEnvelope)
	}
	return m, nil
}

// groupMetaOf reads the group extension of an MLS group's GroupContext.
func groupMetaOf(g *mls.Group) (*groupMeta, error) {
	for _, e := range g.Extensions() {
		if e.Type == groupExtensionType {
			return parseGroupMeta(e.Data)
		}
	}
	return nil, fmt.Errorf("group has no meshchat extension: %w", errBadEnvelope)
}
