package readmodel_test

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
)

// TestConsumer_InboxUnderItsGroup: the projector records the events it applied under its own
// consumer group, which carries the deployment's topic prefix, so that two deployments with
// prefixes of their own on one database never take each other's events for applied.
func TestConsumer_InboxUnderItsGroup(t *testing.T) {
	e := newEnv(t)
	const group = "tenant-a-projector"
	_, err := e.proj.Consumer(consume.Config{Brokers: []string{"127.0.0.1:1"}, Group: group, Topics: []string{"tenant-a.user"},
		DLQTopic: "tenant-a.dlq." + group, Decode: func(kafka.Message) (events.Envelope, error) { return events.Envelope{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	_, evs := userLife()
	if err := e.handleBatch(t, evs); err != nil {
		t.Fatal(err)
	}
	rows, err := e.pool.Query(context.Background(), `select group_name, count(*) from annals_inbox group by group_name`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var g string
		var n int
		if err := rows.Scan(&g, &n); err != nil {
			t.Fatal(err)
		}
		got[g] = n
	}
	if len(got) != 1 || got[group] != len(evs) {
		t.Errorf("inbox rows by group %v, want %d under %s", got, len(evs), group)
	}
}
