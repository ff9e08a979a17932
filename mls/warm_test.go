package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/meshchat/meshchat/mls/internal/ciphersuite"
	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/tree"
	"github.com/meshchat/meshchat/mls/internal/treemath"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// A warm group is a group in steady state: every member has been added and
// enough members have committed since that every parent node of the ratchet
// tree holds a key, as in a group that has lived a while. Benchmarks of
// commits need it: a group grown by one big Add has only blank parent nodes,
// so its first commits encrypt to every member (the linear worst case) and
// measure the past, not the steady state.
//
// Running the protocol for every member to get there would cost a Join per
// member (seconds each at 10,000 members). Instead the fixture plays the
// part of all members at once: it keeps one "god's view" of the tree,
// applies the members' commits to it with the real path generation
// (tree.GenerateUpdatePath: fresh leaf keys, path secrets, parent hashes,
// leaf signatures), and remembers the newest path secret of every parent
// node. A member's state is then what that member would hold after
// processing those commits: the tree, its leaf key, and the path secrets of
// the parent nodes above it. The epoch secrets of the final epoch come from
// a random joiner secret through the real key schedule, and every member
// shares them. The tree passes the full validation a joiner runs
// (tree.Validate), which the fixture checks once.
//
// Only the UpdatePath ciphertexts are skipped (nobody needs them: every
// member's secrets are known), which is what makes the build O(N log N)
// hashing and O(N) key derivations instead of O(N log N) HPKE encryptions
// and N joins.
type warmGroup struct {
	shape    string
	n        int // members
	cs       *ciphersuite.Suite
	groupID  []byte
	ids      []*Identity // by leaf; nil for blank leaves
	leafPriv [][]byte    // HPKE private key of each leaf; nil for blank leaves
	secrets  map[treemath.NodeIndex][]byte
	tree     *tree.Tree
	ctx      wire.GroupContext
	ks       *keyschedule.EpochSecrets
	interim  []byte
	confTag  []byte
	commits  int // commits applied to warm the tree
}

// warmShape says how a warm group of n members is laid out.
type warmShape struct {
	name string
	// slots is the number of members to add before removals.
	slots func(n int) int
	// removed says whether the member added at leaf i is removed again.
	removed func(i int) bool
	// committer says whether leaf i commits while warming (after the
	// removals). The committers' paths must cover every parent node that
	// can be non-blank.
	committer func(i int) bool
}

var (
	// warmFull: members at leaves 0..N-1; every even leaf has committed,
	// so every parent node is set (one per pair of leaves covers level 1
	// and everything above).
	warmFull = warmShape{
		name:      "full",
		slots:     func(n int) int { return n },
		removed:   func(int) bool { return false },
		committer: func(i int) bool { return i%2 == 0 },
	}
	// warmBlank25: every fourth leaf slot blank (members removed), and the
	// removals' blanked paths refreshed by later commits: the parents
	// above two populated subtrees are set, those above a removed leaf and
	// its neighbour stay blank as the protocol leaves them (their copath
	// child is blank, so they are not on the filtered direct path).
	warmBlank25 = warmShape{
		name:      "blank25",
		slots:     func(n int) int { return n + (n-1)/3 },
		removed:   func(i int) bool { return i%4 == 3 },
		committer: func(i int) bool { return i%4 == 0 || i%4 == 2 },
	}
)

var (
	warmMu     sync.Mutex
	warmGroups = map[string]*warmGroup{}
)

// getWarmGroup returns the cached warm group of n members in shape sh.
func getWarmGroup(tb testing.TB, sh warmShape, n int) *warmGroup {
	tb.Helper()
	key := fmt.Sprintf("%s/%d", sh.name, n)
	warmMu.Lock()
	defer warmMu.Unlock()
	if w, ok := warmGroups[key]; ok {
		return w
	}
	w := buildWarmGroup(tb, sh, n)
	warmGroups[key] = w
	return w
}

func buildWarmGroup(tb testing.TB, sh warmShape, n int) *warmGroup {
	tb.Helper()
	cs, err := lookupSuite(testSuite)
	if err != nil {
		tb.Fatal(err)
	}
	w := &warmGroup{shape: sh.name, cs: cs, groupID: []byte(fmt.Sprintf("warm %s group of %d", sh.name, n)), secrets: map[treemath.NodeIndex][]byte{}}
	slots := sh.slots(n)
	w.ids = make([]*Identity, slots)
	w.leafPriv = make([][]byte, slots)
	t := tree.New(cs)
	// Everyone is added (as by Add proposals: KeyPackage leaves, all
	// parent nodes blank).
	for i := range slots {
		id, err := NewIdentity(testSuite, fmt.Appendf(nil, "member-%d", i), nil)
		if err != nil {
			tb.Fatal(err)
		}
		kp, err := NewKeyPackage(id, nil, nil)
		if err != nil {
			tb.Fatal(err)
		}
		leaf := kp.pub.kp.LeafNode
		at, err := t.AddLeaf(&leaf)
		if err != nil || int(at) != i {
			tb.Fatalf("add leaf %d: at %d, %v", i, at, err)
		}
		w.ids[i], w.leafPriv[i] = id, kp.encPriv
	}
	// Some are removed (blanking their leaf and direct path).
	for i := range slots {
		if sh.removed(i) && t.Leaf(treemath.LeafIndex(i)) != nil {
			if err := t.RemoveLeaf(treemath.LeafIndex(i)); err != nil {
				tb.Fatal(err)
			}
			w.ids[i], w.leafPriv[i] = nil, nil
		}
	}
	w.n = t.MemberCount()
	if w.n != n {
		tb.Fatalf("warm %s group has %d members, want %d", sh.name, w.n, n)
	}
	// The committers commit in a random order, each with a fresh path.
	var order []int
	for i := range int(t.LeafCount()) {
		if sh.committer(i) && t.Leaf(treemath.LeafIndex(i)) != nil {
			order = append(order, i)
		}
	}
	prng := mrand.New(mrand.NewPCG(uint64(n), 7))
	prng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	for _, i := range order {
		w.commit(tb, t, treemath.LeafIndex(i))
	}
	w.commits = len(order)
	w.tree = t

	// The final epoch: a GroupContext over the warm tree, secrets from a
	// random joiner secret through the real key schedule.
	th, err := t.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	cth := make([]byte, cs.HashSize())
	joiner := make([]byte, cs.HashSize())
	rand.Read(cth)
	rand.Read(joiner)
	w.ctx = wire.GroupContext{
		Version:                 wire.ProtocolVersionMLS10,
		CipherSuite:             wire.CipherSuite(testSuite),
		GroupID:                 w.groupID,
		Epoch:                   uint64(w.commits + 1),
		TreeHash:                th,
		ConfirmedTranscriptHash: cth,
		Extensions:              wire.Extensions{},
	}
	ctxRaw, err := wire.Marshal(&w.ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if w.ks, err = keyschedule.Join(cs, joiner, nil, ctxRaw); err != nil {
		tb.Fatal(err)
	}
	w.ks.ForgetJoinerSecrets()
	w.confTag = keyschedule.ConfirmationTag(cs, w.ks.ConfirmationKey, cth)
	if w.interim, err = keyschedule.InterimTranscriptHash(cs, cth, w.confTag); err != nil {
		tb.Fatal(err)
	}
	// The full validation a joiner runs must pass. It also builds the
	// tree's key indexes, as a joiner's validation does, which the
	// members' copies share.
	if err := t.Validate(&tree.Params{GroupContext: &w.ctx}); err != nil {
		tb.Fatalf("warm %s group of %d: %v", sh.name, n, err)
	}
	return w
}

// commit applies an UpdatePath of leaf i to t, as i's commit would, and
// records the new leaf key and path secrets.
func (w *warmGroup) commit(tb testing.TB, t *tree.Tree, i treemath.LeafIndex) {
	tb.Helper()
	path, err := t.FilteredDirectPath(i)
	if err != nil {
		tb.Fatal(err)
	}
	template := *t.Leaf(i)
	rec := &warmRecorder{r: rand.Reader}
	ps, err := t.GenerateUpdatePath(i, &template, w.ids[i].key, w.groupID, rec)
	if err != nil {
		tb.Fatal(err)
	}
	defer ps.Zero()
	// Recover the secrets from the randomness consumed: the leaf key pair,
	// then path_secret[0] (RFC 9420 §7.4), the rest derived from it.
	replay := bytes.NewReader(rec.buf)
	leafPriv, leafPub, err := w.cs.GenerateHPKEKey(replay)
	if err != nil || !bytes.Equal(leafPub, ps.Leaf().EncryptionKey) {
		tb.Fatalf("replay leaf key: %v", err)
	}
	w.leafPriv[i] = leafPriv
	secret := make([]byte, w.cs.HashSize())
	if _, err := io.ReadFull(replay, secret); err != nil {
		tb.Fatal(err)
	}
	for k, x := range path {
		if k > 0 {
			if secret, err = w.cs.DeriveSecret(secret, "path"); err != nil {
				tb.Fatal(err)
			}
		}
		w.secrets[x] = secret
	}
	// Nodes on the direct path but off the filtered one were blanked.
	n := treemath.LeafCount(t.LeafCount())
	x, _ := treemath.LeafToNode(i)
	for {
		p, ok := treemath.Parent(x, n)
		if !ok {
			break
		}
		if t.IsBlank(p) {
			delete(w.secrets, p)
		}
		x = p
	}
}

// warmRecorder passes reads through to r and keeps a copy of every byte
// handed out, so that the secrets a path generation drew can be recovered.
type warmRecorder struct {
	r   io.Reader
	buf []byte
}

func (rr *warmRecorder) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	rr.buf = append(rr.buf, b[:n]...)
	return n, err
}

// member returns the Group of the member at leaf i: its own copy of the
// tree, its leaf key and the keys of the parent nodes above it, the shared
// epoch secrets and a fresh secret tree.
func (w *warmGroup) member(tb testing.TB, i uint32) *Group {
	tb.Helper()
	if w.ids[i] == nil {
		tb.Fatalf("leaf %d of the warm group is blank", i)
	}
	t := w.tree.Clone()
	priv, err := newPrivState(w.cs, treemath.LeafIndex(i), w.leafPriv[i])
	if err != nil {
		tb.Fatal(err)
	}
	n := treemath.LeafCount(t.LeafCount())
	x, _ := treemath.LeafToNode(treemath.LeafIndex(i))
	for {
		p, ok := treemath.Parent(x, n)
		if !ok {
			break
		}
		x = p
		if t.IsBlank(x) {
			continue
		}
		secret, ok := w.secrets[x]
		if !ok {
			tb.Fatalf("no path secret for node %d above leaf %d", x, i)
		}
		nodePriv, nodePub, err := deriveNodeKey(w.cs, secret)
		if err != nil {
			tb.Fatal(err)
		}
		if string(nodePub) != string(t.EncryptionKey(x)) {
			tb.Fatalf("node %d: path secret does not match the tree", x)
		}
		priv.nodes[x] = nodeKey{secret: secret, priv: nodePriv, pub: nodePub}
	}
	g, err := newGroup(epochState{
		id: w.ids[i], cs: w.cs,
		ctx: w.ctx, interim: w.interim, confTag: w.confTag,
		tree: t, priv: priv, ks: w.ks,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// lastMember is the highest non-blank leaf.
func (w *warmGroup) lastMember() uint32 {
	for i := len(w.ids) - 1; i >= 0; i-- {
		if w.ids[i] != nil {
			return uint32(i)
		}
	}
	return 0
}

// TestWarmGroup checks the warm fixture: members agree on the epoch,
// exchange messages, and a commit of one is processed by the others (from
// the far half of the tree and the committer's sibling), after which all
// three agree again.
func TestWarmGroup(t *testing.T) {
	for _, sh := range []warmShape{warmFull, warmBlank25} {
		for _, n := range []int{2, 7, 64, 100} {
			t.Run(fmt.Sprintf("%s/N=%d", sh.name, n), func(t *testing.T) {
				if sh.name == "blank25" && n < 4 {
					t.Skip("too small to have blanks")
				}
				w := buildWarmGroup(t, sh, n)
				if sh.name == "full" {
					// Every parent above two populated subtrees is set.
					lc := treemath.LeafCount(w.tree.LeafCount())
					for x := treemath.NodeIndex(1); x < treemath.NodeIndex(2*lc-1); x += 2 {
						r, _ := treemath.Right(x, lc)
						first, _, _ := treemath.LeafSpan(r, lc)
						if int(first) < n && w.tree.IsBlank(x) {
							t.Fatalf("parent node %d is blank in a full warm tree", x)
						}
					}
				}
				a := w.member(t, 0)
				far := w.member(t, w.lastMember())
				sib := w.member(t, 1)
				if w.lastMember() == 1 {
					sib = nil
				}
				ct := must[[]byte](t)(a.Seal([]byte("hello"), nil))
				if r := process(t, far, ct); string(r.Data) != "hello" {
					t.Fatalf("opened %q", r.Data)
				}
				pc := must[*PendingCommit](t)(a.Update())
				farNext := process(t, far, pc.Commit).Next
				if string(farNext.EpochAuthenticator()) != string(pc.Next.EpochAuthenticator()) {
					t.Fatal("far member disagrees after the commit")
				}
				if sib != nil {
					sibNext := process(t, sib, pc.Commit).Next
					if string(sibNext.EpochAuthenticator()) != string(pc.Next.EpochAuthenticator()) {
						t.Fatal("sibling disagrees after the commit")
					}
				}
				// A new member joins from a Welcome, validating the tree.
				newcomer := newTestClient(t, "newcomer", nil)
				add := must[*PendingCommit](t)(pc.Next.AddMembers(newcomer.kp.KeyPackage()))
				joined := must[*Group](t)(Join(add.Welcome, []*PrivateKeyPackage{newcomer.kp}, nil, nil))
				if string(joined.EpochAuthenticator()) != string(add.Next.EpochAuthenticator()) {
					t.Fatal("joiner disagrees")
				}
				// And back: the far member commits, the first follows.
				pc2 := must[*PendingCommit](t)(farNext.Update())
				aNext := process(t, pc.Next, pc2.Commit).Next
				if string(aNext.EpochAuthenticator()) != string(pc2.Next.EpochAuthenticator()) {
					t.Fatal("disagreement after the second commit")
				}
			})
		}
	}
}
