package commitorder

import (
	"fmt"
	"time"
)

// Resynced reports that the node rejoined the group with the external
// commit c (RFC 9420 §12.4.3.2), made on a state of the winning branch it
// learned from a GroupInfo, and that s is the state c leads to. The node
// sets c.RejoinSince to Decision.Resync.Since, or, for a rejoin the tracker
// did not ask for (the node fell behind the retention of its peers), to the
// ID of Current.
//
// Our branch after RejoinSince is dropped; the messages sent on it are listed
// in Resend and the changes it had applied in Repropose. s becomes Current;
// if a member commit on c's parent beats c, a later Decision asks for a
// resync again, since we never held that parent.
func (t *Tracker) Resynced(c Commit, s State, now time.Time) (Decision, error) {
	if s.Epoch() != c.Epoch+1 {
		return Decision{}, fmt.Errorf("commitorder: resync: state of epoch %d after a commit in epoch %d", s.Epoch(), c.Epoch)
	}
	st := t.begin(now)
	since := c.RejoinSince
	keep := t.chainIndex(since) // held states up to keep stay on our branch, released
	for i, l := range t.chain {
		id := l.state.ID()
		if i > keep {
			t.forget(id, now)
			l.state.Release()
			continue
		}
		p := &pastState{epoch: l.state.Epoch(), applied: l.applied, held: true, seq: l.seq}
		if i < keep {
			via := t.chain[i+1].via
			p.next = &via
		}
		t.past.put(id, p, now)
		t.nHeard -= len(t.heard[id])
		delete(t.heard, id)
		l.state.Release()
	}
	if keep < 0 {
		// since is released or unknown: drop the past after it (all of it
		// if unknown), the branch we lost.
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
	t.waiting = nil
	cand := newCandidate(c, now)
	t.past.put(c.Parent, &pastState{epoch: c.Epoch, next: &cand.key, seq: t.nextSeq()}, now)
	t.chain = []*link{{state: s, via: cand.key, at: now, seq: t.nextSeq()}}
	t.rejoinSince = since
	st.lost = true
	t.end(now, st)
	return st.d, nil
}
