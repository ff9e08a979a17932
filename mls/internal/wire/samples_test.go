package wire

import (
	"encoding/binary"
)

// fill returns n bytes derived from seed, so samples differ from each other.
func fill(seed uint32, n int) []byte {
	out := make([]byte, n)
	var x = seed*2654435761 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		out[i] = byte(x)
	}
	return out
}

func sampleCapabilities() Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolVersionMLS10},
		CipherSuites: []CipherSuite{1, 3, 0x0a0a},
		Extensions:   []ExtensionType{0x1a1a, ExtensionTypeLastResort},
		Proposals:    []ProposalType{0x2a2a},
		Credentials:  []CredentialType{CredentialTypeBasic, CredentialTypeX509},
	}
}

// sampleLeafN is a realistic leaf (32-byte keys, 64-byte signature) for
// leaf index i.
func sampleLeafN(i uint32, source LeafNodeSource) LeafNode {
	id := binary.BigEndian.AppendUint32([]byte("member-"), i)
	leaf := LeafNode{
		EncryptionKey:  fill(4*i, 32),
		SignatureKey:   fill(4*i+1, 32),
		Credential:     Credential{CredentialType: CredentialTypeBasic, Identity: id},
		Capabilities:   sampleCapabilities(),
		LeafNodeSource: source,
		Extensions:     Extensions{{ExtensionType: 0x1a1a, ExtensionData: []byte{1, 2, 3}}},
		Signature:      fill(4*i+2, 64),
	}
	switch source {
	case LeafNodeSourceKeyPackage:
		leaf.Lifetime = Lifetime{NotBefore: 1700000000, NotAfter: 1800000000}
	case LeafNodeSourceCommit:
		leaf.ParentHash = fill(4*i+3, 32)
	}
	return leaf
}

func sampleLeaf(source LeafNodeSource) LeafNode { return sampleLeafN(7, source) }

func sampleKeyPackage() *KeyPackage {
	return &KeyPackage{
		Version:     ProtocolVersionMLS10,
		CipherSuite: 1,
		InitKey:     fill(99, 32),
		LeafNode:    sampleLeaf(LeafNodeSourceKeyPackage),
		Extensions:  Extensions{{ExtensionType: ExtensionTypeLastResort}},
		Signature:   fill(98, 64),
	}
}

func sampleGroupContext() GroupContext {
	return GroupContext{
		Version:                 ProtocolVersionMLS10,
		CipherSuite:             1,
		GroupID:                 []byte("group"),
		Epoch:                   42,
		TreeHash:                fill(1, 32),
		ConfirmedTranscriptHash: fill(2, 32),
	}
}

func sampleUpdatePath() *UpdatePath {
	return &UpdatePath{
		LeafNode: sampleLeaf(LeafNodeSourceCommit),
		Nodes: []UpdatePathNode{
			{EncryptionKey: fill(10, 32), EncryptedPathSecret: []HPKECiphertext{{KEMOutput: fill(11, 32), Ciphertext: fill(12, 48)}}},
			{EncryptionKey: fill(13, 32), EncryptedPathSecret: []HPKECiphertext{}},
		},
	}
}

// sampleProposals is one proposal of every type.
func sampleProposals() []Proposal {
	kp := sampleKeyPackage()
	return []Proposal{
		{ProposalType: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}},
		{ProposalType: ProposalTypeUpdate, Update: &Update{LeafNode: sampleLeaf(LeafNodeSourceUpdate)}},
		{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: 5}},
		{ProposalType: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("psk"), PSKNonce: fill(3, 32)}}},
		{ProposalType: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageBranch, PSKGroupID: []byte("old"), PSKEpoch: 9, PSKNonce: fill(4, 32)}}},
		{ProposalType: ProposalTypeReInit, ReInit: &ReInit{GroupID: []byte("new"), Version: ProtocolVersionMLS10, CipherSuite: 3, Extensions: Extensions{{ExtensionType: 0x8000}}}},
		{ProposalType: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: fill(5, 32)}},
		{ProposalType: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{Extensions: Extensions{{ExtensionType: ExtensionTypeRequiredCapabilities, ExtensionData: []byte{0, 0, 0}}}}},
	}
}

func sampleCommit() *Commit {
	props := sampleProposals()
	return &Commit{
		Proposals: []ProposalOrRef{
			{Type: ProposalOrRefTypeProposal, Proposal: &props[0]},
			{Type: ProposalOrRefTypeReference, Reference: fill(6, 32)},
			{Type: ProposalOrRefTypeProposal, Proposal: &props[2]},
		},
		Path: sampleUpdatePath(),
	}
}

func samplePublicCommit() *PublicMessage {
	return &PublicMessage{
		Content: FramedContent{
			GroupID:           []byte("group"),
			Epoch:             42,
			Sender:            MemberSender(3),
			AuthenticatedData: []byte("aad"),
			ContentType:       ContentTypeCommit,
			Commit:            sampleCommit(),
		},
		Auth:          FramedContentAuthData{Signature: fill(7, 64), ConfirmationTag: fill(8, 32)},
		MembershipTag: fill(9, 32),
	}
}

// sampleTree builds a full ratchet tree of the given number of leaves (all
// non-blank, source commit), with every third parent blank and some
// unmerged leaves, in the shape a real group produces.
func sampleTree(leaves int) RatchetTree {
	nodes := make(RatchetTree, 2*leaves-1)
	for i := range nodes {
		if i%2 == 0 {
			leaf := sampleLeafN(uint32(i/2), LeafNodeSourceCommit)
			nodes[i] = &Node{NodeType: NodeTypeLeaf, Leaf: &leaf}
			continue
		}
		if i%3 == 0 {
			continue
		}
		p := &ParentNode{EncryptionKey: fill(uint32(i)+1<<20, 32), ParentHash: fill(uint32(i)+1<<21, 32)}
		if i%5 == 0 {
			p.UnmergedLeaves = []uint32{uint32(i / 2), uint32(i/2 + 1)}
		}
		nodes[i] = &Node{NodeType: NodeTypeParent, Parent: p}
	}
	return nodes
}
