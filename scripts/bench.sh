#!/usr/bin/env bash
# make bench: the whole pipeline against the physical limits of the servers it runs on, in one
# run. Brings the local stack up, builds the services and the CLI, runs `bin/annals bench`
# (cmd/annals/bench: pgbench, Kafka's ProducerPerformance, ConsumerPerformance and
# EndToEndLatency, plain SMTP, redis-benchmark and MongoDB inserts; then Annals' appends, commands over HTTP, relay, consumers and
# end-to-end latency, each with its ratio to its baseline and the targets met or missed), and
# draws the latency plot from the results with tools/benchplot.
#
#   scripts/bench.sh [--quick] [other flags of annals bench]
#
# The table goes to stdout, progress lines to stderr. ANNALS_BENCH_OUT names the folder of
# results.json, latency.png and the run's logs (default bench/). --quick (make bench-quick)
# runs short measurements on small pre-fills in about a minute and a half; the full run takes
# five to six minutes on two cores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
OUT=${ANNALS_BENCH_OUT:-$ROOT/bench}

scripts/stack.sh up >&2
# The other event stores, each measured beside its server's baseline.
scripts/stack.sh install redis ferretdb >&2
scripts/stack.sh up redis ferretdb >&2
eval "$(scripts/stack.sh env)"
make --no-print-directory build >&2
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

bin/annals bench --out "$OUT" "$@"
# The plotting library lives in the tools module, out of the main module's dependencies.
(cd tools && $GO run ./benchplot -in "$OUT/results.json" -out "$OUT/latency.png")
echo "plot: $OUT/latency.png"
