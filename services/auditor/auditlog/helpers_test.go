package auditlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/internal/domain"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/pkg/schema"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// env is an audit log on a schema of its own of the real PostgreSQL: owner is the schema
// owner's pool (migrations, tampering), role the auditor's (everything else).
type env struct {
	owner, role *pgxpool.Pool
	log         *auditlog.Log
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	owner, _ := testenv.SchemaPool(tb)
	ctx := context.Background()
	migrateEventStore(tb, owner)
	if _, err := auditlog.Migrate(ctx, owner, nil, ""); err != nil {
		tb.Fatalf("migrate the audit log: %v", err)
	}
	role, err := auditlog.RolePool(ctx, owner, "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(role.Close)
	return &env{owner: owner, role: role, log: auditlog.New(role, auditlog.Options{})}
}

func migrateEventStore(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		tb.Fatalf("migrate the event store: %v", err)
	}
}

// at is the recording time of the test events: whole microseconds.
var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// envelope is the i-th event of a stream, with who caused it.
func envelope(stream string, version int64) events.Envelope {
	return events.Envelope{
		EventID: uuid.Must(uuid.NewV7()), StreamID: stream, Category: events.Category(stream),
		Version: version, GlobalPosition: 1000 + version, Type: "UserProfileUpdated", SchemaVersion: 1,
		Data:          json.RawMessage(fmt.Sprintf(`{"name":"Name %d","email":null}`, version)),
		Metadata:      map[string]string{"user_agent": "test/1.0", "ip": "192.0.2.7", "seq": strconv.FormatInt(version, 10)},
		CorrelationID: "corr-" + stream, CausationID: fmt.Sprintf("cause-%d", version),
		RecordedAt: at.Add(time.Duration(version) * time.Second),
	}
}

// message wraps an envelope as the runtime delivers it, read from topic/partition@offset.
func message(ev events.Envelope, topic string, partition int, offset int64) *consume.Message {
	return &consume.Message{Topic: topic, Partition: partition, Offset: offset, Key: []byte(ev.StreamID), Event: ev, Attempt: 1}
}

// messages is n events spread over streams, as messages of topic "audit.test".
func messages(streams, n int) []*consume.Message {
	prefix := uuid.Must(uuid.NewV7()).String()
	out := make([]*consume.Message, 0, n)
	next := make([]int64, streams)
	for i := range n {
		s := i % streams
		out = append(out, message(envelope(fmt.Sprintf("user-%s-%d", prefix, s), next[s]), "audit.test", s%3, int64(i)))
		next[s]++
	}
	return out
}

// appendBatch appends ms in one transaction of the role's pool, as the runtime does a lane's
// share of a batch.
func (e *env) appendBatch(tb testing.TB, ms []*consume.Message) {
	tb.Helper()
	err := consume.PostgresUnit(e.role)(context.Background(), func(ctx context.Context) error {
		return e.log.HandleBatch(ctx, ms)
	})
	if err != nil {
		tb.Fatalf("append %d messages: %v", len(ms), err)
	}
}

// appendAll appends ms in batches of size.
func (e *env) appendAll(tb testing.TB, ms []*consume.Message, size int) {
	tb.Helper()
	for len(ms) > 0 {
		k := min(size, len(ms))
		e.appendBatch(tb, ms[:k])
		ms = ms[k:]
	}
}

// count is the number of entries.
func (e *env) count(tb testing.TB) int64 {
	tb.Helper()
	var n int64
	if err := e.owner.QueryRow(context.Background(), `select count(*) from annals_audit_log`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// verify verifies the chain and returns the report.
func (e *env) verify(tb testing.TB) auditlog.Report {
	tb.Helper()
	r, err := e.log.Verify(context.Background(), auditlog.VerifyOptions{PageSize: 7})
	if err != nil {
		tb.Fatalf("verify: %v", err)
	}
	return r
}

// mustVerify fails the test unless the chain is intact with want entries.
func (e *env) mustVerify(tb testing.TB, want int64) {
	tb.Helper()
	r := e.verify(tb)
	if !r.OK || r.Checked != want || r.LastSeq != want {
		tb.Fatalf("verify: %s; want an intact chain of %d entries", r, want)
	}
}

// all reads every entry in sequence order.
func (e *env) all(tb testing.TB) []auditlog.Entry {
	tb.Helper()
	var out []auditlog.Entry
	for after := int64(0); ; {
		page, more, err := e.log.Query(context.Background(), auditlog.Query{After: after, Limit: auditlog.MaxLimit})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, page...)
		if !more {
			return out
		}
		after = page[len(page)-1].Seq
	}
}

// ---------------------------------------------------------------- Kafka

// publish writes events to topic as the relay does: key = stream id, murmur2, Avro (or JSON
// when asJSON) with the relay's headers, metadata as a JSON header.
func publish(tb testing.TB, topic string, evs []events.Envelope, asJSON bool) {
	tb.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(testenv.KafkaBrokers(tb)...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000,
	}
	defer w.Close()
	msgs := make([]kafka.Message, 0, len(evs))
	for _, e := range evs {
		var (
			value []byte
			fp    uint64
			err   error
			ct    = schema.ContentTypeAvro
		)
		if asJSON {
			value, fp, err = domain.Catalog().EncodeJSON(e)
			ct = schema.ContentTypeJSON
		} else {
			value, fp, err = domain.Catalog().Encode(e)
		}
		if err != nil {
			tb.Fatalf("encode %s: %v", e.Type, err)
		}
		headers := []kafka.Header{
			{Key: "event-id", Value: []byte(e.EventID.String())},
			{Key: "event-type", Value: []byte(e.Type)},
			{Key: "stream-version", Value: strconv.AppendInt(nil, e.Version, 10)},
			{Key: "global-position", Value: strconv.AppendInt(nil, e.GlobalPosition, 10)},
			{Key: "correlation-id", Value: []byte(e.CorrelationID)},
			{Key: "causation-id", Value: []byte(e.CausationID)},
			{Key: "recorded-at", Value: []byte(e.RecordedAt.Format(time.RFC3339Nano))},
			{Key: "content-type", Value: []byte(ct)},
			{Key: "schema-fingerprint", Value: []byte(schema.FormatFingerprint(fp))},
		}
		if len(e.Metadata) > 0 {
			md, _ := json.Marshal(e.Metadata)
			headers = append(headers, kafka.Header{Key: "metadata", Value: md})
		}
		msgs = append(msgs, kafka.Message{Key: []byte(e.StreamID), Value: value, Time: e.RecordedAt, Headers: headers})
	}
	for len(msgs) > 0 {
		k := min(len(msgs), 1000)
		if err := w.WriteMessages(context.Background(), msgs[:k]...); err != nil {
			tb.Fatalf("publish: %v", err)
		}
		msgs = msgs[k:]
	}
}

// located is where a record is in Kafka.
type located struct {
	topic     string
	partition int
	offset    int64
}

// locate reads topics from the start to their ends and returns where each event id is, every
// place it was published.
func locate(tb testing.TB, topics ...string) map[uuid.UUID][]located {
	tb.Helper()
	out := map[uuid.UUID][]located{}
	for _, topic := range topics {
		for p, end := range topicEnds(tb, topic) {
			if end == 0 {
				continue
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.KafkaBrokers(tb), Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					cancel()
					r.Close()
					tb.Fatalf("read %s/%d: %v", topic, p, err)
				}
				var id uuid.UUID
				for _, h := range m.Headers {
					if h.Key == "event-id" {
						id = uuid.MustParse(string(h.Value))
					}
				}
				out[id] = append(out[id], located{topic, p, m.Offset})
				if m.Offset+1 >= end {
					break
				}
			}
			cancel()
			r.Close()
		}
	}
	return out
}

// topicEnds returns the end offset of each partition of topic.
func topicEnds(tb testing.TB, topic string) map[int]int64 {
	tb.Helper()
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(tb)...), Timeout: 20 * time.Second}
	meta, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		tb.Fatalf("metadata of %s: %v", topic, err)
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range meta.Topics[0].Partitions {
		req[topic] = append(req[topic], kafka.LastOffsetOf(p.ID))
	}
	resp, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		tb.Fatalf("list offsets of %s: %v", topic, err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			tb.Fatalf("offsets of %s/%d: %v", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out
}

// committedToEnd reports whether group has committed every partition of topics up to its end.
func committedToEnd(tb testing.TB, group string, topics ...string) bool {
	tb.Helper()
	client := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers(tb)...), Timeout: 20 * time.Second}
	ends := map[string]map[int]int64{}
	req := map[string][]int{}
	for _, t := range topics {
		ends[t] = topicEnds(tb, t)
		for p := range ends[t] {
			req[t] = append(req[t], p)
		}
	}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: req})
	if err != nil {
		tb.Fatalf("offsets of group %s: %v", group, err)
	}
	for t, parts := range ends {
		got := map[int]int64{}
		for _, p := range resp.Topics[t] {
			got[p.Partition] = p.CommittedOffset
		}
		for p, end := range parts {
			if end > 0 && got[p] < end {
				return false
			}
		}
	}
	return true
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
