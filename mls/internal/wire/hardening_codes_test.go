package wire

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// counted wraps a list in an accessor that counts its reads: the operation
// count of the helpers, independent of the machine's speed.
func counted[T any](list []T, reads *int) func(int) T {
	return func(i int) T { *reads++; return list[i] }
}

// Class 9 (issue 9): the checks that compare attacker-sized lists of
// registry values (extension types against capabilities, duplicate
// extension types) read each entry a constant number of times, so their
// cost is linear in the input, never quadratic.
func TestHardeningCodeListsAreLinear(t *testing.T) {
	for _, n := range []int{1000, 8000, 65536} {
		want := make([]ExtensionType, n)
		have := make([]ExtensionType, n)
		for i := range n {
			want[i] = ExtensionType(i)
			have[n-1-i] = ExtensionType(i) // reversed: a linear search scans far
		}
		reads := 0
		if _, missing := FirstMissing(n, counted(want, &reads), n, counted(have, &reads), nil); missing {
			t.Fatal("reported a missing value")
		}
		if reads > 2*n {
			t.Errorf("class9/§13.4 FirstMissing over %d and %d values read %d entries", n, n, reads)
		}
		// Duplicated capabilities (allowed on the wire) do not change that.
		dup := append(slices.Clone(have), have...)
		reads = 0
		FirstMissing(n, counted(want, &reads), len(dup), counted(dup, &reads), nil)
		if reads > n+len(dup) {
			t.Errorf("class9/§13.4 FirstMissing over %d and %d values read %d entries", n, len(dup), reads)
		}
		reads = 0
		if _, dup := FirstRepeated(n, counted(want, &reads)); dup {
			t.Fatal("reported a repeat")
		}
		if reads > n {
			t.Errorf("class9/§13.4 FirstRepeated over %d values read %d entries", n, reads)
		}
	}
}

// The helpers agree with the obvious quadratic definitions, on small and
// large lists, with and without a skip rule.
func TestCodeListsMatchDefinitions(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	naiveMissing := func(want, have []ExtensionType, skip func(ExtensionType) bool) (ExtensionType, bool) {
		for _, v := range want {
			if (skip == nil || !skip(v)) && !slices.Contains(have, v) {
				return v, true
			}
		}
		return 0, false
	}
	naiveRepeat := func(list []ExtensionType) (ExtensionType, bool) {
		for i, v := range list {
			if slices.Contains(list[:i], v) {
				return v, true
			}
		}
		return 0, false
	}
	for iter := range 2000 {
		nw, nh := r.IntN(40), r.IntN(40)
		span := 1 + r.IntN(60)
		if iter%10 == 0 {
			nw, nh, span = r.IntN(3000), r.IntN(3000), 1+r.IntN(65536)
		}
		gen := func(n int) []ExtensionType {
			out := make([]ExtensionType, n)
			for i := range out {
				out[i] = ExtensionType(r.IntN(span))
			}
			return out
		}
		want, have := gen(nw), gen(nh)
		var skip func(ExtensionType) bool
		if iter%2 == 1 {
			skip = ExtensionType.IsDefault
		}
		gv, gm := MissingFrom(want, have, skip)
		nv, nm := naiveMissing(want, have, skip)
		if gv != nv || gm != nm {
			t.Fatalf("MissingFrom(%v, %v) = %v, %v; want %v, %v", want, have, gv, gm, nv, nm)
		}
		rv, rm := FirstRepeated(len(want), func(i int) ExtensionType { return want[i] })
		qv, qm := naiveRepeat(want)
		if rv != qv || rm != qm {
			t.Fatalf("FirstRepeated(%v) = %v, %v; want %v, %v", want, rv, rm, qv, qm)
		}
		var distinct []ExtensionType
		EachDistinct(want, func(v ExtensionType) { distinct = append(distinct, v) })
		var naive []ExtensionType
		for i, v := range want {
			if !slices.Contains(want[:i], v) {
				naive = append(naive, v)
			}
		}
		if !slices.Equal(distinct, naive) {
			t.Fatalf("EachDistinct(%v) = %v, want %v", want, distinct, naive)
		}
	}
}

// Decoding an extension list rejects a duplicate wherever it is, among
// every possible type.
func TestHardeningDuplicateAmongAllTypes(t *testing.T) {
	all := make(Extensions, 1<<16)
	for i := range all {
		all[i].ExtensionType = ExtensionType(i)
	}
	if _, dup := all.Duplicate(); dup {
		t.Fatal("class9/§13.4 65536 distinct types reported as a duplicate")
	}
	for _, at := range []int{1, 1000, len(all) - 1} {
		l := slices.Clone(all)
		l[at].ExtensionType = l[at-1].ExtensionType
		if v, dup := l.Duplicate(); !dup || v != l[at].ExtensionType {
			t.Fatalf("class9/§13.4 duplicate at %d: %v, %v", at, v, dup)
		}
	}
}

func BenchmarkMissingFrom(b *testing.B) {
	for _, n := range []int{16, 1000, 65536} {
		want := make([]ExtensionType, n)
		have := make([]ExtensionType, n)
		for i := range n {
			want[i], have[n-1-i] = ExtensionType(i), ExtensionType(i)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				MissingFrom(want, have, nil)
			}
		})
	}
}
