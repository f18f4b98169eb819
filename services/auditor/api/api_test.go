package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/postgres"
	"github.com/annals-dev/annals/services/auditor/api"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// env is the API on an audit log of a schema of its own, behind a real HTTP server.
type env struct {
	url    string
	owner  *pgxpool.Pool
	role   *pgxpool.Pool
	log    *auditlog.Log
	router *httpx.Router
}

var migrateMu sync.Mutex // the event store's migration lock is slow to contend for

func newEnv(tb testing.TB) *env {
	tb.Helper()
	owner, _ := testenv.SchemaPool(tb)
	ctx := context.Background()
	migrateMu.Lock()
	_, err := postgres.Migrate(ctx, owner, nil)
	migrateMu.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := auditlog.Migrate(ctx, owner, nil, ""); err != nil {
		tb.Fatal(err)
	}
	role, err := auditlog.RolePool(ctx, owner, "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(role.Close)
	l := auditlog.New(role, auditlog.Options{})
	r := httpx.NewRouter()
	api.New(l, api.Options{PageSize: 5, Logger: slog.New(slog.DiscardHandler)}).Register(r)
	srv := httptest.NewServer(httpx.Middleware(r, nil, nil))
	tb.Cleanup(srv.Close)
	return &env{url: srv.URL, owner: owner, role: role, log: l, router: r}
}

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fill appends n events over streams, each with a recording time of its own (a second
// apart), and returns their envelopes in append order.
func (e *env) fill(tb testing.TB, streams, n int) []events.Envelope {
	tb.Helper()
	prefix := uuid.Must(uuid.NewV7()).String()
	var ms []*consume.Message
	var out []events.Envelope
	for i := range n {
		s := fmt.Sprintf("user-%s-%d", prefix, i%streams)
		typ := "UserProfileUpdated"
		if i%3 == 0 {
			typ = "UserCreated"
		}
		ev := events.Envelope{
			EventID: uuid.Must(uuid.NewV7()), StreamID: s, Category: "user", Version: int64(i / streams),
			GlobalPosition: int64(i + 1), Type: typ, SchemaVersion: 1,
			Data:     json.RawMessage(fmt.Sprintf(`{"name":"N%d"}`, i)),
			Metadata: map[string]string{"ip": "192.0.2.1"}, CorrelationID: "corr", CausationID: "cause",
			RecordedAt: at.Add(time.Duration(i) * time.Second),
		}
		out = append(out, ev)
		ms = append(ms, &consume.Message{Topic: "annals.user", Partition: i % 3, Offset: int64(i), Key: []byte(s), Event: ev})
	}
	err := consume.PostgresUnit(e.role)(context.Background(), func(ctx context.Context) error {
		return e.log.HandleBatch(ctx, ms)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func get(tb testing.TB, rawURL string, out any) int {
	tb.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("GET %s: Content-Type %q", rawURL, ct)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			tb.Fatalf("GET %s: %v\n%s", rawURL, err, body)
		}
	}
	return resp.StatusCode
}

type entryJSON struct {
	Seq            int64             `json:"seq"`
	EventID        string            `json:"event_id"`
	Type           string            `json:"type"`
	StreamID       string            `json:"stream_id"`
	StreamVersion  int64             `json:"stream_version"`
	GlobalPosition int64             `json:"global_position"`
	SchemaVersion  int64             `json:"schema_version"`
	Data           map[string]any    `json:"data"`
	Metadata       map[string]string `json:"metadata"`
	CorrelationID  string            `json:"correlation_id"`
	CausationID    string            `json:"causation_id"`
	RecordedAt     time.Time         `json:"recorded_at"`
	AuditedAt      time.Time         `json:"audited_at"`
	Topic          string            `json:"topic"`
	Partition      int               `json:"partition"`
	Offset         int64             `json:"offset"`
	PrevHash       string            `json:"prev_hash"`
	Hash           string            `json:"hash"`
}

type pageJSON struct {
	Entries   []entryJSON `json:"entries"`
	NextAfter int64       `json:"next_after"`
	More      bool        `json:"more"`
}

// list pages through GET /v1/audit with query q and returns every entry.
func (e *env) list(tb testing.TB, q url.Values) []entryJSON {
	tb.Helper()
	var out []entryJSON
	for range 1000 {
		var p pageJSON
		if code := get(tb, e.url+"/v1/audit?"+q.Encode(), &p); code != http.StatusOK {
			tb.Fatalf("GET /v1/audit?%s: %d", q.Encode(), code)
		}
		out = append(out, p.Entries...)
		if !p.More {
			return out
		}
		if p.NextAfter != p.Entries[len(p.Entries)-1].Seq {
			tb.Fatalf("next_after %d is not the page's last seq", p.NextAfter)
		}
		q.Set("after", fmt.Sprint(p.NextAfter))
	}
	tb.Fatal("more than 1000 pages")
	return nil
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	evs := e.fill(t, 4, 30)
	all := e.list(t, url.Values{"limit": {"7"}})
	if len(all) != 30 {
		t.Fatalf("%d entries, want 30", len(all))
	}
	for i, en := range all {
		ev := evs[i]
		if en.Seq != int64(i+1) || en.EventID != ev.EventID.String() || en.Type != ev.Type || en.StreamID != ev.StreamID ||
			en.StreamVersion != ev.Version || en.GlobalPosition != ev.GlobalPosition || en.SchemaVersion != 1 ||
			en.Data["name"] != fmt.Sprintf("N%d", i) || en.Metadata["ip"] != "192.0.2.1" || en.CorrelationID != "corr" ||
			en.CausationID != "cause" || !en.RecordedAt.Equal(ev.RecordedAt) || en.AuditedAt.IsZero() ||
			en.Topic != "annals.user" || en.Partition != i%3 || en.Offset != int64(i) || len(en.Hash) != 64 || len(en.PrevHash) != 64 {
			t.Fatalf("entry %d: %+v\nwant %+v", i, en, ev)
		}
		if i > 0 && en.PrevHash != all[i-1].Hash {
			t.Errorf("entry %d: prev_hash %s, want %s", en.Seq, en.PrevHash, all[i-1].Hash)
		}
	}
	if all[0].PrevHash != strings.Repeat("0", 64) {
		t.Errorf("the first entry's prev_hash is %s", all[0].PrevHash)
	}

	count := func(q url.Values, keep func(i int, ev events.Envelope) bool) {
		t.Helper()
		var want []int64
		for i, ev := range evs {
			if keep(i, ev) {
				want = append(want, int64(i+1))
			}
		}
		got := e.list(t, q)
		if len(got) != len(want) {
			t.Fatalf("?%s: %d entries, want %d", q.Encode(), len(got), len(want))
		}
		for i := range got {
			if got[i].Seq != want[i] {
				t.Fatalf("?%s: entry %d has seq %d, want %d", q.Encode(), i, got[i].Seq, want[i])
			}
		}
	}
	count(url.Values{"stream_id": {evs[1].StreamID}, "limit": {"2"}}, func(_ int, ev events.Envelope) bool { return ev.StreamID == evs[1].StreamID })
	count(url.Values{"type": {"UserCreated"}}, func(_ int, ev events.Envelope) bool { return ev.Type == "UserCreated" })
	count(url.Values{"type": {"UserCreated", "UserProfileUpdated"}}, func(int, events.Envelope) bool { return true })
	count(url.Values{"since": {at.Add(10 * time.Second).Format(time.RFC3339)}, "until": {at.Add(20 * time.Second).Format(time.RFC3339)}},
		func(i int, _ events.Envelope) bool { return i >= 10 && i < 20 })
	count(url.Values{"since": {"2026-03-01T13:00:05+01:00"}, "after": {"3"}, "type": {"UserProfileUpdated"}},
		func(i int, ev events.Envelope) bool { return i >= 5 && i+1 > 3 && ev.Type == "UserProfileUpdated" })
	count(url.Values{"stream_id": {"user-nobody"}}, func(int, events.Envelope) bool { return false })

	// An empty page after the end keeps after.
	var p pageJSON
	if code := get(t, e.url+"/v1/audit?after=30", &p); code != http.StatusOK || len(p.Entries) != 0 || p.NextAfter != 30 || p.More {
		t.Errorf("after the end: %d %+v", code, p)
	}
	if p.Entries == nil {
		t.Error("entries is null, want []")
	}
}

func TestList_BadRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"limit=1&limit=2", "limit"},
		{"after=-1", "after"},
		{"after=1.5", "after"},
		{"since=yesterday", "since"},
		{"until=2026-13-01T00:00:00Z", "until"},
		{"since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "until"},
		{"since=2026-03-01T00:00:00Z&until=2026-03-01T00:00:00Z", "until"},
		{"stream_id=", "stream_id"},
		{"stream_id=" + strings.Repeat("x", 201), "stream_id"},
		{"type=", "type"},
		{"type=a%00b", "type"},
		{"stream_id=user-%00", "stream_id"},
		{"type=%FF", "type"},
		{"type=" + strings.Repeat("&type=T", 21)[1:], "type"},
		{"cursor=abc", "cursor"},
		{"stream=user-1", "stream"},
		{"limit=%zz", "query"},
	} {
		var body struct {
			Error struct {
				Code, Message, Field string
			}
		}
		if code := get(t, e.url+"/v1/audit?"+tc.query, &body); code != http.StatusBadRequest ||
			body.Error.Code != api.CodeInvalidRequest || body.Error.Field != tc.field || body.Error.Message == "" {
			t.Errorf("?%s: %d %+v, want 400 invalid_request on %s", tc.query, code, body.Error, tc.field)
		}
	}
}

type reportJSON struct {
	OK         bool     `json:"ok"`
	Checked    int64    `json:"checked"`
	LastSeq    int64    `json:"last_seq"`
	LastHash   string   `json:"last_hash"`
	TookMS     *float64 `json:"took_ms"`
	FirstBreak *struct {
		Seq      int64  `json:"seq"`
		Problem  string `json:"problem"`
		Expected string `json:"expected"`
		Found    string `json:"found"`
		Detail   string `json:"detail"`
	} `json:"first_break"`
}

func TestVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var r reportJSON
	if code := get(t, e.url+"/v1/audit/verify", &r); code != http.StatusOK || !r.OK || r.Checked != 0 || r.LastHash != strings.Repeat("0", 64) {
		t.Errorf("an empty log: %d %+v", code, r)
	}
	e.fill(t, 3, 23)
	all := e.list(t, url.Values{})
	r = reportJSON{}
	if code := get(t, e.url+"/v1/audit/verify", &r); code != http.StatusOK || !r.OK || r.Checked != 23 || r.LastSeq != 23 ||
		r.LastHash != all[22].Hash || r.FirstBreak != nil || r.TookMS == nil {
		t.Errorf("an intact log: %d %+v", code, r)
	}
	ctx := context.Background()
	for _, sql := range []string{
		`alter table annals_audit_log disable trigger user`,
		`delete from annals_audit_log where seq = 17`,
		`update annals_audit_log set data = '{"name":"Mallory"}' where seq = 9`,
	} {
		if _, err := e.owner.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	r = reportJSON{}
	if code := get(t, e.url+"/v1/audit/verify", &r); code != http.StatusOK || r.OK || r.Checked != 8 || r.FirstBreak == nil ||
		r.FirstBreak.Seq != 9 || r.FirstBreak.Problem != "hash_mismatch" || r.FirstBreak.Found != all[8].Hash {
		t.Errorf("a changed entry: %d %+v %+v", code, r, r.FirstBreak)
	}
	var bad struct{ Error struct{ Code, Field string } }
	if code := get(t, e.url+"/v1/audit/verify?from=3", &bad); code != http.StatusBadRequest || bad.Error.Field != "from" {
		t.Errorf("verify?from=3: %d %+v", code, bad)
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := e.router.OpenAPI("annals-auditor", "test")
	paths := doc["paths"].(map[string]any)
	for _, p := range []string{"/v1/audit", "/v1/audit/verify"} {
		if _, ok := paths[p].(map[string]any)["get"]; !ok {
			t.Errorf("%s is not documented", p)
		}
	}
	b, _ := json.Marshal(paths["/v1/audit"])
	for _, param := range []string{"stream_id", "type", "since", "until", "after", "limit"} {
		if !strings.Contains(string(b), `"name":"`+param+`"`) {
			t.Errorf("GET /v1/audit does not document %s", param)
		}
	}
}
