package consume_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

// commitOffset commits offset for group on partition 0 of topic, as an operator's reset does.
func commitOffset(t *testing.T, group, topic string, offset int64) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Timeout: 10 * time.Second}
	resp, err := client.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: 0, Offset: offset}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatal(p.Error)
		}
	}
}

// startWatched starts a consumer of group on topic whose JSON logs and metrics the test reads.
func startWatched(t *testing.T, topic, dlq, group string) (*recorder, *running, *lockedBuffer, *prometheus.Registry) {
	t.Helper()
	cfg, logs, reg := watched(t, topic, dlq, group)
	h := newRecorder()
	r := start(t, cfg, h)
	return h, r, logs, reg
}

// watched is the config of a consumer of group on topic whose JSON logs and metrics the test
// reads.
func watched(t *testing.T, topic, dlq, group string) (consume.Config, *lockedBuffer, *prometheus.Registry) {
	t.Helper()
	logs := &lockedBuffer{}
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Logger = slog.New(slog.NewJSONHandler(io.MultiWriter(logs, testWriter{t}), nil))
	reg := prometheus.NewRegistry()
	cfg.Metrics = consume.NewMetrics(reg)
	return cfg, logs, reg
}

// A group whose committed offset the topic's retention deleted reads on from the first record
// left, and says how many it skipped, rather than waiting for records that cannot come back.
func TestConsumer_RecordsDeletedBeforeProcessing(t *testing.T) {
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	recs := streams("deleted", 1, 10)
	publish(t, topic, recs)
	group := testenv.UniqueName(t)
	commitOffset(t, group, topic, 2)
	testenv.DeleteRecords(t, topic, 0, 6)
	h, r, logs, reg := startWatched(t, topic, dlq, group)
	waitFor(t, 60*time.Second, "the records left", func() bool { return h.count() == 4 })
	waitFor(t, 30*time.Second, "the commit to reach the end", func() bool { return caughtUp(t, group, topic, 1) })
	r.halt(t)
	for _, v := range []int64{6, 7, 8, 9} {
		if h.seen[rec{recs[0].stream, v}] != 1 {
			t.Errorf("v%d handled %d times; want once", v, h.seen[rec{recs[0].stream, v}])
		}
	}
	if !strings.Contains(logs.String(), `"msg":"consume: records were deleted before the group processed them; reading on from the first that is left"`) ||
		!strings.Contains(logs.String(), `"skipped":4`) {
		t.Errorf("no error log of the 4 deleted records:\n%s", logs.String())
	}
	want := fmt.Sprintf(`# HELP annals_consumer_skipped_records_total Records the group never processed because the topic's retention deleted them first: its offset was below the partition's first record, and it read on from there.
# TYPE annals_consumer_skipped_records_total counter
annals_consumer_skipped_records_total{group=%q,partition="0",topic=%q} 4
`, group, topic)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "annals_consumer_skipped_records_total", "annals_consumer_offset_past_end_total"); err != nil {
		t.Error(err)
	}
}

// A group whose committed offset lies past the end of its partition (an unclean leader
// election moved the end back, or an operator's reset went too far) reads the records written
// from the end on, rather than waiting for the partition to grow past the offset.
func TestConsumer_OffsetPastTheEnd(t *testing.T) {
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	recs := streams("past", 1, 6)
	publish(t, topic, recs[:3])
	group := testenv.UniqueName(t)
	commitOffset(t, group, topic, 1000)
	h, r, logs, reg := startWatched(t, topic, dlq, group)
	waitFor(t, 60*time.Second, "the consumer to find its offset out of range", func() bool {
		return strings.Contains(logs.String(), "the group's offset is past the end of the partition")
	})
	// The move is committed before any record is handled: a restart does not find the offset
	// past the end, count it and alert again.
	waitFor(t, 30*time.Second, "the end to be committed", func() bool { return committed(t, group, topic, 1)[0] == 3 })
	publish(t, topic, recs[3:])
	waitFor(t, 60*time.Second, "the records written after the end", func() bool { return h.count() == 3 })
	r.halt(t)
	for _, x := range recs[3:] {
		if h.seen[x] != 1 {
			t.Errorf("v%d handled %d times; want once", x.v, h.seen[x])
		}
	}
	if got := committed(t, group, topic, 1)[0]; got != 6 {
		t.Errorf("committed %d; want 6, past the records written after the end", got)
	}
	want := fmt.Sprintf(`# HELP annals_consumer_offset_past_end_total Times the group's offset lay past the end of its partition (an unclean leader election moved the end back, or a reset went too far), and the group read on from the end.
# TYPE annals_consumer_offset_past_end_total counter
annals_consumer_offset_past_end_total{group=%q,partition="0",topic=%q} 1
`, group, topic)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "annals_consumer_skipped_records_total", "annals_consumer_offset_past_end_total"); err != nil {
		t.Error(err)
	}
}

// holding is a recorder that holds the record of version at until released, and the one of
// version stop until its context ends, failing it.
type holding struct {
	*recorder
	at, stop     int64
	held, halted chan struct{}
	release      chan struct{}
}

func (h *holding) Handle(ctx context.Context, m *consume.Message) error {
	switch m.Event.Version {
	case h.at:
		close(h.held)
		<-h.release
	case h.stop:
		close(h.halted)
		<-ctx.Done()
		return ctx.Err()
	}
	return h.recorder.Handle(ctx, m)
}

// A reader that falls behind the topic's retention while it reads (the records it has not
// fetched yet are deleted) skips them: the group says how many it lost, as it does when the
// offset it starts from was deleted, and counts them once, even when its session ends before
// the record after them is processed and the next one finds its offset below the first record.
func TestConsumer_RecordsDeletedWhileReading(t *testing.T) {
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	const fetched, deleted, after = 2000, 1000, 10
	recs := streams("reading", 1, fetched+deleted+after)
	publish(t, topic, recs[:fetched])
	group := testenv.UniqueName(t)
	cfg, logs, reg := watched(t, topic, dlq, group)
	// The first record's handler waits: the reader fills its queues from its first fetch,
	// which holds the records published so far, and fetches no more until it is released.
	// The first record after the deletion is held until the consumer stops.
	h := &holding{recorder: newRecorder(), at: 0, stop: fetched + deleted,
		held: make(chan struct{}), halted: make(chan struct{}), release: make(chan struct{})}
	r := start(t, cfg, h)
	wait := func(c chan struct{}, what string) {
		select {
		case <-c:
		case <-time.After(time.Minute):
			t.Fatalf("no %s within a minute", what)
		}
	}
	wait(h.held, "first record handled")
	publish(t, topic, recs[fetched:fetched+deleted])
	testenv.DeleteRecords(t, topic, 0, fetched+deleted) // the reader has not fetched these
	publish(t, topic, recs[fetched+deleted:])
	close(h.release)
	wait(h.halted, "record after the deletion handled")
	r.halt(t)
	h.stop = -1

	cfg2, logs2, reg2 := watched(t, topic, dlq, group)
	r2 := start(t, cfg2, h)
	last := recs[len(recs)-1]
	waitFor(t, time.Minute, "the records published after the deletion", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.seen[last] > 0
	})
	r2.halt(t)

	handled := 0
	for _, x := range recs {
		switch n := h.seen[x]; {
		case n > 1:
			t.Errorf("v%d handled %d times; want at most once", x.v, n)
		case n == 0 && x.v >= fetched+deleted:
			t.Errorf("v%d, published after the deletion, was not handled", x.v)
		}
		if h.seen[x] > 0 {
			handled++
		}
	}
	name := "annals_consumer_skipped_records_total"
	first, second := metricSum(t, reg, name), metricSum(t, reg2, name)
	if first+second != deleted || handled+deleted != len(recs) {
		t.Errorf("%d records handled, %v counted as skipped before the stop and %v after; want %d skipped once, and every other record handled",
			handled, first, second, deleted)
	}
	for _, l := range []*lockedBuffer{logs, logs2} {
		if strings.Count(l.String(), `"msg":"consume: records were deleted before the group processed them; reading on from the first that is left"`) > 1 {
			t.Errorf("the deleted records logged more than once:\n%s", l.String())
		}
	}
	if !strings.Contains(logs.String()+logs2.String(), fmt.Sprintf(`"skipped":%d`, deleted)) {
		t.Errorf("no error log of the %d deleted records:\n%s\n%s", deleted, logs.String(), logs2.String())
	}
}

// A gap between the offsets a reader returns that no deletion explains (a compacted topic, the
// markers of transactions) counts no record lost, and the partition's gaps are not checked
// again; one that a deletion explains counts the records deleted, up to the record read after
// the gap.
func TestConsumer_GapsThatAreNotDeletions(t *testing.T) {
	topic, dlq := testenv.Topic(t, 1), testenv.Topic(t, 1)
	publish(t, topic, streams("gaps", 1, 10))
	cfg, _, _ := watched(t, topic, dlq, testenv.UniqueName(t))
	c, err := consume.New(cfg, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	if n, known, more := c.LostIn(t.Context(), topic, 0, 2, 5); n != 0 || !known || more {
		t.Errorf("a gap over records still there: %d lost (known %v), checks go on %v; want none lost, the checks stopped", n, known, more)
	}
	testenv.DeleteRecords(t, topic, 0, 4)
	if n, known, more := c.LostIn(t.Context(), topic, 0, 2, 5); n != 2 || !known || !more {
		t.Errorf("records 2 and 3 deleted, 4 left, 5 read: %d lost (known %v), checks go on %v; want 2, the checks going on", n, known, more)
	}
}
