// Command benchplot draws the latency plot of a benchmark run: the p50 and p99 latency of each
// curve of results.json (written by `annals bench`) against its throughput, on logarithmic
// axes, as a PNG.
//
// Usage:
//
//	benchplot [-in bench/results.json] [-out bench/latency.png]
//
// It lives in the tools module so that the plotting library and its fonts stay out of the
// main module's dependencies; it reads only the curves of results.json.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// results is the part of results.json the plot needs.
type results struct {
	Quick     bool      `json:"quick"`
	StartedAt time.Time `json:"started_at"`
	Machine   struct {
		CPU   string `json:"cpu"`
		Cores int    `json:"cores"`
	} `json:"machine"`
	Curves []struct {
		Name   string `json:"name"`
		Unit   string `json:"unit"`
		Points []struct {
			Label      string  `json:"label"`
			Throughput float64 `json:"throughput"`
			P50        float64 `json:"p50_ms"`
			P99        float64 `json:"p99_ms"`
		} `json:"points"`
	} `json:"curves"`
}

func main() {
	in := flag.String("in", "bench/results.json", "the results of `annals bench`")
	out := flag.String("out", "bench/latency.png", "the PNG to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchplot:", err)
		os.Exit(1)
	}
}

// colours tell the curves apart; p50 is a solid line, p99 a dashed one of the same colour.
var colours = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

func run(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	p := plot.New()
	mode := ""
	if r.Quick {
		mode = ", quick run"
	}
	p.Title.Text = fmt.Sprintf("Annals: latency against throughput (%s, %d cores%s, %s)", r.Machine.CPU, r.Machine.Cores, mode, r.StartedAt.Format("2006-01-02 15:04"))
	p.X.Label.Text = "throughput (commands/s; pgbench: transactions/s)"
	p.Y.Label.Text = "latency (ms); solid p50, dashed p99"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(8), -vg.Points(8)
	p.Add(plotter.NewGrid())
	drawn := 0
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for i, c := range r.Curves {
		var p50, p99 plotter.XYs
		var labels plotter.XYLabels
		for _, pt := range c.Points {
			// A logarithmic axis has no room for zero.
			if pt.Throughput <= 0 || pt.P50 <= 0 || pt.P99 <= 0 {
				continue
			}
			p50 = append(p50, plotter.XY{X: pt.Throughput, Y: pt.P50})
			p99 = append(p99, plotter.XY{X: pt.Throughput, Y: pt.P99})
			labels.XYs = append(labels.XYs, plotter.XY{X: pt.Throughput, Y: pt.P50})
			labels.Labels = append(labels.Labels, pt.Label)
			minX, maxX = math.Min(minX, pt.Throughput), math.Max(maxX, pt.Throughput)
			minY, maxY = math.Min(minY, pt.P50), math.Max(maxY, pt.P99)
		}
		if len(p50) == 0 {
			continue
		}
		colour := colours[i%len(colours)]
		l50, s50, err := plotter.NewLinePoints(p50)
		if err != nil {
			return err
		}
		l50.Color, s50.Color, s50.Shape = colour, colour, draw.CircleGlyph{}
		l99, s99, err := plotter.NewLinePoints(p99)
		if err != nil {
			return err
		}
		l99.Color, s99.Color, s99.Shape = colour, colour, draw.TriangleGlyph{}
		l99.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		lbl, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for j := range lbl.TextStyle {
			lbl.TextStyle[j].Color = colour
			lbl.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(-10)}
		}
		p.Add(l50, s50, l99, s99, lbl)
		p.Legend.Add(c.Name, l50, s50)
		drawn++
	}
	if drawn == 0 {
		return errors.New("no curve with points to draw")
	}
	// Some room around the points, so that labels and the legend do not sit on them.
	p.X.Min, p.X.Max = minX/1.5, maxX*2
	p.Y.Min, p.Y.Max = minY/2, maxY*8
	return p.Save(28*vg.Centimeter, 18*vg.Centimeter, out)
}
