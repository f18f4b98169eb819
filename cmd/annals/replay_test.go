package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

// replayCLI runs `annals replay args...` against a deployment whose topics have prefix.
func replayCLI(t *testing.T, brokers []string, prefix string, args ...string) (string, error) {
	t.Helper()
	env := map[string]string{"KAFKA_BROKERS": strings.Join(brokers, ","), "KAFKA_TOPIC_PREFIX": prefix}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	loadConfig := func() (*config.Config, error) { return config.Load("../../config/event_sourcing.tsk", lookup) }
	var out strings.Builder
	err := replayCmd(context.Background(), args, loadConfig, &out, io.Discard)
	return out.String(), err
}

func TestReplayCmd(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	prefix := "test-" + testenv.UniqueName(t)
	topics := []string{kafkawire.Topic(prefix, "user"), kafkawire.Topic(prefix, "order")}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	ctx := context.Background()
	var create []kafka.TopicConfig
	for _, topic := range topics {
		create = append(create, kafka.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1})
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
	if err == nil {
		err = errors.Join(resp.Errors[topics[0]], resp.Errors[topics[1]])
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics}) })

	// Every partition: records 3h, 2h and 30m old.
	now := time.Now()
	for _, topic := range topics {
		for p := range 2 {
			replayProduce(t, client, topic, p, now.Add(-3*time.Hour), now.Add(-2*time.Hour), now.Add(-30*time.Minute))
		}
	}
	// commit commits offset o on every partition for group.
	commit := func(t *testing.T, group string, o int64) {
		t.Helper()
		req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
		for _, topic := range topics {
			req.Topics[topic] = []kafka.OffsetCommit{{Partition: 0, Offset: o}, {Partition: 1, Offset: o}}
		}
		if _, err := client.OffsetCommit(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	committed := func(t *testing.T, group string) []int64 {
		t.Helper()
		resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topics[0]: {0, 1}, topics[1]: {0, 1}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, topic := range topics {
			for _, p := range resp.Topics[topic] {
				got = append(got, p.CommittedOffset)
			}
		}
		return got
	}

	t.Run("OK", func(t *testing.T) {
		group := prefix + ".ok"
		commit(t, group, 3)
		until := now.Add(-time.Hour).UTC().Format(time.RFC3339)
		out, err := replayCLI(t, brokers, prefix, "--group", group, "--since", "150m", "--until", until)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got, want := committed(t, group), []int64{1, 1, 1, 1}; !slices.Equal(got, want) {
			t.Errorf("committed offsets %v, want %v\n%s", got, want, out)
		}
		for _, want := range []string{"moved 4 of 4 partitions back", topics[0], topics[1], "[1, 2) 1 record", "moved back 2 records"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not contain %q:\n%s", want, out)
			}
		}
		for _, topic := range topics {
			for p := range 2 {
				if !slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
					return slices.Equal(strings.Fields(line)[:min(5, len(strings.Fields(line)))], []string{topic, fmt.Sprint(p), "3", "1", "3"})
				}) {
					t.Errorf("no row %s %d 3 1 3 (topic, partition, old, new, end) in:\n%s", topic, p, out)
				}
			}
		}
	})

	t.Run("DryRun", func(t *testing.T) {
		group := prefix + ".dry"
		commit(t, group, 3)
		out, err := replayCLI(t, brokers, prefix, "--group", group, "--since", "1h", "--topics", topics[1], "--dry-run")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "would move 2 of 2 partitions back") || !strings.Contains(out, "dry run") || strings.Contains(out, topics[0]) {
			t.Errorf("output of a dry run on %s:\n%s", topics[1], out)
		}
		if got, want := committed(t, group), []int64{3, 3, 3, 3}; !slices.Equal(got, want) {
			t.Errorf("committed offsets after a dry run %v, want %v", got, want)
		}
	})

	t.Run("Help", func(t *testing.T) {
		out, err := replayCLI(t, brokers, prefix, "-h")
		if err != nil || !strings.Contains(out, "--since T") || !strings.Contains(out, "duration back from now") {
			t.Errorf("replay -h: %v\n%s", err, out)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		group := prefix + ".err"
		commit(t, group, 3)
		for _, tc := range []struct {
			name  string
			args  []string
			usage bool
			want  string
		}{
			{"NoGroup", []string{"--since", "1h"}, true, "--group"},
			{"NoSince", []string{"--group", group}, true, "--since"},
			{"BadSince", []string{"--group", group, "--since", "yesterday"}, true, `--since "yesterday"`},
			{"NegativeSince", []string{"--group", group, "--since", "-2h"}, true, `--since "-2h"`},
			{"BadUntil", []string{"--group", group, "--since", "2h", "--until", "2026-13-01"}, true, "--until"},
			{"UntilBeforeSince", []string{"--group", group, "--since", "1h", "--until", "2h"}, false, "--until"},
			{"UnknownFlag", []string{"--group", group, "--since", "1h", "--from", "x"}, true, "-from"},
			{"UnknownGroup", []string{"--group", prefix + ".nobody", "--since", "1h"}, false, "has no committed offsets"},
			{"UnknownTopic", []string{"--group", group, "--since", "1h", "--topics", prefix + ".nope"}, false, prefix + ".nope"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := replayCLI(t, brokers, prefix, tc.args...)
				if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, errUsage) != tc.usage {
					t.Errorf("error %v, want one containing %q (usage error: %v)", err, tc.want, tc.usage)
				}
			})
		}
		if got, want := committed(t, group), []int64{3, 3, 3, 3}; !slices.Equal(got, want) {
			t.Errorf("committed offsets after the errors %v, want %v", got, want)
		}
	})
}

func TestReplayParseTime(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-03-09T08:30:00Z", time.Date(2026, 3, 9, 8, 30, 0, 0, time.UTC)},
		{"2026-03-09T10:30:00.5+02:00", time.Date(2026, 3, 9, 8, 30, 0, 5e8, time.UTC)},
		{"2h", now.Add(-2 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"1d12h", now.Add(-36 * time.Hour)},
	} {
		got, err := replayParseTime("since", tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0s", "-1h", "d", "1.5d", "2days", "yesterday", "2026-03-09"} {
		if _, err := replayParseTime("since", in, now); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--since") {
			t.Errorf("%q: %v, want a usage error naming --since", in, err)
		}
	}
}

// replayProduce writes a record with each timestamp to a partition, retrying while a new
// topic's partition has no leader yet.
func replayProduce(tb testing.TB, client *kafka.Client, topic string, partition int, stamps ...time.Time) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var records []kafka.Record // built for each attempt: a produce request consumes its records
		for _, at := range stamps {
			records = append(records, kafka.Record{Time: at, Value: kafka.NewBytes([]byte(at.Format(time.RFC3339Nano)))})
		}
		resp, err := client.Produce(context.Background(), &kafka.ProduceRequest{
			Topic: topic, Partition: partition, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(records...),
		})
		if err == nil {
			err = resp.Error
		}
		if err == nil {
			return
		}
		var kerr kafka.Error
		if !errors.As(err, &kerr) || !kerr.Temporary() || time.Now().After(deadline) {
			tb.Fatalf("produce to %s/%d: %v", topic, partition, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
