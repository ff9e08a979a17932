package tree

import (
	"maps"
)

// keyIndex maps public keys to the node (or leaf) holding them, for the
// uniqueness rules of RFC 9420 §7.3 and §12.4.2 without a scan of the tree.
//
// To keep Clone cheap the index has three levels, like a small log-
// structured merge tree: base is built from a full scan of the tree, mid
// collects later keys in batches, and delta the latest ones. base and mid
// are read-only once built and shared by clones; only delta (at most
// deltaLimit entries) is copied on Clone. Entries are never deleted: a lookup
// confirms that the node still holds the key, so entries for replaced or
// blanked nodes are merely stale, and the next full scan drops them. Each
// level is rebuilt when the one above it outgrows its bound, which keeps the
// amortised cost per stored key O(sqrt(N)) map operations at worst and a few
// microseconds per commit in practice.
type keyIndex struct {
	base  map[string]uint32 // nil until built
	mid   map[string]uint32
	delta map[string]uint32
}

// deltaLimit bounds the part of an index that Clone copies.
const deltaLimit = 256

// insert records that key is now held at at. Before the base is built there
// is nothing to keep in step.
func (k *keyIndex) insert(key []byte, at uint32) {
	if k.base == nil {
		return
	}
	if k.delta == nil {
		k.delta = make(map[string]uint32, deltaLimit)
	}
	k.delta[string(key)] = at
}

// find returns where key is held; holds confirms a candidate position.
func (k *keyIndex) find(key []byte, holds func(uint32) bool) (uint32, bool) {
	for _, m := range [3]map[string]uint32{k.delta, k.mid, k.base} {
		if at, ok := m[string(key)]; ok && holds(at) {
			return at, true
		}
	}
	return 0, false
}

func (k keyIndex) clone() keyIndex {
	return keyIndex{base: k.base, mid: k.mid, delta: maps.Clone(k.delta)}
}

// compact moves a full delta into a new mid, and reports whether mid has
// outgrown midLimit so that the base should be rebuilt from the tree.
func (k *keyIndex) compact(midLimit int) (rebuild bool) {
	if len(k.delta) > deltaLimit {
		mid := make(map[string]uint32, len(k.mid)+len(k.delta))
		maps.Copy(mid, k.mid)
		maps.Copy(mid, k.delta)
		k.mid, k.delta = mid, nil
	}
	return len(k.mid) > midLimit
}

// duplicate is the first pair of positions found holding the same key.
type duplicate struct {
	first, second uint32
	found         bool
}

// buildEncryptionIndex scans every node for its encryption key.
func (t *Tree) buildEncryptionIndex() (map[string]uint32, duplicate) {
	m := make(map[string]uint32, t.width())
	var dup duplicate
	put := func(key []byte, at uint32) {
		if prev, ok := m[string(key)]; ok {
			if !dup.found {
				dup = duplicate{prev, at, true}
			}
			return
		}
		m[string(key)] = at
	}
	for x := range t.width() {
		if key := t.EncryptionKey(NodeIndex(x)); key != nil {
			put(key, x)
		}
	}
	return m, dup
}

// buildSignatureIndex scans every leaf for its signature key.
func (t *Tree) buildSignatureIndex() (map[string]uint32, duplicate) {
	m := make(map[string]uint32, t.creds.members)
	var dup duplicate
	for i := range t.n {
		l := t.leafAt(LeafIndex(i))
		if l == nil {
			continue
		}
		if prev, ok := m[string(l.SignatureKey)]; ok {
			if !dup.found {
				dup = duplicate{prev, uint32(i), true}
			}
			continue
		}
		m[string(l.SignatureKey)] = uint32(i)
	}
	return m, dup
}

// ensureIndexes builds the key indexes on first use.
func (t *Tree) ensureIndexes() {
	if t.encKeys.base == nil {
		t.rebuildEncryptionIndex()
	}
	if t.sigKeys.base == nil {
		t.rebuildSignatureIndex()
	}
}

func (t *Tree) rebuildEncryptionIndex() {
	base, _ := t.buildEncryptionIndex()
	t.encKeys = keyIndex{base: base}
}

func (t *Tree) rebuildSignatureIndex() {
	base, _ := t.buildSignatureIndex()
	t.sigKeys = keyIndex{base: base}
}

// maybeCompactIndexes folds a full delta into mid, and rebuilds the base
// from the tree when mid has grown past an eighth of the tree.
func (t *Tree) maybeCompactIndexes() {
	midLimit := 1024 + int(t.width())/8
	if t.encKeys.compact(midLimit) {
		t.rebuildEncryptionIndex()
	}
	if t.sigKeys.compact(midLimit) {
		t.rebuildSignatureIndex()
	}
}
