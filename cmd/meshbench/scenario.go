package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshchat/meshchat/mls"
	"github.com/spf13/cobra"
)

// opResult is one measured operation of the scenario: count operations
// took total wall time.
type opResult struct {
	Impl  string  `json:"impl"`
	N     int     `json:"n"`
	Op    string  `json:"op"`
	Count int     `json:"count"`
	Ms    float64 `json:"ms"`
}

// perOp is the mean time of one operation.
func (r opResult) perOp() time.Duration {
	return time.Duration(r.Ms / float64(max(r.Count, 1)) * float64(time.Millisecond))
}

// scenarioOps lists the operations in scenario order.
var scenarioOps = []string{"keypackage", "create", "add", "join", "update", "process", "seal", "open"}

func newScenarioCommand() *cobra.Command {
	var sizes string
	var messages int
	var out string
	cmd := &cobra.Command{
		Use:   "scenario",
		Short: "Run the group scenario with our MLS implementation and write a CSV",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := parseSizes(sizes)
			if err != nil {
				return err
			}
			if err := warmUp(); err != nil {
				return err
			}
			var all []opResult
			for i, n := range ns {
				fmt.Fprintf(cmd.ErrOrStderr(), "scenario %d/%d: N=%d\n", i+1, len(ns), n)
				rs, err := runScenario(n, messages, cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("N=%d: %w", n, err)
				}
				printResults(cmd.OutOrStdout(), rs)
				all = append(all, rs...)
			}
			return writeCSVFile(out, all)
		},
	}
	cmd.Flags().StringVarP(&sizes, "sizes", "n", "10,100,1000,10000", "group sizes, comma separated")
	cmd.Flags().IntVarP(&messages, "messages", "m", 100, "application messages sent")
	cmd.Flags().StringVar(&out, "csv", "scenario.csv", "CSV file to write (- for stdout, empty for none)")
	return cmd
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("group size %q: need an integer of at least 2", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// warmUp runs a small unreported scenario first, as the ts-mls driver does
// for its JIT, so that one-time initialisation is not measured.
func warmUp() error {
	_, err := runScenario(4, 10, nil)
	return err
}

// runScenario runs the scenario of the package comment for a group of n
// with m messages. Progress bars go to status.
func runScenario(n, m int, status io.Writer) ([]opResult, error) {
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	var rs []opResult
	record := func(op string, count int, start time.Time) {
		rs = append(rs, opResult{Impl: "meshchat", N: n, Op: op, Count: count, Ms: float64(time.Since(start)) / float64(time.Millisecond)})
	}

	// N clients each make an identity and publish a KeyPackage.
	start := time.Now()
	bar := newProgress(status, fmt.Sprintf("N=%d key packages", n), n)
	privs := make([]*mls.PrivateKeyPackage, n)
	published := make([][]byte, n)
	for i := range n {
		id, err := mls.NewIdentity(suite, fmt.Appendf(nil, "member-%d", i), nil)
		if err != nil {
			return nil, err
		}
		if privs[i], err = mls.NewKeyPackage(id, nil, nil); err != nil {
			return nil, err
		}
		published[i] = privs[i].KeyPackage().Bytes()
		bar.add(1)
	}
	bar.finish()
	record("keypackage", n, start)

	start = time.Now()
	creatorID, err := mls.NewIdentity(suite, []byte("member-0"), nil)
	if err != nil {
		return nil, err
	}
	creator, err := mls.NewGroup(creatorID, nil, nil)
	if err != nil {
		return nil, err
	}
	record("create", 1, start)

	// One commit adds everyone else; the KeyPackages arrive as bytes and
	// are validated (signatures) on parsing.
	start = time.Now()
	kps := make([]*mls.KeyPackage, 0, n-1)
	for _, raw := range published[1:] {
		kp, err := mls.ParseKeyPackage(raw, nil)
		if err != nil {
			return nil, err
		}
		kps = append(kps, kp)
	}
	add, err := creator.AddMembers(kps...)
	if err != nil {
		return nil, fmt.Errorf("add: %w", err)
	}
	record("add", 1, start)
	creator = add.Next

	start = time.Now()
	member, err := mls.Join(add.Welcome, []*mls.PrivateKeyPackage{privs[n-1]}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	record("join", 1, start)

	start = time.Now()
	up, err := member.Update()
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	record("update", 1, start)
	member = up.Next

	start = time.Now()
	r, err := creator.ProcessMessage(up.Commit)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	record("process", 1, start)
	creator = r.Next

	payload := make([]byte, 100)
	sealed := make([][]byte, m)
	start = time.Now()
	for i := range sealed {
		if sealed[i], err = creator.Seal(payload, nil); err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
	}
	record("seal", m, start)

	start = time.Now()
	for _, ct := range sealed {
		r, err := member.ProcessMessage(ct)
		if err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
		if len(r.Data) != len(payload) {
			return nil, fmt.Errorf("open: got %d bytes", len(r.Data))
		}
	}
	record("open", m, start)
	return rs, nil
}

func printResults(w io.Writer, rs []opResult) {
	for _, r := range rs {
		fmt.Fprintf(w, "%-9s N=%-6d %-11s %6d × %12v\n", r.Impl, r.N, r.Op, r.Count, r.perOp().Round(time.Microsecond))
	}
}

// writeCSV writes the records that write produces as CSV to path ("-" is
// stdout, "" writes nothing). A file's close error is reported, since it can
// be the only sign that the data did not reach the disk.
func writeCSV(path string, write func(*csv.Writer)) (err error) {
	if path == "" {
		return nil
	}
	w := io.Writer(os.Stdout)
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	cw := csv.NewWriter(w)
	write(cw)
	cw.Flush()
	return cw.Error()
}

// writeCSVFile writes results as CSV to path ("-" is stdout, "" nothing).
func writeCSVFile(path string, rs []opResult) error {
	return writeCSV(path, func(cw *csv.Writer) {
		cw.Write([]string{"impl", "n", "op", "count", "total_ms", "per_op_us"})
		for _, r := range rs {
			cw.Write([]string{r.Impl, strconv.Itoa(r.N), r.Op, strconv.Itoa(r.Count),
				strconv.FormatFloat(r.Ms, 'f', 3, 64),
				strconv.FormatFloat(float64(r.perOp())/float64(time.Microsecond), 'f', 1, 64)})
		}
	})
}

// readCSVFile reads results written by writeCSVFile.
func readCSVFile(path string) ([]opResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []opResult
	for i, row := range rows {
		if i == 0 || len(row) < 5 {
			continue
		}
		n, err1 := strconv.Atoi(row[1])
		count, err2 := strconv.Atoi(row[3])
		ms, err3 := strconv.ParseFloat(row[4], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s: row %d malformed", path, i+1)
		}
		out = append(out, opResult{Impl: row[0], N: n, Op: row[2], Count: count, Ms: ms})
	}
	return out, nil
}
