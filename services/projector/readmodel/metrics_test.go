package readmodel_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/projector/readmodel"
)

// TestMetrics_EndToEnd checks that the end-to-end histogram observes each event once its
// unit commits, on the batch path and the one-by-one path, and nothing for a unit that rolls
// back; each observation is at least the time since the event's recording.
func TestMetrics_EndToEnd(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e := newEnv(t, readmodel.Options{Metrics: readmodel.NewMetrics(reg)})
	unit := readmodel.ConsumerUnit(e.proj)
	ctx := context.Background()
	observed := func() (count uint64, sum float64) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "annals_projector_end_to_end_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				return h.GetSampleCount(), h.GetSampleSum()
			}
		}
		t.Fatal("no annals_projector_end_to_end_seconds")
		return 0, 0
	}
	messages := func(evs []events.Envelope) []*consume.Message {
		ms := make([]*consume.Message, len(evs))
		for i, ev := range evs {
			ms[i] = &consume.Message{Event: ev, Key: []byte(ev.StreamID)}
		}
		return ms
	}

	id, users := userLife()
	batch := append(users, orderLife(id)...)
	// Each observation is at least the event's age when the unit starts.
	var least float64
	for _, ev := range batch {
		least += time.Since(ev.RecordedAt).Seconds()
	}
	if err := unit(ctx, func(ctx context.Context) error { return e.proj.HandleBatch(ctx, messages(batch)) }); err != nil {
		t.Fatal(err)
	}
	n, sum := observed()
	if n != uint64(len(batch)) {
		t.Fatalf("after a batch of %d events: %d observations", len(batch), n)
	}
	if sum < least {
		t.Errorf("sum of observations %.0f s, want at least %.0f s", sum, least)
	}

	// Delivered again, the batch does not apply cleanly and its unit rolls back: nothing more.
	if err := unit(ctx, func(ctx context.Context) error { return e.proj.HandleBatch(ctx, messages(batch)) }); err == nil {
		t.Fatal("a batch of events applied before succeeded")
	}
	if n2, _ := observed(); n2 != n {
		t.Fatalf("a rolled-back unit observed %d events", n2-n)
	}

	// One by one.
	more := orderLife(id)
	for _, m := range messages(more) {
		if err := unit(ctx, func(ctx context.Context) error { return e.proj.Handle(ctx, m) }); err != nil {
			t.Fatal(err)
		}
	}
	if n3, _ := observed(); n3 != n+uint64(len(more)) {
		t.Fatalf("after %d events one by one: %d observations, want %d", len(more), n3-n, len(more))
	}
	if c := testutil.CollectAndCount(reg, "annals_projector_end_to_end_seconds"); c != 1 {
		t.Errorf("%d histogram series, want 1", c)
	}
}
