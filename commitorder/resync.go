package commitorder

import (
	"fmt"
	"slices"
	"time"
)

// Step is one state of a branch with the commit that led to it: what a
// member serves along with a GroupInfo (see Path), so that a member who
// rejoins through that GroupInfo knows the branch it joined: it can tell
// later that the branch lost at a state it never held, and it can re-send
// what earlier rejoiners of that branch could not read.
type Step struct {
	State       StateID
	Epoch       uint64
	Committer   Committer // of the commit that made State; zero if unknown
	CommitHash  [32]byte  // Commit.Hash of that commit
	RejoinSince StateID   // that commit's RejoinSince
}

func (s Step) key() rankKey { return rankKey{s.Committer.rank(), s.CommitHash} }

func stepOf(id StateID, epoch uint64, via rankKey, rejoinSince StateID) Step {
	c := Committer{External: via.rank > 1<<32-1}
	if !c.External {
		c.Leaf = uint32(via.rank)
	}
	return Step{State: id, Epoch: epoch, Committer: c, CommitHash: via.hash, RejoinSince: rejoinSince}
}

// Path returns our branch as far as we remember it, oldest state first,
// ending with Current: what a node serves with a GroupInfo of Current.
func (t *Tracker) Path() []Step {
	var path []Step
	t.past.each(func(id StateID, e *entry[*pastState]) {
		path = append(path, stepOf(id, e.v.epoch, e.v.via, e.v.rejoinSince))
	})
	for _, l := range t.chain {
		path = append(path, stepOf(l.state.ID(), l.state.Epoch(), l.via, l.rejoinSince))
	}
	return path
}

// Compare finds where a peer's branch (its Path) leaves ours, and reports
// whether it is better by rule 1: the commit it followed from that state
// beats the one we followed. A better branch is one to rejoin, with
// RejoinSince set to since: the last state of the common part that we held
// (the fork itself, unless we joined past it through a GroupInfo). A branch
// that only extends ours, or shares no state with ours, is not better (catch
// up with the sync protocol instead).
func (t *Tracker) Compare(path []Step) (since StateID, better bool) {
	for i := len(path) - 1; i >= 0; i-- {
		fork := path[i].State
		if !t.onBranch(fork) {
			continue
		}
		since = t.lastHeld(fork)
		if i == len(path)-1 {
			return since, false
		}
		ours := t.followed(fork)
		return since, ours != nil && t.beats(path[i+1].key(), *ours)
	}
	return StateID{}, false
}

// followed returns the commit our branch followed from a state on it, nil
// for the current state or if unknown.
func (t *Tracker) followed(id StateID) *rankKey {
	if i := t.chainIndex(id); i >= 0 {
		if i+1 < len(t.chain) {
			return &t.chain[i+1].via
		}
		return nil
	}
	if p := t.past.get(id); p != nil {
		return p.v.next
	}
	return nil
}

// Resynced reports that the node rejoined the group with the external
// commit c (RFC 9420 §12.4.3.2), made on a state of the winning branch it
// learned from a GroupInfo, that s is the state c leads to, and that path is
// the branch of that GroupInfo as its sender served it (its Path; nil if
// unknown). The node sets c.RejoinSince to the fork Compare returned for
// that path (Decision.Resync.Since without a path), or, for a rejoin the
// tracker did not ask for (the node fell behind the retention of its peers),
// to the ID of Current.
//
// Our branch after RejoinSince is dropped: the messages sent on it are listed
// in Resend, and the own proposals it had applied in Repropose. So are the
// messages that earlier rejoiners of the joined branch could not read (see
// Commit.RejoinSince). s becomes Current. The states of path after
// RejoinSince, and c's parent, are remembered without secrets: a commit
// beating the branch at one of them (a member commit beating c, say) asks
// for a resync again, from RejoinSince, the last state we held in common.
func (t *Tracker) Resynced(c Commit, s State, path []Step, now time.Time) (Decision, error) {
	if s.Epoch() != c.Epoch+1 {
		return Decision{}, fmt.Errorf("commitorder: resync: state of epoch %d after a commit in epoch %d", s.Epoch(), c.Epoch)
	}
	st := t.begin(now)
	since := c.RejoinSince
	t.dropAfter(since, now)

	// The joined branch, from since (exclusive) to c's parent: states we
	// never held, each with the commit the branch followed from it.
	cand := newCandidate(c, now)
	branch, fromSince := joinedBranch(path, since, c)
	if p := t.past.get(since); p != nil && fromSince {
		next := branch[0].key() // from since, we follow the joined branch now
		p.v.next = &next
	}
	var rejoins []*pastState
	for i, p := range branch {
		if t.onBranch(p.State) {
			continue
		}
		next := cand.key
		if i+1 < len(branch) {
			next = branch[i+1].key()
		}
		ps := &pastState{epoch: p.Epoch, via: p.key(), rejoinSince: p.RejoinSince, next: &next, seq: t.nextSeq()}
		t.dead.remove(p.State)
		t.past.put(p.State, ps, now)
		if !p.RejoinSince.IsZero() {
			rejoins = append(rejoins, ps)
		}
	}
	t.chain = []*link{{state: s, via: cand.key, rejoinSince: since, at: now, seq: t.nextSeq()}}
	st.lost, st.learned = true, true
	// Rejoins on the joined branch we did not apply: re-send what they missed.
	for _, ps := range rejoins {
		t.resendForRejoin(ps.rejoinSince, ps.seq, st)
	}
	t.end(now, st)
	return st.d, nil
}

// dropAfter releases every held state and forgets every past state after
// since (all of them if since is not on our branch): that branch lost.
func (t *Tracker) dropAfter(since StateID, now time.Time) {
	keep := t.chainIndex(since) // held states up to keep stay on our branch, released
	for i, l := range t.chain {
		id := l.state.ID()
		if i > keep {
			t.forget(id, now)
		} else {
			var next *rankKey
			if i < keep {
				via := t.chain[i+1].via
				next = &via
			}
			t.past.put(id, l.released(next), now)
			t.nHeard -= len(t.heard[id])
			delete(t.heard, id)
		}
		l.state.Release()
	}
	t.chain = nil
	t.waiting = nil
	if keep >= 0 {
		return
	}
	cut := t.seqOf(since)
	var lost []StateID
	t.past.each(func(id StateID, e *entry[*pastState]) {
		if e.v.seq > cut {
			lost = append(lost, id)
		}
	})
	for _, id := range lost {
		t.past.remove(id)
		t.dead.put(id, struct{}{}, now)
	}
}

// joinedBranch trims a served path to the states after since (fromSince
// says whether since was in it), up to and including c's parent, which it
// adds if the path lacks it.
func joinedBranch(path []Step, since StateID, c Commit) (branch []Step, fromSince bool) {
	for i, p := range path {
		if p.State == since {
			path, fromSince = path[i+1:], true
			break
		}
	}
	for i, p := range path {
		if p.State == c.Parent {
			return path[:i+1], fromSince
		}
	}
	return append(slices.Clone(path), Step{State: c.Parent, Epoch: c.Epoch}), fromSince
}
