package mls

import (
	"crypto/rand"
	"flag"
	"fmt"
	"github.com/meshchat/meshchat/mls/internal/cputime"
	"runtime"
	"testing"
	"time"

	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
)

// Benchmarks of every group operation at N = 10, 100, 1,000 and 10,000
// members, in the shapes of warm_test.go (steady-state trees: "full", and
// "blank25" with a quarter of the leaves blank), plus the "batch" shape (a
// group grown by one big Add: every parent blank, the linear worst case of
// the first commits) when -mls.batch is given. Sub-benchmark names are
// Operation/shape/N=n. BenchmarkBaseline measures, in the same run, the
// primitives the targets are stated in (one signature, one verification,
// HPKE seal and open), so that ratios never mix runs.
//
// Run them all (several minutes; the N=10,000 fixtures take a few seconds
// each to build):
//
//	go test ./mls -run '^$' -bench . -benchtime 2s
//
// Besides ns/op, every benchmark reports cpu-ns/op, the process CPU time per
// operation, which is what to compare on a busy machine.

var benchBatch = flag.Bool("mls.batch", false, "also benchmark groups grown by one big Add (all parent nodes blank)")

var benchSizes = []int{10, 100, 1000, 10000}

// benchFixture is what the benchmarks of one shape and size share.
type benchFixture struct {
	n int
	// committer and the receivers of its commits: far is in the other half
	// of the tree (their lowest common ancestor is the root), sibling is
	// the committer's neighbour (it derives every key up to the root).
	committer, far, sibling *Group
	// spare is a client not in the group, with the commit adding it.
	spare      *PrivateKeyPackage
	addCommit  []byte
	addWelcome []byte
	// update is a self-update commit of committer.
	update []byte
	// removed is the leaf a remove benchmark removes.
	removed uint32
}

var benchFixtures = map[string]*benchFixture{}

func getBenchFixture(b *testing.B, shape string, n int) *benchFixture {
	b.Helper()
	key := fmt.Sprintf("%s/%d", shape, n)
	if f, ok := benchFixtures[key]; ok {
		return f
	}
	f := &benchFixture{n: n}
	switch shape {
	case "batch":
		f.committer, f.far, f.sibling = batchGroup(b, n)
	default:
		sh := warmFull
		if shape == warmBlank25.name {
			sh = warmBlank25
		}
		w := getWarmGroup(b, sh, n)
		f.committer = w.member(b, 0)
		f.far = w.member(b, w.lastMember())
		f.sibling = w.member(b, 1)
	}
	f.removed = f.far.LeafIndex()
	f.spare = newTestClient(b, "spare", nil).kp
	add := must[*PendingCommit](b)(f.committer.AddMembers(f.spare.KeyPackage()))
	f.addCommit, f.addWelcome = add.Commit, add.Welcome
	f.update = must[*PendingCommit](b)(f.committer.Update()).Commit
	benchFixtures[key] = f
	return f
}

// batchGroup creates a group of n members by one commit of n-1 Adds and
// returns the creator and two joined members (the last one and the
// creator's neighbour).
func batchGroup(b *testing.B, n int) (creator, far, sibling *Group) {
	b.Helper()
	alice := newTestClient(b, "alice", nil)
	kps := make([]*KeyPackage, n-1)
	privs := make([]*PrivateKeyPackage, n-1)
	for i := range kps {
		c := newTestClient(b, fmt.Sprintf("member-%d", i+1), nil)
		kps[i], privs[i] = c.kp.KeyPackage(), c.kp
	}
	g := must[*Group](b)(NewGroup(alice.id, nil, nil))
	pc := must[*PendingCommit](b)(g.AddMembers(kps...))
	far = must[*Group](b)(Join(pc.Welcome, []*PrivateKeyPackage{privs[n-2]}, nil, nil))
	sibling = must[*Group](b)(Join(pc.Welcome, []*PrivateKeyPackage{privs[0]}, nil, nil))
	return pc.Next, far, sibling
}

// forShapes runs f as the sub-benchmarks shape/N=n, reporting the CPU time
// per operation.
func forShapes(b *testing.B, f func(b *testing.B, bf *benchFixture)) {
	forShapesCPU(b, true, f)
}

// forShapesCPU is forShapes; cpu says whether to report the CPU time of
// the whole loop.
func forShapesCPU(b *testing.B, cpu bool, f func(b *testing.B, bf *benchFixture)) {
	shapes := []string{warmFull.name, warmBlank25.name}
	if *benchBatch {
		shapes = append(shapes, "batch")
	}
	for _, shape := range shapes {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/N=%d", shape, n), func(b *testing.B) {
				if testing.Short() && n > 1000 {
					b.Skip("large group skipped in -short mode")
				}
				bf := getBenchFixture(b, shape, n)
				b.ReportAllocs()
				meter := cputime.Start()
				b.ResetTimer()
				f(b, bf)
				b.StopTimer()
				if cpu {
					meter.Report(b)
				}
			})
		}
	}
}

// BenchmarkBaseline measures the primitives the targets are stated in,
// with the group's cipher suite (MLS_128_DHKEMX25519_AES128GCM_SHA256_
// Ed25519), on inputs shaped like the group operations': a signature and a
// verification over a 256-byte content, HPKE seal and open of a 32-byte
// path secret, and the derivation of a node key pair.
func BenchmarkBaseline(b *testing.B) {
	cs, err := lookupSuite(testSuite)
	if err != nil {
		b.Fatal(err)
	}
	key, err := cs.GenerateSigningKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	content, secret, context := make([]byte, 256), make([]byte, 32), make([]byte, 96)
	sig, err := cs.SignWithLabel(key, labelFramedContentTBS, content)
	if err != nil {
		b.Fatal(err)
	}
	pub := key.PublicKey()
	hpkePriv, hpkePub, err := cs.GenerateHPKEKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	kem, ct, err := cs.EncryptWithLabel(hpkePub, labelUpdatePathNode, context, secret, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	run := func(name string, f func() error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cputime.Start()
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Report(b)
		})
	}
	sign := func() error { _, err := cs.SignWithLabel(key, labelFramedContentTBS, content); return err }
	verify := func() error { return cs.VerifyWithLabel(pub, labelFramedContentTBS, content, sig) }
	run("Sign", sign)
	run("Verify", verify)
	run("SignVerify", func() error {
		if err := sign(); err != nil {
			return err
		}
		return verify()
	})
	run("HPKESeal", func() error {
		_, _, err := cs.EncryptWithLabel(hpkePub, labelUpdatePathNode, context, secret, rand.Reader)
		return err
	})
	run("HPKEOpen", func() error {
		_, err := cs.DecryptWithLabel(hpkePriv, labelUpdatePathNode, context, kem, ct)
		return err
	})
	run("DeriveKeyPair", func() error { _, _, err := cs.DeriveKeyPair(secret); return err })
	b.Run("GOMAXPROCS", func(b *testing.B) {
		// Not a timing: reports the cores a parallel join may use.
		for b.Loop() {
		}
		b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
	})
}

// BenchmarkUpdate: a member creates a self-update commit (an empty commit
// with a fresh path, RFC 9420 §12.4).
func BenchmarkUpdate(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		for b.Loop() {
			if _, err := bf.committer.Update(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProcessUpdate: another member processes that commit. "far" is a
// member in the other half of the tree, "sibling" the committer's
// neighbour, which decrypts at the lowest path node and derives every key
// above it.
func BenchmarkProcessUpdate(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		for _, r := range []struct {
			name string
			g    *Group
		}{{"far", bf.far}, {"sibling", bf.sibling}} {
			b.Run(r.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu := cputime.Start()
				for b.Loop() {
					if _, err := r.g.ProcessMessage(bf.update); err != nil {
						b.Fatal(err)
					}
				}
				cpu.Report(b)
			})
		}
	})
}

// BenchmarkAdd: a member commits adding one member and builds its Welcome,
// with the ratchet tree in the Welcome ("tree") or without ("notree", the
// new member gets the tree elsewhere, RFC 9420 §12.4.3.3).
func BenchmarkAdd(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		kp := bf.spare.KeyPackage()
		for _, omit := range []bool{false, true} {
			name := "tree"
			if omit {
				name = "notree"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				cpu := cputime.Start()
				for b.Loop() {
					pc, err := bf.committer.Commit(&CommitOptions{Add: []*KeyPackage{kp}, OmitRatchetTree: omit})
					if err != nil || pc.Welcome == nil {
						b.Fatal(err)
					}
				}
				cpu.Report(b)
			})
		}
	})
}

// BenchmarkAddBatch: a group's creator commits adding N-1 members at once
// (the KeyPackages already parsed), with the Welcome for all of them
// (ratchet tree inside): how groups are usually grown. Every new member's
// GroupSecrets are encrypted with the whole encrypted GroupInfo as HPKE
// context (RFC 9420 §12.4.3.1).
func BenchmarkAddBatch(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if testing.Short() && n > 1000 {
				b.Skip("large group skipped in -short mode")
			}
			kps := make([]*KeyPackage, n-1)
			for i := range kps {
				kps[i] = newTestClient(b, fmt.Sprintf("member-%d", i+1), nil).kp.KeyPackage()
			}
			g := must[*Group](b)(NewGroup(newTestClient(b, "creator", nil).id, nil, nil))
			b.ReportAllocs()
			cpu := cputime.Start()
			for b.Loop() {
				if _, err := g.AddMembers(kps...); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Report(b)
		})
	}
}

// BenchmarkProcessAdd: another member processes a commit adding one member.
func BenchmarkProcessAdd(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		for b.Loop() {
			if _, err := bf.far.ProcessMessage(bf.addCommit); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkJoin: the new member joins from the Welcome (ratchet tree
// inside), validating the whole tree: every leaf signature (in parallel),
// parent hashes, tree hash, key uniqueness.
func BenchmarkJoin(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		kps := []*PrivateKeyPackage{bf.spare}
		for b.Loop() {
			if _, err := Join(bf.addWelcome, kps, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTreeHash: hashing a whole received ratchet tree, as a joiner
// does (RFC 9420 §7.8), the "tree hashing" term of the join bound. Decoding
// the tree is not timed; cpu-ns/op counts the hashing alone.
func BenchmarkTreeHash(b *testing.B) {
	forShapesCPU(b, false, func(b *testing.B, bf *benchFixture) {
		raw := bf.far.RatchetTree()
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			t, err := tree.Decode(bf.far.cs, raw)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := cputime.Process()
			if _, err := t.TreeHash(); err != nil {
				b.Fatal(err)
			}
			cpu += cputime.Process() - start
		}
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	})
}

// BenchmarkRemove: a member commits removing another (with the path the
// removal requires).
func BenchmarkRemove(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		for b.Loop() {
			if _, err := bf.committer.RemoveMembers(bf.removed); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSealOpen: one member seals a 100-byte application message and
// another opens it (one signature and one verification per message).
func BenchmarkSealOpen(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		msg := make([]byte, 100)
		for b.Loop() {
			ct, err := bf.committer.Seal(msg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bf.far.ProcessMessage(ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSealOpenVsSignVerify interleaves, in every iteration, one
// seal+open of a 100-byte message with one bare signature plus
// verification of the same size of content, and reports the two times and
// their ratio ("bound-%": the message rate as a percentage of the rate one
// signature plus one verification allow). Interleaving puts both under the
// same load, so the ratio holds on a busy machine.
func BenchmarkSealOpenVsSignVerify(b *testing.B) {
	forShapesCPU(b, false, func(b *testing.B, bf *benchFixture) {
		cs := bf.committer.cs
		key := bf.committer.id.key
		pub := bf.committer.id.pub
		msg := make([]byte, 100)
		content := make([]byte, 200)
		var so, sv time.Duration
		for b.Loop() {
			t0 := time.Now()
			ct, err := bf.committer.Seal(msg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bf.far.ProcessMessage(ct); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			sig, err := cs.SignWithLabel(key, labelFramedContentTBS, content)
			if err != nil {
				b.Fatal(err)
			}
			if err := cs.VerifyWithLabel(pub, labelFramedContentTBS, content, sig); err != nil {
				b.Fatal(err)
			}
			sv += time.Since(t1)
			so += t1.Sub(t0)
		}
		b.ReportMetric(float64(so)/float64(b.N), "sealopen-ns/op")
		b.ReportMetric(float64(sv)/float64(b.N), "signverify-ns/op")
		b.ReportMetric(100*float64(sv)/float64(so), "bound-%")
	})
}

// BenchmarkUpdateVsFloor interleaves a self-update commit with the
// cryptography it cannot avoid: for each node of the committer's filtered
// direct path one HPKE encryption per node of the copath child's
// resolution and one key pair derivation, a key pair for the new leaf, and
// two signatures (leaf and commit). It reports both times and
// "floor-%", the floor as a percentage of the commit.
func BenchmarkUpdateVsFloor(b *testing.B) {
	forShapesCPU(b, false, func(b *testing.B, bf *benchFixture) {
		g := bf.committer
		cs := g.cs
		path, err := g.tree.FilteredDirectPath(treemath.LeafIndex(g.myLeaf))
		if err != nil {
			b.Fatal(err)
		}
		var pubs [][]byte
		n := treemath.LeafCount(g.tree.LeafCount())
		for _, x := range path {
			l, _ := treemath.Left(x, n)
			r, _ := treemath.Right(x, n)
			c := l
			if underNode(treemath.LeafIndex(g.myLeaf), l, n) {
				c = r
			}
			res, err := g.tree.Resolution(c)
			if err != nil {
				b.Fatal(err)
			}
			for _, y := range res {
				pubs = append(pubs, g.tree.EncryptionKey(y))
			}
		}
		secret, context, content := make([]byte, 32), make([]byte, 120), make([]byte, 300)
		var commit, floor time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := g.Update(); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			for _, pub := range pubs {
				if _, _, err := cs.EncryptWithLabel(pub, labelUpdatePathNode, context, secret, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
			for range len(path) + 1 {
				if _, _, err := cs.DeriveKeyPair(secret); err != nil {
					b.Fatal(err)
				}
			}
			for range 2 {
				if _, err := cs.SignWithLabel(g.id.key, labelFramedContentTBS, content); err != nil {
					b.Fatal(err)
				}
			}
			floor += time.Since(t1)
			commit += t1.Sub(t0)
		}
		b.ReportMetric(float64(commit)/float64(b.N), "commit-ns/op")
		b.ReportMetric(float64(floor)/float64(b.N), "floor-ns/op")
		b.ReportMetric(100*float64(floor)/float64(commit), "floor-%")
		b.ReportMetric(float64(len(pubs)), "encryptions")
	})
}

// BenchmarkMemberState measures the resident memory of one member's state
// as the heap growth (after garbage collection) from loading a persisted
// state with LoadGroup, which allocates everything the Group holds afresh:
// the tree with its public keys and caches, the private path keys, the
// epoch secrets and a lazily derived secret tree. "fresh" is the state
// right after loading (no earlier epochs retained); "3commits" is that state
// after processing three commits, holding three retained epochs whose trees
// share unchanged nodes with the current one, as in steady operation.
// Reported as B/state and B/member.
func BenchmarkMemberState(b *testing.B) {
	forShapes(b, func(b *testing.B, bf *benchFixture) {
		raw := must[[]byte](b)(bf.far.MarshalBinary())
		var commits [][]byte
		g := bf.committer
		for range 3 {
			pc := must[*PendingCommit](b)(g.Update())
			commits = append(commits, pc.Commit)
			g = pc.Next
		}
		ct := must[[]byte](b)(g.Seal(make([]byte, 100), nil))
		for _, c := range []int{0, 3} {
			b.Run(fmt.Sprintf("%dcommits", c), func(b *testing.B) {
				var total int64
				for b.Loop() {
					before := heapInUse()
					m, err := LoadGroup(raw, nil)
					if err != nil {
						b.Fatal(err)
					}
					for _, c := range commits[:c] {
						r, err := m.ProcessMessage(c)
						if err != nil {
							b.Fatal(err)
						}
						m = r.Next
					}
					if c == 3 {
						// A message opened: the secret tree derives the
						// sender's branch.
						if _, err := m.ProcessMessage(ct); err != nil {
							b.Fatal(err)
						}
					}
					total += int64(heapInUse()) - int64(before)
					runtime.KeepAlive(m)
				}
				perState := float64(total) / float64(b.N)
				b.ReportMetric(perState, "B/state")
				b.ReportMetric(perState/float64(bf.n), "B/member")
				b.ReportMetric(float64(len(raw)), "B/persisted")
			})
		}
	})
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
