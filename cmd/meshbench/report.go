package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
)

func newReportCommand() *cobra.Command {
	var benchFile string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Check the mls benchmark output against the scale targets, with every ratio taken from the same run",
		RunE: func(cmd *cobra.Command, _ []string) error {
			bs, err := parseBenchFile(benchFile)
			if err != nil {
				return err
			}
			return writeReport(cmd.OutOrStdout(), bs)
		},
	}
	cmd.Flags().StringVar(&benchFile, "bench", "docs/bench/mls.txt", "go test -bench output of ./mls")
	return cmd
}

// benchIndex looks results up by name.
type benchIndex map[string]benchResult

func (ix benchIndex) get(name, unit string) (float64, bool) {
	r, ok := ix[name]
	if !ok {
		return 0, false
	}
	v, ok := r.metrics[unit]
	return v, ok
}

// medianIndex indexes results by name; a benchmark run several times
// (-count) gets the median of each metric.
func medianIndex(bs []benchResult) benchIndex {
	runs := map[string][]benchResult{}
	var order []string
	for _, b := range bs {
		if _, ok := runs[b.name]; !ok {
			order = append(order, b.name)
		}
		runs[b.name] = append(runs[b.name], b)
	}
	ix := benchIndex{}
	for _, name := range order {
		rs := runs[name]
		m := benchResult{name: name, metrics: map[string]float64{}}
		for unit := range rs[0].metrics {
			var vs []float64
			for _, r := range rs {
				if v, ok := r.metrics[unit]; ok {
					vs = append(vs, v)
				}
			}
			slices.Sort(vs)
			m.metrics[unit] = vs[len(vs)/2]
		}
		ix[name] = m
	}
	return ix
}

func ms(ns float64) string { return fmt.Sprintf("%.3f ms", ns/1e6) }

// writeReport prints each target of the scale issue with the measured
// values and the same-run limits it is compared with. CPU time
// (cpu-ns/op) is used where the machine is shared; wall time is shown
// beside it.
func writeReport(w io.Writer, bs []benchResult) error {
	ix := medianIndex(bs)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	sign, _ := ix.get("Baseline/Sign", "cpu-ns/op")
	verify, _ := ix.get("Baseline/Verify", "cpu-ns/op")
	signVerify, _ := ix.get("Baseline/SignVerify", "cpu-ns/op")
	seal, _ := ix.get("Baseline/HPKESeal", "cpu-ns/op")
	open, _ := ix.get("Baseline/HPKEOpen", "cpu-ns/op")
	derive, _ := ix.get("Baseline/DeriveKeyPair", "cpu-ns/op")
	cores, ok := ix.get("Baseline/GOMAXPROCS", "cores")
	if !ok {
		cores = 1
	}
	fmt.Fprintf(w, "Same-run primitives (CPU per op): sign %s, verify %s, sign+verify %s, HPKE seal %s, open %s, DeriveKeyPair %s; %g cores\n\n",
		ms(sign), ms(verify), ms(signVerify), ms(seal), ms(open), ms(derive), cores)

	for _, shape := range []string{"full", "blank25"} {
		fmt.Fprintf(w, "== %s tree ==\n", shape)
		name := func(op string, n int, sub string) string {
			s := fmt.Sprintf("%s/%s/N=%d", op, shape, n)
			if sub != "" {
				s += "/" + sub
			}
			return s
		}
		// Commit cost grows with log N.
		c1k, ok1 := ix.get(name("Update", 1000, ""), "cpu-ns/op")
		c10k, ok2 := ix.get(name("Update", 10000, ""), "cpu-ns/op")
		if ok1 && ok2 {
			fmt.Fprintf(w, "self-update commit: N=1,000 %s, N=10,000 %s: ratio %.2f (target ≤ 2): %s; absolute ≤ 2 ms at 10,000: %s\n",
				ms(c1k), ms(c10k), c10k/c1k, verdict(c10k/c1k <= 2), verdict(c10k <= 2e6))
		}
		for _, who := range []string{"far", "sibling"} {
			p1k, ok1 := ix.get(name("ProcessUpdate", 1000, who), "cpu-ns/op")
			p10k, ok2 := ix.get(name("ProcessUpdate", 10000, who), "cpu-ns/op")
			if ok1 && ok2 {
				fmt.Fprintf(w, "process update (%s): N=1,000 %s, N=10,000 %s: ratio %.2f (target ≤ 2): %s; ≤ 1 ms at 10,000: %s\n",
					who, ms(p1k), ms(p10k), p10k/p1k, verdict(p10k/p1k <= 2), verdict(p10k <= 1e6))
			}
		}
		// Join near the signature bound.
		for _, n := range []int{1000, 10000} {
			joinCPU, ok1 := ix.get(name("Join", n, ""), "cpu-ns/op")
			joinWall, ok2 := ix.get(name("Join", n, ""), "ns/op")
			hash, ok3 := ix.get(name("TreeHash", n, ""), "cpu-ns/op")
			verifyWall, _ := ix.get("Baseline/Verify", "ns/op")
			if ok1 && ok2 && ok3 {
				boundCPU := 1.5*float64(n)*verify + hash
				boundWall := 1.5*float64(n)*verifyWall/cores + hash
				fmt.Fprintf(w, "join N=%d: wall %s vs 1.5×N×verify(wall %s)/%g cores + hashing %s = %s: %s (%.2f of the bound); CPU %s vs 1.5×N×verify(CPU) + hashing = %s: %s (%.2f)\n",
					n, ms(joinWall), ms(verifyWall), cores, ms(hash), ms(boundWall), verdict(joinWall <= boundWall), joinWall/boundWall,
					ms(joinCPU), ms(boundCPU), verdict(joinCPU <= boundCPU), joinCPU/boundCPU)
			}
		}
		// Message throughput near the signature bound.
		for _, n := range []int{1000, 10000} {
			so, ok := ix.get(name("SealOpen", n, ""), "cpu-ns/op")
			if ok {
				ratio := signVerify / so
				fmt.Fprintf(w, "seal+open 100 B, N=%d: %s per message = %.0f msg/s per core; one sign+verify %s = %.0f/s: %.0f%% of the bound (target ≥ 70%%): %s\n",
					n, ms(so), 1e9/so, ms(signVerify), 1e9/signVerify, 100*ratio, verdict(ratio >= 0.7))
			}
		}
		// The interleaved measurements (both sides under the same load).
		for _, n := range []int{1000, 10000} {
			if b, ok := ix.get(name("SealOpenVsSignVerify", n, ""), "bound-%"); ok {
				so, _ := ix.get(name("SealOpenVsSignVerify", n, ""), "sealopen-ns/op")
				sv, _ := ix.get(name("SealOpenVsSignVerify", n, ""), "signverify-ns/op")
				fmt.Fprintf(w, "interleaved, N=%d: seal+open %s, sign+verify %s: message rate %.0f%% of the bound (target ≥ 70%%): %s\n",
					n, ms(so), ms(sv), b, verdict(b >= 70))
			}
			if f, ok := ix.get(name("UpdateVsFloor", n, ""), "floor-%"); ok {
				c, _ := ix.get(name("UpdateVsFloor", n, ""), "commit-ns/op")
				fl, _ := ix.get(name("UpdateVsFloor", n, ""), "floor-ns/op")
				e, _ := ix.get(name("UpdateVsFloor", n, ""), "encryptions")
				fmt.Fprintf(w, "interleaved, N=%d: self-update commit %s; its unavoidable cryptography (%.0f HPKE encryptions, a key derivation per path node and for the leaf, 2 signatures) %s: the floor is %.0f%% of the commit\n",
					n, ms(c), e, ms(fl), f)
			}
		}
		// Memory.
		for _, c := range []string{"0commits", "3commits"} {
			st, ok := ix.get(name("MemberState", 10000, c), "B/state")
			per, _ := ix.get(name("MemberState", 10000, c), "B/member")
			if ok {
				fmt.Fprintf(w, "resident state at N=10,000 (%s): %.1f MiB, %.0f B/member (target < 16 MiB): %s\n",
					c, st/(1<<20), per, verdict(st < 16<<20))
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}
