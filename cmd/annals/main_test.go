package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := run(context.Background(), append([]string{"-config", "../../config/event_sourcing.tsk"}, args...), lookup, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestTopics(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	prefix := "test-" + testenv.UniqueName(t)
	env := map[string]string{"KAFKA_BROKERS": strings.Join(brokers, ","), "KAFKA_TOPIC_PREFIX": prefix, "KAFKA_TOPIC_PARTITIONS": "3"}
	want := []string{kafkawire.Topic(prefix, "user"), kafkawire.Topic(prefix, "order"), kafkawire.DeadLetterTopic(prefix, prefix+"-projector"), kafkawire.DeadLetterTopic(prefix, prefix+"-notifier"), kafkawire.DeadLetterTopic(prefix, prefix+"-auditor")}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	t.Cleanup(func() {
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: want})
	})

	code, out, errOut := runCLI(t, env, "topics")
	if code != 0 {
		t.Fatalf("annals topics = %d: %s", code, errOut)
	}
	if got := strings.Count(out, "created "); got != len(want) {
		t.Errorf("created %d topics, want %d:\n%s", got, len(want), out)
	}
	meta, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: want})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range meta.Topics {
		if topic.Error != nil {
			t.Errorf("%s: %v", topic.Name, topic.Error)
		} else if len(topic.Partitions) != 3 {
			t.Errorf("%s has %d partitions, want 3", topic.Name, len(topic.Partitions))
		}
	}

	code, out, errOut = runCLI(t, env, "topics")
	if code != 0 || strings.Count(out, "exists ") != len(want) {
		t.Errorf("second annals topics = %d, want every topic reported as existing:\n%s%s", code, out, errOut)
	}
}

func TestMigrate(t *testing.T) {
	_, schema := testenv.SchemaPool(t)
	url := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	env := map[string]string{"DATABASE_URL": url + sep + "search_path=" + schema}
	code, out, errOut := runCLI(t, env, "migrate")
	if code != 0 || !strings.Contains(out, "applied 00001") {
		t.Fatalf("annals migrate = %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "migrate")
	if code != 0 || strings.Contains(out, "applied") || !strings.Contains(out, "schema at version") {
		t.Errorf("second annals migrate = %d, want nothing applied:\n%s%s", code, out, errOut)
	}
}

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"OK", []string{"probe", srv.URL + "/livez"}, 0},
		{"Unhealthy", []string{"probe", srv.URL + "/readyz"}, 1},
		{"NotAURL", []string{"probe", "localhost:8080"}, 2},
		{"NoArgument", []string{"probe"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, _ := runCLI(t, nil, tc.args...); code != tc.want {
				t.Errorf("exit code %d, want %d", code, tc.want)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, errOut := runCLI(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestBadConfiguration(t *testing.T) {
	code, _, errOut := runCLI(t, map[string]string{"EVENT_STORE_TYPE": "cassandra"}, "topics")
	if code != 1 || !strings.Contains(errOut, "EVENT_STORE_TYPE") || !strings.Contains(errOut, "postgresql") {
		t.Errorf("exit %d, stderr %q; want the key and the allowed values", code, errOut)
	}
}
