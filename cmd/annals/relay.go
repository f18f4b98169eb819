package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/annals-dev/annals/internal/app"
	"github.com/annals-dev/annals/internal/config"
	"github.com/annals-dev/annals/internal/telemetry"
	"github.com/annals-dev/annals/internal/wiring"
)

// relayCmd runs the outbox relay on its own, for deployments that keep it apart from the
// writers, on the outbox of the store EVENT_STORE_TYPE names. With HTTP_ADDR set it serves /metrics there; with OTEL_EXPORTER_OTLP_ENDPOINT set
// it traces its publishes as annals-relay.
func relayCmd(ctx context.Context, args []string, loadConfig func() (*config.Config, error), stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: relay takes no arguments", errUsage)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg.Log, stderr).With("service", "relay")
	if err := app.CheckKafka(ctx, cfg.Kafka, log); err != nil {
		return err
	}
	// Its publish spans join the commands' traces, as the writer's relay's do.
	tracing, err := telemetry.New(ctx, cfg.Monitoring, "relay", app.Version)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if tracing != nil {
		tracing.Install(log)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tracing.Shutdown(sctx); err != nil {
				log.Warn("tracing: spans not sent at shutdown", "error", err)
			}
		}()
	}
	// PostgreSQL holds the schema catalog with every store; the outbox is the store's.
	pool, err := app.NewPool(ctx, cfg.EventStore, "annals-relay")
	if err != nil {
		return err
	}
	defer pool.Close()
	es, err := wiring.OpenEventStore(ctx, cfg, pool, wiring.StoreOptions{})
	if err != nil {
		return err
	}
	defer es.Close()
	reg := prometheus.NewRegistry()
	r, err := wiring.NewRelayOn(es.Outbox, cfg, log, reg)
	if err != nil {
		return err
	}
	defer r.Close()
	if cfg.HTTP.Addr != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s (HTTP_ADDR): %w", cfg.HTTP.Addr, err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	log.Info("relay started", "event_store", es.Type, "kafka_brokers", cfg.Kafka.Brokers, "topic_prefix", cfg.Kafka.TopicPrefix)
	err = wiring.RunRelay(ctx, r, pool, cfg, log)
	log.Info("relay stopped")
	return err
}
