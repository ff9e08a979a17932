package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line progress bar on w for long loops, redrawn at
// most ten times a second, and clears it when done.
type progress struct {
	w     io.Writer
	label string
	total int
	done  int
	start time.Time
	drawn time.Time
}

func newProgress(w io.Writer, label string, total int) *progress {
	return &progress{w: w, label: label, total: total, start: time.Now()}
}

// add records k more items done.
func (p *progress) add(k int) {
	if p == nil || p.w == nil {
		return
	}
	p.done += k
	now := time.Now()
	if now.Sub(p.drawn) < 100*time.Millisecond && p.done < p.total {
		return
	}
	p.drawn = now
	const width = 30
	frac := float64(p.done) / float64(max(p.total, 1))
	filled := int(frac * width)
	eta := ""
	if p.done > 0 && p.done < p.total {
		left := time.Duration(float64(now.Sub(p.start)) / frac * (1 - frac))
		eta = " eta " + left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r%-28s [%s%s] %3.0f%% %d/%d%s   ", p.label,
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), 100*frac, p.done, p.total, eta)
}

// finish clears the bar.
func (p *progress) finish() {
	if p == nil || p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 100))
}
