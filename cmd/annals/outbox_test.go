package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// schemaGate encodes events as JSON, except those of type OrderGiftWrapped until its schema is
// deployed.
type schemaGate struct{ deployed atomic.Bool }

func (g *schemaGate) Encode(e events.Envelope) ([]byte, string, uint64, error) {
	if e.Type == "OrderGiftWrapped" && !g.deployed.Load() {
		return nil, "", 0, errors.New("no schema for event type OrderGiftWrapped")
	}
	b, err := json.Marshal(e)
	return b, "application/json", 1, err
}

// TestOutboxCmd: an append the relay cannot publish (an event type without a schema) holds its
// stream while another stream's appends are published; `annals outbox holds` lists it with the
// reason, `annals outbox retry` releases it once the schema is deployed and the stream is
// published in order, and `annals outbox skip` gives up on another held append, recorded with
// who and why.
func TestOutboxCmd(t *testing.T) {
	ctx := context.Background()
	pool, schema := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	url := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	env := map[string]string{"DATABASE_URL": url + sep + "search_path=" + schema}
	brokers := testenv.KafkaBrokers(t)
	prefix := "test-" + testenv.UniqueName(t)
	topic := kafkawire.Topic(prefix, "order")
	if err := relay.EnsureTopics(ctx, brokers, []relay.Topic{{Name: topic, Partitions: 3, ReplicationFactor: 1}}, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client := &kafka.Client{Addr: kafka.TCP(brokers...)}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})

	store := postgres.New(pool, postgres.Options{})
	add := func(stream string, types ...string) {
		t.Helper()
		var evs []events.Event
		for _, typ := range types {
			evs = append(evs, events.Event{Type: typ, Data: []byte(`{}`)})
		}
		if _, err := store.Append(ctx, stream, events.Any(), evs, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	add("order-1", "OrderCreated")
	add("order-1", "OrderGiftWrapped")
	add("order-1", "OrderConfirmed")
	add("order-2", "OrderGiftWrapped")
	add("order-2", "OrderConfirmed")
	add("order-3", "OrderCreated", "OrderConfirmed")

	gate := &schemaGate{}
	r, err := relay.New(store.Outbox(), gate, relay.Config{Brokers: brokers, TopicPrefix: prefix, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()

	published := map[string][]int64{}
	reader := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "test-" + testenv.UniqueName(t), Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer reader.Close()
	await := func(want string) {
		t.Helper()
		readCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for fmt.Sprint(published) != want {
			m, err := reader.FetchMessage(readCtx)
			if err != nil {
				t.Fatalf("published %v, want %s: %v", published, want, err)
			}
			for _, h := range m.Headers {
				if h.Key == kafkawire.HeaderStreamVersion {
					var v int64
					fmt.Sscan(string(h.Value), &v)
					published[string(m.Key)] = append(published[string(m.Key)], v)
				}
			}
		}
	}
	holds := func() string {
		t.Helper()
		hs, err := store.Outbox().Holds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range hs {
			out = append(out, fmt.Sprintf("%s@%d", h.StreamID, h.FirstVersion))
		}
		return strings.Join(out, " ")
	}

	await("map[order-1:[0] order-3:[0 1]]")
	deadline := time.Now().Add(time.Minute)
	for holds() != "order-1@1 order-2@0" && holds() != "order-2@0 order-1@1" {
		if time.Now().After(deadline) {
			t.Fatalf("holds: %s, want order-1@1 and order-2@0", holds())
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, out, errOut := runCLI(t, env, "outbox", "holds")
	if code != 0 || !strings.Contains(out, "order-1") || !strings.Contains(out, "order-2") ||
		strings.Count(out, "no schema for event type OrderGiftWrapped") != 2 || !strings.Contains(out, "2 held streams") {
		t.Errorf("outbox holds = %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "outbox", "holds", "-json")
	var listed []struct {
		StreamID     string `json:"stream_id"`
		FirstVersion int64  `json:"first_version"`
		Waiting      int64  `json:"waiting_appends"`
		Reason       string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || len(listed) != 2 {
		t.Errorf("outbox holds -json = %d, %v:\n%s%s", code, err, out, errOut)
	}

	// Usage errors and a stream that is not held.
	for _, args := range [][]string{{"outbox"}, {"outbox", "retry"}, {"outbox", "retry", "order-1", "-all"},
		{"outbox", "skip", "order-2", "-version", "0"}, {"outbox", "skip", "order-2", "-reason", "why"}, {"outbox", "frobnicate"}} {
		if code, _, _ := runCLI(t, env, args...); code != 2 {
			t.Errorf("annals %s = %d, want 2", strings.Join(args, " "), code)
		}
	}
	if code, _, errOut := runCLI(t, env, "outbox", "retry", "order-3"); code != 1 || !strings.Contains(errOut, "not held") {
		t.Errorf("outbox retry of a stream that is not held = %d: %s", code, errOut)
	}

	// The schema is deployed; the operator retries order-1.
	gate.deployed.Store(true)
	code, out, errOut = runCLI(t, env, "outbox", "retry", "order-1")
	if code != 0 || !strings.Contains(out, "released order-1 (held at 1..1") {
		t.Fatalf("outbox retry order-1 = %d:\n%s%s", code, out, errOut)
	}
	await("map[order-1:[0 1 2] order-3:[0 1]]")

	// order-2's held append is skipped deliberately.
	code, out, errOut = runCLI(t, env, "outbox", "skip", "order-2", "-version", "0", "-reason", "gift wrapping was withdrawn", "-by", "ops@example.com")
	if code != 0 || !strings.Contains(out, "skipped order-2@0..0") || !strings.Contains(out, "skipped by ops@example.com: gift wrapping was withdrawn") {
		t.Fatalf("outbox skip = %d:\n%s%s", code, out, errOut)
	}
	await("map[order-1:[0 1 2] order-2:[1] order-3:[0 1]]")
	var dead string
	if err := pool.QueryRow(ctx, `select error || ' / ' || skipped_by || ' / ' || skip_reason from annals_outbox_dead where stream_id = 'order-2'`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if want := "no schema for event type OrderGiftWrapped / ops@example.com / gift wrapping was withdrawn"; dead != want {
		t.Errorf("annals_outbox_dead: %q, want %q", dead, want)
	}
	if code, out, _ := runCLI(t, env, "outbox", "holds"); code != 0 || !strings.Contains(out, "no stream is held") {
		t.Errorf("outbox holds at the end = %d:\n%s", code, out)
	}
}
