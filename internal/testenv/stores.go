package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// RedisStore returns the URL of the Redis server (REDIS_URL) and a key prefix of the test's
// own for an event store there; the keys under it are deleted when the test ends.
func RedisStore(tb testing.TB) (url, prefix string) {
	tb.Helper()
	url = lookup(tb, "REDIS_URL", "a Redis server (scripts/stack.sh up redis)")
	opts, err := goredis.ParseURL(url)
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	rdb := goredis.NewClient(opts)
	if err := rdb.Ping(tb.Context()).Err(); err != nil {
		rdb.Close()
		tb.Fatalf("no Redis at REDIS_URL: %v", err)
	}
	prefix = "test-" + uuid.NewString()
	tb.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, "{"+prefix+"}:*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return url, prefix
}

// MongoStore returns the URI of the MongoDB server (MONGODB_URI) and a database of the test's
// own for an event store there, dropped when the test ends.
func MongoStore(tb testing.TB) (uri, database string) {
	tb.Helper()
	uri = lookup(tb, "MONGODB_URI", "a MongoDB server (scripts/stack.sh up ferretdb)")
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(30 * time.Second))
	if err != nil {
		tb.Fatalf("MONGODB_URI: %v", err)
	}
	database = strings.ReplaceAll("t_"+uuid.NewString(), "-", "")
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client.Database(database).Drop(ctx)
		client.Disconnect(ctx)
	})
	return uri, database
}
