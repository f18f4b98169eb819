package wiring_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// OpenEventStore opens the store EVENT_STORE_TYPE names, on the server its settings name:
// an append with an idempotency key lands there and its key reads back, the store answers its
// ping, and its outbox has no holds. A store of another type sees nothing of it.
func TestOpenEventStore(t *testing.T) {
	pool, _ := testenv.SchemaPool(t)
	if _, err := postgres.Migrate(t.Context(), pool, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ string
		set func(c *config.Config)
	}{
		{config.StorePostgreSQL, func(*config.Config) {}},
		{config.StoreRedis, func(c *config.Config) {
			url, prefix := testenv.RedisStore(t)
			c.EventStore.RedisURL, c.EventStore.RedisPrefix = config.Secret(url), prefix
		}},
		{config.StoreMongoDB, func(c *config.Config) {
			uri, db := testenv.MongoStore(t)
			c.EventStore.MongoDBURI, c.EventStore.MongoDBDatabase = config.Secret(uri), db
		}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			ctx := t.Context()
			cfg := config.Default()
			cfg.EventSourcing.StoreType = tc.typ
			tc.set(cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			woken := 0
			es, err := wiring.OpenEventStore(ctx, cfg, pool, wiring.StoreOptions{OnAppend: func() { woken++ }})
			if err != nil {
				t.Fatal(err)
			}
			defer es.Close()
			if es.Type != tc.typ {
				t.Errorf("type %q, want %q", es.Type, tc.typ)
			}
			if err := es.Ping(ctx); err != nil {
				t.Errorf("ping: %v", err)
			}
			e, err := events.NewEvent("UserCreated", map[string]string{"email": "a@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			stream := "user-" + strings.ReplaceAll(tc.typ, "sql", "")
			key := &events.IdempotencyKey{Key: "k-" + tc.typ, RequestHash: []byte{1}, Status: 201}
			res, err := es.Store.Append(ctx, stream, events.NoStream(), []events.Event{e}, events.AppendOptions{Idempotency: key})
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			if woken != 1 {
				t.Errorf("OnAppend called %d times after one append, want 1", woken)
			}
			if got, ok, err := es.Store.LookupIdempotency(ctx, key.Key); err != nil || !ok || got.Result.LastPosition != res.LastPosition {
				t.Errorf("idempotency key: %+v, %v, %v; want the append at %d", got, ok, err, res.LastPosition)
			}
			if holds, err := es.Holds.Holds(ctx); err != nil || len(holds) != 0 {
				t.Errorf("holds: %v, %v; want none", holds, err)
			}
			if es.Outbox == nil {
				t.Error("no outbox")
			}
			if tc.typ != config.StorePostgreSQL {
				if _, err := postgres.New(pool, postgres.Options{}).StreamInfo(ctx, stream); !errors.Is(err, events.ErrNotFound) {
					t.Errorf("the %s store's append is in PostgreSQL: %v", tc.typ, err)
				}
			}
		})
	}
}

// A store whose address does not parse is refused without quoting it.
func TestOpenEventStore_BadAddress(t *testing.T) {
	cfg := config.Default()
	cfg.EventSourcing.StoreType = config.StoreRedis
	cfg.EventStore.RedisURL = "redis://user:hunter2@host:notaport"
	_, err := wiring.OpenEventStore(t.Context(), cfg, nil, wiring.StoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "EVENT_STORE_REDIS_URL") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v, want one naming EVENT_STORE_REDIS_URL without the password", err)
	}
}
