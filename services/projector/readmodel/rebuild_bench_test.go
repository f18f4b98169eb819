package readmodel_test

import (
	"context"
	"testing"

	"github.com/annals-dev/annals/services/projector/readmodel"
)

// seed writes n users with two events each and n orders with three, straight into the event
// store's tables: 5n events in a few statements.
func seed(tb testing.TB, e *env, n int) {
	tb.Helper()
	ctx := context.Background()
	for _, sql := range []string{
		`insert into annals_streams (stream_id, category)
			select 'user-' || md5('u' || i)::uuid, 'user' from generate_series(1, $1) i
			union all select 'order-' || md5('o' || i)::uuid, 'order' from generate_series(1, $1) i`,
		`insert into annals_events (event_id, stream_id, category, version, type, data)
			select gen_random_uuid(), s, c, v, t, d from (
				select 'user-' || u as s, 'user' as c, 0 as v, 'UserCreated' as t,
					json_build_object('user_id', u, 'email', 'u' || i || '@example.com', 'name', 'User ' || i) as d, i, 0 as k
				from (select i, md5('u' || i)::uuid as u from generate_series(1, $1) i) x
				union all select 'user-' || u, 'user', 1, 'UserProfileUpdated', json_build_object('name', 'Renamed ' || i), i, 1
				from (select i, md5('u' || i)::uuid as u from generate_series(1, $1) i) x
				union all select 'order-' || o, 'order', 0, 'OrderCreated', json_build_object('order_id', o, 'user_id', u,
					'items', json_build_array(json_build_object('id', 'a', 'name', 'A', 'price_cents', 100, 'quantity', 2)),
					'total_cents', 200), i, 2
				from (select i, md5('u' || i)::uuid as u, md5('o' || i)::uuid as o from generate_series(1, $1) i) x
				union all select 'order-' || o, 'order', 1, 'ItemAdded',
					json_build_object('item', json_build_object('id', 'b', 'name', 'B', 'price_cents', 50, 'quantity', 1)), i, 3
				from (select i, md5('o' || i)::uuid as o from generate_series(1, $1) i) x
				union all select 'order-' || o, 'order', 2, 'OrderConfirmed', json_build_object('total_cents', 250), i, 4
				from (select i, md5('o' || i)::uuid as o from generate_series(1, $1) i) x
			) ev order by i, k`,
	} {
		if _, err := e.pool.Exec(ctx, sql, n); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
}

// BenchmarkRebuild rebuilds the read models from 100,000 events.
func BenchmarkRebuild(b *testing.B) {
	e := newEnv(b, readmodel.Options{BatchSize: readmodel.DefaultBatchSize})
	seed(b, e, 20_000)
	ctx := context.Background()
	var events int64
	for b.Loop() {
		st, err := e.proj.Rebuild(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Stopped) > 0 {
			b.Fatalf("stopped streams: %v", st.Stopped)
		}
		events = st.Filled
	}
	if events != 100_000 {
		b.Fatalf("filled %d events, want 100000", events)
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
