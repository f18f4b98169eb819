package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/lag"
)

// lagDeployment creates the event topics of a deployment with a fresh prefix (2 partitions
// each, 3 records on every partition) and its DLQ topic of one group, deleted when the test
// ends, and returns the prefix, the topics and a client.
func lagDeployment(t *testing.T) (string, []string, *kafka.Client, func() (*config.Config, error)) {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	prefix := "test-" + testenv.UniqueName(t)
	topics := []string{kafkawire.Topic(prefix, "user"), kafkawire.Topic(prefix, "order"), kafkawire.DeadLetterTopic(prefix, prefix+"-projector")}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	var create []kafka.TopicConfig
	for _, topic := range topics {
		create = append(create, kafka.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1})
	}
	resp, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: create})
	if err == nil {
		err = errors.Join(resp.Errors[topics[0]], resp.Errors[topics[1]], resp.Errors[topics[2]])
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics}) })
	for _, topic := range topics {
		for p := range 2 {
			lagProduce(t, client, topic, p, 3)
		}
	}
	env := map[string]string{"KAFKA_BROKERS": strings.Join(brokers, ","), "KAFKA_TOPIC_PREFIX": prefix}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return prefix, topics, client, func() (*config.Config, error) { return config.Load("../../config/event_sourcing.tsk", lookup) }
}

func lagProduce(tb testing.TB, client *kafka.Client, topic string, partition, n int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var records []kafka.Record // built for each attempt: a produce request consumes its records
		for range n {
			records = append(records, kafka.Record{Time: time.Now().Add(-time.Minute), Value: kafka.NewBytes([]byte("x"))})
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

func lagCommit(t *testing.T, client *kafka.Client, group string, offsets map[string][]int64) {
	t.Helper()
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for topic, os := range offsets {
		for p, o := range os {
			req.Topics[topic] = append(req.Topics[topic], kafka.OffsetCommit{Partition: p, Offset: o})
		}
	}
	if _, err := client.OffsetCommit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is an io.Writer that a test may read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLagCmd(t *testing.T) {
	prefix, topics, client, loadConfig := lagDeployment(t)
	behind, caughtUp, dlqOnly := prefix+".behind", prefix+".caught-up", prefix+".dlq-only"
	lagCommit(t, client, behind, map[string][]int64{topics[0]: {1, 3}})
	lagCommit(t, client, caughtUp, map[string][]int64{topics[0]: {3, 3}, topics[1]: {3, 3}})
	lagCommit(t, client, dlqOnly, map[string][]int64{topics[2]: {0, 0}})
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		var out strings.Builder
		if err := lagCmd(ctx, nil, loadConfig, &out); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		got := out.String()
		for _, want := range []string{
			"consumer lag on " + topics[0] + ", " + topics[1],
			"GROUP " + behind + "  STATE Empty  MEMBERS 0  STATUS n/a (the status compares 10 polls: run with --watch)",
			"GROUP " + caughtUp + "  STATE Empty  MEMBERS 0  STATUS ok (caught up)",
			"TOPIC", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG-SECONDS",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("output does not contain %q:\n%s", want, got)
			}
		}
		if strings.Contains(got, dlqOnly) || strings.Contains(got, topics[2]) {
			t.Errorf("output shows the DLQ topic or a group reading only it:\n%s", got)
		}
		var rows []string
		for line := range strings.SplitSeq(got, "\n") {
			if f := strings.Fields(line); len(f) >= 6 && f[0] == topics[0] && f[1] == "0" && f[2] == "1" {
				rows = append(rows, strings.Join(f[:5], " "))
				if s := f[5]; !strings.HasPrefix(s, "6") { // records a minute old: 60.x seconds
					t.Errorf("lag seconds %s, want about 60: %q", s, line)
				}
			}
		}
		if len(rows) != 1 || rows[0] != topics[0]+" 0 1 3 2" {
			t.Errorf("rows for %s partition 0 of %s: %q, want one: offset 1, end 3, lag 2\n%s", behind, topics[0], rows, got)
		}
	})

	t.Run("Group", func(t *testing.T) {
		var out strings.Builder
		if err := lagCmd(ctx, []string{"--group", caughtUp}, loadConfig, &out); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); strings.Contains(got, behind) || !strings.Contains(got, "GROUP "+caughtUp) {
			t.Errorf("--group %s shows other groups or not it:\n%s", caughtUp, got)
		}
	})

	t.Run("Watch", func(t *testing.T) {
		// The group stands still with lag and no member: stop once 3 polls are in.
		var out syncBuffer
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() {
			done <- lagCmd(wctx, []string{"--group", behind, "--watch", "--interval", "10ms", "--window", "3"}, loadConfig, &out)
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), "STATUS stop (no live member") {
			if time.Now().After(deadline) {
				t.Fatalf("no stop status within 30s:\n%s", out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("lag --watch returned %v when stopped, want nil", err)
		}
		if got := out.String(); !strings.Contains(got, "n/a ("+topics[0]+"/0 lags by 2; the status needs 3 polls, 1 so far)") {
			t.Errorf("the first print does not say the status needs more polls:\n%s", got)
		}
	})

	t.Run("ErrUsage", func(t *testing.T) {
		for _, args := range [][]string{{"extra"}, {"--interval", "0s"}, {"--window", "1"}, {"--nope"}} {
			if err := lagCmd(ctx, args, loadConfig, io.Discard); !errors.Is(err, errUsage) {
				t.Errorf("lag %q: %v, want a usage error", args, err)
			}
		}
	})
}

func TestLagExporterHandler(t *testing.T) {
	prefix, topics, client, loadConfig := lagDeployment(t)
	group := prefix + ".g"
	lagCommit(t, client, group, map[string][]int64{topics[0]: {1, 3}})
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	mon, err := lag.New(lag.Config{Brokers: cfg.Kafka.Brokers, Topics: []string{topics[0], topics[1]}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(mon)
	srv := httptest.NewServer(lagExporterHandler(reg, mon, time.Minute))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := get("/livez"); code != http.StatusOK {
		t.Errorf("/livez: %d, want 200", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the first poll: %d %s, want 503", code, body)
	}
	if _, err := mon.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a poll: %d %s, want 200", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`kafka_consumergroup_lag{consumergroup="` + group + `",partition="0",topic="` + topics[0] + `"} 2`,
		`annals_consumer_group_lag_sum{group="` + group + `",topic="` + topics[0] + `"} 2`,
		`annals_consumer_group_status{group="` + group + `",status="unknown"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics does not contain %s", want)
		}
	}
}

func TestLagExporterCmd(t *testing.T) {
	_, topics, _, loadConfig := lagDeployment(t)
	ctx := context.Background()
	for _, args := range [][]string{{"extra"}, {"--interval", "-1s"}, {"--window", "0"}} {
		if err := lagExporterCmd(ctx, args, loadConfig, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("lag-exporter %q: %v, want a usage error", args, err)
		}
	}

	// A free port: the listener is closed just before the exporter listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rctx, cancel := context.WithCancel(ctx)
	var logs syncBuffer
	done := make(chan error)
	go func() {
		done <- lagExporterCmd(rctx, []string{"--addr", addr, "--interval", "50ms"}, loadConfig, &logs)
	}()
	deadline := time.Now().Add(30 * time.Second)
	var body string
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); strings.Contains(body, "kafka_topic_partitions{topic=\""+topics[0]+"\"} 2") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics of %s on %s within 30s (last: %v)\n%s\n%s", topics[0], addr, err, body, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(body, topics[2]) {
		t.Errorf("/metrics shows the DLQ topic %s", topics[2])
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("lag-exporter returned %v when stopped, want nil\n%s", err, logs.String())
	}
}
