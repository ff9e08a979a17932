//go:build !unix

package cputime

import "time"

// Process is not measured on this system: Report then reports zero.
func Process() time.Duration { return 0 }
