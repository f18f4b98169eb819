package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/auth"
	"github.com/annals-dev/annals/internal/httpx"
	"github.com/annals-dev/annals/internal/testenv"
)

// hungReceiver accepts connections and never answers: an OTLP receiver that hangs.
func hungReceiver(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestMain_TracingToAHungReceiver: a service whose trace receiver hangs serves as fast as
// ever (every request is traced, and the spans that cannot be sent are dropped), and stops
// within its bound for the spans still queued.
func TestMain_TracingToAHungReceiver(t *testing.T) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	env := map[string]string{
		"DATABASE_URL":                testenv.PostgresURL(t),
		"KAFKA_BROKERS":               strings.Join(testenv.KafkaBrokers(t), ","),
		"OTEL_EXPORTER_OTLP_ENDPOINT": hungReceiver(t),
	}
	m, err := app.New(app.Projector, []string{"-addr", "127.0.0.1:0"}, envFunc(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	m.Router.HandleFunc("GET", "/v1/ping", httpx.Operation{Summary: "ping"}, func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"pong": "yes"})
	})
	m.Protect(auth.Policy{"GET /v1/ping": auth.Public})
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	client := &http.Client{Timeout: 30 * time.Second}
	url := "http://" + m.Addr() + "/v1/ping"
	start := time.Now()
	// More spans than the queue holds, over more than one batch timeout: exports hang meanwhile.
	for i := 0; i < 5000 || time.Since(start) < 2*time.Second; i++ {
		began := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Fatalf("request %d took %s: tracing holds the service up", i, d)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	began := time.Now()
	m.Close()
	if d := time.Since(began); d > 8*time.Second {
		t.Errorf("Close took %s, want at most the 5 s bound on the spans still queued (and a little)", d)
	}
}
