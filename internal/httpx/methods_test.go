package httpx_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/annals-dev/annals/internal/httpx"
)

// seriesText is a scrape without its sample values: one line per series, its name and
// labels, so that two scrapes compare equal when they hold the same series, whatever their
// counts.
func seriesText(body []byte) string {
	var b strings.Builder
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(strings.TrimSpace(line), ' '); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// A client that invents HTTP methods must not invent metric series: 300 requests with random
// 64 KiB methods, to a route and to no route, leave /metrics the size it was.
func TestMiddleware_UnknownMethodsAddNoSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := httpx.NewRouter()
	r.HandleFunc("GET", "/v1/things/{id}", httpx.Operation{Summary: "one thing"}, func(w http.ResponseWriter, req *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"id": req.PathValue("id")})
	})
	r.Handle("GET", "/metrics", httpx.Operation{Summary: "metrics"}, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(httpx.Middleware(r, httpx.NewMetrics(reg), nil))
	defer srv.Close()

	send := func(method, path string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%.20s... %s: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// scrape reads /metrics, at most limit bytes of it: a scrape that grew by megabytes is
	// a failure, and need not be read to the end.
	scrape := func(limit int64) []byte {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	// Every series the requests below may touch exists before the first measure: the
	// routes' and no route's, with a known method and an unknown one.
	for _, m := range []string{"GET", "BREW"} {
		send(m, "/v1/things/1")
		send(m, "/nowhere")
	}
	scrape(1 << 20)
	before := scrape(1 << 20)

	rng := rand.New(rand.NewPCG(1, 2))
	method := make([]byte, 64<<10)
	for i := range 300 {
		for j := range method {
			method[j] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.IntN(26)]
		}
		path := "/v1/things/1"
		if i%2 == 1 {
			path = "/nowhere"
		}
		send(string(method), path)
	}

	after := scrape(int64(len(before)) + 64<<10)
	if got, want := len(seriesText(after)), len(seriesText(before)); got != want {
		t.Fatalf("/metrics holds %d bytes of series after 300 requests with random methods, %d before (%d bytes read of the scrape)",
			got, want, len(after))
	}
	if !bytes.Contains(after, []byte(`method="other"`)) {
		t.Errorf("no series with method=\"other\" in /metrics:\n%s", after)
	}
}
