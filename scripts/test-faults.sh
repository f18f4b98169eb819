#!/usr/bin/env bash
# make test-faults: the fault tests, several rounds each, against the local stack (started
# when needed): `annals relay` killed with SIGKILL while events are appended, and the broker
# stopped for 10 seconds and started again under a running relay (every event must reach
# Kafka, in order per stream; duplicates are counted); the projector, notifier and auditor
# killed with SIGKILL mid-run and started again (nothing lost, no effect twice); a second
# notifier joining its group while the first sends slowly (no email twice).
# ANNALS_FAULT_ROUNDS sets the rounds per test that repeats (default here 5).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
export ANNALS_FAULT_ROUNDS=${ANNALS_FAULT_ROUNDS:-5}

scripts/stack.sh up
eval "$(scripts/stack.sh env)"
# The broker test starts the broker again itself; this covers a run that was interrupted.
trap 'scripts/stack.sh up kafka >/dev/null' EXIT

echo "== fault tests (relay, projector, notifier, auditor), $ANNALS_FAULT_ROUNDS rounds each"
$GO test -tags stack -count=1 -run 'TestRelay_|_SIGKILL' -timeout 90m -v ./test/stack

echo "== rebalances of the notifier's group under a slow mail server, $ANNALS_FAULT_ROUNDS rounds"
$GO test -count="$ANNALS_FAULT_ROUNDS" -run 'TestNotifier_RebalanceUnderSlowMail' -timeout 30m -v ./services/notifier/notify
