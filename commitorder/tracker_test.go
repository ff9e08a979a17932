package commitorder

import (
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"
)

var (
	timeZero time.Time
	t0       = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rootID   = NewStateID([]byte("root"))
	window   = DefaultSettleWindow
)

// fixture is one member driven by hand.
type fixture struct {
	t     *testing.T
	o     *owner
	tr    *Tracker
	nonce uint64
}

func newFixture(t *testing.T) *fixture {
	o := newOwner("solo", nil)
	return &fixture{t: t, o: o, tr: New(o.rootState(rootID), Config{}, t0)}
}

// commit makes a valid member commit by leaf on parent (of epoch epoch).
func (f *fixture) commit(parent StateID, epoch uint64, leaf uint32, refs, vals []ProposalID) Commit {
	f.nonce++
	return Commit{Epoch: epoch, Parent: parent, Committer: Committer{Leaf: leaf},
		Bytes: encodeCommit(fakeCommit{Valid: true, Nonce: f.nonce, Refs: refs, Vals: vals})}
}

// external makes a valid external commit on parent.
func (f *fixture) external(parent StateID, epoch uint64, since StateID) Commit {
	f.nonce++
	return Commit{Epoch: epoch, Parent: parent, Committer: Committer{External: true}, RejoinSince: since,
		Bytes: encodeCommit(fakeCommit{Valid: true, Nonce: f.nonce})}
}

// after is the fake ID of the state c leads to.
func after(c Commit) StateID {
	h := sha256.New()
	h.Write(c.Parent[:])
	h.Write(c.Bytes)
	var id StateID
	h.Sum(id[:0])
	return id
}

func (f *fixture) receive(c Commit, now time.Time, want Outcome) Decision {
	f.t.Helper()
	d, err := f.tr.Receive(c, now)
	if d.Outcome != want {
		f.t.Fatalf("Receive: outcome %v, want %v (err %v)", d.Outcome, want, err)
	}
	if (err != nil) != (want == Invalid) {
		f.t.Fatalf("Receive: err %v with outcome %v", err, d.Outcome)
	}
	if d.Current != f.tr.Current() {
		f.t.Fatalf("Decision.Current is not Current()")
	}
	return d
}

func (f *fixture) wantCurrent(id StateID) {
	f.t.Helper()
	if got := f.tr.Current().ID(); got != id {
		f.t.Fatalf("current state %v, want %v", got, id)
	}
}

func (f *fixture) wantClean(live int) {
	f.t.Helper()
	if len(f.o.misuse) > 0 {
		f.t.Fatalf("states misused: %v", f.o.misuse)
	}
	if f.o.live != live {
		f.t.Fatalf("%d states alive, want %d", f.o.live, live)
	}
}

func msgID(b byte) MessageID { return MessageID{b} }

// Rule 1 whatever the arrival order: every permutation of five commits on
// the same parent ends on the lowest leaf's state. A tracker that kept the
// first commit it applied fails this on most permutations.
func TestLowestRankWinsInAnyArrivalOrder(t *testing.T) {
	f := newFixture(t)
	cs := []Commit{
		f.commit(rootID, 0, 2, nil, nil),
		f.commit(rootID, 0, 1, nil, nil),
		f.commit(rootID, 0, 5, nil, nil),
		f.external(rootID, 0, StateID{}),
		f.external(rootID, 0, StateID{}),
	}
	want := after(cs[1])
	n := 0
	for perm := range permutations(len(cs)) {
		f := newFixture(t)
		for _, i := range perm {
			if _, err := f.tr.Receive(cs[i], t0); err != nil {
				t.Fatal(err)
			}
		}
		f.wantCurrent(want)
		f.wantClean(2) // the root, kept for the window, and the winner
		n++
	}
	if n != 120 {
		t.Fatalf("tried %d orders, want 120", n)
	}
}

// External commits rank after every member commit and break ties on the
// lowest hash.
func TestExternalCommitsRankLastAndTieOnHash(t *testing.T) {
	f := newFixture(t)
	e1, e2 := f.external(rootID, 0, StateID{}), f.external(rootID, 0, StateID{})
	lo, hi := e1, e2
	if h1, h2 := e1.Hash(), e2.Hash(); string(h1[:]) > string(h2[:]) {
		lo, hi = e2, e1
	}
	f.receive(hi, t0, Applied)
	f.receive(lo, t0, Applied)
	f.receive(hi, t0, Lost)
	f.wantCurrent(after(lo))
	m := f.commit(rootID, 0, 1<<31, nil, nil) // the highest leaf still beats any external commit
	f.receive(m, t0, Applied)
	f.receive(lo, t0, Lost)
	f.wantCurrent(after(m))
	f.wantClean(2)
}

// Only valid commits compete: an invalid commit by leaf 0 neither wins nor
// dislodges the valid one, in either order, and stays rejected.
func TestInvalidCommitNeverWins(t *testing.T) {
	for _, invalidFirst := range []bool{true, false} {
		f := newFixture(t)
		bad := Commit{Epoch: 0, Parent: rootID, Committer: Committer{Leaf: 0}, Bytes: encodeCommit(fakeCommit{Valid: false, Nonce: 99})}
		good := f.commit(rootID, 0, 3, nil, nil)
		if invalidFirst {
			f.receive(bad, t0, Invalid)
			f.receive(good, t0, Applied)
		} else {
			f.receive(good, t0, Applied)
			f.receive(bad, t0, Invalid)
		}
		_, err := f.tr.Receive(bad, t0)
		if !errors.Is(err, ErrInvalidCommit) {
			t.Fatalf("second delivery of an invalid commit: err %v", err)
		}
		wrongEpoch := f.commit(rootID, 7, 0, nil, nil)
		f.receive(wrongEpoch, t0, Invalid)
		f.wantCurrent(after(good))
	}
}

// A lower-ranked commit arriving within the window unwinds the whole chain
// built on the losing commit: the states are released, the messages sent on
// them are listed for re-sending, the own proposal they applied is listed for
// re-proposal, and commits on the lost branch are stale from then on.
func TestSwitchUnwindsDescendantsAndResends(t *testing.T) {
	f := newFixture(t)
	p := Proposal{ID: NewProposalID([]byte("update leaf 3")), Bytes: []byte("update")}
	a := f.commit(rootID, 0, 3, nil, nil)
	f.receive(a, t0, Applied)
	f.tr.Sent(msgID(1), t0)
	f.tr.Propose(p, t0)
	f.o.receiveProposal(after(a), p.ID)
	a2 := f.commit(after(a), 1, 0, []ProposalID{p.ID}, nil)
	f.receive(a2, t0.Add(100*time.Millisecond), Applied)
	f.tr.Sent(msgID(2), t0.Add(100*time.Millisecond))
	a3 := f.commit(after(a2), 2, 0, nil, nil)
	d := f.receive(a3, t0.Add(200*time.Millisecond), Applied)
	if len(d.Repropose) != 0 {
		t.Fatalf("proposal applied on the branch but re-proposed: %v", d.Repropose)
	}
	f.tr.Sent(msgID(3), t0.Add(200*time.Millisecond))
	f.wantClean(4)

	b := f.commit(rootID, 0, 1, nil, nil)
	d = f.receive(b, t0.Add(time.Second), Applied)
	f.wantCurrent(after(b))
	if d.Unwound != 3 {
		t.Fatalf("unwound %d states, want 3", d.Unwound)
	}
	for _, id := range []StateID{after(a), after(a2), after(a3)} {
		if !f.tr.Lost(id) {
			t.Fatalf("unwound state %v not reported lost", id)
		}
	}
	if f.tr.Lost(after(b)) || f.tr.Lost(rootID) {
		t.Fatal("a state of the winning branch reported lost")
	}
	if !slices.Equal(d.Resend, []MessageID{msgID(1), msgID(2), msgID(3)}) {
		t.Fatalf("resend %v, want messages 1, 2, 3", d.Resend)
	}
	if len(d.Repropose) != 1 || d.Repropose[0].ID != p.ID {
		t.Fatalf("repropose %v, want the update", d.Repropose)
	}
	if tc := f.tr.ToCommit(); len(tc) != 1 || tc[0].ID != p.ID {
		t.Fatalf("ToCommit %v, want the update", tc)
	}
	f.wantClean(2)

	f.receive(f.commit(after(a3), 3, 0, nil, nil), t0.Add(time.Second), Stale)
	f.receive(a, t0.Add(time.Second), Lost)
	f.receive(b, t0.Add(time.Second), Duplicate)
	d = f.tr.Tick(t0.Add(2 * time.Second))
	if len(d.Resend) != 0 {
		t.Fatalf("messages listed twice: %v", d.Resend)
	}
}

// The window bounds memory, not the rule: after it, the parent state is
// released, and a lower-ranked commit on it is a late winner that calls for a
// resync. Rejoining re-sends what was sent on the lost branch, and a member
// commit beating the rejoin asks again, from the same shared state.
func TestLateWinnerAfterWindowNeedsResync(t *testing.T) {
	// Within the window: switch.
	f := newFixture(t)
	a, b := f.commit(rootID, 0, 2, nil, nil), f.commit(rootID, 0, 1, nil, nil)
	f.receive(a, t0, Applied)
	f.receive(b, t0.Add(window-time.Millisecond), Applied)
	f.wantCurrent(after(b))

	// After it: resync.
	f = newFixture(t)
	f.receive(a, t0, Applied)
	f.tr.Sent(msgID(1), t0)
	if f.tr.Settled(after(a)) {
		t.Fatal("settled before the window")
	}
	f.tr.Tick(t0.Add(window))
	if !f.tr.Settled(after(a)) {
		t.Fatal("not settled after the window")
	}
	f.wantClean(1)
	d := f.receive(b, t0.Add(window+time.Millisecond), LateWinner)
	if d.Resync == nil || d.Resync.Since != rootID || string(d.Resync.Winner.Bytes) != string(b.Bytes) {
		t.Fatalf("resync %+v, want since root with winner b", d.Resync)
	}
	f.wantCurrent(after(a))
	f.receive(b, t0.Add(window+time.Millisecond), LateWinner) // unchecked: reported each time
	f.receive(a, t0.Add(window+time.Millisecond), Duplicate)

	// Rejoin on the winning head with an external commit.
	head := &fakeState{id: after(b), epoch: 1, o: f.o, scratch: true}
	e := f.external(head.id, 1, d.Resync.Since)
	s, _, err := head.Apply(e)
	if err != nil {
		t.Fatal(err)
	}
	d, err = f.tr.Resynced(e, s, nil, t0.Add(window+time.Second))
	if err != nil {
		t.Fatal(err)
	}
	f.wantCurrent(after(e))
	if !slices.Equal(d.Resend, []MessageID{msgID(1)}) {
		t.Fatalf("resend after rejoin %v, want message 1", d.Resend)
	}
	f.wantClean(1)
	f.receive(f.commit(after(a), 1, 0, nil, nil), t0.Add(window+time.Second), Stale)

	// A member commit on the head beats the external rejoin.
	m := f.commit(head.id, 1, 4, nil, nil)
	d = f.receive(m, t0.Add(window+2*time.Second), LateWinner)
	if d.Resync.Since != rootID {
		t.Fatalf("resync since %v, want the root, the last state we held in common", d.Resync.Since)
	}
}

// Members re-send, for a rejoining member, what they sent from the last
// state it shared with them until its rejoin, and everything they remember
// when that state is unknown to them.
func TestRejoinCommitTriggersResend(t *testing.T) {
	f := newFixture(t)
	f.tr.Sent(msgID(0), t0)
	x := f.commit(rootID, 0, 0, nil, nil)
	f.receive(x, t0, Applied)
	f.tr.Sent(msgID(1), t0)
	y := f.commit(after(x), 1, 0, nil, nil)
	f.receive(y, t0, Applied)
	f.tr.Sent(msgID(2), t0)
	e := f.external(after(y), 2, after(x))
	d := f.receive(e, t0, Applied)
	if !slices.Equal(d.Resend, []MessageID{msgID(1), msgID(2)}) {
		t.Fatalf("resend %v, want messages 1 and 2", d.Resend)
	}
	f.tr.Sent(msgID(1), t0)
	f.tr.Sent(msgID(2), t0)
	f.tr.Sent(msgID(3), t0)
	e2 := f.external(after(e), 3, NewStateID([]byte("a state we never had")))
	d = f.receive(e2, t0.Add(time.Second), Applied)
	if !slices.Equal(d.Resend, []MessageID{msgID(0), msgID(1), msgID(2), msgID(3)}) {
		t.Fatalf("resend %v, want messages 0 to 3", d.Resend)
	}
}

// Commits arriving child first wait for their parent, then unroll in order.
func TestOrphansAttachWhenParentArrives(t *testing.T) {
	f := newFixture(t)
	c1 := f.commit(rootID, 0, 1, nil, nil)
	c2 := f.commit(after(c1), 1, 2, nil, nil)
	c3 := f.commit(after(c2), 2, 0, nil, nil)
	d := f.receive(c3, t0, Buffered)
	if !d.NeedSync || d.SyncFrom != 0 {
		t.Fatalf("orphan: NeedSync %v SyncFrom %d", d.NeedSync, d.SyncFrom)
	}
	f.receive(c3, t0, Duplicate)
	if d = f.receive(c2, t0, Buffered); len(d.Applied) != 0 {
		t.Fatalf("buffered commit reported applied: %d", len(d.Applied))
	}
	d = f.receive(c1, t0, Applied)
	f.wantCurrent(after(c3))
	// Decision.Applied lists the orphans that attached, in order.
	if !slices.EqualFunc(d.Applied, []Commit{c1, c2, c3}, sameCommit) {
		t.Fatalf("applied %d commits, want c1, c2, c3 in order", len(d.Applied))
	}
	f.wantClean(4)
}

func sameCommit(a, b Commit) bool { return string(a.Bytes) == string(b.Bytes) && a.Parent == b.Parent }

// A commit referencing a proposal not yet received waits for it (other
// members who have it applied the commit: treating it as invalid would split
// the group); if the proposal never comes before the window, the commit is a
// late winner.
func TestCommitWaitsForItsProposals(t *testing.T) {
	f := newFixture(t)
	p := Proposal{ID: NewProposalID([]byte("add newcomer")), Bytes: []byte("add")}
	c := f.commit(rootID, 0, 1, []ProposalID{p.ID}, nil)
	if d := f.receive(c, t0, Waiting); len(d.Applied) != 0 {
		t.Fatal("waiting commit reported applied")
	}
	f.receive(c, t0, Duplicate)
	f.wantCurrent(rootID)
	f.o.receiveProposal(rootID, p.ID)
	d := f.tr.ReceiveProposal(rootID, p, t0)
	f.wantCurrent(after(c))
	if d.Current.ID() != after(c) {
		t.Fatal("decision does not carry the new state")
	}
	// The commit applied by the proposal's arrival is reported, so that
	// the node can log it.
	if len(d.Applied) != 1 || !sameCommit(d.Applied[0], c) {
		t.Fatalf("ReceiveProposal reported %d applied commits, want the waiting one", len(d.Applied))
	}

	f = newFixture(t)
	a := f.commit(rootID, 0, 2, nil, nil)
	f.receive(a, t0, Applied)
	f.receive(c, t0, Waiting)
	d = f.tr.Tick(t0.Add(window))
	if d.Resync == nil || d.Resync.Since != rootID {
		t.Fatalf("waiting winner past the window: resync %+v", d.Resync)
	}
	f.wantClean(1)
}

// Memories are bounded: past states, dead branches and sent records expire
// after the retention.
func TestRetentionBoundsMemory(t *testing.T) {
	f := newFixture(t)
	f.tr = New(f.tr.Current(), Config{Retention: time.Minute, Limit: 8}, t0)
	parent, now := rootID, t0
	for i := range 20 {
		c := f.commit(parent, uint64(i), 0, nil, nil)
		f.receive(c, now, Applied)
		f.tr.Sent(msgID(byte(i)), now)
		parent = after(c)
		now = now.Add(window)
	}
	if n := f.tr.past.len(); n > 8 {
		t.Fatalf("%d past states kept, limit 8", n)
	}
	if n := f.tr.sent.len(); n > 8 {
		t.Fatalf("%d sent records kept, limit 8", n)
	}
	f.tr.Tick(now)                      // releases the last parent: one more past state
	f.tr.Tick(now.Add(2 * time.Minute)) // past the retention of all
	if f.tr.past.len() != 0 || f.tr.sent.len() != 0 {
		t.Fatalf("after the retention: %d past, %d sent", f.tr.past.len(), f.tr.sent.len())
	}
	f.wantClean(1)
}

func TestDedupDeliversOnceWithinBounds(t *testing.T) {
	d := NewDedup(time.Minute, 3)
	if !d.First(msgID(1), t0) || d.First(msgID(1), t0.Add(time.Second)) {
		t.Fatal("first copy must pass, second must not")
	}
	d.First(msgID(2), t0)
	d.First(msgID(3), t0)
	if d.First(msgID(2), t0) {
		t.Fatal("duplicate within bounds delivered")
	}
	d.First(msgID(4), t0) // evicts the oldest, message 1
	if d.Len() != 3 {
		t.Fatalf("Len %d, want 3", d.Len())
	}
	if !d.First(msgID(1), t0) {
		t.Fatal("evicted ID should pass again")
	}
	if !d.First(msgID(3), t0.Add(time.Minute)) {
		t.Fatal("ID past retention should pass again")
	}
}

// permutations yields every order of 0..n-1 (Heap's algorithm).
func permutations(n int) func(func([]int) bool) {
	return func(yield func([]int) bool) {
		a := make([]int, n)
		for i := range a {
			a[i] = i
		}
		c := make([]int, n)
		if !yield(slices.Clone(a)) {
			return
		}
		for i := 0; i < n; {
			if c[i] < i {
				if i%2 == 0 {
					a[0], a[i] = a[i], a[0]
				} else {
					a[c[i]], a[i] = a[i], a[c[i]]
				}
				if !yield(slices.Clone(a)) {
					return
				}
				c[i]++
				i = 0
			} else {
				c[i] = 0
				i++
			}
		}
	}
}

// Paths: Compare tells a better branch from ours, an extension of ours and a
// worse one; after a rejoin through a path, the joined states are known
// without having been held, and a late winner on one of them points back to
// the last state we held.
func TestComparePathsAndRejoinThroughPath(t *testing.T) {
	a, b, c := newFixture(t), newFixture(t), newFixture(t)
	b.nonce = 100 // distinct commit bytes
	x := a.commit(rootID, 0, 0, nil, nil)
	a.receive(x, t0, Applied)
	y := a.commit(after(x), 1, 1, nil, nil)
	a.receive(y, t0, Applied)
	z := b.commit(rootID, 0, 2, nil, nil)
	b.receive(z, t0, Applied)
	b.tr.Sent(msgID(7), t0)

	if since, better := b.tr.Compare(a.tr.Path()); !better || since != rootID {
		t.Fatalf("b against a: since %v better %v, want root and better", since, better)
	}
	if _, better := a.tr.Compare(b.tr.Path()); better {
		t.Fatal("a against b: b's branch called better")
	}
	if _, better := c.tr.Compare(a.tr.Path()); better {
		t.Fatal("a branch that only extends ours called better")
	}
	if _, better := c.tr.Compare([]Step{{State: NewStateID([]byte("elsewhere"))}}); better {
		t.Fatal("a branch sharing nothing with ours called better")
	}

	head := &fakeState{id: after(y), epoch: 2, o: b.o, scratch: true}
	e := b.external(head.id, 2, rootID)
	s, _, err := head.Apply(e)
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.tr.Resynced(e, s, a.tr.Path(), t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Resend, []MessageID{msgID(7)}) {
		t.Fatalf("resend %v, want message 7", d.Resend)
	}
	var ids []StateID
	for _, st := range b.tr.Path() {
		ids = append(ids, st.State)
	}
	if !slices.Equal(ids, []StateID{rootID, after(x), after(y), after(e)}) {
		t.Fatalf("path after rejoin %v", ids)
	}
	if _, better := b.tr.Compare(a.tr.Path()); better {
		t.Fatal("the branch just joined called better")
	}
	w := b.commit(after(x), 1, 0, nil, nil) // beats y on a state b never held
	d = b.receive(w, t0.Add(2*time.Second), LateWinner)
	if d.Resync.Since != rootID {
		t.Fatalf("since %v, want the root, the last state b held", d.Resync.Since)
	}
	b.wantClean(1)
}

// Held lists the states kept for the settle window, oldest first, ending
// with Current; a state leaves it once the window has passed.
func TestHeldStates(t *testing.T) {
	f := newFixture(t)
	ids := func() []StateID {
		var out []StateID
		for _, s := range f.tr.Held() {
			out = append(out, s.ID())
		}
		return out
	}
	if got := ids(); !slices.Equal(got, []StateID{rootID}) {
		t.Fatalf("held %v, want the root only", got)
	}
	a := f.commit(rootID, 0, 0, nil, nil)
	f.receive(a, t0, Applied)
	b := f.commit(after(a), 1, 0, nil, nil)
	f.receive(b, t0.Add(window/2), Applied)
	if got := ids(); !slices.Equal(got, []StateID{rootID, after(a), after(b)}) {
		t.Fatalf("held %v, want root, a, b", got)
	}
	f.tr.Tick(t0.Add(window))
	if got := ids(); !slices.Equal(got, []StateID{after(a), after(b)}) {
		t.Fatalf("held %v after the window of a, want a, b", got)
	}
}
