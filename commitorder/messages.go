package commitorder

import (
	"time"
)

// Sent records that the node sealed the application message id in the
// current state and published it (or put it in its outbox). If that state's
// branch loses, a later Decision lists id in Resend. Report a re-sent copy
// with Sent again: the record moves to the new state but keeps its first
// time, so a message is re-sent only within Retention of its first sending,
// which is what lets receivers forget IDs after DefaultDedupRetention.
func (t *Tracker) Sent(id MessageID, now time.Time) {
	t.sent.put(id, t.Current().ID(), now)
	t.sent.prune(now, t.cfg.Retention, t.cfg.Limit, nil)
}

// onBranch reports whether a state is on our branch: held, or released but
// remembered.
func (t *Tracker) onBranch(id StateID) bool {
	return t.chainIndex(id) >= 0 || t.past.has(id)
}

// resend lists a message in the decision and marks its record as due, so it
// is listed once until the node reports the new copy with Sent.
func (t *Tracker) resend(id MessageID, e *entry[StateID], s *step) {
	e.v = StateID{}
	s.d.Resend = append(s.d.Resend, id)
}

// resendLost lists the messages sent on states that left our branch (rule 3).
func (t *Tracker) resendLost(s *step) {
	t.sent.each(func(id MessageID, e *entry[StateID]) {
		if !e.v.IsZero() && !t.onBranch(e.v) {
			t.resend(id, e, s)
		}
	})
}

// resendForRejoin lists the messages a rejoining member could not read: those
// sent on our branch from the last state it shared with us (since: a message
// sent there may have been in flight when the branches split) up to the state
// its rejoin commit made (at: its position on our branch). Rule 7: after a
// partition, the losing half rejoins by external commit and has none of the
// winning half's epochs in between. If since is unknown to us, every
// remembered message before the rejoin is re-sent; receivers drop the copies
// they already have.
func (t *Tracker) resendForRejoin(since StateID, at uint64, s *step) {
	from := uint64(0)
	if t.onBranch(since) {
		from = t.seqOf(since)
	}
	t.sent.each(func(id MessageID, e *entry[StateID]) {
		if e.v.IsZero() || !t.onBranch(e.v) {
			return
		}
		if seq := t.seqOf(e.v); seq >= from && seq < at {
			t.resend(id, e, s)
		}
	})
}

// Defaults of NewDedup. The retention is twice DefaultRetention: a sender
// re-sends a message only while it remembers it (Retention after the first
// sending), so a receiver that remembers IDs twice as long sees every copy.
const (
	DefaultDedupRetention = 2 * DefaultRetention
	DefaultDedupLimit     = 1 << 15
)

// Dedup remembers the application messages delivered to the application so
// that each is delivered once, whatever number of copies arrive (rule 3: a
// message sent on a losing branch is re-sent in the winning one, and members
// that had the losing branch got the first copy). Memory is bounded: an ID is
// kept for the retention and at most limit IDs are kept, oldest dropped first
// (about 100 bytes each: 3 MiB at DefaultDedupLimit). A copy arriving after
// its ID was dropped is delivered again, so the retention must exceed the
// senders' Config.Retention plus the delivery delay.
type Dedup struct {
	retention time.Duration
	limit     int
	seen      *table[MessageID, struct{}]
}

// NewDedup returns a Dedup keeping IDs for retention, at most limit of them;
// zero selects DefaultDedupRetention and DefaultDedupLimit.
func NewDedup(retention time.Duration, limit int) *Dedup {
	if retention <= 0 {
		retention = DefaultDedupRetention
	}
	if limit <= 0 {
		limit = DefaultDedupLimit
	}
	return &Dedup{retention: retention, limit: limit, seen: newTable[MessageID, struct{}]()}
}

// First reports whether id is seen for the first time (deliver the message)
// and remembers it; false means a copy was already delivered (drop it).
func (d *Dedup) First(id MessageID, now time.Time) bool {
	d.seen.prune(now, d.retention, d.limit-1, nil)
	if d.seen.has(id) {
		return false
	}
	d.seen.put(id, struct{}{}, now)
	return true
}

// Len returns the number of IDs remembered.
func (d *Dedup) Len() int { return d.seen.len() }
