// Package testenv finds the real PostgreSQL server and Kafka broker that integration tests use
// (started by scripts/stack.sh, found through DATABASE_URL and KAFKA_BROKERS) and gives tests
// isolated resources on them: a fresh schema, a fresh topic.
//
// A missing server fails the test loudly; only under -short does it skip, with the reason.
// It must never be imported by non-test code.
package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
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

// KafkaBrokers are the addresses of the test broker.
func KafkaBrokers(tb testing.TB) []string {
	tb.Helper()
	return strings.Split(lookup(tb, "KAFKA_BROKERS", "a real Kafka broker"), ",")
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
