// Package banktest finds the real PostgreSQL server and Kafka broker that the bank example's
// tests run against, through DATABASE_URL and KAFKA_BROKERS, and gives each test resources of
// its own on them: a PostgreSQL schema and a topic prefix, removed when the test ends, so that
// the tests run beside any others on the same servers.
//
// A missing variable fails the test; only under -short does the test skip, saying why. It
// must never be imported by non-test code.
package banktest

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
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: this test needs %s (run `make up`, then `eval \"$(scripts/stack.sh env)\"`)", name, what)
	if testing.Short() {
		tb.Skip(msg)
	}
	tb.Fatal(msg)
	return ""
}

// DatabaseURL is the connection string of the test database (DATABASE_URL).
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	return lookup(tb, "DATABASE_URL", "a real PostgreSQL server")
}

// Brokers are the addresses of the test broker (KAFKA_BROKERS, comma-separated).
func Brokers(tb testing.TB) []string {
	tb.Helper()
	return strings.Split(lookup(tb, "KAFKA_BROKERS", "a real Kafka broker"), ",")
}

// UniqueName is a name for the test's resources: its name and the time, lower-case, with
// dashes.
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
	return fmt.Sprintf("%.30s-%d", name, time.Now().UnixNano())
}

// Schema returns the name of a PostgreSQL schema for the test, dropped with everything in it
// when the test ends. The schema itself is not created: a service creates its own.
func Schema(tb testing.TB) string {
	tb.Helper()
	schema := "t_" + strings.ReplaceAll(UniqueName(tb), "-", "_")
	url := DatabaseURL(tb)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "drop schema if exists "+pgx.Identifier{schema}.Sanitize()+" cascade"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// SchemaPool creates a schema for the test (see Schema) and returns a pool whose connections
// use it as their search_path; the pool is closed when the test ends.
func SchemaPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	schema := Schema(tb)
	cfg, err := pgxpool.ParseConfig(DatabaseURL(tb))
	if err != nil {
		tb.Fatalf("DATABASE_URL: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("connect to PostgreSQL: %v", err)
	}
	tb.Cleanup(pool.Close) // runs before the schema's drop
	if _, err := pool.Exec(ctx, "create schema "+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatalf("PostgreSQL at DATABASE_URL: create schema: %v", err)
	}
	return pool
}

// DeleteTopicsWithPrefix deletes, when the test ends, every topic whose name starts with
// prefix+".".
func DeleteTopicsWithPrefix(tb testing.TB, brokers []string, prefix string) {
	tb.Helper()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			tb.Logf("delete the topics %s.*: %v", prefix, err)
			return
		}
		var names []string
		for _, t := range meta.Topics {
			if strings.HasPrefix(t.Name, prefix+".") {
				names = append(names, t.Name)
			}
		}
		if len(names) == 0 {
			return
		}
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
			tb.Logf("delete the topics %v: %v", names, err)
		}
	})
}
