package notify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/services/notifier/internal/notifiertest"
)

// BenchmarkNotifier measures emails per second into Mailpit: each round, a consumer group of
// its own mails the whole pre-filled user topic (1,000 UserCreated events, welcome emails) with
// an empty sent log. emails/s is counted from the first email the server accepted to the last,
// so the group's join is left out; ns/op is a whole round, join included.
func BenchmarkNotifier(b *testing.B) {
	const n = 1000
	h := newHarness(b, setup{partitions: 8})
	batch := make([]notifiertest.Event, 0, n)
	for i := range n {
		batch = append(batch, userCreated(newID(), h.address(fmt.Sprintf("bench%d", i)), fmt.Sprintf("Bench %d", i)))
	}
	h.publish(batch...)
	ctx := context.Background()
	var span time.Duration
	emails, round := 0, 0
	for b.Loop() {
		round++
		h.group = fmt.Sprintf("annals-notifier-bench-%s-%d", testenv.UniqueName(b), round)
		h.start()
		h.waitSent(n, time.Minute)
		h.halt()
		b.StopTimer()
		var first, last time.Time
		if err := h.pool.QueryRow(ctx, `select min(sent_at), max(sent_at) from annals_notifier_sent`).Scan(&first, &last); err != nil {
			b.Fatal(err)
		}
		span += last.Sub(first)
		emails += n - 1
		h.mailpit.WaitCount(b, "to:"+h.domain, n, 30*time.Second)
		if err := h.mailpit.Delete(ctx, "to:"+h.domain); err != nil {
			b.Fatal(err)
		}
		if _, err := h.pool.Exec(ctx, `truncate annals_notifier_sent`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(emails)/span.Seconds(), "emails/s")
}
