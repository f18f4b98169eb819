package httpx_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/pkg/logctx"
)

func newHandler(t *testing.T) (http.Handler, *prometheus.Registry) {
	t.Helper()
	r := httpx.NewRouter()
	r.HandleFunc("GET", "/v1/things/{id}", httpx.Operation{Summary: "one thing"}, func(w http.ResponseWriter, req *http.Request) {
		httpx.WriteJSON(w, 200, map[string]string{"id": req.PathValue("id"), "correlation_id": httpx.CorrelationID(req)})
	})
	r.HandleFunc("POST", "/v1/things", httpx.Operation{Summary: "make a thing", Responses: map[int]string{201: "created", 409: "conflict"}},
		func(w http.ResponseWriter, req *http.Request) {
			httpx.WriteErrorFields(w, 409, "version_conflict", "stale", map[string]any{"expected": 1, "actual": 2})
		})
	reg := prometheus.NewRegistry()
	return httpx.Middleware(r, httpx.NewMetrics(reg), nil), reg
}

func do(h http.Handler, method, path string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var body struct{ Error map[string]any }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("not the JSON error envelope: %q", rec.Body.String())
	}
	return body.Error
}

func TestRouter(t *testing.T) {
	h, reg := newHandler(t)

	t.Run("PathValue", func(t *testing.T) {
		rec := do(h, "GET", "/v1/things/42", nil)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"id":"42"`) {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		rec := do(h, "GET", "/nowhere", nil)
		if got := errorCode(t, rec); rec.Code != 404 || got["code"] != "not_found" {
			t.Errorf("got %d %v", rec.Code, got)
		}
	})
	t.Run("MethodNotAllowed", func(t *testing.T) {
		rec := do(h, "DELETE", "/v1/things/42", nil)
		if got := errorCode(t, rec); rec.Code != 405 || got["code"] != "method_not_allowed" {
			t.Errorf("got %d %v", rec.Code, got)
		}
		if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") {
			t.Errorf("Allow = %q, want GET listed", allow)
		}
	})
	t.Run("ErrorFields", func(t *testing.T) {
		got := errorCode(t, do(h, "POST", "/v1/things", nil))
		if got["code"] != "version_conflict" || got["expected"] != 1.0 || got["actual"] != 2.0 || got["message"] != "stale" {
			t.Errorf("error = %v", got)
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		want := `
# HELP annals_http_requests_total HTTP requests served, by route pattern, method and status code.
# TYPE annals_http_requests_total counter
annals_http_requests_total{code="200",method="GET",route="/v1/things/{id}"} 1
annals_http_requests_total{code="404",method="GET",route="unmatched"} 1
annals_http_requests_total{code="405",method="DELETE",route="unmatched"} 1
annals_http_requests_total{code="409",method="POST",route="/v1/things"} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "annals_http_requests_total"); err != nil {
			t.Error(err)
		}
	})
}

func TestMiddleware_CorrelationID(t *testing.T) {
	h, _ := newHandler(t)
	for _, tc := range []struct {
		name, in string
		kept     bool
	}{
		{"Kept", "req-123_abc", true},
		{"Generated", "", false},
		{"ControlCharactersReplaced", "bad\x01id", false},
		{"TooLongReplaced", strings.Repeat("x", 129), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.in != "" {
				hdr[httpx.CorrelationHeader] = tc.in
			}
			rec := do(h, "GET", "/v1/things/1", hdr)
			got := rec.Header().Get(httpx.CorrelationHeader)
			if tc.kept && got != tc.in {
				t.Errorf("correlation id = %q, want %q", got, tc.in)
			}
			if !tc.kept && (got == "" || got == tc.in) {
				t.Errorf("correlation id = %q, want a generated one", got)
			}
			if !strings.Contains(rec.Body.String(), `"correlation_id":"`+got+`"`) {
				t.Errorf("handler saw another id than the response header: %s", rec.Body)
			}
		})
	}
}

func TestRouter_OpenAPI(t *testing.T) {
	r := httpx.NewRouter()
	noop := func(http.ResponseWriter, *http.Request) {}
	r.HandleFunc("GET", "/v1/users/{id}", httpx.Operation{Summary: "a user"}, noop)
	r.HandleFunc("PATCH", "/v1/users/{id}", httpx.Operation{Summary: "change a user", Responses: map[int]string{200: "changed", 409: "stale"}}, noop)
	doc := r.OpenAPI("test", "1")
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Paths map[string]map[string]struct {
			OperationID string                    `json:"operationId"`
			Responses   map[string]map[string]any `json:"responses"`
			Parameters  []map[string]any          `json:"parameters"`
		}
	}
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatal(err)
	}
	ops := parsed.Paths["/v1/users/{id}"]
	if len(ops) != 2 {
		t.Fatalf("operations on /v1/users/{id}: %v", ops)
	}
	if got := ops["patch"].OperationID; got != "patchV1UsersId" {
		t.Errorf("operationId = %q", got)
	}
	if _, ok := ops["patch"].Responses["409"]; !ok {
		t.Errorf("PATCH responses lack 409: %v", ops["patch"].Responses)
	}
	if p := ops["get"].Parameters; len(p) != 1 || p[0]["name"] != "id" || p[0]["in"] != "path" {
		t.Errorf("GET parameters = %v", p)
	}
}

func TestRouter_OpenAPIParamsAndSchemas(t *testing.T) {
	r := httpx.NewRouter()
	noop := func(http.ResponseWriter, *http.Request) {}
	userSchema := map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}
	r.HandleFunc("POST", "/v1/users/{id}", httpx.Operation{
		Summary:     "change a user",
		Responses:   map[int]string{200: "changed"},
		Path:        []httpx.Param{{Name: "id", Description: "the user", Schema: httpx.UUIDSchema}},
		Query:       []httpx.Param{{Name: "type", Description: "repeatable", Schema: map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}},
		Headers:     []httpx.Param{{Name: "If-Match", Required: true}},
		RequestBody: userSchema,
		Schemas:     map[int]map[string]any{200: userSchema, 422: {"type": "object"}},
	}, noop)
	r.HandleFunc("POST", "/v1/ping", httpx.Operation{Summary: "ping", RequestBody: map[string]any{"type": "object"}, RequestBodyOptional: true}, noop)
	b, err := json.Marshal(r.OpenAPI("test", "1"))
	if err != nil {
		t.Fatal(err)
	}
	type media map[string]struct {
		Schema map[string]any `json:"schema"`
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters  []map[string]any `json:"parameters"`
			RequestBody *struct {
				Required bool  `json:"required"`
				Content  media `json:"content"`
			} `json:"requestBody"`
			Responses map[string]struct {
				Description string `json:"description"`
				Content     media  `json:"content"`
			} `json:"responses"`
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	op := doc.Paths["/v1/users/{id}"]["post"]
	var in []string
	for _, p := range op.Parameters {
		in = append(in, p["in"].(string)+":"+p["name"].(string))
	}
	if got, want := strings.Join(in, ","), "path:id,query:type,header:If-Match"; got != want {
		t.Errorf("parameters = %s, want %s", got, want)
	}
	if got := op.Parameters[0]["schema"].(map[string]any)["format"]; got != "uuid" || op.Parameters[0]["description"] != "the user" {
		t.Errorf("path parameter = %v, want the documented uuid", op.Parameters[0])
	}
	if got := op.Parameters[1]["schema"].(map[string]any)["type"]; got != "array" {
		t.Errorf("query schema type = %v", got)
	}
	if got := op.Parameters[2]["required"]; got != true {
		t.Errorf("header required = %v", got)
	}
	if op.RequestBody == nil || !op.RequestBody.Required || op.RequestBody.Content["application/json"].Schema["type"] != "object" {
		t.Errorf("requestBody = %+v", op.RequestBody)
	}
	if got := op.Responses["200"]; got.Description != "changed" || got.Content["application/json"].Schema["type"] != "object" {
		t.Errorf("200 = %+v", got)
	}
	if got := op.Responses["422"]; got.Description != "Unprocessable Entity" || got.Content == nil {
		t.Errorf("422 = %+v", got)
	}
	if rb := doc.Paths["/v1/ping"]["post"].RequestBody; rb == nil || rb.Required {
		t.Errorf("optional requestBody = %+v", rb)
	}
}

// A response whose body is not JSON names its media type; a description goes beside the
// summary.
func TestRouter_OpenAPIMediaAndDescription(t *testing.T) {
	r := httpx.NewRouter()
	r.HandleFunc("GET", "/v1/stream", httpx.Operation{
		Summary:     "a stream",
		Description: "It goes on.",
		Schemas:     map[int]map[string]any{200: {"type": "string"}, 400: {"type": "object"}},
		Media:       map[int]string{200: "text/event-stream"},
	}, func(http.ResponseWriter, *http.Request) {})
	b, err := json.Marshal(r.OpenAPI("test", "1"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Description string                                      `json:"description"`
			Responses   map[string]struct{ Content map[string]any } `json:"responses"`
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	op := doc.Paths["/v1/stream"]["get"]
	if op.Description != "It goes on." {
		t.Errorf("description = %q", op.Description)
	}
	if c := op.Responses["200"].Content; len(c) != 1 || c["text/event-stream"] == nil {
		t.Errorf("200 content = %v, want text/event-stream only", c)
	}
	if c := op.Responses["400"].Content; len(c) != 1 || c["application/json"] == nil {
		t.Errorf("400 content = %v, want application/json", c)
	}
}

func TestRouter_OpenAPIWith(t *testing.T) {
	r := httpx.NewRouter()
	noop := func(http.ResponseWriter, *http.Request) {}
	r.HandleFunc("GET", "/v1/things", httpx.Operation{Summary: "things", Responses: map[int]string{200: "the things",
		403: "forbidden: also for a filter the caller may not use"}}, noop)
	r.HandleFunc("GET", "/livez", httpx.Operation{Summary: "alive"}, noop)
	r.HandleFunc("GET", "/internal", httpx.Operation{Summary: "no word on it"}, noop)
	refusal := func(desc string) map[string]any {
		return map[string]any{"description": desc, "headers": map[string]any{"WWW-Authenticate": map[string]any{"required": true}}}
	}
	sec := httpx.Security{
		Schemes: map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		Requirements: map[string][]map[string][]string{
			"GET /v1/things": {{"bearer": {"things:read"}}},
			"GET /livez":     {},
		},
		Refusals: map[int]map[string]any{401: refusal("unauthorized"), 403: refusal("forbidden")},
	}
	b, err := json.Marshal(r.OpenAPIWith("test", "1", sec))
	if err != nil {
		t.Fatal(err)
	}
	type response struct {
		Description string         `json:"description"`
		Headers     map[string]any `json:"headers"`
	}
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Components struct {
			SecuritySchemes map[string]map[string]string `json:"securitySchemes"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			Security  json.RawMessage     `json:"security"`
			Responses map[string]response `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != httpx.OpenAPIVersion || doc.Components.SecuritySchemes["bearer"]["scheme"] != "bearer" {
		t.Errorf("openapi %q, securitySchemes %v", doc.OpenAPI, doc.Components.SecuritySchemes)
	}
	things := doc.Paths["/v1/things"]["get"]
	if got, want := string(things.Security), `[{"bearer":["things:read"]}]`; got != want {
		t.Errorf("protected security = %s, want %s", got, want)
	}
	if got := things.Responses["401"]; got.Description != "unauthorized" || got.Headers["WWW-Authenticate"] == nil {
		t.Errorf("protected 401 = %+v, want the refusal", got)
	}
	if got := things.Responses["403"]; got.Description != "forbidden: also for a filter the caller may not use" || got.Headers["WWW-Authenticate"] == nil {
		t.Errorf("protected 403 = %+v, want the operation's own description with the refusal's header", got)
	}
	livez := doc.Paths["/livez"]["get"]
	if got := string(livez.Security); got != "[]" {
		t.Errorf("public security = %s, want []", got)
	}
	if _, ok := livez.Responses["401"]; ok {
		t.Errorf("public route documents 401: %v", livez.Responses)
	}
	if got := doc.Paths["/internal"]["get"].Security; got != nil {
		t.Errorf("a route without a requirement has security %s, want none", got)
	}
	if bare, _ := json.Marshal(r.OpenAPI("test", "1")); strings.Contains(string(bare), "security") {
		t.Errorf("OpenAPI without security declares some: %s", bare)
	}
}

// TestMiddleware_LogsCarryCorrelationID: a line a handler logs with the request's context
// carries the request's correlation id, through a logctx handler.
func TestMiddleware_LogsCarryCorrelationID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logctx.Handler(slog.NewJSONHandler(&buf, nil)))
	h := httpx.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handling")
	}), nil, nil)
	req := httptest.NewRequest("POST", "/v1/users", nil)
	req.Header.Set(httpx.CorrelationHeader, "corr-42")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if line["correlation_id"] != "corr-42" {
		t.Errorf("log line %s: want correlation_id corr-42", buf.Bytes())
	}
}
