package commitorder

import (
	"container/heap"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The simulation: members of one group, each a Tracker over the fake group
// model, exchanging commits, proposals and application messages through a
// "network" that delivers whatever is in flight in random order (so every
// interleaving is possible, and delays can outlast the settle window), may
// split the group in two halves, and answers sync requests with a peer's log
// of handshake messages (rule 4). The node's part is played by member.handle:
// it does what each Decision says. Everything is drawn from one
// math/rand/v2 generator seeded by the test, so a seed reproduces a run.

var seedFlag = flag.Uint64("commitorder.seed", 0, "run the simulations for this seed only (to reproduce a failure)")

type simOpts struct {
	members     int
	steps       int           // steps of the active phase
	pCommit     float64       // per step: a commit race starts
	pSend       float64       // per step: a member sends an application message
	pTick       float64       // per step: time passes (50 to 400 ms)
	maxRace     int           // up to this many members commit in the same instant
	invalidRate float64       // share of commits that fail Apply
	weight      func(int) int // commit weight of a member; nil: all alike
	rotation    bool          // the last member wants its leaf rotation committed
	settled     bool          // node policy: commit only on a settled current state
	partition   bool          // the group splits in halves for the middle third
	gap         time.Duration // time that passes in one go during the partition
	beats       func(a, b rankKey) bool
}

type envKind int

const (
	kCommit envKind = iota
	kProposal
	kApp
	kSync
)

type envelope struct {
	at       time.Time // when the network delivers it
	kind     envKind
	to, from int
	commit   Commit
	on       StateID // proposal and app: the state it was sealed in
	prop     Proposal
	msg      MessageID
	since    uint64 // sync: epoch to start from
}

// logEntry is one handshake message in a member's log.
type logEntry struct {
	commit *Commit
	on     StateID
	prop   Proposal
}

type member struct {
	idx     int
	o       *owner
	tr      *Tracker
	dd      *Dedup
	log     []logEntry
	logged  map[[32]byte]bool // commits in log
	got     map[MessageID]bool
	sealed  []envelope // application messages it cannot open yet
	syncing bool
	resync  *ResyncNeeded // late winner to rejoin, waiting for a GroupInfo of its branch
}

type simStats struct {
	commits, invalid, externals, sent, resent, dropped, delivered, copies int
	switches, unwound, lateWinners, dismissed, resyncs, syncs             int
	rotationLanded, rotationByRef                                         bool
	rotationLost                                                          int // commits of the rotating member that lost
}

type sim struct {
	o         simOpts
	seed      uint64
	rng       *rand.Rand
	now       time.Time
	w         *world
	ms        []*member
	inflight  envHeap    // in flight, by delivery time
	due       []envelope // delivered in random order once due
	split     bool
	sender    map[MessageID]int
	sealedIn  map[MessageID][]StateID // every state a copy was sealed in, for diagnosis
	committer map[[32]byte]int
	made      map[StateID][]*candidate // every valid commit made, by parent
	rotation  Proposal
	nonce     uint64
	step      int
	stats     simStats
	err       error
	trace     func(string, ...any) // debugging aid, nil normally
}

func newSim(o simOpts, seed uint64) *sim {
	s := &sim{
		o: o, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x6d657368)), now: t0,
		w:         &world{parent: map[StateID]StateID{}, via: map[StateID]*candidate{}, applied: map[StateID][]ProposalID{}},
		sender:    map[MessageID]int{},
		sealedIn:  map[MessageID][]StateID{},
		committer: map[[32]byte]int{},
		made:      map[StateID][]*candidate{},
		rotation:  Proposal{ID: NewProposalID([]byte("rotate the last leaf")), Bytes: []byte("update")},
	}
	for i := range o.members {
		own := newOwner(fmt.Sprintf("member %d", i), s.w)
		tr := New(own.rootState(rootID), Config{}, t0)
		if o.beats != nil {
			tr.beats = o.beats
		}
		s.ms = append(s.ms, &member{idx: i, o: own, tr: tr, dd: NewDedup(0, 0), got: map[MessageID]bool{}, logged: map[[32]byte]bool{}})
	}
	if o.rotation {
		last := s.ms[len(s.ms)-1]
		last.tr.Propose(s.rotation, s.now)
		last.logProposal(rootID, s.rotation)
		s.broadcast(last, envelope{kind: kProposal, on: rootID, prop: s.rotation})
	}
	return s
}

func (s *sim) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("seed=%d step=%d: %s (reproduce with -commitorder.seed=%d)", s.seed, s.step, fmt.Sprintf(format, args...), s.seed)
	}
}

// run plays the active phase, heals any partition, lets the group settle
// and checks the outcome.
func (s *sim) run() error {
	for s.step = 0; s.step < s.o.steps && s.err == nil; s.step++ {
		if s.o.partition {
			switch s.step {
			case s.o.steps / 3:
				s.split = true
			case s.o.steps / 2:
				s.advance(s.o.gap)
			case 2 * s.o.steps / 3:
				s.heal()
			}
		}
		r := s.rng.Float64()
		switch {
		case r < s.o.pCommit:
			s.race()
		case r < s.o.pCommit+s.o.pSend:
			s.send(s.ms[s.rng.IntN(len(s.ms))])
		case r < s.o.pCommit+s.o.pSend+s.o.pTick:
			s.advance(time.Duration(50+s.rng.IntN(350)) * time.Millisecond)
		default:
			s.deliverOne()
		}
	}
	if s.split {
		s.heal()
	}
	s.settle()
	if s.err == nil {
		s.check()
	}
	return s.err
}

func (s *sim) side(i int) int { return i % 2 }

func (s *sim) reachable(a, b int) bool { return !s.split || s.side(a) == s.side(b) }

func (s *sim) broadcast(from *member, e envelope) {
	e.from = from.idx
	if e.kind == kApp {
		s.sealedIn[e.msg] = append(s.sealedIn[e.msg], e.on)
	}
	for _, m := range s.ms {
		if m == from {
			continue
		}
		e.to = m.idx
		e.at = s.now.Add(s.latency())
		if s.reachable(from.idx, m.idx) {
			heap.Push(&s.inflight, e)
		} else {
			s.stats.dropped++
		}
	}
}

// race makes one to maxRace members commit at the same instant, each on its
// own current state.
func (s *sim) race() {
	k := 1 + s.rng.IntN(s.o.maxRace)
	for _, i := range s.pick(k) {
		s.commit(s.ms[i])
	}
}

// pick draws k distinct members, by weight.
func (s *sim) pick(k int) []int {
	var pool []int
	for i := range s.ms {
		w := 1
		if s.o.weight != nil {
			w = s.o.weight(i)
		}
		for range w {
			pool = append(pool, i)
		}
	}
	var out []int
	for len(out) < k && len(pool) > 0 {
		i := pool[s.rng.IntN(len(pool))]
		out = append(out, i)
		pool = slices.DeleteFunc(pool, func(j int) bool { return j == i })
	}
	return out
}

func (s *sim) commit(m *member) {
	cur := m.tr.Current()
	if s.o.settled && !m.tr.Settled(cur.ID()) {
		return
	}
	var refs, vals []ProposalID
	for _, p := range m.tr.ToCommit() {
		switch {
		case s.o.rotation && m.idx == len(s.ms)-1 && p.ID == s.rotation.ID:
			vals = append(vals, p.ID) // a member commits its own update by value
		case m.o.cache[cur.ID()][p.ID]:
			refs = append(refs, p.ID)
		}
	}
	valid := s.rng.Float64() >= s.o.invalidRate
	s.nonce++
	c := Commit{Epoch: cur.Epoch(), Parent: cur.ID(), Committer: Committer{Leaf: uint32(m.idx)},
		Bytes: encodeCommit(fakeCommit{Valid: valid, Nonce: s.nonce, Refs: refs, Vals: vals})}
	s.record(c, m.idx, valid)
	m.logCommit(c)
	d, _ := m.tr.Receive(c, s.now)
	s.handle(m, d)
	s.broadcast(m, envelope{kind: kCommit, commit: c})
}

func (s *sim) record(c Commit, by int, valid bool) {
	s.stats.commits++
	cand := newCandidate(c, s.now)
	s.committer[cand.key.hash] = by
	if valid {
		s.made[c.Parent] = append(s.made[c.Parent], cand)
	} else {
		s.stats.invalid++
	}
}

func (s *sim) send(m *member) {
	var id MessageID
	for i := range id {
		id[i] = byte(s.rng.Uint32())
	}
	s.sender[id] = m.idx
	s.stats.sent++
	m.tr.Sent(id, s.now)
	s.broadcast(m, envelope{kind: kApp, on: m.tr.Current().ID(), msg: id})
}

func (s *sim) advance(dt time.Duration) {
	s.now = s.now.Add(dt)
	for _, m := range s.ms {
		s.handle(m, m.tr.Tick(s.now))
		if m.resync != nil {
			s.rejoin(m)
		}
	}
}

// latency draws a delivery delay: mostly a GossipSub hop or two, sometimes a
// slow path, rarely longer than the settle window.
func (s *sim) latency() time.Duration {
	switch r := s.rng.Float64(); {
	case r < 0.80:
		return time.Duration(10+s.rng.IntN(290)) * time.Millisecond
	case r < 0.98:
		return time.Duration(300+s.rng.IntN(1700)) * time.Millisecond
	default:
		return time.Duration(2000+s.rng.IntN(6000)) * time.Millisecond
	}
}

// deliverOne delivers one of the envelopes due, chosen at random, letting
// time pass to the next due one if none is.
func (s *sim) deliverOne() {
	for len(s.due) == 0 {
		if len(s.inflight) == 0 {
			return
		}
		if next := s.inflight[0].at; next.After(s.now) {
			s.advance(next.Sub(s.now))
		}
		for len(s.inflight) > 0 && !s.inflight[0].at.After(s.now) {
			s.due = append(s.due, heap.Pop(&s.inflight).(envelope))
		}
	}
	i := s.rng.IntN(len(s.due))
	e := s.due[i]
	s.due[i] = s.due[len(s.due)-1]
	s.due = s.due[:len(s.due)-1]
	s.deliver(e)
}

// envHeap orders envelopes by delivery time (container/heap).
type envHeap []envelope

func (h envHeap) Len() int           { return len(h) }
func (h envHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h envHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *envHeap) Push(x any)        { *h = append(*h, x.(envelope)) }
func (h *envHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (s *sim) deliver(e envelope) {
	m := s.ms[e.to]
	held := len(m.o.ever)
	switch e.kind {
	case kCommit:
		s.takeCommit(m, e.commit)
	case kProposal:
		s.takeProposal(m, e.on, e.prop)
	case kApp:
		s.open(m, e)
	case kSync:
		m.syncing = false
		s.stats.syncs++
		for _, le := range slices.Clone(s.ms[e.from].log) {
			if le.commit == nil {
				s.takeProposal(m, le.on, le.prop)
			} else if le.commit.Epoch >= e.since {
				s.takeCommit(m, *le.commit)
			}
		}
	}
	if len(m.o.ever) > held {
		sealed := m.sealed
		m.sealed = nil
		for _, e := range sealed {
			s.open(m, e)
		}
	}
}

// logCommit adds a commit to the member's handshake log, once.
func (m *member) logCommit(c Commit) {
	if h := c.Hash(); !m.logged[h] {
		m.logged[h] = true
		m.log = append(m.log, logEntry{commit: &c})
	}
}

// logProposal adds a proposal to the member's handshake log, once.
func (m *member) logProposal(on StateID, p Proposal) {
	if !m.o.cache[on][p.ID] {
		m.o.receiveProposal(on, p.ID)
		m.log = append(m.log, logEntry{on: on, prop: p})
	}
}

func (s *sim) takeCommit(m *member, c Commit) {
	m.logCommit(c)
	d, _ := m.tr.Receive(c, s.now)
	if s.trace != nil {
		s.trace("t=%v m%d receive %v->%v e%d r%d: %v now %v unwound %d", s.now.Sub(t0), m.idx, c.Parent, after(c), c.Epoch, c.Committer.rank(), d.Outcome, d.Current.ID(), d.Unwound)
	}
	s.handle(m, d)
}

func (s *sim) takeProposal(m *member, on StateID, p Proposal) {
	m.logProposal(on, p)
	s.handle(m, m.tr.ReceiveProposal(on, p, s.now))
}

// open delivers an application message to the application if the member
// holds (or held) the state it was sealed in, once.
func (s *sim) open(m *member, e envelope) {
	if !m.o.ever[e.on] {
		m.sealed = append(m.sealed, e)
		return
	}
	if !m.dd.First(e.msg, s.now) {
		s.stats.copies++
		return
	}
	if m.got[e.msg] {
		s.fail("member %d: Dedup let message %x through twice", m.idx, e.msg[:4])
	}
	m.got[e.msg] = true
	s.stats.delivered++
}

// handle is the node's part: it does what a Decision says.
func (s *sim) handle(m *member, d Decision) {
	if d.Unwound > 0 {
		s.stats.switches++
		s.stats.unwound += d.Unwound
	}
	rejoined := false
	if d.Resync != nil && d.Resync != m.resync {
		if s.trace != nil {
			s.trace("t=%v m%d LATE WINNER on %v since %v", s.now.Sub(t0), m.idx, d.Resync.Winner.Parent, d.Resync.Since)
		}
		s.stats.lateWinners++
		m.resync = d.Resync
		rejoined = s.rejoin(m)
	}
	cur := m.tr.Current().ID()
	for _, id := range d.Resend {
		s.stats.resent++
		m.tr.Sent(id, s.now)
		s.broadcast(m, envelope{kind: kApp, on: cur, msg: id})
	}
	if !rejoined {
		for _, p := range d.Repropose {
			m.logProposal(cur, p)
			s.broadcast(m, envelope{kind: kProposal, on: cur, prop: p})
		}
	}
	if d.NeedSync {
		s.requestSync(m, d.SyncFrom, -1)
	}
}

// requestSync asks a reachable peer (a random one if peer < 0) for its log.
func (s *sim) requestSync(m *member, from uint64, peer int) {
	if m.syncing {
		return
	}
	if peer < 0 {
		var peers []int
		for _, p := range s.ms {
			if p != m && s.reachable(m.idx, p.idx) {
				peers = append(peers, p.idx)
			}
		}
		peer = peers[s.rng.IntN(len(peers))]
	}
	m.syncing = true
	heap.Push(&s.inflight, envelope{at: s.now.Add(s.latency()), kind: kSync, to: m.idx, from: peer, since: from})
}

// rejoin is the node's resync: ask the members in reach for a GroupInfo and
// its Path, keep those whose branch is better than ours, and make an external
// commit on one. If none is better, the late winner was invalid or abandoned:
// forget it.
func (s *sim) rejoin(m *member) bool {
	var srcs []int
	var forks []StateID
	for _, p := range s.ms {
		if p == m || !s.reachable(m.idx, p.idx) || p.resync != nil {
			continue
		}
		if fork, better := m.tr.Compare(p.tr.Path()); better {
			srcs = append(srcs, p.idx)
			forks = append(forks, fork)
		}
	}
	if len(srcs) == 0 {
		m.resync = nil
		s.stats.dismissed++
		return false
	}
	k := s.rng.IntN(len(srcs))
	src, since := srcs[k], forks[k]
	head := s.ms[src].tr.Current()
	gi := &fakeState{id: head.ID(), epoch: head.Epoch(), o: m.o, scratch: true}
	s.nonce++
	c := Commit{Epoch: head.Epoch(), Parent: head.ID(), Committer: Committer{External: true}, RejoinSince: since,
		Bytes: encodeCommit(fakeCommit{Valid: true, Nonce: s.nonce})}
	next, _, err := gi.Apply(c)
	if err != nil {
		s.fail("external commit: %v", err)
		return false
	}
	s.record(c, m.idx, true)
	s.stats.externals++
	s.stats.resyncs++
	m.logCommit(c)
	m.resync = nil
	d, err := m.tr.Resynced(c, next, s.ms[src].tr.Path(), s.now)
	if s.trace != nil {
		s.trace("t=%v m%d REJOIN since %v on %v (src m%d) -> %v", s.now.Sub(t0), m.idx, since, head.ID(), src, next.ID())
	}
	if err != nil {
		s.fail("Resynced: %v", err)
		return false
	}
	s.broadcast(m, envelope{kind: kCommit, commit: c})
	s.handle(m, d)
	return true
}

// heal reconnects the halves; every member syncs with a peer of the other
// half, as a node does when it meets a new peer.
func (s *sim) heal() {
	s.split = false
	for _, m := range s.ms {
		m.syncing = false
		s.requestSync(m, m.tr.SyncFrom(), (m.idx+1)%len(s.ms))
	}
}

// settle delivers everything, lets time pass and runs anti-entropy syncs
// until the group has been converged twice in a row.
func (s *sim) settle() {
	calm := 0
	for round := 0; round < 200 && s.err == nil; round++ {
		for n := 0; len(s.inflight)+len(s.due) > 0 && s.err == nil; n++ {
			if n > 50_000 {
				s.fail("message storm")
				return
			}
			s.deliverOne()
		}
		if s.converged() {
			if calm++; calm == 2 {
				return
			}
		} else {
			calm = 0
		}
		for _, m := range s.ms {
			s.requestSync(m, m.tr.SyncFrom(), -1)
		}
		s.advance(window + time.Second)
	}
	if s.err == nil {
		s.fail("no convergence after 200 rounds: %v", s.currents())
	}
}

func (s *sim) converged() bool {
	for _, m := range s.ms[1:] {
		if m.resync != nil || m.tr.Current().ID() != s.ms[0].tr.Current().ID() {
			return false
		}
	}
	return true
}

func (s *sim) currents() []string {
	var out []string
	for _, m := range s.ms {
		c := m.tr.Current()
		out = append(out, fmt.Sprintf("%d:%v@%d", m.idx, c.ID(), c.Epoch()))
	}
	return out
}

// check verifies the end state: same state everywhere, reached by rule 1 at
// every epoch, every message delivered exactly once to every other member,
// states used correctly, and the rotation in if one was wanted.
func (s *sim) check() {
	for _, m := range s.ms {
		if len(m.o.misuse) > 0 {
			s.fail("%v", m.o.misuse)
		}
		if m.o.live != len(m.tr.chain) {
			s.fail("member %d: %d states alive, tracker holds %d", m.idx, m.o.live, len(m.tr.chain))
		}
	}
	lost, example := 0, ""
	for id, from := range s.sender {
		for _, m := range s.ms {
			if m.idx != from && !m.got[id] {
				lost++
				example = fmt.Sprintf("message %x from member %d to member %d, sealed in %v", id[:4], from, m.idx, s.sealedIn[id])
			}
		}
	}
	if lost > 0 {
		s.fail("%d deliveries lost, e.g. %s", lost, example)
	}
	final := map[[32]byte]bool{}
	for st := s.ms[0].tr.Current().ID(); st != rootID; st = s.w.parent[st] {
		parent, via := s.w.parent[st], s.w.via[st]
		final[via.key.hash] = true
		best := via
		for _, c := range s.made[parent] {
			if lowerRank(c.key, best.key) {
				best = c
			}
		}
		if best.key != via.key {
			s.fail("epoch %d won by %+v, but %+v was lower", via.Epoch, via.Committer, best.Committer)
		}
		if s.o.rotation && slices.Contains(s.w.applied[st], s.rotation.ID) {
			s.stats.rotationLanded = true
			s.stats.rotationByRef = via.Committer.Leaf != uint32(len(s.ms)-1)
		}
	}
	for _, cs := range s.made {
		for _, c := range cs {
			if s.committer[c.key.hash] == len(s.ms)-1 && !c.Committer.External && !final[c.key.hash] {
				s.stats.rotationLost++
			}
		}
	}
	if s.o.rotation && !s.stats.rotationLanded {
		s.fail("the rotation of member %d never landed", len(s.ms)-1)
	}
}
