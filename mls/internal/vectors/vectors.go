// Package vectors loads the official MLS interop test vectors
// (mlswg/mls-implementations) for conformance tests and reports one summary
// line per file.
//
// The folder comes from $MLS_TEST_VECTORS, or else ../shared/mls-test-vectors
// beside the module root. Outside CI a missing folder skips the test with a
// loud message; under CI=true it fails the test.
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Hex is a byte string that JSON-decodes from a lowercase hex string; JSON
// null decodes to nil.
type Hex []byte

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hex) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = b
	return nil
}

// Dir returns the vector folder and whether it exists.
func Dir() (string, bool) {
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		dir = filepath.Join(moduleRoot(), "..", "shared", "mls-test-vectors")
	}
	st, err := os.Stat(dir)
	return dir, err == nil && st.IsDir()
}

func moduleRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

// Load decodes the JSON array in the named vector file into cases (a pointer
// to a slice). When the folder is missing it skips the test loudly, or fails
// it when CI=true.
func Load(t testing.TB, file string, cases any) {
	t.Helper()
	dir, ok := Dir()
	if !ok {
		msg := fmt.Sprintf("MLS TEST VECTORS NOT FOUND at %s: set MLS_TEST_VECTORS; %s NOT CHECKED", dir, file)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "WARNING:", msg)
		t.Skip(msg)
	}
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if err := json.Unmarshal(data, cases); err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
}

// Tally counts the outcome of each case of one vector file and prints
// "vectors <file> cases=<N> passed=<P> failed=<F> skipped=<S>" when the test
// ends. Case functions run as subtests so a failure names its case.
type Tally struct {
	file                    string
	mu                      sync.Mutex
	passed, failed, skipped int
	reasons                 []string
}

// NewTally starts counting for file and registers the summary line to be
// printed (and checked) when t finishes.
func NewTally(t *testing.T, file string) *Tally {
	tally := &Tally{file: file}
	t.Cleanup(func() {
		fmt.Println(tally.Line())
		for _, r := range tally.reasons {
			fmt.Printf("vectors %s skipped: %s\n", file, r)
		}
	})
	return tally
}

// Run runs one case as a subtest named name and records its outcome.
func (tl *Tally) Run(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		defer func() {
			tl.mu.Lock()
			defer tl.mu.Unlock()
			switch {
			case t.Failed():
				tl.failed++
			case t.Skipped():
				tl.skipped++
			default:
				tl.passed++
			}
		}()
		f(t)
	})
}

// Skip skips the running case, keeping reason for the summary.
func (tl *Tally) Skip(t *testing.T, reason string) {
	t.Helper()
	tl.mu.Lock()
	tl.reasons = append(tl.reasons, t.Name()+": "+reason)
	tl.mu.Unlock()
	t.Skip(reason)
}

// Line is the summary line for the cases run so far.
func (tl *Tally) Line() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return fmt.Sprintf("vectors %s cases=%d passed=%d failed=%d skipped=%d",
		tl.file, tl.passed+tl.failed+tl.skipped, tl.passed, tl.failed, tl.skipped)
}

// Name formats a subtest name from its parts ("case=3/suite=1").
func Name(parts ...any) string {
	var sb strings.Builder
	for i := 0; i+1 < len(parts); i += 2 {
		if i > 0 {
			sb.WriteByte('/')
		}
		fmt.Fprintf(&sb, "%v=%v", parts[i], parts[i+1])
	}
	return sb.String()
}
