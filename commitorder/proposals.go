package commitorder

import (
	"bytes"
	"slices"
	"time"
)

// Propose registers a change this member wants committed, which the node
// sends now as a proposal in the current state. Until a commit on our branch
// applies it, every Decision that moves Current lists it in Repropose, so it
// is proposed again in each new epoch, and ToCommit offers it to whoever
// commits next. This is how a member that keeps losing commit races still
// gets its changes in (rule 6, RFC 9420 §14). It is forgotten after
// Retention, or by Withdraw.
func (t *Tracker) Propose(p Proposal, now time.Time) {
	if !slices.ContainsFunc(t.wanted, func(w heard) bool { return w.p.ID == p.ID }) {
		t.wanted = append(t.wanted, heard{p: p, at: now})
	}
	t.hear(t.Current().ID(), p, now)
}

// Withdraw forgets an own change, for example an Add whose KeyPackage
// expired: it is neither re-proposed nor offered by ToCommit any more.
func (t *Tracker) Withdraw(id ProposalID) {
	t.wanted = slices.DeleteFunc(t.wanted, func(w heard) bool { return w.p.ID == id })
	for sid, hs := range t.heard {
		kept := slices.DeleteFunc(hs, func(h heard) bool { return h.p.ID == id })
		t.nHeard -= len(hs) - len(kept)
		t.heard[sid] = kept
	}
}

// ReceiveProposal records a proposal sent in state on (by another member, or
// re-sent by us), after the node has checked it and cached it for that
// state's epoch. A commit waiting for it is applied now.
func (t *Tracker) ReceiveProposal(on StateID, p Proposal, now time.Time) Decision {
	s := t.begin(now)
	t.hear(on, p, now)
	var retry []*candidate
	t.waiting = slices.DeleteFunc(t.waiting, func(w *candidate) bool {
		if w.Parent == on {
			retry = append(retry, w)
			return true
		}
		return false
	})
	for _, w := range retry {
		t.place(w, now, s)
	}
	t.end(now, s)
	return s.d
}

// ToCommit returns the proposals pending in the current state, ordered by
// ID: the node's next commit must include them by reference (those it cannot
// include under RFC 9420 §12.2, such as its own Update, it leaves out).
// Committing what others proposed is what keeps them from starving.
func (t *Tracker) ToCommit() []Proposal {
	hs := t.heard[t.Current().ID()]
	ps := make([]Proposal, 0, len(hs))
	for _, h := range hs {
		ps = append(ps, h.p)
	}
	slices.SortFunc(ps, func(a, b Proposal) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return ps
}

// hear stores a proposal for a state, once; beyond Limit new ones are dropped.
func (t *Tracker) hear(on StateID, p Proposal, now time.Time) {
	if slices.ContainsFunc(t.heard[on], func(h heard) bool { return h.p.ID == p.ID }) || t.nHeard >= t.cfg.Limit {
		return
	}
	t.heard[on] = append(t.heard[on], heard{p: p, at: now})
	t.nHeard++
}

// unappliedWanted returns the own proposals that no commit on our branch
// applied, and records them as pending in the current state, where the node
// proposes them again.
func (t *Tracker) unappliedWanted(now time.Time) []Proposal {
	if len(t.wanted) == 0 {
		return nil
	}
	done := make(map[ProposalID]bool)
	for _, l := range t.chain {
		for _, id := range l.applied {
			done[id] = true
		}
	}
	t.past.each(func(_ StateID, e *entry[*pastState]) {
		for _, id := range e.v.applied {
			done[id] = true
		}
	})
	var ps []Proposal
	cur := t.Current().ID()
	for _, w := range t.wanted {
		if !done[w.p.ID] {
			ps = append(ps, w.p)
			t.hear(cur, w.p, now)
		}
	}
	return ps
}

// Held returns the states the tracker holds, oldest first; the last is
// Current. A proposal names no state, only an epoch (RFC 9420 §12.1), so the
// node tries one that is not of the current epoch on the held states of its
// epoch: it may belong to the state a commit still waiting for it
// (Outcome Waiting) was made on. The states stay the tracker's: the node
// may cache a proposal in one, but must not apply commits to them.
func (t *Tracker) Held() []State {
	out := make([]State, len(t.chain))
	for i, l := range t.chain {
		out[i] = l.state
	}
	return out
}
