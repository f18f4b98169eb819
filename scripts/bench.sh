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
#
# Then the consumers against the physical baseline of the same broker: the consumer runtime
# with a no-op handler (BenchmarkConsumerNoOp: fetch, decode, lanes, commits) and the projector
# (BenchmarkProjector: the same runtime applying to PostgreSQL read models, inbox included),
# each over 100,000 events in topics of 12 partitions, beside Kafka's own ConsumerPerformance
# reading 100,000 records of the same size (written by ProducerPerformance, acks=all) from a
# fresh topic with a fresh group. The group join is included in every figure.
#
# `scripts/bench.sh consumers` runs only that part; `scripts/bench.sh consumer-baseline` only
# ConsumerPerformance (records of ANNALS_BENCH_RECORD_SIZE bytes, default 300).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
MODE=${1:-all}
case $MODE in
all | consumers | consumer-baseline) ;;
*)
	echo "usage: $0 [consumers | consumer-baseline]" >&2
	exit 2
	;;
esac
DURATION=${ANNALS_BENCH_TIME:-10s}
SECS=${DURATION%s}

scripts/stack.sh up >/dev/null
eval "$(scripts/stack.sh env)"

work=$(mktemp -d)
pp_topic=
cp_topic=
cp_group=
cleanup() {
	rm -rf "$work"
	if [[ $MODE == all ]]; then
		psql "$DATABASE_URL" -qXc "drop schema if exists annals_pgbench cascade" >/dev/null 2>&1 || true
	fi
	if [[ -n $cp_group ]]; then
		java -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BROKERS" \
			--delete --group "$cp_group" >/dev/null 2>&1 || echo "bench: could not delete group $cp_group" >&2
	fi
	local topic
	for topic in $pp_topic $cp_topic; do
		java -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
			--delete --topic "$topic" >/dev/null 2>&1 || echo "bench: could not delete topic $topic" >&2
	done
}
trap cleanup EXIT

kafka_tool() { # kafka_tool CLASS ARGS...: one of Kafka's tools (org.apache.kafka.tools.CLASS)
	local class=$1
	shift
	java -Xms128m -Xmx512m -cp "$KAFKA_LIBS/*" "org.apache.kafka.tools.$class" "$@"
}

# consumer_perf_baseline TOPIC MESSAGES: Kafka's ConsumerPerformance reads MESSAGES records of
# TOPIC from the start with a fresh group and prints its report. It sets cp_msgs_per_sec and
# cp_mb_per_sec (nMsg.sec and MB.sec: the whole run, joining the group included) and
# cp_fetch_msgs_per_sec and cp_fetch_mb_per_sec (fetch.nMsg.sec and fetch.MB.sec: the
# fetching alone, after the group's rebalance).
consumer_perf_baseline() {
	local topic=$1 messages=$2 out=$work/cp-$1.out
	cp_group=annals-bench-cp-$$-$(date +%s)
	echo "bench: ConsumerPerformance, $messages records of $topic, group $cp_group" >&2
	kafka_tool ConsumerPerformance --bootstrap-server "$KAFKA_BROKERS" --topic "$topic" --messages "$messages" \
		--group "$cp_group" --timeout 60000 >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
	cat "$out" >&2
	if kafka_tool consumer.group.ConsumerGroupCommand --bootstrap-server "$KAFKA_BROKERS" --delete --group "$cp_group" >/dev/null 2>&1; then
		cp_group=
	fi # else the exit trap tries again
	cp_msgs_per_sec=$(cp_field "$out" nMsg.sec)
	cp_mb_per_sec=$(cp_field "$out" MB.sec)
	cp_fetch_msgs_per_sec=$(cp_field "$out" fetch.nMsg.sec)
	cp_fetch_mb_per_sec=$(cp_field "$out" fetch.MB.sec)
	local consumed
	consumed=$(cp_field "$out" data.consumed.in.nMsg)
	[[ -n $cp_msgs_per_sec && -n $cp_mb_per_sec && -n $consumed ]] ||
		{ echo "bench: ConsumerPerformance reported no figures" >&2; exit 1; }
	((consumed >= messages)) ||
		{ echo "bench: ConsumerPerformance read $consumed of $messages records before its timeout" >&2; exit 1; }
}
cp_field() { # cp_field FILE COLUMN: a column of ConsumerPerformance's report (a header line, then values)
	awk -F ', *' -v col="$2" '
		idx { print $idx; exit }
		$1 == "start.time" { for (i = 1; i <= NF; i++) if ($i == col) idx = i }' "$1"
}

# consumer_baseline SIZE: a fresh topic filled with 100,000 records of SIZE bytes by
# ProducerPerformance (acks=all), then read by consumer_perf_baseline.
consumer_baseline() {
	[[ -f $KAFKA_LIBS/.complete ]] || { echo "bench: Kafka's jars not found in $KAFKA_LIBS (scripts/stack.sh install)" >&2; exit 1; }
	local partitions=${KAFKA_TOPIC_PARTITIONS:-12} records=100000 size=$1
	cp_topic=annals-bench-cp-$$-$(date +%s)
	kafka_tool TopicCommand --bootstrap-server "$KAFKA_BROKERS" --create --topic "$cp_topic" \
		--partitions "$partitions" --replication-factor 1 >/dev/null
	echo "bench: ProducerPerformance fills $cp_topic ($partitions partitions): $records records of $size bytes, acks=all" >&2
	kafka_tool ProducerPerformance --topic "$cp_topic" --num-records "$records" --record-size "$size" --throughput -1 \
		--producer-props bootstrap.servers="$KAFKA_BROKERS" acks=all >"$work/cp-fill.out" 2>&1 ||
		{ cat "$work/cp-fill.out" >&2; exit 1; }
	tail -1 "$work/cp-fill.out" >&2
	consumer_perf_baseline "$cp_topic" "$records"
	printf 'ConsumerPerformance: %.0f msg/s (%s MB/s; fetching alone, after the group join: %.0f msg/s, %s MB/s), %s records of %s bytes, %s partitions\n' \
		"$cp_msgs_per_sec" "$cp_mb_per_sec" "$cp_fetch_msgs_per_sec" "$cp_fetch_mb_per_sec" "$records" "$size" "$partitions"
}

if [[ $MODE == consumer-baseline ]]; then
	consumer_baseline "${ANNALS_BENCH_RECORD_SIZE:-300}"
	exit 0
fi

go_metric() { # go_metric FILE BENCHMARK UNIT: a figure of a go test -bench line
	awk -v name="$2" -v unit="$3" '
		index($1, name "-") == 1 || $1 == name { for (i = 2; i < NF; i++) if ($(i + 1) == unit) { print $i; exit } }' "$1"
}

# consumers: the runtime and the projector beside ConsumerPerformance, as described above.
consumers() {
	echo >&2
	echo "bench: consumer runtime, no-op handler, 100,000 events, 3 fresh groups (go test -bench BenchmarkConsumerNoOp -benchtime 3x)" >&2
	$GO test -run '^$' -bench '^BenchmarkConsumerNoOp$' -benchtime 3x -count 1 -timeout 30m ./pkg/consume/ | tee "$work/consume.out" >&2
	local noop_eps rec_bytes proj_eps
	noop_eps=$(go_metric "$work/consume.out" BenchmarkConsumerNoOp events/s)
	rec_bytes=$(go_metric "$work/consume.out" BenchmarkConsumerNoOp record-bytes/event)
	[[ -n $noop_eps && -n $rec_bytes ]] || { echo "bench: BenchmarkConsumerNoOp reported no figures" >&2; exit 1; }
	consumer_baseline "$(printf '%.0f' "$rec_bytes")" >"$work/cp.line"
	cat "$work/cp.line" >&2
	echo "bench: projector, 100,000 events into fresh read models (go test -bench BenchmarkProjector -benchtime 1x)" >&2
	$GO test -run '^$' -bench '^BenchmarkProjector$' -benchtime 1x -count 1 -timeout 30m ./services/projector/readmodel/ | tee "$work/projector.out" >&2
	proj_eps=$(go_metric "$work/projector.out" BenchmarkProjector events/s)
	[[ -n $proj_eps ]] || { echo "bench: BenchmarkProjector reported no figures" >&2; exit 1; }
	printf '
consumers: Kafka -> handler, records of %.0f bytes (value, key, headers), 12 partitions, group join included
' "$rec_bytes"
	printf '%-34s  %-22s  %s
' "" "events/s" "vs ConsumerPerformance ($(printf '%.0f' "$cp_msgs_per_sec") msg/s)"
	printf '%-34s  %-22s  %s
' "runtime, no-op handler" "$(printf '%.0f' "$noop_eps")" 		"$(awk -v a="$noop_eps" -v b="$cp_msgs_per_sec" 'BEGIN {printf "%.0f%%", 100 * a / b}')"
	printf '%-34s  %-22s  %s
' "projector (read models + inbox)" "$(printf '%.0f' "$proj_eps")" 		"$(awk -v a="$proj_eps" -v b="$cp_msgs_per_sec" 'BEGIN {printf "%.0f%%", 100 * a / b}')"
}

if [[ $MODE == consumers ]]; then
	consumers
	exit 0
fi

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r | head -1)
PGBENCH=${PGBENCH:-$PGBIN/pgbench}
[[ -x $PGBENCH ]] || { echo "bench: pgbench not found (PostgreSQL's server package ships it)" >&2; exit 1; }

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

relay_metric() { go_metric "$work/relay.out" "$@"; } # relay_metric BENCHMARK UNIT

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

consumers
