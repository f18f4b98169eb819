// Package auditbench is the auditor's drain workload: the auditor's consumer, as the auditor
// runs it, draining pre-filled topics into a fresh audit log, timed by internal/benchkit.
// `annals bench` (cmd/annals/bench) and the auditor's Go benchmark (auditlog's
// BenchmarkAuditor) both run it, so that both measure the same thing. It lives beside the
// auditor because it builds the auditor's consumer; it must never change how the auditor
// works to make a figure better, and nothing but benchmarks imports it.
package auditbench

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/annals-dev/annals/internal/benchkit"
	"github.com/annals-dev/annals/pkg/consume"
	"github.com/annals-dev/annals/services/auditor/auditlog"
)

// Drain drains the topics with the auditor's consumer, working as the auditor's role,
// into a fresh audit log on owner (a schema with the event store's tables, as the schema's
// owner). The drain ends once the chain holds every event; the chain is then verified, out
// of the time.
func Drain(ctx context.Context, owner *pgxpool.Pool, cfg benchkit.DrainConfig) (benchkit.Drain, error) {
	if _, err := auditlog.Migrate(ctx, owner, nil, ""); err != nil {
		return benchkit.Drain{}, err
	}
	role, err := auditlog.RolePool(ctx, owner, "")
	if err != nil {
		return benchkit.Drain{}, err
	}
	defer role.Close()
	l := auditlog.New(role, auditlog.Options{Metrics: auditlog.NewMetrics(prometheus.NewRegistry())})
	d, err := benchkit.DrainWith(ctx, cfg, func(cc consume.Config) (func(context.Context) error, error) {
		c, err := l.Consumer(cc)
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}, func(ctx context.Context) (bool, error) {
		var head int
		err := owner.QueryRow(ctx, `select coalesce(max(seq), 0) from annals_audit_log`).Scan(&head)
		return head >= cfg.Events, err
	})
	if err != nil {
		return d, err
	}
	r, err := l.Verify(ctx, auditlog.VerifyOptions{})
	if err != nil {
		return d, fmt.Errorf("bench: verify the audit log: %w", err)
	}
	if !r.OK || r.Checked != int64(cfg.Events) {
		return d, fmt.Errorf("bench: the audit log after the drain: %s; want an intact chain of %d entries", r, cfg.Events)
	}
	return d, nil
}
