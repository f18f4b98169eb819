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
	logs := &lockedBuffer{}
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Logger = slog.New(slog.NewJSONHandler(io.MultiWriter(logs, testWriter{t}), nil))
	reg := prometheus.NewRegistry()
	cfg.Metrics = consume.NewMetrics(reg)
	h := newRecorder()
	r := start(t, cfg, h)
	return h, r, logs, reg
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
