package authtest

import (
	"context"
	"io"
	"maps"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/postgres"
)

// StartService runs svc as a program, in process, on a PostgreSQL schema of its own with the
// event store migrated, the shared Kafka, the Issuer's configuration and vars; steps are the
// service's own wiring. It returns the service's base URL and its Main; the service stops when
// the test ends.
func (is *Issuer) StartService(t *testing.T, svc app.Service, vars map[string]string, steps ...func(context.Context, *app.Main) error) (string, *app.Main) {
	t.Helper()
	pool, schemaName := testenv.SchemaPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	dbURL := testenv.SchemaURL(t, schemaName)
	env := map[string]string{
		"DATABASE_URL":      dbURL,
		"KAFKA_BROKERS":     strings.Join(testenv.KafkaBrokers(t), ","),
		"LOG_LEVEL":         "error",
		"EVENT_SIGNING_KEY": testenv.SigningKey,
	}
	maps.Copy(env, is.Env())
	maps.Copy(env, vars)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	m, err := app.New(svc, []string{"-addr", "127.0.0.1:0"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for _, step := range steps {
		if err := step(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + m.Addr(), m
}
