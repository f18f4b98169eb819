package auditlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// userEvents and orderEvents are the events of n streams of k events each, as the writer
// records them: UserProfileUpdated (schema v1 and v2) and ItemAdded.
func userEvents(n, k int) []events.Envelope {
	var out []events.Envelope
	for s := range n {
		stream := "user-" + uuid.Must(uuid.NewV7()).String()
		for v := range k {
			e := envelope(stream, int64(v))
			e.GlobalPosition = int64(s*k + v + 1)
			if v%2 == 0 {
				e.SchemaVersion, e.Data = 1, json.RawMessage(fmt.Sprintf(`{"name":"Name %d"}`, v))
			} else {
				e.SchemaVersion, e.Data = 2, json.RawMessage(fmt.Sprintf(`{"name":null,"email":"u%d@example.com"}`, v))
			}
			out = append(out, e)
		}
	}
	return out
}

func orderEvents(n, k int) []events.Envelope {
	var out []events.Envelope
	for s := range n {
		stream := "order-" + uuid.Must(uuid.NewV7()).String()
		for v := range k {
			e := envelope(stream, int64(v))
			e.GlobalPosition = int64(1_000_000 + s*k + v)
			e.Type = "ItemAdded"
			e.Data = json.RawMessage(fmt.Sprintf(`{"item":{"id":"sku-%d","name":"Mug \"große\" ☕","price_cents":%d,"quantity":%d}}`, v, 799+v, 1+v%3))
			if v%3 == 0 {
				e.Metadata = nil // no metadata header
				e.CorrelationID, e.CausationID = "", ""
			}
			out = append(out, e)
		}
	}
	return out
}

// runConsumer runs a consumer of l until the test ends or stop is called.
func runConsumer(tb testing.TB, l *auditlog.Log, cfg consume.Config) (c *consume.Consumer, stop func()) {
	tb.Helper()
	c, err := l.Consumer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("consumer: %v", err)
		}
	}
	tb.Cleanup(stop)
	return c, stop
}

// Every event of every topic is recorded once, with who, what, when and where, by two
// members of one group appending concurrently (some records published twice, as the relay
// may); a second group over the same records records nothing more. The chain verifies after
// each.
func TestConsumer_EveryEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	users, orders, dlq := testenv.Topic(t, 4), testenv.Topic(t, 4), testenv.Topic(t, 1)
	ues, oes := userEvents(50, 20), orderEvents(50, 20)
	want := map[uuid.UUID]events.Envelope{}
	for _, ev := range slices.Concat(ues, oes) {
		want[ev.EventID] = ev
	}
	total := int64(len(want))

	cfg := func(group string) consume.Config {
		return consume.Config{
			Brokers: testenv.KafkaBrokers(t), Group: group, Topics: []string{users, orders}, DLQTopic: dlq,
			Decode: consume.SchemaDecoder(domain.Catalog()), BatchSize: 50,
		}
	}
	group := testenv.UniqueName(t)
	other, err := auditlog.RolePool(context.Background(), e.owner, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a, stopA := runConsumer(t, auditlog.New(e.role, auditlog.Options{Metrics: auditlog.NewMetrics(regA)}), cfg(group))
	b, stopB := runConsumer(t, auditlog.New(other, auditlog.Options{Metrics: auditlog.NewMetrics(regB)}), cfg(group)) // as another process
	waitFor(t, 30*time.Second, "both members to own partitions", func() bool {
		pa, pb := a.Assigned(), b.Assigned()
		return len(pa[users]) > 0 && len(pb[users]) > 0 && len(pa[users])+len(pb[users]) == 4 &&
			len(pa[orders])+len(pb[orders]) == 4
	})
	go func() { // both members append at once
		publish(t, users, ues, false)
		publish(t, users, ues[:60], false) // delivered twice upstream
	}()
	publish(t, orders, oes, true)
	publish(t, orders, oes[100:130], true)
	waitFor(t, 45*time.Second, "every event recorded and committed", func() bool {
		return e.count(t) >= total && committedToEnd(t, group, users, orders)
	})
	stopA()
	stopB()
	if got := e.count(t); got != total {
		t.Fatalf("%d entries, want %d", got, total)
	}
	if na, nb := appended(t, regA), appended(t, regB); na == 0 || nb == 0 || na+nb != float64(total) {
		t.Errorf("the members appended %v and %v events, want both some and %d in all", na, nb, total)
	}
	e.mustVerify(t, total)

	where := locate(t, users, orders)
	for _, en := range e.all(t) {
		ev, ok := want[en.EventID]
		if !ok {
			t.Fatalf("entry %d: event %s was never published", en.Seq, en.EventID)
		}
		checkEntry(t, en, ev, where[en.EventID])
	}
	if ends := topicEnds(t, dlq); ends[0] != 0 {
		t.Errorf("%d dead letters", ends[0])
	}

	// Redelivery: another group reads every record again into the same log.
	group2 := testenv.UniqueName(t) + "-again"
	_, stop := runConsumer(t, e.log, cfg(group2))
	waitFor(t, 45*time.Second, "the second group to commit every record", func() bool {
		return committedToEnd(t, group2, users, orders)
	})
	stop()
	if got := e.count(t); got != total {
		t.Errorf("after a second group: %d entries, want %d", got, total)
	}
	e.mustVerify(t, total)
}

// checkEntry compares an entry with the event published and the places it was published at.
func checkEntry(tb testing.TB, en auditlog.Entry, ev events.Envelope, at []located) {
	tb.Helper()
	wantData, gotData := map[string]any{}, map[string]any{}
	if err := json.Unmarshal(ev.Data, &wantData); err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(en.Data, &gotData); err != nil {
		tb.Fatalf("entry %d: data %s: %v", en.Seq, en.Data, err)
	}
	if ev.Type == "UserProfileUpdated" { // read as the current version, v2: email added as null
		if _, ok := wantData["email"]; !ok {
			wantData["email"] = nil
		}
		ev.SchemaVersion = 2
	}
	md := ev.Metadata
	if md == nil {
		md = map[string]string{}
	}
	got := []any{en.Type, en.StreamID, en.StreamVersion, en.GlobalPosition, en.SchemaVersion, gotData,
		en.Metadata, en.CorrelationID, en.CausationID, en.RecordedAt}
	want := []any{ev.Type, ev.StreamID, ev.Version, ev.GlobalPosition, int64(ev.SchemaVersion), wantData,
		md, ev.CorrelationID, ev.CausationID, ev.RecordedAt}
	if !reflect.DeepEqual(got, want) {
		tb.Errorf("entry %d (event %s):\n got %v\nwant %v", en.Seq, en.EventID, got, want)
	}
	if !slices.Contains(at, located{en.Topic, int(en.Partition), en.Offset}) {
		tb.Errorf("entry %d says %s/%d@%d; the event is at %v", en.Seq, en.Topic, en.Partition, en.Offset, at)
	}
	if en.AuditedAt.Before(ev.RecordedAt) || time.Since(en.AuditedAt) > 5*time.Minute {
		tb.Errorf("entry %d audited at %v", en.Seq, en.AuditedAt)
	}
}

// appended reads annals_auditor_appended_total from reg.
func appended(tb testing.TB, reg *prometheus.Registry) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "annals_auditor_appended_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	tb.Fatal("no annals_auditor_appended_total")
	return 0
}
