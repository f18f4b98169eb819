#!/usr/bin/env bash
# make test-faults: the fault tests, several rounds each, against the local stack (started
# when needed): `annals relay` killed with SIGKILL while events are appended, and the broker
# stopped for 10 seconds and started again under a running relay (every event must reach
# Kafka, in order per stream; duplicates are counted); streams held for an event without a
# schema while `annals relay` is killed (nothing of them past the held event is published,
# every other stream is, and `annals outbox skip` releases them); 300 orders of 300 KB placed
# while a broker of the test's own is down, drained with the writer under its 256 MiB memory
# limit; the projector, notifier and auditor killed with SIGKILL mid-run and started again
# (nothing lost, no effect twice); records the relay did not publish, written with Kafka's
# console producer, set aside by every group; a broker of the test's own killed
# with SIGKILL under the writer and the notifier and started again (every email arrives,
# nothing is dead-lettered, no stream is blocked); a second notifier joining its group while the first sends
# slowly (no email twice); `annals relay` killed with SIGKILL on the Redis and the MongoDB
# event stores (EVENT_STORE_TYPE); the relay's contract on the MongoDB store at full size
# (ANNALS_MONGODB_FULL_CONTRACT=1: make test runs its long parts with fewer streams).
# ANNALS_FAULT_ROUNDS sets the rounds per test that repeats (default here 5).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
export ANNALS_FAULT_ROUNDS=${ANNALS_FAULT_ROUNDS:-5}

scripts/stack.sh up
# The event stores other than PostgreSQL: Redis and FerretDB (installed once).
scripts/stack.sh install redis
scripts/stack.sh up redis
scripts/stack.sh install ferretdb
scripts/stack.sh up ferretdb
eval "$(scripts/stack.sh env)"
# The broker test starts the broker again itself; this covers a run that was interrupted.
trap 'scripts/stack.sh up kafka >/dev/null' EXIT

echo "== fault tests (relay, projector, notifier, auditor, hostile records), $ANNALS_FAULT_ROUNDS rounds each"
$GO test -tags stack -count=1 -run 'TestRelay_|_SIGKILL|TestTrust_|TestNotifier_BrokerSIGKILL' -timeout 120m -v ./test/stack

echo "== rebalances of the notifier's group under a slow mail server, $ANNALS_FAULT_ROUNDS rounds"
$GO test -count="$ANNALS_FAULT_ROUNDS" -run 'TestNotifier_RebalanceUnderSlowMail' -timeout 30m -v ./services/notifier/notify

echo "== the relay's contract on the MongoDB store (FerretDB), at full size"
ANNALS_MONGODB_FULL_CONTRACT=1 $GO test -race -count=1 -run 'TestOutbox_Contract' -timeout 30m -v ./pkg/events/mongodb
