package consume_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

// trickle publishes recs one at a time, one every pace, as a steady flow of commands does,
// and returns when the last one is written.
func trickle(t *testing.T, topic string, recs []rec, pace time.Duration) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for _, r := range recs {
		<-tick.C
		if err := w.WriteMessages(context.Background(), record(t, r)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// record is rec as publish writes it.
func record(t *testing.T, r rec) kafka.Message {
	t.Helper()
	m, _ := encode(t, []rec{r})
	return m[0]
}

// batches is the number of batches the group processed (annals_consumer_batch_messages).
func batches(t testing.TB, reg prometheus.Gatherer) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == "annals_consumer_batch_messages" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestConsumer_CommitInterval: a group that processes records one by one as they trickle in
// commits its offsets at most about once per CommitInterval, not once per batch (a negative
// interval commits every batch), and once the records stop it commits the end of every
// partition without further traffic, however long the interval.
func TestConsumer_CommitInterval(t *testing.T) {
	const partitions = 3
	tests := []struct {
		name     string
		interval time.Duration
		records  int
		pace     time.Duration
	}{
		// About 3 s of records: a commit a second and the idle one (4 or 5 in all), and a few
		// to spare for the pauses of a noisy machine, which look idle.
		{name: "Coalesced", interval: time.Second, records: 120, pace: 25 * time.Millisecond},
		{name: "EveryBatch", interval: -1, records: 40, pace: 25 * time.Millisecond},
		// The interval never passes: only the idle commit brings the lag to zero.
		{name: "Idle", interval: time.Hour, records: 20, pace: 25 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic, dlq := testenv.Topic(t, partitions), testenv.Topic(t, 1)
			group := testenv.UniqueName(t)
			reg := prometheus.NewRegistry()
			cfg := config(t, []string{topic}, dlq, group)
			cfg.CommitInterval, cfg.Metrics = tt.interval, consume.NewMetrics(reg)
			h := newRecorder()
			r := start(t, cfg, h)
			waitFor(t, 30*time.Second, "the member to own the partitions", func() bool {
				return len(r.c.Assigned()[topic]) == partitions
			})
			recs := streams(tt.name, 10, tt.records/10)
			trickle(t, topic, recs, tt.pace)
			waitFor(t, 30*time.Second, "every record handled", func() bool { return h.count() == len(recs) })
			waitFor(t, 5*time.Second, "the committed offsets at the end of every partition", func() bool {
				return caughtUp(t, group, topic, partitions)
			})
			commits := metricSum(t, reg, "annals_consumer_commits_total")
			nb := batches(t, reg)
			t.Logf("%d records in %d batches, %v commits", len(recs), nb, commits)
			switch {
			case tt.interval < 0:
				// Every batch processed something: each one's offsets were committed.
				waitFor(t, 5*time.Second, "a commit per batch", func() bool {
					return metricSum(t, reg, "annals_consumer_commits_total") == float64(batches(t, reg))
				})
				if nb < uint64(len(recs))/2 {
					t.Errorf("%d batches for %d records trickled in; want the records handled as they came", nb, len(recs))
				}
			case commits > 12 && commits > float64(nb)/3:
				// A commit per batch (the old way) fails this; a machine so busy that it pauses
				// past the idle threshold between many batches merges batches too.
				t.Errorf("%v commits for %d records in %d batches over %s, want at most 12 (or a third of the batches) with a commit interval of %s",
					commits, len(recs), nb, time.Duration(len(recs))*tt.pace, tt.interval)
			case commits < 1:
				t.Error("no commit counted")
			}
		})
	}
}

// TestConsumer_CloseCommitsWhatItProcessed: a consumer stopped while it works through a
// backlog, with a commit interval that never passes, commits what it processed as it leaves:
// a new member of the group receives none of it again. One lane, so that what it processed
// is a prefix of each partition (with more, a lane may stop before a message that precedes
// another lane's finished one, which is then delivered again, as the package promises).
func TestConsumer_CloseCommitsWhatItProcessed(t *testing.T) {
	topic, dlq := testenv.Topic(t, 2), testenv.Topic(t, 1)
	recs := streams("close", 20, 40)
	publish(t, topic, recs)
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.CommitInterval, cfg.BatchSize, cfg.Lanes = time.Hour, 20, 1
	var mu sync.Mutex
	deliveries := map[rec]int{}
	h := consume.HandlerFunc(func(_ context.Context, m *consume.Message) error {
		time.Sleep(time.Millisecond) // some work, so that the stop finds a backlog
		mu.Lock()
		defer mu.Unlock()
		deliveries[rec{m.Event.StreamID, m.Event.Version}]++
		return nil
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries)
	}
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "some records handled", func() bool { return count() >= 100 })
	r.halt(t)
	first := count()
	if first == len(recs) {
		t.Fatalf("the first member handled all %d records before its stop; want a backlog left", len(recs))
	}
	r2 := start(t, cfg, h)
	waitFor(t, 60*time.Second, "every record handled", func() bool { return count() == len(recs) })
	r2.halt(t)
	mu.Lock()
	defer mu.Unlock()
	var again []string
	for k, n := range deliveries {
		if n > 1 {
			again = append(again, fmt.Sprintf("%s v%d (%d times)", k.stream, k.v, n))
		}
	}
	t.Logf("%d records handled before the stop, %d after", first, len(recs)-first)
	if len(again) > 0 {
		t.Errorf("%d records delivered again after a clean stop, e.g. %s; want none", len(again), again[0])
	}
}
