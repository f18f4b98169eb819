#!/usr/bin/env bash
# make bench: the event store's appends against the physical baseline of the same PostgreSQL,
# measured in one run: pgbench with a one-INSERT-per-transaction script, then single-event and
# 100-event appends through pkg/events/postgres, at concurrency 1 and 8. Prints the figures
# and the ratios. ANNALS_BENCH_TIME sets each measurement's duration (default 10s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
DURATION=${ANNALS_BENCH_TIME:-10s}
SECS=${DURATION%s}

scripts/stack.sh up >/dev/null
eval "$(scripts/stack.sh env)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r | head -1)
PGBENCH=${PGBENCH:-$PGBIN/pgbench}
[[ -x $PGBENCH ]] || { echo "bench: pgbench not found (PostgreSQL's server package ships it)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$DATABASE_URL" -qXc "drop schema if exists annals_pgbench cascade" >/dev/null 2>&1 || true' EXIT

# The baseline: one INSERT of an event-sized row per transaction, into a table with a primary
# key, as durable as the store's own commits (same server, same settings).
psql "$DATABASE_URL" -qX >/dev/null <<'SQL'
drop schema if exists annals_pgbench cascade;
create schema annals_pgbench;
create table annals_pgbench.one_insert (
    id bigint generated always as identity primary key,
    stream_id text not null,
    data jsonb not null,
    recorded_at timestamptz not null default clock_timestamp()
);
SQL
cat >"$work/insert.sql" <<'SQL'
insert into annals_pgbench.one_insert (stream_id, data) values ('order-' || :client_id, '{"item":{"id":"sku-1","name":"A thing","price_cents":1999,"quantity":2}}');
SQL

declare -A pg_tps pg_p50 pg_p99
for c in 1 8; do
	echo "bench: pgbench, one INSERT per transaction, $c client(s), $DURATION" >&2
	rm -f "$work"/pgbench_log*
	(cd "$work" && "$PGBENCH" "$DATABASE_URL" -n -M prepared -f insert.sql -c "$c" -j "$((c > 1 ? 2 : 1))" -T "$SECS" -l \
		--log-prefix=pgbench_log >"$work/pgbench-$c.out" 2>&1) || { cat "$work/pgbench-$c.out" >&2; exit 1; }
	pg_tps[$c]=$(awk '/^tps = / {printf "%.0f", $3}' "$work/pgbench-$c.out")
	cat "$work"/pgbench_log* | awk '{print $3}' | sort -n >"$work/lat-$c"
	n=$(wc -l <"$work/lat-$c")
	pg_p50[$c]=$(awk -v n="$n" 'NR == int(n * 0.50) + 1 {printf "%.2f", $1 / 1000}' "$work/lat-$c")
	pg_p99[$c]=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 {printf "%.2f", $1 / 1000}' "$work/lat-$c")
done

echo "bench: event store appends (go test -bench BenchmarkAppend), $DURATION each" >&2
$GO test -run '^$' -bench '^BenchmarkAppend$' -benchtime "$DURATION" -count 1 ./pkg/events/postgres/ | tee "$work/go.out" >&2

metric() { # metric EVENTS CONC UNIT
	awk -v name="BenchmarkAppend/events=$1/conc=$2" -v unit="$3" '
		index($1, name "-") == 1 || $1 == name { for (i = 2; i < NF; i++) if ($(i + 1) == unit) { print $i; exit } }' "$work/go.out"
}

printf '\n%-6s  %-26s  %-34s  %-34s\n' conc "pgbench 1-INSERT tx/s" "append 1 event: events/s (vs pg)" "append 100: events/s (vs 1 event)"
for c in 1 8; do
	s_eps=$(metric 1 "$c" events/s)
	b_eps=$(metric 100 "$c" events/s)
	s_ratio=$(awk -v a="$s_eps" -v b="${pg_tps[$c]}" 'BEGIN {printf "%.0f%%", 100 * a / b}')
	b_ratio=$(awk -v a="$b_eps" -v b="$s_eps" 'BEGIN {printf "%.1fx", a / b}')
	printf '%-6s  %-26s  %-34s  %-34s\n' "$c" \
		"${pg_tps[$c]} (p50 ${pg_p50[$c]} p99 ${pg_p99[$c]} ms)" \
		"$(printf '%.0f' "$s_eps") (${s_ratio}; p50 $(metric 1 "$c" p50-ms) p99 $(metric 1 "$c" p99-ms) ms)" \
		"$(printf '%.0f' "$b_eps") (${b_ratio}; p50 $(metric 100 "$c" p50-ms) p99 $(metric 100 "$c" p99-ms) ms)"
done
