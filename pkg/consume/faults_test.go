package consume_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

func TestConsumer_UndecodableRecordIsDeadLettered(t *testing.T) {
	topic, dlq := testenv.Topic(t, 2), testenv.Topic(t, 1)
	publish(t, topic, []rec{{"user-d-1", 0}, {"user-d-2", 0}})
	w := &kafka.Writer{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Topic: topic, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("user-d-1"), Value: []byte("not avro")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	publish(t, topic, []rec{{"user-d-1", 1}, {"user-d-2", 1}})
	h := newRecorder()
	group := testenv.UniqueName(t)
	r := start(t, config(t, []string{topic}, dlq, group), h)
	waitFor(t, 30*time.Second, "the commit to reach the end", func() bool {
		return caughtUp(t, group, topic, 2)
	})
	r.halt(t)
	if h.count() != 3 || h.seen[rec{"user-d-1", 1}] != 0 {
		t.Errorf("handled %v; want user-d-1 v0 and user-d-2 v0, v1", h.seen)
	}
	letters := dead(t, dlq, 1)
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want the undecodable record and the event parked behind it", len(letters))
	}
	if e := header(letters[0], "error"); len(e) < 7 || e[:7] != "decode:" {
		t.Errorf("error header %q, want a decode error", e)
	}
	if string(letters[0].Value) != "not avro" {
		t.Errorf("the dead letter does not carry the original value")
	}
}

// A dependency that is down is not the message's fault: nothing is dead-lettered, nothing
// is committed past it, and processing resumes once it is back.
func TestConsumer_UnavailableDependencyPausesWithoutDeadLetters(t *testing.T) {
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 1)
	recs := streams("e", 30, 10)
	publish(t, topic, recs)
	var down atomic.Bool
	down.Store(true)
	var refusals atomic.Int64
	h := newRecorder()
	h.fail = func(m *consume.Message) error {
		if down.Load() {
			refusals.Add(1)
			return consume.Unavailable(errors.New("database is down"))
		}
		return nil
	}
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Attempts = 1
	r := start(t, cfg, h)
	waitFor(t, 30*time.Second, "several refusals", func() bool { return refusals.Load() >= 10 })
	if caughtUp(t, group, topic, 3) {
		t.Fatalf("committed everything while the dependency was down")
	}
	down.Store(false)
	waitFor(t, 60*time.Second, "every event", func() bool { return h.count() == len(recs) })
	r.halt(t)
	if len(h.violations) > 0 {
		t.Fatalf("order violation: %s", h.violations[0])
	}
	if n := len(dead(t, dlq, 1)); n != 0 {
		t.Errorf("%d dead letters while a dependency was down, want none", n)
	}
}

// Stopping mid-run lets the messages already started finish, starts no other, commits
// exactly the finished prefix of each partition, and leaves within the drain bound; a new
// member carries on from there without loss.
func TestConsumer_StopCommitsWhatFinished(t *testing.T) {
	topic, dlq := testenv.Topic(t, 4), testenv.Topic(t, 1)
	recs := streams("f", 40, 25)
	publish(t, topic, recs)
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.BatchSize = 50
	h := newRecorder()
	frozen := rec{"user-f-3", 12}
	reached, release := make(chan *consume.Message, 1), make(chan struct{})
	var mu sync.Mutex
	started := map[int]map[int64]bool{} // offsets whose handler ran, per partition, before the restart
	var restarted atomic.Bool
	h.fail = func(m *consume.Message) error {
		if !restarted.Load() {
			mu.Lock()
			if started[m.Partition] == nil {
				started[m.Partition] = map[int64]bool{}
			}
			started[m.Partition][m.Offset] = true
			mu.Unlock()
		}
		if (rec{m.Event.StreamID, m.Event.Version}) == frozen && m.Attempt == 1 {
			reached <- m
			<-release // in flight until the stop was requested
		}
		return nil
	}
	r := start(t, cfg, h)
	var at *consume.Message
	select {
	case at = <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the handler never reached the event it freezes on")
	}
	r.stop()
	close(release)
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(cfg.DrainTimeout + 10*time.Second):
		t.Fatal("the consumer did not stop within its drain bound")
	}
	r.stop = nil
	restarted.Store(true)
	h.mu.Lock()
	n := h.seen[frozen]
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("the event in flight at the stop was handled %d times, want it finished once", n)
	}
	// Every handler that started ran to the end (none failed), so what started is what
	// finished: each partition's commit must stop exactly at its first unfinished offset.
	offs := committed(t, group, topic, 4)
	for p := range 4 {
		want := int64(0)
		for started[p][want] {
			want++
		}
		if got := max(offs[p], 0); got != want {
			t.Errorf("partition %d committed up to %d; its messages finished without a gap up to %d", p, got, want)
		}
	}
	handled := h.count()
	t.Logf("frozen at partition %d offset %d; %d handled before the stop", at.Partition, at.Offset, handled)
	r2 := start(t, cfg, h)
	waitFor(t, 60*time.Second, "every event", func() bool { return h.count() == len(recs) })
	r2.halt(t)
	if len(h.violations) > 0 {
		t.Fatalf("order violation: %s", h.violations[0])
	}
	dups := h.total - len(recs)
	t.Logf("%d delivered twice", dups)
	if dups > cfg.BatchSize {
		t.Errorf("%d duplicates after a clean stop; at most a batch in flight may come again", dups)
	}
}

// A member started before its topics exist waits for them, then consumes them.
func TestConsumer_WaitsForItsTopics(t *testing.T) {
	name := "test." + testenv.UniqueName(t)
	dlq := testenv.Topic(t, 1)
	h := newRecorder()
	group := testenv.UniqueName(t)
	r := start(t, config(t, []string{name}, dlq, group), h)
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(t)...), Timeout: 20 * time.Second}
	resp, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: 3, ReplicationFactor: 1}}})
	if err != nil || resp.Errors[name] != nil {
		t.Fatalf("create topic: %v %v", err, resp.Errors[name])
	}
	t.Cleanup(func() { client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{name}}) })
	recs := streams("w", 10, 3)
	publish(t, name, recs)
	waitFor(t, 60*time.Second, "every event", func() bool { return h.count() == len(recs) })
	r.halt(t)
}
