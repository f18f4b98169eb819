// Package httpx is the HTTP plumbing shared by the services: a router that records its routes
// so that /openapi.json is derived from what is actually served, the JSON error envelope, the
// correlation-id middleware and request metrics.
//
// It maps errors to HTTP responses in one place, the error table (Errors), which every
// service extends with its own rules only; handlers return their errors to it. It must never
// write a secret, a request body or a stack trace into a response or a log line.
package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/annals-dev/annals/pkg/logctx"
)

// CorrelationHeader carries the correlation id of a request and of the events it causes.
const CorrelationHeader = "X-Correlation-ID"

// Operation documents one route for the OpenAPI document.
type Operation struct {
	Summary string
	// Description says more than Summary, when there is more to say (CommonMark).
	Description string
	// Responses maps a status code to its description. A route without any gets "200: OK".
	Responses map[int]string
	// Tags group operations in the document.
	Tags []string
	// Path gives the schemas of path parameters by Name; one not listed is any string.
	Path []Param
	// Query and Headers document the query and header parameters besides the path's.
	Query   []Param
	Headers []Param
	// RequestBody is the JSON schema of the application/json request body; nil means none.
	RequestBody map[string]any
	// RequestBodyOptional marks a request body that may be left out.
	RequestBodyOptional bool
	// Schemas maps a status code to the JSON schema of its application/json response body.
	Schemas map[int]map[string]any
	// Media maps a status code of Schemas to the media type of its body when that is not
	// application/json, such as text/event-stream for a stream of Server-Sent Events.
	Media map[int]string
}

// Param documents one query or header parameter.
type Param struct {
	Name        string
	Description string
	Required    bool
	// Schema is the parameter's JSON schema; {"type": "string"} when nil. A query parameter
	// that may repeat has an array schema.
	Schema map[string]any
}

type route struct {
	method, path string
	op           Operation
}

// Router is an http.ServeMux that remembers the routes registered on it.
type Router struct {
	mux    *http.ServeMux
	routes []route
}

// NewRouter returns an empty Router.
func NewRouter() *Router { return &Router{mux: http.NewServeMux()} }

// Handle registers h for method and path (a net/http pattern path such as /v1/users/{id}).
func (r *Router) Handle(method, path string, op Operation, h http.Handler) {
	r.mux.Handle(method+" "+path, h)
	r.routes = append(r.routes, route{method: method, path: path, op: op})
}

// HandleFunc is Handle for a function.
func (r *Router) HandleFunc(method, path string, op Operation, h http.HandlerFunc) {
	r.Handle(method, path, op, h)
}

// ServeHTTP dispatches to the registered routes. Unknown paths get a JSON 404 and a known path
// with another method a JSON 405, in the same envelope as every other error.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h, pattern := r.mux.Handler(req)
	if pattern != "" {
		r.mux.ServeHTTP(w, req) // sets req.Pattern and the path values
		return
	}
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, req) // the mux's own 404 or 405 handler
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		WriteError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, req.Method+" is not allowed on "+req.URL.Path)
		return
	}
	WriteError(w, http.StatusNotFound, CodeNotFound, "no route for "+req.Method+" "+req.URL.Path)
}

// probeWriter records what the mux's fallback handler would answer, and discards the body.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) { p.WriteHeader(http.StatusOK); return len(b), nil }

// Routes lists the registered routes as "METHOD /path", sorted.
func (r *Router) Routes() []string {
	out := make([]string, 0, len(r.routes))
	for _, rt := range r.routes {
		out = append(out, rt.method+" "+rt.path)
	}
	sort.Strings(out)
	return out
}

// OpenAPIVersion is the version of the OpenAPI specification the documents follow. 3.1 lets
// an operation name the scopes it needs under any kind of security scheme (an HTTP bearer
// scheme here), where 3.0 allows scopes under OAuth 2 and OpenID Connect only.
const OpenAPIVersion = "3.1.0"

// Security is what an OpenAPI document says of authentication.
type Security struct {
	// Schemes are the document's security schemes (components.securitySchemes): OpenAPI
	// security scheme objects by name.
	Schemes map[string]any
	// Requirements give each route ("METHOD /path", as Routes lists them) its operation's
	// security: alternatives, each a scheme's name to the scopes it must carry. A route with
	// an empty list is public (security: []); a route not in the map gets no security field.
	Requirements map[string][]map[string][]string
	// Refusals are OpenAPI response objects by status code (401, 403) that every operation
	// with a requirement may answer. Where an operation documents the code itself, its
	// description and body stay and only what it lacks (headers, a body) is added.
	Refusals map[int]map[string]any
}

// OpenAPI returns an OpenAPI 3.1 document describing the registered routes, without security.
func (r *Router) OpenAPI(title, version string) map[string]any {
	return r.OpenAPIWith(title, version, Security{})
}

// OpenAPIWith returns an OpenAPI 3.1 document describing the registered routes and sec.
func (r *Router) OpenAPIWith(title, version string, sec Security) map[string]any {
	paths := map[string]any{}
	for _, rt := range r.routes {
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		responses := map[string]any{}
		for code, desc := range rt.op.Responses {
			responses[strconv.Itoa(code)] = map[string]any{"description": desc}
		}
		for code, schema := range rt.op.Schemas {
			resp, _ := responses[strconv.Itoa(code)].(map[string]any)
			if resp == nil {
				resp = map[string]any{"description": http.StatusText(code)}
				responses[strconv.Itoa(code)] = resp
			}
			media := rt.op.Media[code]
			if media == "" {
				media = "application/json"
			}
			resp["content"] = map[string]any{media: map[string]any{"schema": schema}}
		}
		if len(responses) == 0 {
			responses["200"] = map[string]any{"description": "OK"}
		}
		op := map[string]any{
			"summary":     rt.op.Summary,
			"operationId": operationID(rt.method, rt.path),
			"responses":   responses,
		}
		if rt.op.Description != "" {
			op["description"] = rt.op.Description
		}
		if len(rt.op.Tags) > 0 {
			op["tags"] = rt.op.Tags
		}
		params := pathParams(rt.path, rt.op.Path)
		params = append(params, otherParams("query", rt.op.Query)...)
		params = append(params, otherParams("header", rt.op.Headers)...)
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.op.RequestBody != nil {
			op["requestBody"] = map[string]any{
				"required": !rt.op.RequestBodyOptional,
				"content":  jsonContent(rt.op.RequestBody),
			}
		}
		if reqs, ok := sec.Requirements[rt.method+" "+rt.path]; ok {
			op["security"] = append([]map[string][]string{}, reqs...) // [] rather than null when public
			if len(reqs) > 0 {
				addRefusals(responses, sec.Refusals)
			}
		}
		item[strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": OpenAPIVersion,
		"info":    map[string]any{"title": title, "version": version},
		"paths":   paths,
	}
	if len(sec.Schemes) > 0 {
		doc["components"] = map[string]any{"securitySchemes": sec.Schemes}
	}
	return doc
}

// addRefusals adds refusals to an operation's responses: a code it does not document whole,
// and what it lacks to one it does.
func addRefusals(responses map[string]any, refusals map[int]map[string]any) {
	for code, refusal := range refusals {
		key := strconv.Itoa(code)
		own, _ := responses[key].(map[string]any)
		if own == nil {
			responses[key] = maps.Clone(refusal)
			continue
		}
		for k, v := range refusal {
			if _, ok := own[k]; !ok {
				own[k] = v
			}
		}
	}
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.Split(path, "/") {
		part = strings.Trim(part, "{}.")
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func pathParams(path string, documented []Param) []any {
	var out []any
	for _, part := range strings.Split(path, "/") {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			name := strings.TrimSuffix(strings.Trim(part, "{}"), "...")
			m := map[string]any{"name": name, "in": "path", "required": true, "schema": StringSchema}
			for _, p := range documented {
				if p.Name != name {
					continue
				}
				if p.Schema != nil {
					m["schema"] = p.Schema
				}
				if p.Description != "" {
					m["description"] = p.Description
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func otherParams(in string, ps []Param) []any {
	out := make([]any, 0, len(ps))
	for _, p := range ps {
		schema := p.Schema
		if schema == nil {
			schema = map[string]any{"type": "string"}
		}
		m := map[string]any{"name": p.Name, "in": in, "required": p.Required, "schema": schema}
		if p.Description != "" {
			m["description"] = p.Description
		}
		out = append(out, m)
	}
	return out
}

func jsonContent(schema map[string]any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

type ctxKey struct{}

// request is what Middleware stores in a request's context.
type request struct {
	correlationID string
	started       time.Time
}

// CorrelationID returns the correlation id that Middleware stored for the request.
func CorrelationID(r *http.Request) string {
	v, _ := r.Context().Value(ctxKey{}).(request)
	return v.correlationID
}

// Started returns when Middleware received the request; zero outside it.
func Started(r *http.Request) time.Time {
	v, _ := r.Context().Value(ctxKey{}).(request)
	return v.started
}

// NewID returns a random 128-bit id in hex, used for generated correlation ids.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Metrics are the request metrics of one service.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "annals_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Middleware wraps next with the correlation id (read from X-Correlation-ID, generated when
// absent or unusable, echoed in the response), request metrics, a debug log line and, for
// every route but the probes and /metrics, a server span (OpenTelemetry's global tracer
// provider and propagator, read here: a no-op unless a program installed an SDK), a child of
// the caller's span when the request carries a W3C traceparent. Their labels and names are
// bounded: the route is a registered pattern or "unmatched", the method one of MethodLabel's.
func Middleware(next http.Handler, m *Metrics, log *slog.Logger) http.Handler {
	tracer := otel.GetTracerProvider().Tracer(tracerScope)
	prop := otel.GetTextMapPropagator()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(CorrelationHeader)
		if !validCorrelationID(id) {
			id = NewID()
		}
		w.Header().Set(CorrelationHeader, id)
		ctx := context.WithValue(r.Context(), ctxKey{}, request{correlationID: id, started: start})
		var span trace.Span
		if traced(r.URL.Path) {
			ctx, span = tracer.Start(prop.Extract(ctx, propagation.HeaderCarrier(r.Header)), MethodLabel(r.Method),
				trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
		}
		r = r.WithContext(logctx.With(ctx, slog.String("correlation_id", id)))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		pattern := r.Pattern
		if pattern == "" {
			pattern = "unmatched"
		} else if i := strings.IndexByte(pattern, ' '); i >= 0 {
			pattern = pattern[i+1:]
		}
		method := MethodLabel(r.Method)
		if span != nil {
			endSpan(span, method, pattern, sw.status, id)
		}
		if m != nil {
			m.requests.WithLabelValues(pattern, method, strconv.Itoa(sw.status)).Inc()
			m.duration.WithLabelValues(pattern, method).Observe(time.Since(start).Seconds())
		}
		if log != nil {
			log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
				slog.String("method", method), slog.String("route", pattern),
				slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)),
				slog.String("correlation_id", id))
		}
	})
}

// tracerScope is the instrumentation scope of the server spans.
const tracerScope = "github.com/annals-dev/annals/internal/httpx"

// traced reports whether requests to path get a server span: not the probes and /metrics,
// which orchestrators and scrapers call every few seconds.
func traced(path string) bool {
	switch path {
	case "/livez", "/readyz", "/metrics":
		return false
	}
	return !strings.HasPrefix(path, "/healthz/")
}

// endSpan names a server span after its route, as OpenTelemetry's HTTP conventions do
// ("POST /v1/users"), records the outcome and ends it.
func endSpan(span trace.Span, method, route string, status int, correlationID string) {
	if span.IsRecording() {
		span.SetName(method + " " + route)
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(route),
			semconv.HTTPResponseStatusCode(status), attribute.String("annals.correlation_id", correlationID))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.End()
}

// MethodLabel is method as the request metrics and log lines name it: one of the methods of
// HTTP (RFC 9110, and PATCH), or "other" for any method a client made up, so that inventing
// methods cannot add label values, and so series, without bound.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// validCorrelationID accepts 1 to 128 printable ASCII characters without spaces, so that a
// client's id is kept but nothing odd reaches logs or stored events.
func validCorrelationID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
