package mls

import (
	"fmt"
	"testing"
)

// benchGroup is a group of n members built for benchmarks: alice created
// it and added everyone else in one commit (RFC 9420 allows any number of
// Adds per commit, so this is fast even at 10,000 members); bob is another
// member. Its tree has blank parent nodes, as any group grown by one big
// batch does, so the first paths cost one encryption per member.
type benchGroup struct {
	n          int
	alice, bob *Group
	// spare is a KeyPackage of a client not yet in the group.
	spare *PrivateKeyPackage
	// addCommit and addWelcome add spare to the group.
	addCommit, addWelcome []byte
}

var benchGroups = map[int]*benchGroup{}

func getBenchGroup(b *testing.B, n int) *benchGroup {
	b.Helper()
	if bg, ok := benchGroups[n]; ok {
		return bg
	}
	alice := newTestClient(b, "alice", nil)
	kps := make([]*KeyPackage, n-1)
	var bobKP *PrivateKeyPackage
	for i := range kps {
		c := newTestClient(b, fmt.Sprintf("member-%d", i+1), nil)
		kps[i] = c.kp.KeyPackage()
		if i == 0 {
			bobKP = c.kp
		}
	}
	g := must[*Group](b)(NewGroup(alice.id, nil, nil))
	pc := must[*PendingCommit](b)(g.AddMembers(kps...))
	bg := &benchGroup{n: n, alice: pc.Next}
	bg.bob = must[*Group](b)(Join(pc.Welcome, []*PrivateKeyPackage{bobKP}, nil, nil))
	bg.spare = newTestClient(b, "spare", nil).kp
	add := must[*PendingCommit](b)(bg.alice.AddMembers(bg.spare.KeyPackage()))
	bg.addCommit, bg.addWelcome = add.Commit, add.Welcome
	benchGroups[n] = bg
	return bg
}

var benchSizes = []int{10, 100, 1000, 10000}

func forSizes(b *testing.B, f func(b *testing.B, bg *benchGroup)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if testing.Short() && n > 1000 {
				b.Skip("large group skipped in -short mode")
			}
			bg := getBenchGroup(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			f(b, bg)
		})
	}
}

// BenchmarkAddMember: a member creates a commit adding one member, with its
// Welcome.
func BenchmarkAddMember(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		kp := bg.spare.KeyPackage()
		for b.Loop() {
			pc, err := bg.alice.AddMembers(kp)
			if err != nil || pc.Welcome == nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProcessAdd: another member processes that commit.
func BenchmarkProcessAdd(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		for b.Loop() {
			if _, err := bg.bob.ProcessMessage(bg.addCommit); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkJoinFromWelcome: the new member joins from the Welcome (with the
// ratchet tree inside), validating the whole tree.
func BenchmarkJoinFromWelcome(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		kps := []*PrivateKeyPackage{bg.spare}
		for b.Loop() {
			if _, err := Join(bg.addWelcome, kps, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRemoveMember: a member creates a commit removing another (with
// the path the removal requires).
func BenchmarkRemoveMember(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		for b.Loop() {
			if _, err := bg.alice.RemoveMembers(bg.bob.LeafIndex()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSelfUpdate: a member creates an empty commit refreshing its
// path.
func BenchmarkSelfUpdate(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		for b.Loop() {
			if _, err := bg.bob.Update(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSealOpen: one member seals a 100-byte message and another opens
// it.
func BenchmarkSealOpen(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		msg := make([]byte, 100)
		for b.Loop() {
			ct, err := bg.alice.Seal(msg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bg.bob.ProcessMessage(ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}
