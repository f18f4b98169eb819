package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/annals-dev/annals/internal/benchkit"
)

// Results is everything a run measured, as bench/results.json holds it.
type Results struct {
	Version   int       `json:"version"`
	Quick     bool      `json:"quick"`
	StartedAt time.Time `json:"started_at"`
	Seconds   float64   `json:"seconds"`
	Machine   Machine   `json:"machine"`
	Settings  Settings  `json:"settings"`
	// Baselines are the servers' own figures; Figures are Annals', each with its ratio to
	// its baseline and, for some, a target.
	Baselines []Figure `json:"baselines"`
	Figures   []Figure `json:"figures"`
	// Curves are latency percentiles against throughput, for the plot.
	Curves []Curve `json:"curves"`
	// TargetsMet and TargetsMissed count the figures with a target.
	TargetsMet    int `json:"targets_met"`
	TargetsMissed int `json:"targets_missed"`
	// Raw is every measurement in full.
	Raw Raw `json:"raw"`
}

// Figure is one number of the report.
type Figure struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Detail string  `json:"detail,omitempty"`
	// Baseline is the figure this one is set against; Ratio is Value over its value.
	Baseline *Ref     `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   *Target  `json:"target,omitempty"`
}

// Ref names a baseline figure and its value.
type Ref struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Target is a bound on a figure's ratio or value, and whether the run met it.
type Target struct {
	On    string  `json:"on"` // "ratio" or "value"
	Op    string  `json:"op"` // ">=" or "<="
	Bound float64 `json:"bound"`
	Text  string  `json:"text"`
	Met   bool    `json:"met"`
}

// Curve is a series of runs at rising throughput, for the latency plot.
type Curve struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"` // of the throughput
	Points []Point `json:"points"`
}

// Point is one run of a curve; latencies in milliseconds.
type Point struct {
	Label      string  `json:"label"`
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
}

func pointOf(label string, throughput float64, l benchkit.Latency) Point {
	return Point{Label: label, Throughput: throughput, P50: benchkit.Ms(l.P50), P90: benchkit.Ms(l.P90), P99: benchkit.Ms(l.P99)}
}

// against sets f's baseline and ratio.
func (f *Figure) against(b Figure) {
	f.Baseline = &Ref{ID: b.ID, Name: b.Name, Value: b.Value, Unit: b.Unit}
	if b.Value > 0 && !math.IsInf(f.Value/b.Value, 0) {
		r := f.Value / b.Value
		f.Ratio = &r
	}
}

// aim sets f's target: on "ratio" or "value", op ">=" or "<=", and judges it.
func (f *Figure) aim(on, op string, bound float64, text string) {
	t := &Target{On: on, Op: op, Bound: bound, Text: text}
	v, ok := f.Value, true
	if on == "ratio" {
		ok = f.Ratio != nil
		if ok {
			v = *f.Ratio
		}
	}
	switch op {
	case ">=":
		t.Met = ok && v >= bound
	case "<=":
		t.Met = ok && v <= bound
	}
	f.Target = t
}

// PrintTable writes the baselines, then every figure of Annals with its baseline, ratio and
// target, then a line per target.
func (r *Results) PrintTable(w io.Writer) {
	mode := "full"
	if r.Quick {
		mode = "quick (short runs, small pre-fills: indicative only)"
	}
	fmt.Fprintf(w, "\nAnnals bench, %s, %s; %s, %d cores, load average %s at the start\n", mode, r.StartedAt.Format(time.RFC3339),
		r.Machine.CPU, r.Machine.Cores, r.Machine.LoadAtStart)
	fmt.Fprintf(w, "PostgreSQL %s, Kafka %s, %s, %s\n", r.Machine.Postgres, r.Machine.Kafka, r.Machine.Go, r.Machine.OS)

	fmt.Fprintln(w, "\nBASELINES (the servers' own tools, same servers, same run)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  figure\tvalue\tunit\tdetail")
	for _, f := range r.Baselines {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Name, num(f.Value), f.Unit, f.Detail)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nANNALS (ratio = value / baseline)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  figure\tvalue\tunit\tbaseline\tratio\ttarget\t\tdetail")
	for _, f := range r.Figures {
		base, ratio, target, met := "-", "-", "", ""
		if f.Baseline != nil {
			base = fmt.Sprintf("%s %s", f.Baseline.Name, num(f.Baseline.Value))
		}
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *f.Ratio)
		}
		if f.Target != nil {
			target = f.Target.Op + " " + strings.TrimSuffix(fmt.Sprintf("%g", f.Target.Bound), ".0")
			if f.Target.On == "value" {
				target += " " + f.Unit
			} else {
				target = "ratio " + target
			}
			met = "MISSED"
			if f.Target.Met {
				met = "met"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, num(f.Value), f.Unit, base, ratio, target, met, f.Detail)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nTARGETS: %d met, %d missed\n", r.TargetsMet, r.TargetsMissed)
	for _, f := range r.Figures {
		if f.Target == nil {
			continue
		}
		met := "MISSED"
		if f.Target.Met {
			met = "met   "
		}
		got := num(f.Value) + " " + f.Unit
		if f.Target.On == "ratio" && f.Ratio != nil {
			got = fmt.Sprintf("%.2f× (%s %s against %s %s)", *f.Ratio, num(f.Value), f.Unit, num(f.Baseline.Value), f.Baseline.Unit)
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", met, f.Target.Text, got)
	}
}

// num formats a figure: whole numbers from 100 up, three significant digits below.
func num(v float64) string {
	switch {
	case math.Abs(v) >= 100:
		s := fmt.Sprintf("%.0f", v)
		// Thousands separators make the large rates readable at a glance.
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	case v == 0:
		return "0"
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
