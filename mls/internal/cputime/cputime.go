// Package cputime lets benchmarks report CPU time per operation next to the
// wall clock: on a machine shared with other work the wall clock includes
// waiting for a core, CPU time does not (it does include the garbage
// collector's work and, for parallel code, every goroutine's).
package cputime

import (
	"testing"
	"time"
)

// Meter measures the process CPU time from its start.
type Meter struct{ start time.Duration }

// Start begins a measurement.
func Start() Meter { return Meter{Process()} }

// Report adds the CPU time per operation since Start to b as "cpu-ns/op".
func (m Meter) Report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(Process()-m.start)/float64(b.N), "cpu-ns/op")
	}
}
