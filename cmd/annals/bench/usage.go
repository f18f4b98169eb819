package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
)

// Usage is where the time of a run over HTTP went, read from the services' own metrics and
// from the kernel: it tells a saturated machine from a slow stage. It is reported beside the
// figures, never used to compute them.
type Usage struct {
	// CPUSeconds is the processor time each service used during the run
	// (process_cpu_seconds_total), and "bench" this program's (the load generator and the
	// reads). MachineBusy is the share of the machine's processor time that was busy, other
	// programs' included, from /proc/stat.
	CPUSeconds  map[string]float64 `json:"cpu_seconds"`
	MachineBusy float64            `json:"machine_busy"`
	// The relay's commit-to-ack latency (annals_relay_commit_to_ack_seconds), the projector's
	// recording-to-commit latency (annals_projector_end_to_end_seconds), and the projector
	// group's batches: how many, their mean size and their mean time; estimated from the
	// histograms' buckets as Prometheus's histogram_quantile does.
	RelayAckP50Ms       float64 `json:"relay_ack_p50_ms"`
	RelayAckP99Ms       float64 `json:"relay_ack_p99_ms"`
	ProjectorP50Ms      float64 `json:"projector_p50_ms"`
	ProjectorP99Ms      float64 `json:"projector_p99_ms"`
	ProjectorBatches    float64 `json:"projector_batches"`
	ProjectorBatchSize  float64 `json:"projector_batch_size"`
	ProjectorBatchMs    float64 `json:"projector_batch_ms"`
	ProjectorBatchP99Ms float64 `json:"projector_batch_p99_ms"`
}

func (u Usage) String() string {
	var cpu []string
	for _, name := range append(slices.Clone(Services), "bench") {
		cpu = append(cpu, fmt.Sprintf("%s %.1fs", name, u.CPUSeconds[name]))
	}
	return fmt.Sprintf("machine %.0f%% busy; CPU %s; relay ack p50 %.1f ms p99 %.1f ms; projector commit p50 %.1f ms p99 %.1f ms, %.0f batches of %.1f events, %.1f ms each (p99 %.1f ms)",
		100*u.MachineBusy, strings.Join(cpu, ", "), u.RelayAckP50Ms, u.RelayAckP99Ms, u.ProjectorP50Ms, u.ProjectorP99Ms,
		u.ProjectorBatches, u.ProjectorBatchSize, u.ProjectorBatchMs, u.ProjectorBatchP99Ms)
}

// usageMeter takes the readings a Usage is the difference of.
type usageMeter struct {
	services []*Service
	group    string // the projector's consumer group
}

type reading struct {
	metrics     map[string]map[string]*dto.MetricFamily // by service
	selfCPU     float64
	busy, total float64
}

func (m usageMeter) read(ctx context.Context) (reading, error) {
	r := reading{metrics: map[string]map[string]*dto.MetricFamily{}}
	for _, s := range m.services {
		mfs, err := scrape(ctx, s.URL+"/metrics")
		if err != nil {
			return r, fmt.Errorf("bench: the %s's metrics: %w", s.Name, err)
		}
		r.metrics[s.Name] = mfs
	}
	r.selfCPU = rusageCPU(syscall.RUSAGE_SELF)
	r.busy, r.total = machineTicks()
	return r, nil
}

// since is the usage between an earlier reading and this one.
func (m usageMeter) since(ctx context.Context, before reading) (Usage, error) {
	after, err := m.read(ctx)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{CPUSeconds: map[string]float64{"bench": after.selfCPU - before.selfCPU}}
	if d := after.total - before.total; d > 0 {
		u.MachineBusy = (after.busy - before.busy) / d
	}
	for _, s := range m.services {
		u.CPUSeconds[s.Name] = sum(after.metrics[s.Name], "process_cpu_seconds_total", nil) - sum(before.metrics[s.Name], "process_cpu_seconds_total", nil)
	}
	ack := histogramDelta(before.metrics["writer"], after.metrics["writer"], "annals_relay_commit_to_ack_seconds", nil)
	u.RelayAckP50Ms, u.RelayAckP99Ms = 1000*ack.quantile(0.5), 1000*ack.quantile(0.99)
	proj := histogramDelta(before.metrics["projector"], after.metrics["projector"], "annals_projector_end_to_end_seconds", nil)
	u.ProjectorP50Ms, u.ProjectorP99Ms = 1000*proj.quantile(0.5), 1000*proj.quantile(0.99)
	group := map[string]string{"group": m.group}
	batch := histogramDelta(before.metrics["projector"], after.metrics["projector"], "annals_consumer_batch_duration_seconds", group)
	size := histogramDelta(before.metrics["projector"], after.metrics["projector"], "annals_consumer_batch_messages", group)
	u.ProjectorBatches = batch.count
	if batch.count > 0 {
		u.ProjectorBatchMs = 1000 * batch.sum / batch.count
		u.ProjectorBatchSize = size.sum / size.count
		u.ProjectorBatchP99Ms = 1000 * batch.quantile(0.99)
	}
	return u, nil
}

func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(prommodel.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// matches reports whether a metric has every label of want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// sum adds up the counters or gauges of a family whose labels match.
func sum(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	total := 0.0
	for _, m := range mfs[name].GetMetric() {
		if matches(m, labels) {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

// histogram is a histogram's buckets (cumulative counts by upper bound), count and sum.
type histogram struct {
	bounds, counts []float64
	count, sum     float64
}

// histogramDelta is what a histogram family (the series whose labels match, added up)
// gained between two scrapes.
func histogramDelta(before, after map[string]*dto.MetricFamily, name string, labels map[string]string) histogram {
	read := func(mfs map[string]*dto.MetricFamily) histogram {
		var h histogram
		for _, m := range mfs[name].GetMetric() {
			if !matches(m, labels) || m.GetHistogram() == nil {
				continue
			}
			hg := m.GetHistogram()
			h.count += float64(hg.GetSampleCount())
			h.sum += hg.GetSampleSum()
			for i, b := range hg.GetBucket() {
				if i >= len(h.bounds) {
					h.bounds = append(h.bounds, b.GetUpperBound())
					h.counts = append(h.counts, 0)
				}
				h.counts[i] += float64(b.GetCumulativeCount())
			}
		}
		return h
	}
	a, b := read(after), read(before)
	for i := range a.counts {
		if i < len(b.counts) {
			a.counts[i] -= b.counts[i]
		}
	}
	a.count -= b.count
	a.sum -= b.sum
	return a
}

// quantile estimates the q-quantile by linear interpolation within its bucket.
func (h histogram) quantile(q float64) float64 {
	if h.count <= 0 || len(h.bounds) == 0 {
		return 0
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, bound := range h.bounds {
		if h.counts[i] >= rank {
			if math.IsInf(bound, 1) {
				return lower
			}
			in := h.counts[i] - below
			if in <= 0 {
				return bound
			}
			return lower + (bound-lower)*(rank-below)/in
		}
		lower, below = bound, h.counts[i]
	}
	return lower
}

// machineTicks is the machine's busy and total processor time so far, in clock ticks, from
// the first line of /proc/stat (idle and iowait count as not busy).
func machineTicks() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0
	}
	for i, f := range fields[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		if i >= 8 { // guest time is already counted in user time
			break
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total
}
