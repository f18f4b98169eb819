#!/usr/bin/env bash
# make test: brings up the local stack (installing what is missing) and the secured stack beside
# it (ANNALS_SECURE=1: TLS-only PostgreSQL and SASL_SSL Kafka with ACLs, on ports of its own),
# then runs every test against the real PostgreSQL, Kafka and Mailpit: the library and services
# with the race detector, the configuration fuzzer for a few seconds, the deployment checks
# (compose file, Dockerfile build) and the stack's own tests (which start and stop a second
# stack on other ports, check the secured stack with Kafka's tools and psql, run the whole
# pipeline on it, and `make run`, plain and secured). test/secure runs twice: skipping with
# the plain stack's settings, then with the secured stack's.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
# Fuzzing budgets are counts, not durations: with a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" when the time runs out (golang/go#75804, fixed in 1.27).
FUZZTIME=${ANNALS_FUZZTIME:-20000x}

step() { printf '\n== %s\n' "$*"; }

step "stack"
scripts/stack.sh up
# The secured stack, for the tests of TLS, SASL and ACLs (test/stack/secure_stack_test.go, and
# the tests that read `ANNALS_SECURE=1 scripts/stack.sh env`).
ANNALS_SECURE=1 scripts/stack.sh up
# Prometheus and promtool, for the alert rules' and dashboards' test (not started here: the
# test runs its own).
scripts/stack.sh install prometheus
# Schemathesis, the OpenAPI fuzzer that the stack tests run over the services' documents.
scripts/stack.sh install schemathesis
# Python's msgpack and protobuf packages, the independent readers of the relay's payloads.
scripts/stack.sh install pyreaders
# Dex, the OpenID Connect provider the authentication tests start (built once, cached).
scripts/stack.sh install dex
# Jaeger v2, the trace backend the tracing test starts on ports of its own (built once, cached).
scripts/stack.sh install jaeger
# Redis, the server of pkg/events/redis's tests (Debian's package unpacked into the cache).
scripts/stack.sh install redis
scripts/stack.sh up redis
# FerretDB, the MongoDB wire-protocol server of pkg/events/mongodb's tests (built once, cached).
scripts/stack.sh install ferretdb
scripts/stack.sh up ferretdb
eval "$(scripts/stack.sh env)"

step "modules tidy; lint (gofmt, go vet, staticcheck)"
$GO mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }
(cd deploy && $GO mod tidy -diff) || { echo "deploy/go.mod/go.sum are not tidy: run (cd deploy && go mod tidy)" >&2; exit 1; }
(cd tools && $GO mod tidy -diff) || { echo "tools/go.mod/go.sum are not tidy: run (cd tools && go mod tidy)" >&2; exit 1; }
make --no-print-directory lint

step "unit and integration tests (race detector)"
$GO test -race -count=1 -timeout 10m ./...

step "secure transport: the clients and the pool against the secured stack (test/secure)"
# test/secure skips without the secured stack's settings, which the run above does not
# export: here they are, over the plain stack's (its Mailpit).
(eval "$(ANNALS_SECURE=1 scripts/stack.sh env)" && $GO test -race -count=1 -timeout 5m ./test/secure)

step "fuzz: configuration parser, command decoders, Avro, MessagePack and Protocol Buffers decoders ($FUZZTIME executions each)"
$GO test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$FUZZTIME" -fuzzminimizetime 0x ./internal/config
$GO test -run '^$' -fuzz '^FuzzDecodeCommands$' -fuzztime "$FUZZTIME" -fuzzminimizetime 0x ./services/writer/api
$GO test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$FUZZTIME" -fuzzminimizetime 0x ./pkg/schema
$GO test -run '^$' -fuzz '^FuzzDecodeMsgpack$' -fuzztime "$FUZZTIME" -fuzzminimizetime 0x ./pkg/schema
$GO test -run '^$' -fuzz '^FuzzDecodeProtobuf$' -fuzztime "$FUZZTIME" -fuzzminimizetime 0x ./pkg/schema

step "deployment: docker-compose.yml and Dockerfile"
(cd deploy && $GO test -count=1 -timeout 30m ./...)

step "local stack lifecycle and make run"
$GO test -tags stack -count=1 -timeout 40m ./test/stack
