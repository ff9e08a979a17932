package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseBenchMedian(t *testing.T) {
	out := `goos: linux
BenchmarkUpdate/full/N=10-2   	    1430	    799040 ns/op	    782128 cpu-ns/op	   97374 B/op	     652 allocs/op
BenchmarkUpdate/full/N=10-2   	    1430	    700000 ns/op	    900000 cpu-ns/op	   97374 B/op	     652 allocs/op
BenchmarkUpdate/full/N=10-2   	    1430	    600000 ns/op	    100000 cpu-ns/op	   97374 B/op	     652 allocs/op
BenchmarkBaseline/GOMAXPROCS-2	1000000000	         1.142 ns/op	         2.000 cores
PASS
`
	path := filepath.Join(t.TempDir(), "bench.txt")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	bs, err := parseBenchFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 4 {
		t.Fatalf("parsed %d results, want 4", len(bs))
	}
	ix := medianIndex(bs)
	if v, _ := ix.get("Update/full/N=10", "cpu-ns/op"); v != 782128 {
		t.Errorf("median cpu-ns/op %v, want 782128", v)
	}
	if v, _ := ix.get("Update/full/N=10", "ns/op"); v != 700000 {
		t.Errorf("median ns/op %v, want 700000", v)
	}
	if v, _ := ix.get("Baseline/GOMAXPROCS", "cores"); v != 2 {
		t.Errorf("cores %v, want 2", v)
	}
}

func TestScenarioAndCSV(t *testing.T) {
	rs, err := runScenario(5, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(scenarioOps) {
		t.Fatalf("%d operations, want %d", len(rs), len(scenarioOps))
	}
	for i, r := range rs {
		if r.Op != scenarioOps[i] || r.N != 5 || r.Ms <= 0 {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	path := filepath.Join(t.TempDir(), "s.csv")
	if err := writeCSVFile(path, rs); err != nil {
		t.Fatal(err)
	}
	back, err := readCSVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rs) || back[2].Op != "add" || back[6].Count != 3 {
		t.Fatalf("CSV round trip: %+v", back)
	}
	var buf bytes.Buffer
	printComparison(&buf, 5, rs, rs, nil)
	if !strings.Contains(buf.String(), "1.0×") {
		t.Errorf("comparison of a run with itself lacks 1.0× ratios:\n%s", buf.String())
	}
}

// TestMeshSmall runs the mesh benchmark on four nodes: every message
// reaches every member, latencies and byte counts are positive.
func TestMeshSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("mesh formation takes seconds")
	}
	row, err := runMesh(context.Background(), 4, 3, 3, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if row.Median <= 0 || row.AllP99 < row.Median || row.PerNodeGross <= 0 || row.Publisher <= 0 {
		t.Fatalf("implausible row: %+v", row)
	}
	if row.GroupCiphertext == 0 || row.PairCiphertext == 0 {
		t.Fatalf("ciphertext sizes missing: %+v", row)
	}
	path := filepath.Join(t.TempDir(), "m.csv")
	if err := writeMeshCSV(path, []meshRow{row}); err != nil {
		t.Fatal(err)
	}
	back, err := readMeshCSV(path)
	if err != nil || len(back) != 1 || back[0].Nodes != 4 || back[0].GroupCiphertext != row.GroupCiphertext {
		t.Fatalf("mesh CSV round trip: %+v, %v", back, err)
	}
}
