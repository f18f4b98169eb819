package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/examples/bank"
	"github.com/annals-dev/annals/examples/bank/banktest"
	"github.com/annals-dev/annals/examples/bank/service"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// logWriter passes the service's log to the test's output until the test ends; background
// goroutines of the Kafka client may still log after that.
type logWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	w := &logWriter{tb: tb}
	tb.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// start runs the service in-process on a free port, in a schema and under a topic prefix of
// the test's own; it stops when the test ends.
func start(tb testing.TB) (*service.Service, service.Config) {
	tb.Helper()
	brokers := banktest.Brokers(tb)
	prefix := "test-" + banktest.UniqueName(tb)
	banktest.DeleteTopicsWithPrefix(tb, brokers, prefix)
	cfg := service.Config{
		HTTPAddr: "127.0.0.1:0", DatabaseURL: banktest.DatabaseURL(tb), Schema: banktest.Schema(tb),
		Brokers: brokers, TopicPrefix: prefix, Partitions: 2,
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := service.Start(ctx, cfg, testLogger(tb))
	if err != nil {
		cancel()
		tb.Fatalf("start: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		if err := s.Wait(); err != nil {
			tb.Errorf("the service stopped with %v", err)
		}
	})
	return s, cfg
}

// client calls the service's API.
type client struct {
	tb   testing.TB
	base string
}

// do sends body as JSON (unless nil) and decodes the JSON answer into a map.
func (c client) do(method, path string, body any) (int, map[string]any) {
	c.tb.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(c.tb, err)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	must(c.tb, err)
	resp, err := http.DefaultClient.Do(req)
	must(c.tb, err)
	defer resp.Body.Close()
	var out map[string]any
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	must(c.tb, dec.Decode(&out))
	return resp.StatusCode, out
}

// want calls and checks the status.
func (c client) want(status int, method, path string, body any) map[string]any {
	c.tb.Helper()
	got, out := c.do(method, path, body)
	if got != status {
		c.tb.Fatalf("%s %s: status %d %v, want %d", method, path, got, out, status)
	}
	return out
}

func num(tb testing.TB, v any) int64 {
	tb.Helper()
	n, ok := v.(json.Number)
	if !ok {
		tb.Fatalf("%v is not a number", v)
	}
	i, err := n.Int64()
	must(tb, err)
	return i
}

// caughtUp polls until the balances read model shows the account as the event store has it
// (balance, status, version), and returns that balance.
func (c client) caughtUp(id string) map[string]any {
	c.tb.Helper()
	acc := c.want(http.StatusOK, "GET", "/v1/accounts/"+id, nil)
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, b := c.do("GET", "/v1/balances/"+id, nil)
		if status == http.StatusOK && num(c.tb, b["balance_cents"]) == num(c.tb, acc["balance_cents"]) &&
			num(c.tb, b["version"]) == num(c.tb, acc["version"]) && b["status"] == acc["status"] {
			return b
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("the balances read model did not catch up within 60s: it has %d %v, the event store %v", status, b, acc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redeliver reads the account's first record of eventType from the events topic and writes
// it to the topic again, as a producer retry or a replay would: same key, value and headers,
// so the same partition, after the records already there.
func redeliver(tb testing.TB, cfg service.Config, streamID, eventType string) {
	tb.Helper()
	topic := kafkawire.Topic(cfg.TopicPrefix, bank.Category)
	partition := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(streamID)}, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: partition, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			tb.Fatalf("find %s of %s in %s/%d: %v", eventType, streamID, topic, partition, err)
		}
		if string(m.Key) != streamID || header(m, "event-type") != eventType {
			continue
		}
		w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
		defer w.Close()
		must(tb, w.WriteMessages(ctx, kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers}))
		return
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestService runs the service against the real PostgreSQL and Kafka: commands become
// events, the relay publishes them, and the balances projection catches up with the event
// store, once per event however often it is delivered.
func TestService(t *testing.T) {
	s, cfg := start(t)
	base := "http://" + s.Addr()
	c := client{tb: t, base: base}
	ctx := context.Background()

	opened := c.want(http.StatusCreated, "POST", "/v1/accounts", map[string]any{"owner": "Ada Lovelace", "overdraft_limit_cents": 5000})
	id, _ := opened["id"].(string)
	streamID := bank.Category + "-" + id
	if opened["stream_id"] != streamID || num(t, opened["version"]) != 0 {
		t.Fatalf("open = %v", opened)
	}
	c.want(http.StatusOK, "POST", "/v1/accounts/"+id+"/deposits", map[string]any{"amount_cents": 10000})
	c.want(http.StatusOK, "POST", "/v1/accounts/"+id+"/withdrawals", map[string]any{"amount_cents": 12000})

	t.Run("Overdraft", func(t *testing.T) {
		c := client{tb: t, base: base}
		out := c.want(http.StatusUnprocessableEntity, "POST", "/v1/accounts/"+id+"/withdrawals", map[string]any{"amount_cents": 3001})
		e, _ := out["error"].(map[string]any)
		if e["code"] != "rule_violation" || e["rule"] != bank.RuleOverdraftLimitExceeded || num(t, e["available_cents"]) != 3000 {
			t.Errorf("error = %v", e)
		}
		var n, last int64
		must(t, s.Pool().QueryRow(ctx, `select count(*), max(version) from annals_events where stream_id = $1`, streamID).Scan(&n, &last))
		if n != 3 || last != 2 {
			t.Errorf("the stream has %d events up to version %d after a refused withdrawal, want 3 up to 2", n, last)
		}
		acc := c.want(http.StatusOK, "GET", "/v1/accounts/"+id, nil)
		if num(t, acc["balance_cents"]) != -2000 || num(t, acc["version"]) != 2 {
			t.Errorf("account = %v, want -2000 cents at version 2", acc)
		}
	})
	t.Run("CaughtUp", func(t *testing.T) {
		c := client{tb: t, base: base}
		b := c.caughtUp(id)
		if num(t, b["balance_cents"]) != -2000 || b["owner"] != "Ada Lovelace" || num(t, b["overdraft_limit_cents"]) != 5000 {
			t.Errorf("balance = %v", b)
		}
	})
	t.Run("Redelivered", func(t *testing.T) {
		c := client{tb: t, base: base}
		// The deposit's record comes again, then a new deposit of the same stream, which the
		// group reads after it (one key, one partition): once the new one is applied, so was
		// the copy, and the balance shows whether it counted twice.
		redeliver(t, cfg, streamID, bank.EventMoneyDeposited)
		c.want(http.StatusOK, "POST", "/v1/accounts/"+id+"/deposits", map[string]any{"amount_cents": 500})
		if got := num(t, c.caughtUp(id)["balance_cents"]); got != -1500 {
			t.Errorf("balance = %d, want -1500", got)
		}
		var inbox, blocked int
		must(t, s.Pool().QueryRow(ctx, `select (select count(*) from annals_inbox where group_name = $1),
			(select count(*) from annals_consumer_blocks where group_name = $1)`, cfg.TopicPrefix+"-balances").Scan(&inbox, &blocked))
		if inbox != 4 || blocked != 0 {
			t.Errorf("the group's inbox holds %d events and %d streams are blocked, want 4 and 0", inbox, blocked)
		}
	})
	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			body         any
			status       int
			code         string
		}{
			{"GET", "/v1/accounts/0190a4b2-7f3c-7a00-8000-00000000ffff", nil, http.StatusNotFound, "not_found"},
			{"GET", "/v1/accounts/not-a-uuid", nil, http.StatusBadRequest, "invalid_request"},
			{"POST", "/v1/accounts/" + id + "/deposits", map[string]any{"amount_cents": 0}, http.StatusBadRequest, "invalid_request"},
			{"POST", "/v1/accounts/" + id + "/deposits", map[string]any{"amount": 5}, http.StatusBadRequest, "invalid_request"},
			{"POST", "/v1/accounts", map[string]any{"owner": "Bob", "overdraft_limit_cents": -1}, http.StatusBadRequest, "invalid_request"},
			{"POST", "/v1/accounts", map[string]any{"id": id, "owner": "Bob"}, http.StatusUnprocessableEntity, "rule_violation"},
			{"GET", "/v1/balances/0190a4b2-7f3c-7a00-8000-00000000ffff", nil, http.StatusNotFound, "not_found"},
		} {
			t.Run(fmt.Sprintf("%s %s", tc.method, strings.TrimPrefix(tc.path, "/v1/")), func(t *testing.T) {
				c := client{tb: t, base: base}
				out := c.want(tc.status, tc.method, tc.path, tc.body)
				if e, _ := out["error"].(map[string]any); e["code"] != tc.code {
					t.Errorf("error = %v, want code %s", out, tc.code)
				}
			})
		}
	})
	t.Run("Close", func(t *testing.T) {
		c := client{tb: t, base: base}
		out := c.want(http.StatusUnprocessableEntity, "POST", "/v1/accounts/"+id+"/close", map[string]any{"reason": "moving abroad"})
		if e, _ := out["error"].(map[string]any); e["rule"] != bank.RuleBalanceNotZero {
			t.Errorf("error = %v", e)
		}
		c.want(http.StatusOK, "POST", "/v1/accounts/"+id+"/deposits", map[string]any{"amount_cents": 1500})
		c.want(http.StatusOK, "POST", "/v1/accounts/"+id+"/close", map[string]any{"reason": "moving abroad"})
		out = c.want(http.StatusUnprocessableEntity, "POST", "/v1/accounts/"+id+"/deposits", map[string]any{"amount_cents": 1})
		if e, _ := out["error"].(map[string]any); e["rule"] != bank.RuleAccountClosed {
			t.Errorf("error = %v", e)
		}
		if b := c.caughtUp(id); b["status"] != string(bank.StatusClosed) || num(t, b["balance_cents"]) != 0 {
			t.Errorf("balance = %v", b)
		}
	})
	t.Run("Operations", func(t *testing.T) {
		for _, path := range []string{"/livez", "/readyz"} {
			resp, err := http.Get(base + path)
			must(t, err)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("%s: %d", path, resp.StatusCode)
			}
		}
		resp, err := http.Get(base + "/metrics")
		must(t, err)
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, err = buf.ReadFrom(resp.Body)
		must(t, err)
		for _, metric := range []string{"annals_relay_published_events_total", "annals_consumer_"} {
			if !strings.Contains(buf.String(), metric) {
				t.Errorf("/metrics has no %s", metric)
			}
		}
	})
}
