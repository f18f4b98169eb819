package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/auth/authtest"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// sseClient is an outside client of GET /v1/subscribe, in Python's standard library, that
// behaves as EventSource does: it reconnects whenever the stream ends or cannot be reached,
// sending the id of the last message it received as Last-Event-ID. It prints a JSON line per
// connection and per event, and stops after the number of events it was asked for.
const sseClient = `
import json, sys, time, urllib.request
url, key, want, until = sys.argv[1], sys.argv[2], int(sys.argv[3]), time.time() + float(sys.argv[4])
last, got = None, 0
while got < want and time.time() < until:
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key, "Accept": "text/event-stream"})
    if last is not None:
        req.add_header("Last-Event-ID", last)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            print(json.dumps({"connected": True, "last_event_id": last}), flush=True)
            msg = {}
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if "id" in msg:
                        last = msg["id"]
                    if "data" in msg:
                        print(json.dumps(msg), flush=True)
                        got += 1
                    msg = {}
                    if got >= want:
                        break
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    msg[field] = value[1:] if value.startswith(" ") else value
    except Exception as e:
        print(json.dumps({"error": str(e)}), flush=True)
    time.sleep(0.2)
`

// clientLine is a line that sseClient prints.
type clientLine struct {
	Connected   bool    `json:"connected"`
	LastEventID *string `json:"last_event_id"`
	Error       string  `json:"error"`
	ID          string  `json:"id"`
	Event       string  `json:"event"`
	Data        string  `json:"data"`
}

// An outside client of GET /v1/subscribe receives every event of its types, in order and
// once, across a restart of the writer: it reconnects with Last-Event-ID and is given what it
// missed, events appended while the writer was down included. Without personal-data, emails
// and names are redacted.
func TestWriter_SubscribeAcrossRestart(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed for the outside SSE client")
	}
	is := authtest.NewIssuer(t)
	pool, schema := testenv.SchemaPool(t)
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	vars := map[string]string{
		"DATABASE_URL":            u.String(),
		"KAFKA_BROKERS":           strings.Join(testenv.KafkaBrokers(t), ","),
		"KAFKA_TOPIC_PREFIX":      "test-" + testenv.UniqueName(t),
		"LOG_LEVEL":               "error",
		"EVENT_SIGNING_KEY":       testenv.SigningKey,
		"MIGRATE_ON_START":        "true",
		"FEED_HEARTBEAT_INTERVAL": "1s",
		"LAG_EXPORTER_ENABLED":    "false",
	}
	maps.Copy(vars, is.Env())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String() // both writers listen here
	ln.Close()
	base := "http://" + addr

	stop := runWriter(t, vars, addr)
	const types = "UserCreated,UserDeactivated"
	script := filepath.Join(t.TempDir(), "sse_client.py")
	if err := os.WriteFile(script, []byte(sseClient), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const want = 7
	client := exec.CommandContext(ctx, python, script, base+"/v1/subscribe?after=0&types="+types, is.Key(auth.ScopeEventsRead), strconv.Itoa(want), "90")
	out, err := client.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	client.Stderr = os.Stderr
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan clientLine, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l clientLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("client printed %q: %v", sc.Text(), err)
				continue
			}
			lines <- l
		}
	}()
	var received []clientLine
	var connections []clientLine
	await := func(events int) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for len(received) < events {
			select {
			case l, ok := <-lines:
				switch {
				case !ok:
					t.Fatalf("the client stopped after %d events", len(received))
				case l.Connected:
					connections = append(connections, l)
				case l.Error != "":
					t.Logf("client: %s", l.Error)
				default:
					received = append(received, l)
				}
			case <-deadline:
				t.Fatalf("the client received %d events, want %d", len(received), events)
			}
		}
	}

	post := func(method, path, body string) map[string]any {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testenv.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s %v", method, path, resp.Status, m)
		}
		return m
	}
	ada := post("POST", "/v1/users", `{"email":"ada@example.com","name":"Ada"}`)["id"].(string)
	post("POST", "/v1/users", `{"email":"bob@example.com","name":"Bob"}`)
	post("PATCH", "/v1/users/"+ada, `{"name":"Ada L."}`) // UserProfileUpdated: not asked for
	post("POST", "/v1/users/"+ada+"/deactivate", `{"reason":"left"}`)
	await(3)

	stop()
	// While no writer runs, another process appends: the client gets these too.
	store := postgres.New(pool, postgres.Options{})
	for _, name := range []string{"Cy", "Di"} {
		e, err := events.NewEvent("UserCreated", map[string]string{"email": strings.ToLower(name) + "@example.com", "name": name})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, "user-"+testenv.UniqueName(t)+name, events.NoStream(), []events.Event{e}, events.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	runWriter(t, vars, addr)
	eve := post("POST", "/v1/users", `{"email":"eve@example.com","name":"Eve"}`)["id"].(string)
	post("POST", "/v1/users/"+eve+"/deactivate", `{"reason":"left"}`)
	await(want)
	if err := client.Wait(); err != nil {
		t.Errorf("the client: %v", err)
	}

	// What the client received is exactly the events of its types in the store, in order.
	all, err := store.ReadAll(ctx, events.AllQuery{Limit: 100, Types: strings.Split(types, ",")})
	if err != nil {
		t.Fatal(err)
	}
	var wantIDs, gotIDs []string
	for _, e := range all {
		wantIDs = append(wantIDs, strconv.FormatInt(e.GlobalPosition, 10))
	}
	for _, l := range received {
		gotIDs = append(gotIDs, l.ID)
		var env struct {
			Type string            `json:"type"`
			Data map[string]string `json:"data"`
		}
		if err := json.Unmarshal([]byte(l.Data), &env); err != nil || env.Type != l.Event {
			t.Errorf("event %s: %s %q (%v)", l.ID, l.Event, l.Data, err)
		}
		if l.Event == "UserCreated" && (env.Data["email"] != auth.Redacted || env.Data["name"] != auth.Redacted) {
			t.Errorf("event %s carries %v to a client without personal-data", l.ID, env.Data)
		}
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("the client received ids %v, want %v: each event of its types once, in order", gotIDs, wantIDs)
	}
	if len(connections) < 2 || connections[0].LastEventID != nil || connections[len(connections)-1].LastEventID == nil ||
		*connections[len(connections)-1].LastEventID != gotIDs[2] {
		t.Errorf("connections %+v: want a first without Last-Event-ID and a last resuming after %s", connections, gotIDs[2])
	}
}

// runWriter runs the writer as a program, in process, with vars, listening on addr, and
// returns what stops it; the test's end stops it too.
func runWriter(t *testing.T, vars map[string]string, addr string) (stop func()) {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	m, err := app.New(app.Writer, []string{"-addr", addr}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context, *app.Main) error{ownTopics(t), migrateOnStart, wire} {
		if err := step(ctx, m); err != nil {
			m.Close()
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(runCtx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	}
	t.Cleanup(stop)
	return stop
}
