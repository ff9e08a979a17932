package secrettree

import "github.com/meshchat/meshchat/mls/internal/treemath"

// retainedID names the key of one skipped generation.
type retainedID struct {
	leaf treemath.LeafIndex
	typ  RatchetType
	gen  uint32
}

// retainedKey is a skipped generation's key and nonce, kept for a message
// that arrives late (RFC 9420 §9.2, §15.3). It sits on two lists: the tree's,
// in the order keys were retained, and its ratchet's, by generation; both
// drop their oldest entry first when a bound is reached.
type retainedKey struct {
	id         retainedID
	key, nonce []byte

	prev, next   *retainedKey // tree list
	rPrev, rNext *retainedKey // ratchet list
}

// retain appends k as the newest retained key of the tree and of its ratchet.
// Generations reach a ratchet in increasing order, so its list stays sorted.
func (t *Tree) retain(leaf treemath.LeafIndex, typ RatchetType, k KeyNonce) {
	r := &t.leaves[leaf][typ]
	e := &retainedKey{id: retainedID{leaf, typ, k.Generation}, key: k.Key, nonce: k.Nonce}
	t.retained[e.id] = e

	e.prev = t.newest
	if t.newest != nil {
		t.newest.next = e
	} else {
		t.oldest = e
	}
	t.newest = e
	t.retainedCount++

	e.rPrev = r.newest
	if r.newest != nil {
		r.newest.rNext = e
	} else {
		r.oldest = e
	}
	r.newest = e
	r.retained++
}

// dropRetained removes e from both lists and the index, and zeroes it.
func (t *Tree) dropRetained(e *retainedKey) {
	r := &t.leaves[e.id.leaf][e.id.typ]
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.newest = e.prev
	}
	t.retainedCount--

	if e.rPrev != nil {
		e.rPrev.rNext = e.rNext
	} else {
		r.oldest = e.rNext
	}
	if e.rNext != nil {
		e.rNext.rPrev = e.rPrev
	} else {
		r.newest = e.rPrev
	}
	r.retained--

	delete(t.retained, e.id)
	clear(e.key)
	clear(e.nonce)
	*e = retainedKey{}
}

// enforceLimits drops the oldest keys of r beyond MaxRetainedPerRatchet, then
// the oldest keys of the tree beyond MaxRetainedTotal.
func (t *Tree) enforceLimits(r *ratchet) {
	for r.retained > t.cfg.MaxRetainedPerRatchet {
		t.dropRetained(r.oldest)
	}
	for t.retainedCount > t.cfg.MaxRetainedTotal {
		t.dropRetained(t.oldest)
	}
}
