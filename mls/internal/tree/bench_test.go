package tree

import (
	"crypto/rand"
	"fmt"
	"github.com/meshchat/meshchat/mls/internal/cputime"
	"sync"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// Benchmarks for groups of 10 to 10,000 members in two shapes:
//
//   - full: members at leaves 0..N-1, every parent node above two
//     populated subtrees set (as after everyone has committed);
//   - blank25: a quarter of the leaf slots blank (every fourth leaf), the
//     parents above populated subtrees set, as after removals whose
//     commits' paths have since been refreshed;
//   - removed25: N/0.75 members of which every fourth was then removed,
//     blanking its direct path, and no path refreshed since. Every parent
//     above level 1 is blank, so resolutions hold about N/4 nodes near the
//     root: the worst case, where a path costs one HPKE encryption per
//     resolution node, linear in N by the protocol's design.
//
// The trees are built once per shape and size (real keys and signatures,
// valid parent-hash chains) and shared by the sub-benchmarks.

var benchSizes = []int{10, 100, 1000, 10000}

type benchShape struct {
	name   string
	slots  func(n int) int
	member func(n int) func(int) bool
	after  func(b *testing.B, f *fixture) // changes after building, or nil
}

var benchShapes = []benchShape{
	{"full", func(n int) int { return n }, func(n int) func(int) bool {
		return func(i int) bool { return i < n }
	}, nil},
	{"blank25", func(n int) int { return n * 4 / 3 }, func(n int) func(int) bool {
		// Every fourth slot blank, n members in all.
		return func(i int) bool { return i%4 != 3 && i-i/4 < n }
	}, nil},
	{"removed25", func(n int) int { return n * 4 / 3 }, func(n int) func(int) bool {
		return func(i int) bool { return i-i/4 < n || i%4 == 3 && i-i/4 == n }
	}, func(b *testing.B, f *fixture) {
		for i := range f.tree.LeafCount() {
			if i%4 == 3 && f.tree.Leaf(LeafIndex(i)) != nil {
				if err := f.tree.RemoveLeaf(LeafIndex(i)); err != nil {
					b.Fatal(err)
				}
				f.signers[i] = nil
			}
		}
	}},
}

var (
	benchMu       sync.Mutex
	benchFixtures = map[string]*fixture{}
)

// benchFixture returns the cached fixture for a shape and member count.
func benchFixture(b *testing.B, sh benchShape, n int) *fixture {
	b.Helper()
	key := fmt.Sprintf("%s/%d", sh.name, n)
	benchMu.Lock()
	defer benchMu.Unlock()
	if f, ok := benchFixtures[key]; ok {
		return f
	}
	suite := mustSuite(b, ciphersuite.X25519_AES128GCM_SHA256_Ed25519)
	slots := 1
	for slots < sh.slots(n)+1 {
		slots *= 2
	}
	f := newFixture(b, suite, slots, sh.member(n))
	if sh.after != nil {
		sh.after(b, f)
	}
	if f.tree.MemberCount() != n {
		b.Fatalf("fixture has %d members, want %d", f.tree.MemberCount(), n)
	}
	// Build the key indexes and caches once, as a joiner's validation does.
	if err := f.tree.checkUniqueKeys(); err != nil {
		b.Fatal(err)
	}
	if _, err := f.tree.TreeHash(); err != nil {
		b.Fatal(err)
	}
	benchFixtures[key] = f
	return f
}

// benchGroupContext encodes the provisional GroupContext for a tree hash.
func benchGroupContext(b *testing.B, f *fixture, treeHash []byte) []byte {
	gc, err := wire.Marshal(&wire.GroupContext{
		Version:                 wire.ProtocolVersionMLS10,
		CipherSuite:             wire.CipherSuite(f.suite.ID()),
		GroupID:                 f.groupID,
		Epoch:                   2,
		TreeHash:                treeHash,
		ConfirmedTranscriptHash: make([]byte, 32),
		Extensions:              wire.Extensions{},
	})
	if err != nil {
		b.Fatal(err)
	}
	return gc
}

// forEachSize runs fn as sub-benchmarks shape/N=n.
func forEachSize(b *testing.B, fn func(b *testing.B, f *fixture)) {
	for _, sh := range benchShapes {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/N=%d", sh.name, n), func(b *testing.B) {
				fn(b, benchFixture(b, sh, n))
			})
		}
	}
}

// pathSet is a few UpdatePaths from one sender against the same tree,
// which a receiver can merge one after another: each replaces the sender's
// path and leaves the rest of the tree as it was.
type pathSet struct {
	sender LeafIndex
	paths  []*wire.UpdatePath
	hashes [][]byte // tree hash after each path
}

func makePaths(b *testing.B, f *fixture, sender LeafIndex, count int) *pathSet {
	b.Helper()
	set := &pathSet{sender: sender}
	for range count {
		gen := f.tree.Clone()
		ps, err := gen.GenerateUpdatePath(sender, gen.Leaf(sender), f.signers[sender], f.groupID, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		th, err := gen.TreeHash()
		if err != nil {
			b.Fatal(err)
		}
		up, err := ps.Encrypt(gen, benchGroupContext(b, f, th), nil, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		set.paths = append(set.paths, up)
		set.hashes = append(set.hashes, th)
	}
	return set
}

// BenchmarkCreatePath: a committer generates a path, hashes the tree for
// the provisional GroupContext, and encrypts the path secrets.
func BenchmarkCreatePath(b *testing.B) {
	forEachSize(b, func(b *testing.B, f *fixture) {
		tr := f.tree.Clone()
		const sender = 0
		b.ReportAllocs()
		cpu := cputime.Start()
		defer cpu.Report(b)
		for b.Loop() {
			ps, err := tr.GenerateUpdatePath(sender, tr.Leaf(sender), f.signers[sender], f.groupID, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			th, err := tr.TreeHash()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ps.Encrypt(tr, benchGroupContext(b, f, th), nil, rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProcessPath: a member validates the committer's leaf, merges the
// path, hashes the tree for the provisional GroupContext and decrypts. The
// receiver is the sender's sibling leaf, the worst case: it decrypts at the
// lowest node and derives every key up to the root.
func BenchmarkProcessPath(b *testing.B) {
	forEachSize(b, func(b *testing.B, f *fixture) {
		const sender, receiver = 0, 1
		set := makePaths(b, f, sender, 4)
		tr := f.tree.Clone()
		priv := f.private(b, tr, receiver)
		p := f.params(b)
		b.ReportAllocs()
		cpu := cputime.Start()
		defer cpu.Report(b)
		k := 0
		for b.Loop() {
			up := set.paths[k%len(set.paths)]
			k++
			if err := tr.ValidateLeafNode(&up.LeafNode, wire.LeafNodeSourceCommit, sender, p); err != nil {
				b.Fatal(err)
			}
			if err := tr.MergeUpdatePath(sender, up, nil); err != nil {
				b.Fatal(err)
			}
			th, err := tr.TreeHash()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := priv.DecryptPath(tr, sender, up, nil, benchGroupContext(b, f, th)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTreeHashAfterPath: the root tree hash after one path has been
// merged (the merge itself is not timed).
func BenchmarkTreeHashAfterPath(b *testing.B) {
	forEachSize(b, func(b *testing.B, f *fixture) {
		const sender = 0
		set := makePaths(b, f, sender, 4)
		tr := f.tree.Clone()
		b.ReportAllocs()
		k := 0
		for b.Loop() {
			b.StopTimer()
			if err := tr.MergeUpdatePath(sender, set.paths[k%len(set.paths)], nil); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := tr.TreeHash(); err != nil {
				b.Fatal(err)
			}
			k++
		}
	})
}

// BenchmarkValidateJoin: a joiner decodes the ratchet_tree extension and
// runs every §12.4.3.1 check, tree hash included.
func BenchmarkValidateJoin(b *testing.B) {
	forEachSize(b, func(b *testing.B, f *fixture) {
		enc, err := f.tree.Encode()
		if err != nil {
			b.Fatal(err)
		}
		p := f.params(b)
		b.ReportAllocs()
		cpu := cputime.Start()
		defer cpu.Report(b)
		for b.Loop() {
			tr, err := Decode(f.suite, enc)
			if err != nil {
				b.Fatal(err)
			}
			if err := tr.Validate(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClone: the copy a group takes before trying a commit.
func BenchmarkClone(b *testing.B) {
	forEachSize(b, func(b *testing.B, f *fixture) {
		b.ReportAllocs()
		for b.Loop() {
			_ = f.tree.Clone()
		}
	})
}
