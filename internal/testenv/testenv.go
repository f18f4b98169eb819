// Package testenv finds the real PostgreSQL server and Kafka broker that integration tests use
// (started by scripts/stack.sh, found through DATABASE_URL and KAFKA_BROKERS), and the Redis and
// MongoDB servers of the other event stores (REDIS_URL, MONGODB_URI), and gives tests isolated
// resources on them: a fresh schema, a fresh topic, a key prefix, a database.
//
// A missing server fails the test loudly; only under -short does it skip, with the reason.
// It must never be imported by non-test code.
package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"
)

func lookup(tb testing.TB, name, what string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: this test needs %s (run `make up` and `eval \"$(scripts/stack.sh env)\"`, or `make test`)", name, what)
	if testing.Short() {
		tb.Skip(msg)
	}
	tb.Fatal(msg)
	return ""
}

// PostgresURL is the connection string of the test database.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	return lookup(tb, "DATABASE_URL", "a real PostgreSQL server")
}

// KafkaBrokers are the addresses of the test broker. The first call in a test binary waits
// until the broker can coordinate consumer groups: a broker that never had one creates its
// offsets topic on the first request and answers "not coordinator" meanwhile, which tests
// that commit offsets themselves would take for a failure.
func KafkaBrokers(tb testing.TB) []string {
	tb.Helper()
	brokers := strings.Split(lookup(tb, "KAFKA_BROKERS", "a real Kafka broker"), ",")
	coordinatorOnce.Do(func() { coordinatorErr = awaitCoordinator(brokers) })
	if coordinatorErr != nil {
		tb.Fatalf("Kafka at %s: %v", strings.Join(brokers, ","), coordinatorErr)
	}
	return brokers
}

var (
	coordinatorOnce sync.Once
	coordinatorErr  error
)

func awaitCoordinator(brokers []string) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := client.FindCoordinator(context.Background(), &kafka.FindCoordinatorRequest{Key: "annals-test-warm-up", KeyType: kafka.CoordinatorKeyTypeConsumer})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err == nil { // the coordinator is known; it answers once it has loaded the group
			var f *kafka.OffsetFetchResponse
			if f, err = client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: "annals-test-warm-up"}); err == nil && f.Error != nil {
				err = f.Error
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no group coordinator within 90s: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Pool connects to the test database; the pool is closed when the test ends.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), PostgresURL(tb))
	if err != nil {
		tb.Fatalf("connect to PostgreSQL: %v", err)
	}
	tb.Cleanup(pool.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		tb.Fatalf("PostgreSQL at DATABASE_URL does not answer: %v", err)
	}
	return pool
}

// SchemaPool creates a fresh schema, dropped when the test ends, and returns a pool whose
// connections use it as their search_path, so that tests never see each other's tables.
func SchemaPool(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	admin := Pool(tb)
	schema := "t_" + strings.ToLower(strings.ReplaceAll(UniqueName(tb), "-", "_"))
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "create schema "+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(PostgresURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 24 // room for concurrency tests and benchmarks
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		pool.Close()
		if _, err := admin.Exec(context.Background(), "drop schema "+pgx.Identifier{schema}.Sanitize()+" cascade"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return pool, schema
}

// SchemaRow is one row of a table of a schema, in PostgreSQL's text form of a row.
type SchemaRow struct {
	Table string
	Text  string
}

// SchemaRows returns every row of every table of the current schema of pool (that of
// SchemaPool), table by table: what a test searches to learn whether a value was written
// anywhere.
func SchemaRows(tb testing.TB, pool *pgxpool.Pool) []SchemaRow {
	tb.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `select table_name from information_schema.tables
		where table_schema = current_schema() and table_type = 'BASE TABLE'`)
	if err != nil {
		tb.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	var out []SchemaRow
	for _, table := range tables {
		rows, err := pool.Query(ctx, `select t::text from `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			tb.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatal(err)
		}
		for _, text := range texts {
			out = append(out, SchemaRow{Table: table, Text: text})
		}
	}
	return out
}

// SchemaURL is PostgresURL with schema as the search_path of its connections: the
// DATABASE_URL of a program that is to use the schema of SchemaPool (pgx sends a URL parameter
// it does not know to the server as a run-time parameter).
func SchemaURL(tb testing.TB, schema string) string {
	tb.Helper()
	u, err := url.Parse(PostgresURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// UniqueName is a name for test resources: the test's name and the time, lower-case.
func UniqueName(tb testing.TB) string {
	tb.Helper()
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, tb.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
}

// Topic creates a topic with the given number of partitions, deleted when the test ends.
func Topic(tb testing.TB, partitions int) string {
	tb.Helper()
	brokers := KafkaBrokers(tb)
	topic := "test." + UniqueName(tb)
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
	}}})
	if err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
	if err := resp.Errors[topic]; err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
			tb.Logf("delete topic %s: %v", topic, err)
		}
	})
	return topic
}
