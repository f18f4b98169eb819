package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/writer/api"
)

// The writer runs on Redis and on MongoDB (EVENT_STORE_TYPE): a command appends there and not
// to PostgreSQL, its retry with the same Idempotency-Key is answered from the store's record,
// the events of two commands reach Kafka through the store's outbox, and /readyz checks the
// store.
func TestWriter_OtherStores(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		vars func(t *testing.T) map[string]string
	}{
		{"redis", func(t *testing.T) map[string]string {
			url, prefix := testenv.RedisStore(t)
			return map[string]string{"EVENT_STORE_REDIS_URL": url, "EVENT_STORE_REDIS_PREFIX": prefix}
		}},
		{"mongodb", func(t *testing.T) map[string]string {
			uri, db := testenv.MongoStore(t)
			return map[string]string{"EVENT_STORE_MONGODB_URI": uri, "EVENT_STORE_MONGODB_DATABASE": db}
		}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			vars := tc.vars(t)
			vars["EVENT_STORE_TYPE"] = tc.typ
			vars["KAFKA_TOPIC_PREFIX"] = "test-" + testenv.UniqueName(t)
			vars["MIGRATE_ON_START"] = "true"
			base, m := authtest.NewIssuer(t).StartService(t, app.Writer, vars, ownTopics(t), migrateOnStart, wire)

			send := func(method, path, body, key string) (int, []byte, http.Header) {
				t.Helper()
				req, err := http.NewRequest(method, base+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+testenv.APIKey)
				if key != "" {
					req.Header.Set(api.IdempotencyKeyHeader, key)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, got, resp.Header
			}
			const create = `{"email":"ada@example.com","name":"Ada"}`
			code, first, _ := send("POST", "/v1/users", create, "k-1")
			if code != http.StatusCreated {
				t.Fatalf("create: %d %s", code, first)
			}
			code, again, h := send("POST", "/v1/users", create, "k-1")
			if code != http.StatusCreated || !bytes.Equal(again, first) || h.Get(api.ReplayedHeader) != "true" {
				t.Errorf("retry: %d %s (replayed %q), want 201 %s", code, again, h.Get(api.ReplayedHeader), first)
			}
			var created struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(first, &created); err != nil {
				t.Fatal(err)
			}
			if code, body, _ := send("PATCH", "/v1/users/"+created.ID, `{"name":"Ada L."}`, ""); code != http.StatusOK {
				t.Fatalf("update: %d %s", code, body)
			}
			var inPostgres int
			if err := m.DB.QueryRow(context.Background(), `select count(*) from annals_events`).Scan(&inPostgres); err != nil || inPostgres != 0 {
				t.Errorf("PostgreSQL holds %d events (%v), want none", inPostgres, err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			md, err := readFromAnyPartition(ctx, m, created.ID)
			if err != nil || len(md) != 2 {
				rel, _ := http.Get(base + "/healthz/relay")
				b, _ := io.ReadAll(rel.Body)
				rel.Body.Close()
				t.Errorf("records of the user on Kafka: %d, %v; want 2 (relay: %s)", len(md), err, b)
			}

			resp, err := http.Get(base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var ready struct {
				Checks map[string]string `json:"checks"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&ready)
			if resp.StatusCode != http.StatusOK || ready.Checks[tc.typ] != "ok" || ready.Checks["postgres"] != "ok" {
				t.Errorf("/readyz: %d %v, want 200 with %s and postgres ok", resp.StatusCode, ready.Checks, tc.typ)
			}
		})
	}
}
