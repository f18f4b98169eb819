package consume_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/pkg/consume"
)

// TestInboxPruner prunes, in batches, the inbox rows of every group older than the retention,
// and keeps the newer ones; the metric counts what it deleted.
func TestInboxPruner(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	insert := func(group string, n int, age time.Duration) {
		t.Helper()
		if _, err := pool.Exec(ctx, `insert into annals_inbox (group_name, event_id, processed_at)
			select $1, gen_random_uuid(), clock_timestamp() - $2::interval from generate_series(1, $3)`, group, age, n); err != nil {
			t.Fatal(err)
		}
	}
	insert("annals-projector", 25, 10*24*time.Hour)
	insert("tenant-projector", 12, 8*24*time.Hour)
	insert("annals-projector", 7, time.Hour)
	insert("tenant-projector", 5, 6*24*time.Hour)
	reg := prometheus.NewRegistry()
	p, err := consume.NewInboxPruner(pool, consume.InboxPruneConfig{Retention: 7 * 24 * time.Hour, BatchSize: 4, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Prune(ctx)
	if err != nil || n != 37 {
		t.Fatalf("Prune = %d, %v; want the 37 rows older than 7 days", n, err)
	}
	var left, old int
	if err := pool.QueryRow(ctx, `select count(*), count(*) filter (where processed_at < now() - interval '7 days') from annals_inbox`).Scan(&left, &old); err != nil {
		t.Fatal(err)
	}
	if left != 12 || old != 0 {
		t.Errorf("%d rows left, %d of them older than the retention; want 12 and none", left, old)
	}
	want := `# HELP annals_consumer_inbox_pruned_rows_total Inbox rows deleted because they were older than the inbox's retention.
# TYPE annals_consumer_inbox_pruned_rows_total counter
annals_consumer_inbox_pruned_rows_total 37
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "annals_consumer_inbox_pruned_rows_total"); err != nil {
		t.Error(err)
	}
	if n, err := p.Prune(ctx); err != nil || n != 0 {
		t.Errorf("a second Prune = %d, %v; want nothing to do", n, err)
	}

	// Run prunes at once, then every interval, until its context ends.
	insert("annals-auditor", 3, 30*24*time.Hour)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	waitFor(t, 10*time.Second, "Run to prune", func() bool {
		var n int
		_ = pool.QueryRow(ctx, `select count(*) from annals_inbox`).Scan(&n)
		return n == 12
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := consume.NewInboxPruner(pool, consume.InboxPruneConfig{}); err == nil {
		t.Error("a pruner without a retention was accepted")
	}
}

// TestInbox_Inherit: a group that had another name takes over the recent events recorded under
// it, so that they are not applied again; once it has rows of its own it takes nothing more.
func TestInbox_Inherit(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	var recent, old []uuid.UUID
	for i := range 6 {
		id := uuid.New()
		age := time.Hour
		if i >= 4 {
			age, old = 30*24*time.Hour, append(old, id)
		} else {
			recent = append(recent, id)
		}
		if _, err := pool.Exec(ctx, `insert into annals_inbox (group_name, event_id, processed_at) values ('annals-projector', $1, clock_timestamp() - $2::interval)`, id, age); err != nil {
			t.Fatal(err)
		}
	}
	in := consume.Inbox{Group: "tenant-projector"}
	n, err := in.Inherit(ctx, pool, "annals-projector", 7*24*time.Hour)
	if err != nil || n != int64(len(recent)) {
		t.Fatalf("Inherit = %d, %v; want the %d recent rows", n, err, len(recent))
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, id := range recent {
		if fresh, err := in.Claim(ctx, tx, id); err != nil || fresh {
			t.Errorf("claim of inherited event %s: fresh %v, %v; want it known", id, fresh, err)
		}
	}
	if fresh, err := in.Claim(ctx, tx, old[0]); err != nil || !fresh {
		t.Errorf("claim of an event older than the retention: fresh %v, %v; want it new", fresh, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := in.Inherit(ctx, pool, "annals-projector", 7*24*time.Hour); err != nil || n != 0 {
		t.Errorf("a second Inherit = %d, %v; want nothing once the group has rows", n, err)
	}
	if n, err := (consume.Inbox{Group: "annals-projector"}).Inherit(ctx, pool, "annals-projector", time.Hour); err != nil || n != 0 {
		t.Errorf("Inherit from its own name = %d, %v", n, err)
	}
}
