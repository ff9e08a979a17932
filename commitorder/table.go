package commitorder

import (
	"slices"
	"time"
)

// table is a map that remembers insertion order and time, so that entries
// can be dropped oldest first once they are older than a retention or there
// are more than a limit of them. Every bounded memory of the tracker is one.
type table[K comparable, V any] struct {
	m     map[K]*entry[V]
	order []K
}

type entry[V any] struct {
	v  V
	at time.Time // when the key was first put
}

func newTable[K comparable, V any]() *table[K, V] {
	return &table[K, V]{m: make(map[K]*entry[V])}
}

// get returns the entry for k, nil if absent.
func (t *table[K, V]) get(k K) *entry[V] { return t.m[k] }

func (t *table[K, V]) has(k K) bool { return t.m[k] != nil }

func (t *table[K, V]) len() int { return len(t.m) }

// put stores v under k. A key already present keeps its first time and
// place in the order, so re-putting never extends an entry's life.
func (t *table[K, V]) put(k K, v V, now time.Time) {
	if e := t.m[k]; e != nil {
		e.v = v
		return
	}
	t.m[k] = &entry[V]{v: v, at: now}
	t.order = append(t.order, k)
}

// remove drops k; it costs a scan of the order, for rare removals.
func (t *table[K, V]) remove(k K) {
	if t.m[k] == nil {
		return
	}
	delete(t.m, k)
	t.order = slices.DeleteFunc(t.order, func(o K) bool { return o == k })
}

// each calls f on every entry, oldest first.
func (t *table[K, V]) each(f func(k K, e *entry[V])) {
	for _, k := range t.order {
		f(k, t.m[k])
	}
}

// prune drops, oldest first, the entries put at or before now-ttl and those
// beyond limit, calling drop (if not nil) on each.
func (t *table[K, V]) prune(now time.Time, ttl time.Duration, limit int, drop func(K, V)) {
	n := 0
	for n < len(t.order) {
		k := t.order[n]
		e := t.m[k]
		if len(t.order)-n <= limit && now.Before(e.at.Add(ttl)) {
			break
		}
		delete(t.m, k)
		if drop != nil {
			drop(k, e.v)
		}
		n++
	}
	if n > 0 {
		t.order = slices.Delete(t.order, 0, n)
	}
}
