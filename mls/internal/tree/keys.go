package tree

import (
	"maps"
)

// keyIndex maps public keys to the node (or leaf) holding them, for the
// uniqueness rules of RFC 9420 §7.3 and §12.4.2 without a scan of the tree.
//
// To keep Clone cheap the index is split in two: base is a map built from a
// full scan, read-only afterwards and shared by clones; delta holds the keys
// stored since, and is the only part a clone copies. Entries are never
// deleted: a lookup confirms that the node still holds the key, so entries
// for replaced or blanked nodes are simply stale. When delta grows past a
// bound, a fresh base is built from the tree (amortised O(1) per change).
type keyIndex struct {
	base  map[string]uint32 // nil until built
	delta map[string]uint32
}

// insert records that key is now held at at. Before the base is built there
// is nothing to keep in step.
func (k *keyIndex) insert(key []byte, at uint32) {
	if k.base == nil {
		return
	}
	if k.delta == nil {
		k.delta = make(map[string]uint32)
	}
	k.delta[string(key)] = at
}

// find returns where key is held; holds confirms a candidate position.
func (k *keyIndex) find(key []byte, holds func(uint32) bool) (uint32, bool) {
	if at, ok := k.delta[string(key)]; ok && holds(at) {
		return at, true
	}
	if at, ok := k.base[string(key)]; ok && holds(at) {
		return at, true
	}
	return 0, false
}

func (k keyIndex) clone() keyIndex {
	return keyIndex{base: k.base, delta: maps.Clone(k.delta)}
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
	for i, l := range t.leaves {
		if l != nil {
			put(l.EncryptionKey, uint32(2*i))
		}
	}
	for i, p := range t.parents {
		if p != nil {
			put(p.EncryptionKey, uint32(2*i+1))
		}
	}
	return m, dup
}

// buildSignatureIndex scans every leaf for its signature key.
func (t *Tree) buildSignatureIndex() (map[string]uint32, duplicate) {
	m := make(map[string]uint32, len(t.leaves))
	var dup duplicate
	for i, l := range t.leaves {
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
		t.encKeys.base, _ = t.buildEncryptionIndex()
		t.encKeys.delta = nil
	}
	if t.sigKeys.base == nil {
		t.sigKeys.base, _ = t.buildSignatureIndex()
		t.sigKeys.delta = nil
	}
}

// maybeCompactIndexes rebuilds the shared base of an index whose delta has
// grown too large to copy cheaply on Clone.
func (t *Tree) maybeCompactIndexes() {
	limit := 256 + len(t.leaves)/32
	if len(t.encKeys.delta) > limit {
		t.encKeys.base, _ = t.buildEncryptionIndex()
		t.encKeys.delta = nil
	}
	if len(t.sigKeys.delta) > limit {
		t.sigKeys.base, _ = t.buildSignatureIndex()
		t.sigKeys.delta = nil
	}
}
