package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/writer/api"
)

// A burst of commands from one key beyond COMMAND_RATE_BURST is refused with 429
// rate_limited and a Retry-After, and appends nothing; the key's reads, and another key's
// commands, go on; after the Retry-After the key is admitted again.
func TestWriter_CommandRateLimit(t *testing.T) {
	const burst = 5
	is := authtest.NewIssuer(t)
	vars := map[string]string{
		"KAFKA_TOPIC_PREFIX":   "test-" + testenv.UniqueName(t),
		"MIGRATE_ON_START":     "true",
		"COMMAND_RATE_LIMIT":   "1",
		"COMMAND_RATE_BURST":   strconv.Itoa(burst),
		"LAG_EXPORTER_ENABLED": "false",
	}
	base, m := is.StartService(t, app.Writer, vars, ownTopics(t), migrateOnStart, wire)

	type answer struct {
		code       int
		retryAfter string
		errCode    string
		id         string
	}
	send := func(method, path, body, bearer string) answer {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var env struct {
			ID    string `json:"id"`
			Error struct{ Code string }
		}
		_ = json.Unmarshal(b, &env)
		return answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), errCode: env.Error.Code, id: env.ID}
	}
	n := 0
	createUser := func(bearer string) answer {
		n++
		return send("POST", "/v1/users", fmt.Sprintf(`{"email":"burst%d@example.com","name":"Burst %d"}`, n, n), bearer)
	}
	count := func(table string) int {
		t.Helper()
		var c int
		if err := m.DB.QueryRow(context.Background(), "select count(*) from "+table).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	checkRefusal := func(a answer, what string) time.Duration {
		t.Helper()
		if a.code != http.StatusTooManyRequests || a.errCode != "rate_limited" {
			t.Fatalf("%s: %d %q, want 429 rate_limited", what, a.code, a.errCode)
		}
		secs, err := strconv.Atoi(a.retryAfter)
		if err != nil || secs < 1 {
			t.Fatalf("%s: Retry-After %q, want whole seconds, at least 1", what, a.retryAfter)
		}
		return time.Duration(secs) * time.Second
	}

	// The burst: the bucket holds burst commands, then refuses. A slow machine may see a
	// token come back during the burst, so the test counts what was admitted.
	admitted, refused := 0, 0
	var firstID string
	var retryAfter time.Duration
	start := time.Now()
	for refused < 3 && admitted+refused < 40 {
		a := createUser(testenv.APIKey)
		switch a.code {
		case http.StatusCreated:
			admitted++
			if firstID == "" {
				firstID = a.id
			}
		default:
			retryAfter = checkRefusal(a, fmt.Sprintf("command %d of the burst", admitted+refused+1))
			refused++
		}
	}
	elapsed := time.Since(start)
	if refused < 3 {
		t.Fatalf("%d commands admitted and %d refused in a burst of %d: the limit does not hold", admitted, refused, admitted+refused)
	}
	if maxAdmitted := burst + int(elapsed.Seconds()) + 1; admitted < burst || admitted > maxAdmitted {
		t.Errorf("%d commands admitted in %s, want %d to %d", admitted, elapsed, burst, maxAdmitted)
	}
	if events, streams := count("annals_events"), count("annals_streams"); events != admitted || streams != admitted {
		t.Errorf("%d events in %d streams after %d admitted commands: a refused command appended", events, streams, admitted)
	}
	if outbox := count("annals_outbox"); outbox > admitted {
		t.Errorf("%d outbox rows after %d admitted commands", outbox, admitted)
	}

	// Every command route is limited for the key; its reads are not.
	for name, scope := range api.Policy() {
		rt := writerRoutes[name]
		a := send(rt.Method, rt.Path, rt.Body, testenv.APIKey)
		if scope == auth.ScopeCommands {
			checkRefusal(a, name)
		} else if a.code == http.StatusTooManyRequests {
			t.Errorf("%s (a read) answered 429 to the limited key", name)
		}
	}
	if events := count("annals_events"); events != admitted {
		t.Errorf("%d events after the limited key called every route, want %d", events, admitted)
	}

	// Another key, and a token's subject, have buckets of their own.
	if a := createUser(is.Key(auth.ScopeCommands)); a.code != http.StatusCreated {
		t.Errorf("another API key while the first is limited: %d %q, want 201", a.code, a.errCode)
	}
	if a := createUser(is.Token(t, is.Claims("carol", auth.ScopeCommands))); a.code != http.StatusCreated {
		t.Errorf("a token while the API key is limited: %d %q, want 201", a.code, a.errCode)
	}
	if a := send("PATCH", "/v1/users/"+firstID, `{"name":"Still Limited"}`, testenv.APIKey); a.code != http.StatusTooManyRequests {
		t.Errorf("the limited key again: %d, want 429", a.code)
	}

	// After the Retry-After the key is admitted again: poll, honouring each Retry-After.
	deadline := time.Now().Add(retryAfter + 5*time.Second)
	for {
		a := createUser(testenv.APIKey)
		if a.code == http.StatusCreated {
			admitted++
			break
		}
		wait := checkRefusal(a, "a command after the burst")
		if time.Now().Add(wait).After(deadline) {
			t.Fatalf("the key was still refused %s after the burst", time.Since(start))
		}
		select {
		case <-time.After(wait):
		case <-t.Context().Done():
			return
		}
	}
	if events := count("annals_events"); events != admitted+2 {
		t.Errorf("%d events, want %d (the limited key's) + 2 (the other principals')", events, admitted)
	}

	// The refusals are counted by limit, and no principal shows in the metrics.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `annals_rate_limited_total{limit="commands"} `) || strings.Contains(string(b), "carol") {
		t.Errorf("/metrics lacks annals_rate_limited_total{limit=\"commands\"}, or names a principal")
	}
}
