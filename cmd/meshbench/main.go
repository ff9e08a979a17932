// Command meshbench measures meshchat at scale and draws the results.
//
//	meshbench scenario   run the group scenario with our MLS implementation, write a CSV
//	meshbench peer       run the same scenario with ts-mls (Node.js) too, print per-op ratios
//	meshbench mesh       deliver messages in a 100-node mesh on mocknet, write a CSV
//	meshbench plot       draw PNGs from the benchmark output and the CSVs
//	meshbench report     check the benchmark output against the targets (same-run ratios)
//
// The scenario is the one of bench/peer/tsmls.mjs: N key packages, a group
// created, N-1 members added in one commit (Welcome with the ratchet tree),
// one member joining from the Welcome, that member committing a fresh path,
// the creator processing it, and M 100-byte application messages sealed by
// the creator and opened by the member. Per-operation costs of steady-state
// groups come from the mls package's benchmarks (go test -bench), which
// plot reads.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "meshbench",
		Short:         "Measure meshchat's MLS groups and mesh at scale, and plot the results",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newScenarioCommand(), newPeerCommand(), newMeshCommand(), newPlotCommand(), newReportCommand())
	return root
}
