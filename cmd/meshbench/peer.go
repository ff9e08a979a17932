package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newPeerCommand() *cobra.Command {
	var sizes, dir, nodeBin, nodeFlags, out string
	var messages int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "peer",
		Short: "Run the scenario with our implementation and with ts-mls, side by side, and print per-op ratios",
		Long: `peer runs, for each group size, the scenario with ts-mls (the driver
bench/peer/tsmls.mjs, run with Node.js; install it first with
"npm ci --prefix bench/peer") and then with our implementation, in the same
process run, and prints per-operation times and the ratio ts-mls / ours.
A size at which ts-mls does not finish within -timeout is reported as such.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := parseSizes(sizes)
			if err != nil {
				return err
			}
			driver := filepath.Join(dir, "tsmls.mjs")
			if _, err := os.Stat(filepath.Join(dir, "node_modules", "ts-mls")); err != nil {
				return fmt.Errorf("ts-mls is not installed in %s (run: npm ci --prefix %s): %w", dir, dir, err)
			}
			if err := warmUp(); err != nil {
				return err
			}
			var all []opResult
			w := cmd.OutOrStdout()
			for i, n := range ns {
				fmt.Fprintf(cmd.ErrOrStderr(), "peer %d/%d: N=%d: ts-mls...\n", i+1, len(ns), n)
				theirs, perr := runPeer(cmd.Context(), nodeBin, strings.Fields(nodeFlags), driver, n, messages, timeout)
				fmt.Fprintf(cmd.ErrOrStderr(), "peer %d/%d: N=%d: meshchat...\n", i+1, len(ns), n)
				ours, err := runScenario(n, messages, cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("N=%d: %w", n, err)
				}
				printComparison(w, n, ours, theirs, perr)
				all = append(all, ours...)
				all = append(all, theirs...)
				// Written after every size, so that a long run that is
				// interrupted keeps what it measured.
				if err := writeCSVFile(out, all); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&sizes, "sizes", "n", "10,100,1000", "group sizes, comma separated")
	cmd.Flags().IntVarP(&messages, "messages", "m", 100, "application messages sent")
	cmd.Flags().StringVar(&dir, "dir", "bench/peer", "directory of the ts-mls driver and its node_modules")
	cmd.Flags().StringVar(&nodeBin, "node", "node", "Node.js executable")
	// ts-mls encodes a vector by recursing once per element: adding 9,999
	// members overflows V8's default stack (RangeError: Maximum call stack
	// size exceeded). 7800 KiB stays below Linux's default 8 MiB main
	// thread stack.
	cmd.Flags().StringVar(&nodeFlags, "node-flags", "--stack-size=7800", "flags passed to Node.js before the driver")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "time allowed to ts-mls per group size")
	cmd.Flags().StringVar(&out, "csv", "peer.csv", "CSV file to write (- for stdout, empty for none)")
	return cmd
}

// runPeer runs the ts-mls driver for one group size and returns the
// operations it reported, also those before a timeout or failure.
func runPeer(ctx context.Context, nodeBin string, nodeFlags []string, driver string, n, m int, timeout time.Duration) ([]opResult, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append(slices.Clone(nodeFlags), driver, strconv.Itoa(n), strconv.Itoa(m))
	c := exec.CommandContext(ctx, nodeBin, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", nodeBin, err)
	}
	var rs []opResult
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var r opResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue
		}
		rs = append(rs, r)
	}
	err = c.Wait()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return rs, fmt.Errorf("ts-mls did not finish within %v", timeout)
	case err != nil:
		return rs, fmt.Errorf("ts-mls: %w: %s", err, firstError(stderr.Bytes()))
	}
	return rs, nil
}

// firstError is the first line of Node's stderr that names an error, or
// its last non-empty line.
func firstError(b []byte) string {
	var last string
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		if bytes.Contains(l, []byte("Error")) {
			return string(l)
		}
		last = string(l)
	}
	return last
}

// printComparison prints one size's table: per-operation time of each
// implementation and the ratio ts-mls / ours.
func printComparison(w io.Writer, n int, ours, theirs []opResult, peerErr error) {
	byOp := func(rs []opResult) map[string]opResult {
		m := map[string]opResult{}
		for _, r := range rs {
			m[r.Op] = r
		}
		return m
	}
	o, t := byOp(ours), byOp(theirs)
	fmt.Fprintf(w, "\nN=%d%s\n", n, map[bool]string{true: "  (ts-mls: " + fmt.Sprint(peerErr) + ")", false: ""}[peerErr != nil])
	fmt.Fprintf(w, "%-11s %14s %14s %10s\n", "operation", "meshchat", "ts-mls", "ts/ours")
	for _, op := range scenarioOps {
		or, ok := o[op]
		if !ok {
			continue
		}
		line := fmt.Sprintf("%-11s %14v", op, or.perOp().Round(time.Microsecond))
		if tr, ok := t[op]; ok {
			line += fmt.Sprintf(" %14v %9.1f×", tr.perOp().Round(time.Microsecond), float64(tr.perOp())/float64(or.perOp()))
		} else {
			line += fmt.Sprintf(" %14s %10s", "—", "")
		}
		fmt.Fprintln(w, line)
	}
}
