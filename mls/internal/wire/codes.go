package wire

// Lists of 16-bit registry values (extension, proposal and credential
// types, RFC 9420 §17) arrive in attacker-sized vectors: capabilities,
// required_capabilities, extension lists. The checks that compare one such
// list with another must not be quadratic, or a single KeyPackage of a few
// hundred kilobytes costs seconds to validate, once per member that sees it
// (issue 9, class 9). The helpers below read every index of every list once
// (the accessor calls are the operation count the tests measure) and use a
// 65536-bit set once the lists hold more than a few hundred pairs.

// smallCodes is the product of list lengths up to which the helpers
// compare pairs instead of building a set: a few hundred comparisons cost
// less than clearing the 8 KiB set. Below it the reads are bounded by this
// constant.
const smallCodes = 256

// codeSet is a set of 16-bit values.
type codeSet [1 << 10]uint64

func (s *codeSet) add(v uint16) (added bool) {
	w, bit := &s[v>>6], uint64(1)<<(v&63)
	added = *w&bit == 0
	*w |= bit
	return added
}

func (s *codeSet) has(v uint16) bool { return s[v>>6]&(uint64(1)<<(v&63)) != 0 }

// FirstMissing returns the first want(i), i in [0, nWant), for which skip
// (when not nil) is false and that is not among have(j), j in [0, nHave).
// Past smallCodes pairs it reads each index of each list once, so its cost
// is linear in nWant + nHave.
func FirstMissing[T ~uint16](nWant int, want func(int) T, nHave int, have func(int) T, skip func(T) bool) (T, bool) {
	if nWant*nHave <= smallCodes {
	next:
		for i := range nWant {
			v := want(i)
			if skip != nil && skip(v) {
				continue
			}
			for j := range nHave {
				if have(j) == v {
					continue next
				}
			}
			return v, true
		}
		return 0, false
	}
	var set codeSet
	for j := range nHave {
		set.add(uint16(have(j)))
	}
	for i := range nWant {
		if v := want(i); (skip == nil || !skip(v)) && !set.has(uint16(v)) {
			return v, true
		}
	}
	return 0, false
}

// MissingFrom is FirstMissing over two slices: the first value of want,
// other than those skip accepts, that have does not list.
func MissingFrom[T ~uint16](want, have []T, skip func(T) bool) (T, bool) {
	return FirstMissing(len(want), func(i int) T { return want[i] }, len(have), func(j int) T { return have[j] }, skip)
}

// FirstRepeated returns the first at(i), i in [0, n), that equals an
// earlier one; past smallCodes pairs it reads each index once.
func FirstRepeated[T ~uint16](n int, at func(int) T) (T, bool) {
	if n*n <= smallCodes {
		for i := 1; i < n; i++ {
			v := at(i)
			for j := range i {
				if at(j) == v {
					return v, true
				}
			}
		}
		return 0, false
	}
	var set codeSet
	for i := range n {
		if v := at(i); !set.add(uint16(v)) {
			return v, true
		}
	}
	return 0, false
}

// EachDistinct calls f once for each distinct value of list, in order of
// first appearance, in time linear in its length.
func EachDistinct[T ~uint16](list []T, f func(T)) {
	if len(list)*len(list) <= smallCodes {
		for i, v := range list {
			if !contains(list[:i], v) {
				f(v)
			}
		}
		return
	}
	var set codeSet
	for _, v := range list {
		if set.add(uint16(v)) {
			f(v)
		}
	}
}
