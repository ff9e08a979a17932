package commitorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// StateID names one group state: one epoch of one branch. Epoch numbers repeat
// across branches (two commits for epoch E both lead to an epoch E+1), so a
// state is named by a value that only that branch has. Derive it with
// NewStateID from the epoch_authenticator (RFC 9420 §8.7).
type StateID [32]byte

// NewStateID derives the StateID of a state from its epoch_authenticator
// (RFC 9420 §8.7), a value every member on the same branch computes alike and
// no other branch shares. The authenticator is hashed under a label so the ID
// can be carried in messages without revealing the authenticator itself.
func NewStateID(epochAuthenticator []byte) StateID {
	h := sha256.New()
	h.Write([]byte("meshchat commitorder state id\x00"))
	h.Write(epochAuthenticator)
	var id StateID
	h.Sum(id[:0])
	return id
}

// IsZero reports whether id is the zero value, which names no state.
func (id StateID) IsZero() bool { return id == StateID{} }

// String returns a short hex prefix of id for logs.
func (id StateID) String() string { return hex.EncodeToString(id[:6]) }

// ProposalID names a change (an Add, Update, Remove, ... of RFC 9420 §12.1)
// independently of the epoch it is proposed in. It is not the ProposalRef of
// RFC 9420 §5.2, which covers the framing and so changes every time the same
// change is proposed again in a new epoch. Derive it with NewProposalID.
type ProposalID [32]byte

// NewProposalID derives the ProposalID of a change from the encoded Proposal
// struct of RFC 9420 §12.1 (type and body, without the framing): proposing the
// same Proposal again in a later epoch keeps its ProposalID.
func NewProposalID(encodedProposal []byte) ProposalID {
	h := sha256.New()
	h.Write([]byte("meshchat commitorder proposal id\x00"))
	h.Write(encodedProposal)
	var id ProposalID
	h.Sum(id[:0])
	return id
}

// MessageID names one application message across every copy of it: the
// sender picks it at random once and carries it in the authenticated_data
// (RFC 9420 §6) of every PrivateMessage that carries the message, the first
// one and any re-sent in a winning branch. Receivers de-duplicate on it (see
// Dedup); they should bind it to the authenticated sender so that one member
// cannot suppress another's message by reusing its ID.
type MessageID [16]byte

// Committer says who made a commit, which decides its rank (rule 1 in the
// package doc): a member commit ranks by the committer's leaf index, lowest
// first; an external commit (sender type new_member_commit, RFC 9420
// §12.4.3.2) has no leaf yet and ranks after every member commit.
type Committer struct {
	// Leaf is the committer's leaf index (RFC 9420 §6 Sender, type member).
	// It is ignored when External is set.
	Leaf uint32
	// External marks an external commit (RFC 9420 §12.4.3.2).
	External bool
}

// rank orders committers: leaf indexes first, external commits after all.
func (c Committer) rank() uint64 {
	if c.External {
		return 1 << 32
	}
	return uint64(c.Leaf)
}

// Commit is one candidate commit for an epoch, as the node decoded it from
// the wire. The tracker never parses Bytes: it hands the commit back to
// State.Apply and hashes Bytes to break ties.
type Commit struct {
	// Epoch is the epoch the commit was made in, the epoch field of its
	// FramedContent (RFC 9420 §6): the epoch of Parent.
	Epoch uint64
	// Parent names the state the commit was made on. The node carries it in
	// the commit's authenticated_data (RFC 9420 §6), which is readable before
	// decryption; a false claim makes Apply fail on that state.
	Parent StateID
	// Committer ranks the commit.
	Committer Committer
	// RejoinSince is set on an external commit by which a former member
	// resyncs (RFC 9420 §12.4.3.2, the external commit that removes the
	// joiner's old leaf): it names the last state the rejoiner shared with the
	// group. Members that apply the commit re-send what they sent after that
	// state, which the rejoiner could not read. Zero on every other commit.
	RejoinSince StateID
	// Bytes is the MLSMessage carrying the commit, exactly as received.
	Bytes []byte
}

// Hash returns the SHA-256 of the commit's bytes: the tie-break between
// external commits and the commit's identity for de-duplication.
func (c *Commit) Hash() [32]byte { return sha256.Sum256(c.Bytes) }

// Proposal is a change a member wants committed (RFC 9420 §12.1), as an ID
// the tracker compares and bytes it hands back to the node untouched.
type Proposal struct {
	// ID names the change across epochs (see NewProposalID).
	ID ProposalID
	// Bytes is the node's encoding of the proposal, e.g. the Proposal struct
	// to put into a new proposal message in the current epoch.
	Bytes []byte
}

// ErrMissingProposals is what State.Apply wraps when a commit references a
// proposal (RFC 9420 §12.4, ProposalOrRef of type reference) that has not
// arrived yet. Such a commit is not invalid: the tracker keeps it and tries
// again when ReceiveProposal reports a proposal for the same state.
var ErrMissingProposals = errors.New("commitorder: commit references proposals not received yet")

// ErrInvalidCommit is returned by Receive for a commit that Apply rejected or
// whose epoch does not match its parent; it never wins (rule 1).
var ErrInvalidCommit = errors.New("commitorder: invalid commit")

// rankKey is what rule 1 compares: the committer's rank, then the hash.
type rankKey struct {
	rank uint64
	hash [32]byte
}

// lowerRank is rule 1: a beats b if its committer ranks lower, or, at equal
// rank (two external commits, or a member that equivocated), if its hash is
// lower.
func lowerRank(a, b rankKey) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return bytes.Compare(a.hash[:], b.hash[:]) < 0
}

// candidate is a commit with the facts the tracker derives from it once.
type candidate struct {
	Commit
	key rankKey
	at  time.Time // when it reached the tracker
}

func newCandidate(c Commit, now time.Time) *candidate {
	return &candidate{Commit: c, key: rankKey{c.Committer.rank(), c.Hash()}, at: now}
}
