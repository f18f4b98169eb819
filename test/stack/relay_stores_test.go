//go:build stack

package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/internal/wiring"
)

// TestRelay_SIGKILL_OtherStores is TestRelay_SIGKILL on the Redis and the MongoDB event stores
// (EVENT_STORE_TYPE): `annals relay` publishes the store's outbox and is killed with SIGKILL
// while 5,000 events are appended to 100 streams; a new relay takes over once the killed one's
// lease has run out. Every event must arrive, in order per stream, and the outbox must empty
// with nothing held.
func TestRelay_SIGKILL_OtherStores(t *testing.T) {
	bin := buildAnnals(t)
	for _, typ := range []string{config.StoreRedis, config.StoreMongoDB} {
		t.Run(typ, func(t *testing.T) {
			for round := range faultRounds(t) {
				t.Run(fmt.Sprintf("round-%d", round+1), func(t *testing.T) { sigkillStoreRound(t, bin, typ) })
			}
		})
	}
}

// storeVars are the settings of an event store of the test's own of type typ.
func storeVars(t *testing.T, typ string) map[string]string {
	t.Helper()
	switch typ {
	case config.StoreRedis:
		url, prefix := testenv.RedisStore(t)
		return map[string]string{"EVENT_STORE_TYPE": typ, "EVENT_STORE_REDIS_URL": url, "EVENT_STORE_REDIS_PREFIX": prefix}
	case config.StoreMongoDB:
		uri, db := testenv.MongoStore(t)
		return map[string]string{"EVENT_STORE_TYPE": typ, "EVENT_STORE_MONGODB_URI": uri, "EVENT_STORE_MONGODB_DATABASE": db}
	}
	t.Fatalf("no store %q", typ)
	return nil
}

// openStore opens the event store that vars name, closed when the test ends.
func openStore(t *testing.T, e *faultEnv) *wiring.EventStore {
	t.Helper()
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := e.vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	es, err := wiring.OpenEventStore(context.Background(), cfg, e.pool, wiring.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(es.Close)
	return es
}

// outboxEmpty is what the Redis and MongoDB outboxes say of their backlog.
type outboxEmpty interface {
	Empty(ctx context.Context) (bool, error)
}

func sigkillStoreRound(t *testing.T, bin, typ string) {
	e := newFaultEnv(t)
	for k, v := range storeVars(t, typ) {
		e.vars[k] = v
	}
	es := openStore(t, e)
	c := collect(t, e.brokers, e.eventTopics())
	first := startRelayProcess(t, bin, e.vars, "relay-1", "annals-relay-1")

	l := load{streams: 100, events: 5000, writers: 4, perSecond: 1000}
	if typ == config.StoreMongoDB {
		// FerretDB reads a whole collection for every query but by stream: a smaller load.
		l = load{streams: 20, events: 1000, writers: 2, perSecond: 100}
	}
	a := l.start(t, es.Store)
	waitFor(t, 60*time.Second, "a quarter of the events to be consumed", func() bool {
		if first.exited() {
			t.Fatalf("annals relay exited on its own before it was killed")
		}
		return c.unique() >= l.events/4
	})
	first.kill()
	killedAt := time.Now()
	atKill, appendedAtKill := c.unique(), a.count()
	startRelayProcess(t, bin, e.vars, "relay-2", "annals-relay-2")
	// The killed relay's lease runs out (Options.LeaseTTL), then the new one publishes.
	waitFor(t, 60*time.Second, "the new relay to publish", func() bool { return c.unique() > atKill+l.events/50 })
	resumed := time.Since(killedAt)

	select {
	case <-a.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the appends did not finish within 60s (%d of %d)", a.count(), l.events)
	}
	if t.Failed() {
		return
	}
	want := a.snapshot()
	c.waitAll(t, want, 90*time.Second)
	dups := checkDelivery(t, c.records(), want)
	ob, ok := es.Holds.(outboxEmpty)
	if !ok {
		t.Fatalf("the %s outbox cannot say whether it is empty", typ)
	}
	waitFor(t, 30*time.Second, "the outbox to empty", func() bool {
		empty, err := ob.Empty(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return empty
	})
	if holds, err := es.Holds.Holds(context.Background()); err != nil || len(holds) != 0 {
		t.Errorf("holds after the run: %v, %v; want none", holds, err)
	}
	t.Logf("%s: killed the relay (SIGKILL) after %d of %d events appended and %d consumed; the new relay published %v after the kill; %d duplicates (allowed after a crash)",
		typ, appendedAtKill, l.events, atKill, resumed.Round(time.Millisecond), dups)
}

// TestPipeline_OtherStores: the whole pipeline with the writer's events in Redis, and in
// MongoDB (EVENT_STORE_TYPE): a command through the writer reaches the projector's read model,
// the notifier's mail in Mailpit and the auditor's log, which `annals audit verify` finds
// intact, while PostgreSQL, which keeps the read side, holds no event; a retry of the command
// with its Idempotency-Key is answered from the store, and `annals outbox holds` reads the
// store's outbox.
func TestPipeline_OtherStores(t *testing.T) {
	bins := buildBinaries(t)
	notifierBin, auditorBin := buildConsumerBinaries(t)
	for _, typ := range []string{config.StoreRedis, config.StoreMongoDB} {
		t.Run(typ, func(t *testing.T) {
			e := newFaultEnv(t)
			for k, v := range storeVars(t, typ) {
				e.vars[k] = v
			}
			e.vars["SMTP_ADDR"] = testenv.SMTPAddr(t)
			services := map[string]*service{}
			for _, sv := range []struct{ name, bin string }{
				{"writer", bins.writer}, {"projector", bins.projector}, {"notifier", notifierBin}, {"auditor", auditorBin},
			} {
				services[sv.name] = startService(t, sv.bin, e, sv.name, freeAddr(t))
			}

			email := fmt.Sprintf("ada-%d@%s.example.com", time.Now().UnixNano(), typ)
			t.Cleanup(func() { notifierDeleteMail(t, email) })
			body := fmt.Sprintf(`{"email":%q,"name":"Ada"}`, email)
			post := func() (int, string) {
				req, err := http.NewRequest("POST", services["writer"].url+"/v1/users", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", "pipeline-"+typ)
				resp, err := httpc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			status, first := post()
			var created struct{ ID string }
			if err := json.Unmarshal([]byte(first), &created); err != nil || status != http.StatusCreated || created.ID == "" {
				t.Fatalf("POST /v1/users: %d %s", status, first)
			}
			if status, again := post(); status != http.StatusCreated || again != first {
				t.Errorf("the retry: %d %s, want 201 %s", status, again, first)
			}

			waitEvery(t, time.Minute, 200*time.Millisecond, "the projector's read model of the user", func() bool {
				status, b, err := get(context.Background(), services["projector"].url+"/v1/users/"+created.ID)
				return err == nil && status == http.StatusOK && strings.Contains(string(b), email)
			})
			waitEvery(t, time.Minute, 200*time.Millisecond, "the notifier's mail to "+email+" in Mailpit", func() bool {
				ids, _ := notifierMailpit(t, email)
				return len(ids) > 0
			})
			waitEvery(t, time.Minute, 500*time.Millisecond, "annals audit verify to verify the auditor's entry", func() bool {
				out, err := runAnnals(t, bins.annals, e.vars, "audit", "verify")
				return err == nil && strings.Contains(out, "the chain is intact") && !strings.Contains(out, "verified 0 entries")
			})
			if n := count(t, e.pool, `select count(*) from annals_events`); n != 0 {
				t.Errorf("PostgreSQL holds %d events; the %s store should hold them all", n, typ)
			}
			if out, err := runAnnals(t, bins.annals, e.vars, "outbox", "holds"); err != nil || !strings.Contains(out, "no stream is held") {
				t.Errorf("annals outbox holds: %v\n%s", err, out)
			}
		})
	}
}
