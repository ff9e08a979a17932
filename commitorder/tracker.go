package commitorder

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is one group state (one epoch of one branch) as the node holds it,
// for example a wrapper around an MLS group. The tracker calls no method of a
// State after Release.
type State interface {
	// ID names the state (see NewStateID).
	ID() StateID
	// Epoch is the state's epoch number (RFC 9420 §8).
	Epoch() uint64
	// Apply processes c, which claims this state as its parent, and returns
	// the state it leads to and the IDs of the proposals it committed (by
	// reference or by value). It must not modify the receiver: creating or
	// processing a commit leaves the old state usable (RFC 9420 §14), and the
	// tracker keeps it for the settle window. An error wrapping
	// ErrMissingProposals means "not yet"; any other error means c is invalid
	// on this state.
	Apply(c Commit) (next State, applied []ProposalID, err error)
	// Release erases the state's secrets: the tracker calls it once, when the
	// state leaves memory (RFC 9420 §14: forked and previous states are
	// deleted promptly, for forward secrecy).
	Release()
}

// Config tunes a Tracker. The zero value of a field selects its default.
type Config struct {
	// SettleWindow is how long a state is kept after a commit on it was
	// applied, so that a lower-ranked commit arriving late can still be
	// applied to it. It bounds memory and forward-secrecy exposure, not the
	// rule: a winner arriving after the window still wins, at the cost of a
	// resync. Default DefaultSettleWindow.
	SettleWindow time.Duration
	// Retention is how long the tracker remembers, without secrets, the IDs
	// of states it left, the messages it sent (to re-send them if their
	// branch loses) and commits it could not place yet. It bounds how long a
	// partition can last and still heal without lost messages. Default
	// DefaultRetention.
	Retention time.Duration
	// Limit caps the entries of each of those memories (past states, sent
	// messages, buffered commits, heard proposals); the oldest go first.
	// Default DefaultLimit.
	Limit int
}

// Defaults of Config.
const (
	// DefaultSettleWindow is three GossipSub heartbeats (1 s each by
	// default): long enough for every commit of a race to cross the mesh.
	DefaultSettleWindow = 3 * time.Second
	// DefaultRetention is ten minutes.
	DefaultRetention = 10 * time.Minute
	// DefaultLimit is 4096 entries per memory.
	DefaultLimit = 4096
)

func (c Config) withDefaults() Config {
	if c.SettleWindow <= 0 {
		c.SettleWindow = DefaultSettleWindow
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.Limit <= 0 {
		c.Limit = DefaultLimit
	}
	return c
}

// Outcome says what became of the commit handed to Receive.
type Outcome int

const (
	// NoCommit: the call carried no commit (Tick, ReceiveProposal, ...).
	NoCommit Outcome = iota
	// Applied: the commit won its epoch on our branch so far and was applied.
	Applied
	// Lost: a lower-ranked valid commit on the same parent is already known.
	Lost
	// Duplicate: this very commit was seen before.
	Duplicate
	// Waiting: the commit may win but references proposals not received
	// yet; it is applied when they arrive.
	Waiting
	// Buffered: the commit's parent state is unknown; it is kept until the
	// parent appears (Decision.NeedSync is set).
	Buffered
	// Stale: the commit's parent is on a branch that lost.
	Stale
	// Invalid: Apply rejected the commit; it can never win.
	Invalid
	// LateWinner: the commit beats our branch, but its parent state is no
	// longer held; Decision.Resync says how to rejoin the winning branch.
	LateWinner
)

var outcomeNames = [...]string{"no commit", "applied", "lost", "duplicate", "waiting", "buffered", "stale", "invalid", "late winner"}

func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
	return outcomeNames[o]
}

// Decision is what the node must do after a call. Every list is in a
// deterministic order.
type Decision struct {
	// Outcome is what became of the commit handed to Receive.
	Outcome Outcome
	// Current is the state to use from now on: to seal messages, to commit on.
	Current State
	// Unwound counts the states of our branch discarded because a lower-ranked
	// commit won an epoch below them.
	Unwound int
	// Resend lists own application messages that must be sealed again in
	// Current and published with the same MessageID (then reported with
	// Sent): the branch they were sent on lost, or a rejoining member could
	// not read them.
	Resend []MessageID
	// Repropose lists own proposals not committed on the branch of Current:
	// send each again as a proposal in Current (proposals are bound to an
	// epoch, RFC 9420 §12.1).
	Repropose []Proposal
	// Resync is set when a commit beat our branch at a state we no longer
	// hold: find the branch it started (ask peers for a GroupInfo and its
	// Path, keep one that Compare calls better), rejoin it with an external
	// commit (RFC 9420 §12.4.3.2) and report that with Resynced.
	Resync *ResyncNeeded
	// Applied lists, in the order applied, every commit this call applied
	// on our branch: the one handed to Receive, and those that waited for
	// a proposal (ReceiveProposal) or for their parent (buffered orphans).
	// The node logs them for the members that missed them (rule 4). A
	// commit that Resynced reports is not listed: the node knows it.
	Applied []Commit
	// NeedSync is set when a commit arrived on a state we do not know: ask
	// peers for the handshake messages since epoch SyncFrom.
	NeedSync bool
	// SyncFrom is the oldest epoch the tracker can still place a commit in.
	SyncFrom uint64
}

// ResyncNeeded describes a late winner: a commit that beats our branch on a
// state we released after the settle window. The tracker could not check it
// (the state it needs is gone), so it is a reason to look for a better
// branch, not proof that one exists: if no peer serves a Path that Compare
// calls better, the commit was invalid or abandoned, and nothing is to be
// done.
type ResyncNeeded struct {
	// Since is the last state of our branch we are sure the winning branch
	// shares; Compare gives the exact one for a given path.
	Since StateID
	// Winner is the commit that beat our branch.
	Winner Commit
}

// link is a state held in memory, on our branch.
type link struct {
	state       State
	via         rankKey // the commit that made it; zero for the first state
	rejoinSince StateID // the via commit's RejoinSince
	applied     []ProposalID
	at          time.Time // when it was applied
	seq         uint64    // order along our branch
}

// pastState is a state of our branch that is no longer held (or never was):
// no secrets, only what rule 1 and the re-send bookkeeping need.
type pastState struct {
	epoch       uint64
	via         rankKey  // the commit that made it; zero if unknown
	rejoinSince StateID  // the via commit's RejoinSince
	next        *rankKey // what the group follows from this state as far as we know
	applied     []ProposalID
	held        bool // false for the states of a branch we joined by GroupInfo
	seq         uint64
}

// released turns a held state into a past one; next is the commit followed
// from it, nil if none.
func (l *link) released(next *rankKey) *pastState {
	return &pastState{epoch: l.state.Epoch(), via: l.via, rejoinSince: l.rejoinSince, next: next, applied: l.applied, held: true, seq: l.seq}
}

// Tracker decides, for one group, which of the competing commits of each
// epoch wins and what must be re-sent. It is not safe for concurrent use: the
// node drives it from one goroutine, passing the time to every call.
type Tracker struct {
	cfg   Config
	beats func(challenger, incumbent rankKey) bool // rule 1; swapped only by tests
	seq   uint64

	chain  []*link                     // held states of our branch, oldest first; the last is current
	past   *table[StateID, *pastState] // released states of our branch, oldest first
	dead   *table[StateID, struct{}]   // states of branches that lost
	bad    *table[[32]byte, struct{}]  // hashes of invalid commits
	sent   *table[MessageID, StateID]  // own messages and the state they were last sealed in; zero while a re-send is due
	heard  map[StateID][]heard         // proposals received per state
	nHeard int

	orphans []*candidate // commits whose parent is unknown
	waiting []*candidate // commits on a held state that wait for proposals
	wanted  []heard      // own proposals not committed yet
}

type heard struct {
	p  Proposal
	at time.Time
}

// New returns a tracker whose current state is root: the state the node
// created the group in, joined by Welcome or loaded from its store.
func New(root State, cfg Config, now time.Time) *Tracker {
	t := &Tracker{
		cfg:   cfg.withDefaults(),
		beats: lowerRank,
		past:  newTable[StateID, *pastState](),
		dead:  newTable[StateID, struct{}](),
		bad:   newTable[[32]byte, struct{}](),
		sent:  newTable[MessageID, StateID](),
		heard: make(map[StateID][]heard),
	}
	t.chain = []*link{{state: root, at: now, seq: t.nextSeq()}}
	return t
}

func (t *Tracker) nextSeq() uint64 { t.seq++; return t.seq }

// Current returns the state to use now.
func (t *Tracker) Current() State { return t.chain[len(t.chain)-1].state }

// State returns the held state named id, to open a message or a proposal
// sent in an epoch that is not the current one.
func (t *Tracker) State(id StateID) (State, bool) {
	if i := t.chainIndex(id); i >= 0 {
		return t.chain[i].state, true
	}
	return nil, false
}

// Settled reports whether the commit that made state id has outlived the
// settle window on our branch: the moment to hand a Welcome to new members
// (RFC 9420 §14: a Welcome waits until its commit is accepted; RFC 9750
// §5.2.3). A partition can still undo it later, through a resync.
func (t *Tracker) Settled(id StateID) bool {
	return t.chain[0].state.ID() == id || t.past.has(id)
}

// Lost reports whether state id was on a branch that lost (it was unwound
// because a lower-ranked commit won an epoch below it), within Retention:
// a Welcome to it must not be sent, and what its commit changed must be
// committed again on the winning branch (rule 3).
func (t *Tracker) Lost(id StateID) bool { return t.dead.has(id) }

// Receive places a candidate commit, applies it if it wins its epoch on our
// branch, and says what follows. The returned error is non-nil only for an
// invalid commit and wraps ErrInvalidCommit.
func (t *Tracker) Receive(c Commit, now time.Time) (Decision, error) {
	s := t.begin(now)
	out, err := t.place(newCandidate(c, now), now, s)
	s.d.Outcome = out
	t.end(now, s)
	return s.d, err
}

// Tick lets time pass: states older than the settle window are released,
// memories past their retention are dropped. Call it every heartbeat.
func (t *Tracker) Tick(now time.Time) Decision {
	s := t.begin(now)
	t.end(now, s)
	return s.d
}

// step gathers the effects of one call.
type step struct {
	d       Decision
	from    StateID // current state when the call began
	lost    bool    // states left our branch: look for messages to re-send
	learned bool    // states became known: buffered commits may attach
	rejoins []*link // states made by rejoin commits in this call
}

func (t *Tracker) begin(now time.Time) *step {
	s := &step{from: t.Current().ID()}
	t.expire(now, s)
	return s
}

func (t *Tracker) end(now time.Time, s *step) {
	if s.learned {
		t.attachOrphans(now, s)
	}
	cur := t.Current()
	s.d.Current = cur
	if s.lost {
		t.resendLost(s)
	}
	for _, l := range s.rejoins {
		if t.chainIndex(l.state.ID()) >= 0 {
			t.resendForRejoin(l.rejoinSince, l.seq, s)
		}
	}
	if cur.ID() != s.from {
		s.d.Repropose = t.unappliedWanted(now)
	}
	slices.SortFunc(s.d.Resend, func(a, b MessageID) int { return bytes.Compare(a[:], b[:]) })
}

// place decides the fate of one commit.
func (t *Tracker) place(c *candidate, now time.Time, s *step) (Outcome, error) {
	if t.bad.has(c.key.hash) {
		return Invalid, fmt.Errorf("%w: rejected before", ErrInvalidCommit)
	}
	if i := t.chainIndex(c.Parent); i >= 0 {
		return t.placeOnHeld(i, c, now, s)
	}
	if p := t.past.get(c.Parent); p != nil {
		return t.placeOnPast(p.v, c, s), nil
	}
	if t.dead.has(c.Parent) {
		return Stale, nil
	}
	if slices.ContainsFunc(t.orphans, func(o *candidate) bool { return o.key == c.key }) {
		return Duplicate, nil
	}
	t.orphans = append(t.orphans, c)
	s.d.NeedSync = true
	s.d.SyncFrom = t.SyncFrom()
	return Buffered, nil
}

// placeOnHeld handles a commit whose parent we hold: optimistic apply, and a
// switch if it beats the commit we followed from that parent (rule 2).
func (t *Tracker) placeOnHeld(i int, c *candidate, now time.Time, s *step) (Outcome, error) {
	parent := t.chain[i].state
	if c.Epoch != parent.Epoch() {
		t.bad.put(c.key.hash, struct{}{}, now)
		return Invalid, fmt.Errorf("%w: epoch %d on a state of epoch %d", ErrInvalidCommit, c.Epoch, parent.Epoch())
	}
	if i+1 < len(t.chain) {
		incumbent := t.chain[i+1].via
		if incumbent == c.key {
			return Duplicate, nil
		}
		if !t.beats(c.key, incumbent) {
			return Lost, nil
		}
	}
	if slices.ContainsFunc(t.waiting, func(w *candidate) bool { return w.key == c.key }) {
		return Duplicate, nil
	}
	next, applied, err := parent.Apply(c.Commit)
	if errors.Is(err, ErrMissingProposals) {
		t.waiting = append(t.waiting, c)
		return Waiting, nil
	}
	if err == nil && next.Epoch() != c.Epoch+1 {
		next.Release()
		err = fmt.Errorf("commit leads to epoch %d, want %d", next.Epoch(), c.Epoch+1)
	}
	if err != nil {
		t.bad.put(c.key.hash, struct{}{}, now)
		return Invalid, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	t.unwind(i+1, now, s)
	l := &link{state: next, via: c.key, rejoinSince: c.RejoinSince, applied: applied, at: now, seq: t.nextSeq()}
	t.chain = append(t.chain, l)
	s.d.Applied = append(s.d.Applied, c.Commit)
	s.learned = true
	if !c.RejoinSince.IsZero() {
		s.rejoins = append(s.rejoins, l)
	}
	return Applied, nil
}

// placeOnPast handles a commit whose parent we released: it either loses,
// or it is a late winner and we must resync.
func (t *Tracker) placeOnPast(p *pastState, c *candidate, s *step) Outcome {
	if p.next == nil {
		return Lost // we rejoined from this state; what follows it is unknown
	}
	if *p.next == c.key {
		return Duplicate
	}
	if !t.beats(c.key, *p.next) {
		return Lost
	}
	since := t.lastHeld(c.Parent)
	// Keep the late winner that beats us at the oldest state: a winner on a
	// later state of our branch is on a branch that lost too.
	if s.d.Resync == nil || t.seqOf(since) < t.seqOf(s.d.Resync.Since) {
		s.d.Resync = &ResyncNeeded{Since: since, Winner: c.Commit}
	}
	return LateWinner
}

// unwind discards the held states from index i on: a lower-ranked commit won
// an epoch below them.
func (t *Tracker) unwind(i int, now time.Time, s *step) {
	for _, l := range t.chain[i:] {
		t.forget(l.state.ID(), now)
		l.state.Release()
		s.d.Unwound++
		s.lost = true
		s.learned = true
	}
	clear(t.chain[i:])
	t.chain = t.chain[:i]
}

// forget marks a state as lost and drops what waited on it.
func (t *Tracker) forget(id StateID, now time.Time) {
	t.dead.put(id, struct{}{}, now)
	t.nHeard -= len(t.heard[id])
	delete(t.heard, id)
	t.waiting = slices.DeleteFunc(t.waiting, func(w *candidate) bool { return w.Parent == id })
}

// expire releases the states older than the settle window and drops the
// memories past their retention.
func (t *Tracker) expire(now time.Time, s *step) {
	for len(t.chain) > 1 && !now.Before(t.chain[1].at.Add(t.cfg.SettleWindow)) {
		old, next := t.chain[0], t.chain[1]
		id := old.state.ID()
		via := next.via
		t.past.put(id, old.released(&via), now)
		t.nHeard -= len(t.heard[id])
		delete(t.heard, id)
		var moved []*candidate
		t.waiting = slices.DeleteFunc(t.waiting, func(w *candidate) bool {
			if w.Parent == id {
				moved = append(moved, w)
				return true
			}
			return false
		})
		old.state.Release()
		t.chain[0] = nil
		t.chain = t.chain[1:]
		for _, w := range moved {
			t.place(w, now, s) // now on a past state: lost, or a late winner
		}
	}
	ttl, limit := t.cfg.Retention, t.cfg.Limit
	t.past.prune(now, ttl, limit, func(_ StateID, p *pastState) {
		// Committed long enough ago: our own proposals in it are done.
		t.wanted = slices.DeleteFunc(t.wanted, func(w heard) bool { return slices.Contains(p.applied, w.p.ID) })
	})
	t.dead.prune(now, ttl, limit, nil)
	t.bad.prune(now, ttl, limit, nil)
	t.sent.prune(now, ttl, limit, nil)
	t.orphans = pruneCandidates(t.orphans, now, ttl, limit)
	t.waiting = pruneCandidates(t.waiting, now, ttl, limit)
	t.wanted = slices.DeleteFunc(t.wanted, func(w heard) bool { return !now.Before(w.at.Add(ttl)) })
	for id, hs := range t.heard {
		kept := slices.DeleteFunc(hs, func(h heard) bool { return !now.Before(h.at.Add(ttl)) })
		t.nHeard -= len(hs) - len(kept)
		if len(kept) == 0 {
			delete(t.heard, id)
		} else {
			t.heard[id] = kept
		}
	}
}

// pruneCandidates drops commits kept longer than ttl, then the oldest beyond
// limit.
func pruneCandidates(cs []*candidate, now time.Time, ttl time.Duration, limit int) []*candidate {
	cs = slices.DeleteFunc(cs, func(c *candidate) bool { return !now.Before(c.at.Add(ttl)) })
	if len(cs) > limit {
		cs = slices.Delete(cs, 0, len(cs)-limit)
	}
	return cs
}

// attachOrphans places the buffered commits whose parent became known, round
// after round: a chain of commits that arrived child first unrolls here.
func (t *Tracker) attachOrphans(now time.Time, s *step) {
	for {
		var ready []*candidate
		t.orphans = slices.DeleteFunc(t.orphans, func(c *candidate) bool {
			if t.knows(c.Parent) {
				ready = append(ready, c)
				return true
			}
			return false
		})
		if len(ready) == 0 {
			return
		}
		for _, c := range ready {
			t.place(c, now, s) // an invalid orphan is dropped like any invalid commit
		}
	}
}

// lastHeld returns the last state of our branch, up to id, that we held: the
// last one whose messages we could read. It is id itself unless we joined
// past id through a GroupInfo.
func (t *Tracker) lastHeld(id StateID) StateID {
	if t.chainIndex(id) >= 0 {
		return id
	}
	p := t.past.get(id)
	if p == nil || p.v.held {
		return id
	}
	last := StateID{}
	t.past.each(func(pid StateID, e *entry[*pastState]) {
		if e.v.held && e.v.seq <= p.v.seq {
			last = pid
		}
	})
	return last
}

func (t *Tracker) knows(id StateID) bool {
	return t.chainIndex(id) >= 0 || t.past.has(id) || t.dead.has(id)
}

func (t *Tracker) chainIndex(id StateID) int {
	for i := len(t.chain) - 1; i >= 0; i-- {
		if t.chain[i].state.ID() == id {
			return i
		}
	}
	return -1
}

// seqOf returns the position of a state on our branch; 0 (before all) if it
// is not on it.
func (t *Tracker) seqOf(id StateID) uint64 {
	if i := t.chainIndex(id); i >= 0 {
		return t.chain[i].seq
	}
	if p := t.past.get(id); p != nil {
		return p.v.seq
	}
	return 0
}

// SyncFrom returns the oldest epoch in which the tracker can still place a
// commit: ask peers for the handshake messages from there (rule 4), after a
// Decision with NeedSync, on reconnecting to a peer, or now and then to detect
// a branch that went unnoticed.
func (t *Tracker) SyncFrom() uint64 {
	if len(t.past.order) > 0 {
		return t.past.get(t.past.order[0]).v.epoch
	}
	return t.chain[0].state.Epoch()
}
