package tree

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/meshchat/meshchat/mls/internal/wire"
)

// VerifyTreeHash checks that the root tree hash equals want, as a joiner
// must against the GroupInfo before using the tree (RFC 9420 §12.4.3.1,
// §12.4.3.3).
func (t *Tree) VerifyTreeHash(want []byte) error {
	got, err := t.TreeHash()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("tree hash %x, want %x: %w", got, want, ErrTreeHashMismatch)
	}
	return nil
}

// Validate runs the integrity checks a joiner applies to a received tree
// (RFC 9420 §12.4.3.1), each failing with its own error:
//
//   - the root tree hash equals p.GroupContext.TreeHash when that is set
//     (ErrTreeHashMismatch);
//   - every unmerged_leaves entry names a non-blank leaf below its parent,
//     and every non-blank node between them lists it too
//     (ErrUnmergedLeafInvalid);
//   - encryption keys are unique across all nodes and signature keys across
//     all leaves (ErrDuplicateEncryptionKey, ErrDuplicateSignatureKey);
//   - every leaf passes the §7.3 checks that do not depend on how it
//     arrived: credential, required capabilities, credential types,
//     lifetime, extensions (see ValidateLeafNode for the errors);
//   - every leaf signature verifies (ErrLeafSignatureInvalid), spread over
//     GOMAXPROCS goroutines;
//   - every non-blank parent node is parent-hash valid, reached by exactly
//     one chain (ErrParentNotCovered, ErrParentHashInvalid; §7.9.2).
//
// The total cost is linear in the tree plus the unmerged-leaf lists, and
// N signature verifications.
func (t *Tree) Validate(p *Params) error {
	if t.n == 0 {
		return fmt.Errorf("validate tree: empty tree: %w", ErrMalformedTree)
	}
	if p == nil || p.GroupContext == nil {
		return fmt.Errorf("validate tree: no group context")
	}
	if len(p.GroupContext.TreeHash) > 0 {
		if err := t.VerifyTreeHash(p.GroupContext.TreeHash); err != nil {
			return fmt.Errorf("validate tree: %w", err)
		}
	}
	if err := t.checkUnmergedLeaves(); err != nil {
		return fmt.Errorf("validate tree: %w", err)
	}
	if err := t.checkUniqueKeys(); err != nil {
		return fmt.Errorf("validate tree: %w", err)
	}
	for i := range t.n {
		leaf := t.leafAt(LeafIndex(i))
		if leaf == nil {
			continue
		}
		if err := t.validateLeafContent(leaf, 0, int(i), p, false); err != nil {
			return fmt.Errorf("validate tree: %w", err)
		}
	}
	if err := t.verifyLeafSignatures(p.GroupContext.GroupID); err != nil {
		return fmt.Errorf("validate tree: %w", err)
	}
	if err := t.verifyParentHashes(); err != nil {
		return fmt.Errorf("validate tree: %w", err)
	}
	return nil
}

// checkUnmergedLeaves checks every unmerged_leaves entry
// (RFC 9420 §12.4.3.1): a non-blank leaf, below the parent, and listed by
// every non-blank node between the two. Sorting and range were checked on
// import.
func (t *Tree) checkUnmergedLeaves() error {
	for x := NodeIndex(1); x < NodeIndex(t.width()); x += 2 {
		p := t.parentAt(x)
		if p == nil {
			continue
		}
		if err := checkUnmerged(x, p.UnmergedLeaves, t.n); err != nil {
			return err
		}
		for _, u := range p.UnmergedLeaves {
			if !isUnder(LeafIndex(u), x) {
				return fmt.Errorf("parent %d lists leaf %d, which is not below it: %w", x, u, ErrUnmergedLeafInvalid)
			}
			if t.leafAt(LeafIndex(u)) == nil {
				return fmt.Errorf("parent %d lists blank leaf %d: %w", x, u, ErrUnmergedLeafInvalid)
			}
			for y := t.parentOf(NodeIndex(2 * u)); y != x; y = t.parentOf(y) {
				q := t.parentAt(y)
				if q == nil {
					continue
				}
				if _, ok := slices.BinarySearch(q.UnmergedLeaves, u); !ok {
					return fmt.Errorf("leaf %d is unmerged at parent %d but not at parent %d below it: %w", u, x, y, ErrUnmergedLeafInvalid)
				}
			}
		}
	}
	return nil
}

// checkUniqueKeys builds the key indexes from scratch, failing on the first
// key held twice (RFC 9420 §7.3, §12.4.3.1). On success the indexes are
// kept for later lookups.
func (t *Tree) checkUniqueKeys() error {
	enc, dup := t.buildEncryptionIndex()
	if dup.found {
		return fmt.Errorf("nodes %d and %d hold the same encryption key: %w", dup.first, dup.second, ErrDuplicateEncryptionKey)
	}
	sig, dup := t.buildSignatureIndex()
	if dup.found {
		return fmt.Errorf("leaves %d and %d hold the same signature key: %w", dup.first, dup.second, ErrDuplicateSignatureKey)
	}
	t.encKeys = keyIndex{base: enc}
	t.sigKeys = keyIndex{base: sig}
	return nil
}

// parallelThreshold is the leaf count below which signatures are verified
// on the calling goroutine.
const parallelThreshold = 16

// verifyLeafSignatures verifies every leaf signature, on up to GOMAXPROCS
// goroutines for large trees, and reports the failure at the lowest leaf
// index so the result does not depend on scheduling.
func (t *Tree) verifyLeafSignatures(groupID []byte) error {
	n := int(t.n)
	workers := min(runtime.GOMAXPROCS(0), (n+parallelThreshold-1)/parallelThreshold)
	if workers <= 1 {
		for i := range n {
			if leaf := t.leafAt(LeafIndex(i)); leaf != nil {
				if err := VerifyLeafSignature(t.suite, leaf, groupID, LeafIndex(i)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	const chunk = 8
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstBad = n
		firstErr error
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				start := int(next.Add(chunk)) - chunk
				if start >= n {
					return
				}
				for i := start; i < min(start+chunk, n); i++ {
					leaf := t.leafAt(LeafIndex(i))
					if leaf == nil {
						continue
					}
					if err := VerifyLeafSignature(t.suite, leaf, groupID, LeafIndex(i)); err != nil {
						mu.Lock()
						if i < firstBad {
							firstBad, firstErr = i, err
						}
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// verifyParentHashes checks that every non-blank parent node is
// parent-hash valid (RFC 9420 §7.9.2), top down: a parent P is covered
// through its child side C when exactly one node D of the resolution of C
// is missing from P.unmerged_leaves, the other nodes of that resolution are
// exactly P's unmerged leaves under C, and D.parent_hash is the parent hash
// of P with copath child S (the other side). D is then necessarily P's
// nearest non-blank descendant on that side. Each blank node is walked by
// at most one parent and each resolution size is cached, so the whole check
// is linear in the tree plus the unmerged-leaf lists.
//
// A parent that no chain reaches fails with ErrParentNotCovered. Since a
// tree hash covers a whole subtree, one wrong node can break the hashes of
// chains far above it; so all parents are checked and a parent with no
// chain-shaped child at all is reported before one whose chain-shaped child
// merely carries the wrong hash (which also wraps ErrParentHashInvalid).
func (t *Tree) verifyParentHashes() error {
	var mismatch error
	for x := NodeIndex(1); x < NodeIndex(t.width()); x += 2 {
		p := t.parentAt(x)
		if p == nil {
			continue
		}
		l, r := children(x)
		covered := 0
		shaped := false
		for _, side := range [2][2]NodeIndex{{l, r}, {r, l}} {
			c, s := side[0], side[1]
			d, ok := t.chainCandidate(p, c)
			if !ok {
				continue
			}
			dHash, hasHash := t.nodeParentHash(d)
			if !hasHash {
				continue
			}
			shaped = true
			want, err := t.expectedParentHash(x, p, s)
			if err != nil {
				return err
			}
			if bytes.Equal(dHash, want) {
				covered++
			}
		}
		switch {
		case covered == 1:
		case covered > 1:
			return fmt.Errorf("parent %d is covered by two parent-hash chains: %w", x, ErrParentNotCovered)
		case shaped:
			if mismatch == nil {
				mismatch = fmt.Errorf("parent %d: %w: a child chain node's parent_hash does not match: %w", x, ErrParentNotCovered, ErrParentHashInvalid)
			}
		default:
			return fmt.Errorf("parent %d: no child can link a chain to it: %w", x, ErrParentNotCovered)
		}
	}
	return mismatch
}

// chainCandidate returns the one node D of resolution(c) that is not in
// p.unmerged_leaves, provided the rest of that resolution equals p's
// unmerged leaves under c (RFC 9420 §7.9.2, third criterion).
func (t *Tree) chainCandidate(p *wire.ParentNode, c NodeIndex) (NodeIndex, bool) {
	lo, hi := leafSpan(c)
	a, _ := slices.BinarySearch(p.UnmergedLeaves, lo)
	b, _ := slices.BinarySearch(p.UnmergedLeaves, hi+1)
	if t.resolutionSize(c) != b-a+1 {
		return 0, false
	}
	unmerged := p.UnmergedLeaves[a:b]
	var d NodeIndex
	found := false
	ok := t.walkResolution(c, func(y NodeIndex) bool {
		if y&1 == 0 {
			if _, in := slices.BinarySearch(unmerged, uint32(y>>1)); in {
				return true
			}
		}
		if found {
			return false
		}
		d, found = y, true
		return true
	})
	return d, ok && found
}

// walkResolution calls f on each node of the resolution of x in order,
// stopping (and returning false) when f returns false.
func (t *Tree) walkResolution(x NodeIndex, f func(NodeIndex) bool) bool {
	s := t.at(x)
	if s.leaf != nil {
		return f(x)
	}
	if p := s.parent; p != nil {
		if !f(x) {
			return false
		}
		for _, u := range p.UnmergedLeaves {
			if !f(NodeIndex(2 * u)) {
				return false
			}
		}
		return true
	}
	if x&1 == 0 || t.resolutionSize(x) == 0 {
		return true
	}
	l, r := children(x)
	return t.walkResolution(l, f) && t.walkResolution(r, f)
}

// nodeParentHash is the parent_hash field of non-blank node x; leaves carry
// one only when their source is commit.
func (t *Tree) nodeParentHash(x NodeIndex) ([]byte, bool) {
	s := t.at(x)
	if s.leaf != nil {
		if s.leaf.LeafNodeSource != wire.LeafNodeSourceCommit {
			return nil, false
		}
		return s.leaf.ParentHash, true
	}
	if p := s.parent; p != nil {
		return p.ParentHash, true
	}
	return nil, false
}

// expectedParentHash is the parent hash of parent node x (value p) with
// copath child s, using the original sibling tree hash: s's subtree with
// x's unmerged leaves removed (RFC 9420 §7.9).
func (t *Tree) expectedParentHash(x NodeIndex, p *wire.ParentNode, s NodeIndex) ([]byte, error) {
	lo, hi := leafSpan(s)
	a, _ := slices.BinarySearch(p.UnmergedLeaves, lo)
	b, _ := slices.BinarySearch(p.UnmergedLeaves, hi+1)
	sibling, err := t.originalHash(s, p.UnmergedLeaves[a:b])
	if err != nil {
		return nil, fmt.Errorf("parent hash of node %d: %w", x, err)
	}
	return t.parentHash(p.EncryptionKey, p.ParentHash, sibling)
}
