#!/usr/bin/env bash
# make bench: the event store's appends against the physical baseline of the same PostgreSQL,
# measured in one run: pgbench with a one-INSERT-per-transaction script, then single-event and
# 100-event appends through pkg/events/postgres, at concurrency 1 and 8. Prints the figures
# and the ratios. ANNALS_BENCH_TIME sets each measurement's duration (default 10s).
#
# Then the relay against the physical baseline of the same Kafka broker: a relay draining an
# outbox of 100,000 events (BenchmarkRelayDrain) beside Kafka's own ProducerPerformance
# sending 100,000 records of the same size as fast as it can, and the relay's commit-to-ack
# latency at a steady 1,000 events/s (BenchmarkRelayLatency) beside ProducerPerformance's
# send-to-ack latency at 1,000 records/s. Both use acks=all and topics with
# KAFKA_TOPIC_PARTITIONS partitions (default 12, as the services create them).
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
pp_topic=
cleanup() {
	rm -rf "$work"
	psql "$DATABASE_URL" -qXc "drop schema if exists annals_pgbench cascade" >/dev/null 2>&1 || true
	if [[ -n $pp_topic ]]; then
		java -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
			--delete --topic "$pp_topic" >/dev/null 2>&1 || echo "bench: could not delete topic $pp_topic" >&2
	fi
}
trap cleanup EXIT

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

# ---------------------------------------------------------------- relay

PARTITIONS=${KAFKA_TOPIC_PARTITIONS:-12}
export KAFKA_TOPIC_PARTITIONS=$PARTITIONS
[[ -f $KAFKA_LIBS/.complete ]] || { echo "bench: Kafka's jars not found in $KAFKA_LIBS (scripts/stack.sh install)" >&2; exit 1; }
kafka_tool() { # kafka_tool CLASS ARGS...: one of Kafka's tools (org.apache.kafka.tools.CLASS)
	local class=$1
	shift
	java -Xms128m -Xmx512m -cp "$KAFKA_LIBS/*" "org.apache.kafka.tools.$class" "$@"
}

relay_metric() { # relay_metric BENCHMARK UNIT
	awk -v name="$1" -v unit="$2" '
		index($1, name "-") == 1 || $1 == name { for (i = 2; i < NF; i++) if ($(i + 1) == unit) { print $i; exit } }' "$work/relay.out"
}

echo >&2
echo "bench: relay drain, 100,000 events (go test -bench BenchmarkRelayDrain -benchtime 1x)" >&2
$GO test -run '^$' -bench '^BenchmarkRelayDrain$' -benchtime 1x -count 1 -timeout 30m ./pkg/relay/ | tee "$work/relay.out" >&2
drain_eps=$(relay_metric BenchmarkRelayDrain events/s)
avro_bytes=$(relay_metric BenchmarkRelayDrain avro-bytes/event)
record_bytes=$(relay_metric BenchmarkRelayDrain record-bytes/event)
[[ -n $drain_eps && -n $record_bytes ]] || { echo "bench: BenchmarkRelayDrain reported no figures" >&2; exit 1; }
# ProducerPerformance's records have no key and no headers: they get the relay records' whole
# size (Avro value, key and headers) as their value, so both move the same bytes.
pp_size=$(printf '%.0f' "$record_bytes")

pp_topic=annals-bench-pp-$$-$(date +%s)
kafka_tool TopicCommand --bootstrap-server "$KAFKA_BROKERS" --create --topic "$pp_topic" \
	--partitions "$PARTITIONS" --replication-factor 1 >/dev/null

pp_run() { # pp_run NAME NUM-RECORDS THROUGHPUT
	echo "bench: ProducerPerformance, $2 records of $pp_size bytes, throughput $3, acks=all" >&2
	kafka_tool ProducerPerformance --topic "$pp_topic" --num-records "$2" --record-size "$pp_size" --throughput "$3" \
		--producer-props bootstrap.servers="$KAFKA_BROKERS" acks=all >"$work/pp-$1.out" 2>&1 ||
		{ cat "$work/pp-$1.out" >&2; exit 1; }
	tail -1 "$work/pp-$1.out" >&2
}
pp_field() { # pp_field NAME WORD-AFTER-THE-FIGURE: a figure of the final summary line
	awk -v word="$2" '/records sent/ { last = $0 } END {
		n = split(last, f, /[ ,]+/); for (i = 1; i < n; i++) if (f[i + 1] == word || f[i + 2] == word && f[i + 1] == "ms") { print f[i]; exit } }' "$work/pp-$1.out"
}
pp_run max 100000 -1
pp_run steady 10000 1000

echo "bench: relay latency at 1,000 events/s for 10s (go test -bench BenchmarkRelayLatency -benchtime 1x)" >&2
$GO test -run '^$' -bench '^BenchmarkRelayLatency$' -benchtime 1x -count 1 -timeout 30m ./pkg/relay/ | tee -a "$work/relay.out" >&2

pp_eps=$(pp_field max records/sec)
printf '\nrelay: outbox -> Kafka, Avro values of %.0f bytes (%s bytes with key and headers), acks=all, %s partitions\n' \
	"$avro_bytes" "$pp_size" "$PARTITIONS"
printf '%-22s  %-30s  %-36s  %s\n' "" relay "ProducerPerformance ($pp_size B)" "relay vs PP"
printf '%-22s  %-30s  %-36s  %s\n' "throughput" "$(printf '%.0f' "$drain_eps") events/s (100k drain)" \
	"$(printf '%.0f' "$pp_eps") records/s (100k, unthrottled)" \
	"$(awk -v a="$drain_eps" -v b="$pp_eps" 'BEGIN {printf "%.0f%%", 100 * a / b}')"
printf '%-22s  %-30s  %-36s  %s\n' "latency at 1,000/s" \
	"p50 $(relay_metric BenchmarkRelayLatency p50-ms) p99 $(relay_metric BenchmarkRelayLatency p99-ms) ms" \
	"p50 $(pp_field steady 50th) p99 $(pp_field steady 99th) ms ($(printf '%.0f' "$(pp_field steady records/sec)")/s)" \
	"(relay: append return -> ack, $(printf '%.0f' "$(relay_metric BenchmarkRelayLatency events/s)")/s)"
