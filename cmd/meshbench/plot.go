package main

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

func newPlotCommand() *cobra.Command {
	var benchFile, peerFile, meshFile, outDir string
	cmd := &cobra.Command{
		Use:   "plot",
		Short: "Draw PNGs of cost vs group size (from go test -bench output), the peer comparison and mesh latency",
		Long: `plot reads the output of the mls benchmarks
(go test ./mls -run '^$' -bench . > docs/bench/mls.txt), the CSV of
"meshbench peer" and the CSV of "meshbench mesh", and writes under -out:

  mls-ops-full.png     CPU time per operation vs group size, full tree, log-log
  mls-ops-blank25.png  the same with a quarter of the leaves blank
  peer.png             ts-mls time / meshchat time per operation vs group size
  mesh-latency.png     delivery latency (median, p99) vs mesh size
  mesh-bytes.png       bytes sent per message per node vs mesh size, MLS vs pairwise

Inputs that are missing are skipped.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var wrote []string
			if benchFile != "" {
				if _, err := os.Stat(benchFile); err == nil {
					parsed, err := parseBenchFile(benchFile)
					if err != nil {
						return err
					}
					var bs []benchResult
					for _, b := range medianIndex(parsed) {
						bs = append(bs, b)
					}
					for _, shape := range []string{"full", "blank25"} {
						path := filepath.Join(outDir, "mls-ops-"+shape+".png")
						if err := plotOps(bs, shape, path); err != nil {
							return err
						}
						wrote = append(wrote, path)
					}
				}
			}
			if peerFile != "" {
				if rs, err := readCSVFile(peerFile); err == nil {
					path := filepath.Join(outDir, "peer.png")
					if err := plotPeer(rs, path); err != nil {
						return err
					}
					wrote = append(wrote, path)
				}
			}
			if meshFile != "" {
				if rows, err := readMeshCSV(meshFile); err == nil {
					for _, f := range []func([]meshRow, string) (string, error){plotMeshLatency, plotMeshBytes} {
						path, err := f(rows, outDir)
						if err != nil {
							return err
						}
						wrote = append(wrote, path)
					}
				}
			}
			for _, p := range wrote {
				fmt.Fprintln(cmd.OutOrStdout(), "wrote", p)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&benchFile, "bench", "docs/bench/mls.txt", "go test -bench output of ./mls")
	cmd.Flags().StringVar(&peerFile, "peer", "docs/bench/peer.csv", "CSV of meshbench peer")
	cmd.Flags().StringVar(&meshFile, "mesh", "docs/bench/mesh.csv", "CSV of meshbench mesh")
	cmd.Flags().StringVar(&outDir, "out", "docs", "directory for the PNGs")
	return cmd
}

// benchResult is one line of go test -bench output.
type benchResult struct {
	name    string // without the Benchmark prefix and -GOMAXPROCS suffix
	metrics map[string]float64
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func parseBenchFile(path string) ([]benchResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []benchResult
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		r := benchResult{name: m[1], metrics: map[string]float64{}}
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				r.metrics[fields[i+1]] = v
			}
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// benchSeries are the operations drawn, by benchmark name pattern
// (%s is the shape).
var benchSeries = []struct{ label, pattern string }{
	{"self-update commit", "Update/%s/N=%%d"},
	{"process update (far member)", "ProcessUpdate/%s/N=%%d/far"},
	{"process update (sibling)", "ProcessUpdate/%s/N=%%d/sibling"},
	{"remove commit", "Remove/%s/N=%%d"},
	{"add commit+Welcome (no tree)", "Add/%s/N=%%d/notree"},
	{"add commit+Welcome (with tree)", "Add/%s/N=%%d/tree"},
	{"join from Welcome", "Join/%s/N=%%d"},
	{"seal+open 100 B", "SealOpen/%s/N=%%d"},
}

// metric prefers CPU time (stable on a shared machine) over wall time.
func metric(r benchResult) (float64, bool) {
	if v, ok := r.metrics["cpu-ns/op"]; ok {
		return v, true
	}
	v, ok := r.metrics["ns/op"]
	return v, ok
}

func plotOps(bs []benchResult, shape, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("MLS operations, %s tree (CPU time per operation)", shape)
	p.X.Label.Text = "group size (members)"
	p.Y.Label.Text = "milliseconds"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	for i, s := range benchSeries {
		pattern := fmt.Sprintf(s.pattern, shape)
		var pts plotter.XYs
		for _, b := range bs {
			var n int
			if _, err := fmt.Sscanf(b.name, pattern, &n); err != nil || fmt.Sprintf(pattern, n) != b.name {
				continue
			}
			if v, ok := metric(b); ok {
				pts = append(pts, plotter.XY{X: float64(n), Y: v / 1e6})
			}
		}
		if err := addLine(p, s.label, pts, i); err != nil {
			return err
		}
	}
	// Reference: one signature plus one verification, from the same run.
	for _, b := range bs {
		if b.name == "Baseline/SignVerify" {
			if v, ok := metric(b); ok {
				ref := plotter.XYs{{X: 10, Y: v / 1e6}, {X: 10000, Y: v / 1e6}}
				l, err := plotter.NewLine(ref)
				if err != nil {
					return err
				}
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				l.Color = color.Gray{Y: 120}
				p.Add(l)
				p.Legend.Add("1 sign + 1 verify (same run)", l)
			}
		}
	}
	return p.Save(8*vg.Inch, 6*vg.Inch, path)
}

// palette holds distinguishable line colours.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0xe3, 0x77, 0xc2, 0xff}, color.RGBA{0x17, 0xbe, 0xcf, 0xff}, color.RGBA{0x7f, 0x7f, 0x7f, 0xff},
}

// glyphs mark the points of successive series.
var glyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PlusGlyph{},
	draw.RingGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.CrossGlyph{},
}

// addLine adds a line with point markers, skipping empty series.
func addLine(p *plot.Plot, label string, pts plotter.XYs, i int) error {
	if len(pts) == 0 {
		return nil
	}
	slices.SortFunc(pts, func(a, b plotter.XY) int {
		return int(math.Copysign(1, a.X-b.X))
	})
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	c := palette[i%len(palette)]
	l.Color, s.Color = c, c
	s.Shape = glyphs[i%len(glyphs)]
	p.Add(l, s)
	p.Legend.Add(label, l, s)
	return nil
}

func plotPeer(rs []opResult, path string) error {
	ours := map[string]map[int]float64{}
	theirs := map[string]map[int]float64{}
	for _, r := range rs {
		m := ours
		if r.Impl != "meshchat" {
			m = theirs
		}
		if m[r.Op] == nil {
			m[r.Op] = map[int]float64{}
		}
		m[r.Op][r.N] = float64(r.perOp())
	}
	p := plot.New()
	p.Title.Text = "ts-mls time / meshchat time, same scenario, same machine"
	p.X.Label.Text = "group size (members)"
	p.Y.Label.Text = "ratio (higher: meshchat faster)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	for i, op := range scenarioOps {
		var pts plotter.XYs
		for n, t := range theirs[op] {
			if o, ok := ours[op][n]; ok && o > 0 && t > 0 {
				pts = append(pts, plotter.XY{X: float64(n), Y: t / o})
			}
		}
		if err := addLine(p, op, pts, i); err != nil {
			return err
		}
	}
	return p.Save(8*vg.Inch, 6*vg.Inch, path)
}

// plotMeshLatency draws delivery latency vs mesh size.
func plotMeshLatency(rows []meshRow, dir string) (string, error) {
	p := plot.New()
	p.Title.Text = "MLS application message delivery on a GossipSub mesh (mocknet)"
	p.X.Label.Text = "mesh size (nodes, all members of one group)"
	p.Y.Label.Text = "milliseconds from publish to opened"
	p.Legend.Top, p.Legend.Left = true, true
	series := []struct {
		label string
		get   func(meshRow) time.Duration
	}{
		{"median, per delivery", func(r meshRow) time.Duration { return r.Median }},
		{"p99, per delivery", func(r meshRow) time.Duration { return r.P99 }},
		{"median, to the last member", func(r meshRow) time.Duration { return r.AllMedian }},
		{"p99, to the last member", func(r meshRow) time.Duration { return r.AllP99 }},
	}
	for i, s := range series {
		var pts plotter.XYs
		for _, r := range rows {
			pts = append(pts, plotter.XY{X: float64(r.Nodes), Y: float64(s.get(r)) / float64(time.Millisecond)})
		}
		if err := addLine(p, s.label, pts, i); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, "mesh-latency.png")
	return path, p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// plotMeshBytes draws bytes per message per node: MLS over gossip vs
// pairwise encryption to every other member.
func plotMeshBytes(rows []meshRow, dir string) (string, error) {
	p := plot.New()
	p.Title.Text = "Bytes sent per message: per node on average, and by the sender"
	p.X.Label.Text = "mesh size (nodes, all members of one group)"
	p.Y.Label.Text = "bytes"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	series := []struct {
		label string
		get   func(meshRow) float64
	}{
		{"MLS group message over GossipSub (measured, net of idle)", func(r meshRow) float64 { return r.PerNodeNet }},
		{"pairwise to n-1, sent directly (computed)", func(r meshRow) float64 { _, v := r.pairwise(); return v }},
		{"pairwise to n-1, over the same GossipSub (computed)", func(r meshRow) float64 { return float64(r.Nodes-1) * r.PerNodeNet }},
		{"MLS: the publisher's upload (measured)", func(r meshRow) float64 { return r.Publisher }},
		{"pairwise: the sender's upload (computed)", func(r meshRow) float64 { s, _ := r.pairwise(); return s }},
	}
	for i, s := range series {
		var pts plotter.XYs
		for _, r := range rows {
			if v := s.get(r); v > 0 {
				pts = append(pts, plotter.XY{X: float64(r.Nodes), Y: v})
			}
		}
		if err := addLine(p, s.label, pts, i); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, "mesh-bytes.png")
	return path, p.Save(8*vg.Inch, 5*vg.Inch, path)
}
