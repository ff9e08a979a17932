package commitorder

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// The tests drive the tracker with a deterministic fake of an MLS group: a
// state is only an ID, the state after a commit is SHA-256(parent ID ||
// commit bytes), and a commit's bytes are the JSON of fakeCommit. The fake
// also checks the tracker's use of states: no Apply after Release, no double
// Release, and counts the states alive.

// fakeCommit is what the bytes of a fake commit say.
type fakeCommit struct {
	Valid bool         // an invalid commit fails Apply, as a bad signature would
	Nonce uint64       // makes every commit unique
	Refs  []ProposalID // proposals included by reference: must have been received
	Vals  []ProposalID // proposals included by value
}

func encodeCommit(fc fakeCommit) []byte {
	b, err := json.Marshal(fc)
	if err != nil {
		panic(err) // cannot happen for this type
	}
	return b
}

// owner is the fake node of one member: what its states share.
type owner struct {
	name    string
	cache   map[StateID]map[ProposalID]bool // proposals received, per state
	ever    map[StateID]bool                // every state this member applied: it can open messages sealed in them
	live    int                             // states created by Apply and not released
	misuse  []string                        // misuse of states by the tracker
	world   *world                          // shared truth, may be nil
	applied int                             // Apply calls that produced a state
}

// world is the shared truth of a simulation: where each state came from.
type world struct {
	parent  map[StateID]StateID
	via     map[StateID]*candidate
	applied map[StateID][]ProposalID
}

func newOwner(name string, w *world) *owner {
	return &owner{name: name, cache: map[StateID]map[ProposalID]bool{}, ever: map[StateID]bool{}, world: w}
}

func (o *owner) receiveProposal(on StateID, id ProposalID) {
	if o.cache[on] == nil {
		o.cache[on] = map[ProposalID]bool{}
	}
	o.cache[on][id] = true
}

type fakeState struct {
	id       StateID
	epoch    uint64
	o        *owner
	released bool
	scratch  bool // built from a GroupInfo to make an external commit: not counted
}

// rootState returns o's copy of the group's first state.
func (o *owner) rootState(id StateID) *fakeState {
	o.live++
	o.ever[id] = true
	return &fakeState{id: id, epoch: 0, o: o}
}

func (s *fakeState) ID() StateID   { return s.id }
func (s *fakeState) Epoch() uint64 { return s.epoch }

func (s *fakeState) Apply(c Commit) (State, []ProposalID, error) {
	if s.released {
		s.o.misuse = append(s.o.misuse, fmt.Sprintf("%s: Apply on released state %v", s.o.name, s.id))
	}
	var fc fakeCommit
	if err := json.Unmarshal(c.Bytes, &fc); err != nil {
		return nil, nil, fmt.Errorf("fake: decode: %w", err)
	}
	if !fc.Valid {
		return nil, nil, errors.New("fake: bad signature")
	}
	if c.Parent != s.id {
		return nil, nil, errors.New("fake: confirmation tag does not match this state")
	}
	for _, r := range fc.Refs {
		if !s.o.cache[s.id][r] {
			return nil, nil, fmt.Errorf("fake: %w", ErrMissingProposals)
		}
	}
	h := sha256.New()
	h.Write(s.id[:])
	h.Write(c.Bytes)
	var id StateID
	h.Sum(id[:0])
	applied := append(append([]ProposalID{}, fc.Refs...), fc.Vals...)
	if w := s.o.world; w != nil {
		w.parent[id] = s.id
		w.via[id] = newCandidate(c, timeZero)
		w.applied[id] = applied
	}
	s.o.live++
	s.o.applied++
	s.o.ever[id] = true
	return &fakeState{id: id, epoch: s.epoch + 1, o: s.o}, applied, nil
}

func (s *fakeState) Release() {
	if s.scratch {
		return
	}
	if s.released {
		s.o.misuse = append(s.o.misuse, fmt.Sprintf("%s: double Release of %v", s.o.name, s.id))
	}
	s.released = true
	s.o.live--
}
