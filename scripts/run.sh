#!/usr/bin/env bash
# make run: the whole pipeline on the local stack. Brings the stack up, builds the binaries,
# applies migrations, creates the topics, starts the four services, waits until each answers
# /readyz, prints where they are, and stops them on Ctrl-C (the stack keeps running; `make down`
# stops it). When Prometheus is installed (scripts/stack.sh install prometheus), it is started
# too, scraping the four services and evaluating the alert rules of deploy/prometheus/rules.
# With ANNALS_TRACING=1 it starts Jaeger v2 (scripts/stack.sh up jaeger; built once, a few
# minutes the first time) and the services send their OpenTelemetry traces to it. With
# EVENT_STORE_TYPE=redis or mongodb it starts the stack's Redis or FerretDB too, and the writer
# keeps its events there.
#
# ANNALS_SECURE=1 runs the pipeline on the secured stack instead (scripts/stack-secure.sh):
# PostgreSQL over TLS with sslmode=verify-full, Kafka over SASL_SSL with SCRAM-SHA-512 and
# ACLs, each service with its own identity (ANNALS_SECURE_<SERVICE>_PASSWORD of its env), the
# topics created by the cli identity; the plain stack still runs, for its Mailpit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOG_DIR=${ANNALS_RUN_LOG_DIR:-${ANNALS_STACK_DIR:-$ROOT/.stack}/logs}
TIMEOUT=${ANNALS_RUN_TIMEOUT:-60}

say() { printf 'run: %s\n' "$*"; }
fail() {
	printf 'run: error: %s\n' "$*" >&2
	exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

tracing=false
case ${ANNALS_TRACING:-} in
1 | true | yes) tracing=true ;;
"" | 0 | false | no) ;;
*) fail "ANNALS_TRACING=$ANNALS_TRACING: want 1 (trace into a local Jaeger) or 0" ;;
esac
secure=false
case ${ANNALS_SECURE:-} in
1 | true | yes) secure=true ;;
esac
# The plain stack, always: the secured one has no Mailpit or Prometheus of its own.
ANNALS_SECURE=0 scripts/stack.sh up
if $secure; then
	ANNALS_SECURE=1 scripts/stack.sh up
fi
if $tracing; then
	ANNALS_SECURE=0 scripts/stack.sh up jaeger
fi
prometheus=false
if command -v "${ANNALS_PROMETHEUS_BIN:-prometheus}" >/dev/null 2>&1; then
	# Optional: a Prometheus that cannot start (its port taken, say) does not stop the run.
	if ANNALS_SECURE=0 scripts/stack.sh up prometheus; then
		prometheus=true
	else
		say "Prometheus did not start (see above); the services run without it"
	fi
else
	say "Prometheus is not installed: no metrics are collected (scripts/stack.sh install prometheus installs it)"
fi
# The stack's env holds EVENT_SIGNING_KEY (made on first use in .stack/signing.key): the relay
# signs every record with it and the consumers accept only records signed with it. It holds
# API_KEYS too: the SHA-256 of the local API key, with every scope, that clients send (made on
# first use in .stack/api-key, mode 0600; ANNALS_API_KEY holds the key itself for bin/annals).
eval "$(ANNALS_SECURE=0 scripts/stack.sh env)"
if $tracing; then
	# The services' traces go to the local Jaeger's OTLP/HTTP receiver.
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:${ANNALS_JAEGER_OTLP_PORT:-4318}
	export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
fi
if $secure; then
	# Over the plain stack's settings (Mailpit's and Prometheus' stay): PostgreSQL and Kafka.
	eval "$(ANNALS_SECURE=1 scripts/stack.sh env)"
	# The identity of the operator's commands: cli, not the super user admin that env exports.
	export KAFKA_SASL_USERNAME=cli KAFKA_SASL_PASSWORD=$ANNALS_SECURE_CLI_PASSWORD
fi
# EVENT_STORE_TYPE=redis or mongodb: the writer's event store on the stack's Redis or FerretDB
# (installed once), unless EVENT_STORE_REDIS_URL or EVENT_STORE_MONGODB_URI names another; the
# read side stays on PostgreSQL.
case ${EVENT_STORE_TYPE:-postgresql} in
postgresql) ;;
redis)
	if [[ -z ${EVENT_STORE_REDIS_URL:-} ]]; then
		scripts/stack.sh install redis
		scripts/stack.sh up redis
		export EVENT_STORE_REDIS_URL=$REDIS_URL
	fi
	;;
mongodb)
	if [[ -z ${EVENT_STORE_MONGODB_URI:-} ]]; then
		scripts/stack.sh install ferretdb
		scripts/stack.sh up ferretdb
		export EVENT_STORE_MONGODB_URI=$MONGODB_URI
	fi
	;;
*) fail "EVENT_STORE_TYPE=$EVENT_STORE_TYPE: want postgresql, redis or mongodb" ;;
esac

# The writer records users' emails and names encrypted with data keys that the stack's own
# key wraps (PERSONAL_DATA_KEY_FILE, made on first use in .stack/personal-data.key: 32 random
# bytes in base64, readable by this user only), so that DELETE /v1/users/{id}/personal-data
# can erase them. A key for this machine's stack, never for a deployment.
personal_data_key=${ANNALS_STACK_DIR:-$ROOT/.stack}/personal-data.key
if [[ ! -s $personal_data_key ]]; then
	mkdir -p "$(dirname "$personal_data_key")"
	(umask 077 && head -c 32 /dev/urandom | base64 >"$personal_data_key.$$")
	mv -n "$personal_data_key.$$" "$personal_data_key" # two first uses at once keep one key
	rm -f "$personal_data_key.$$"
fi
chmod 400 "$personal_data_key"
export PERSONAL_DATA_KEY_FILE=$personal_data_key

say "building"
make --no-print-directory build >/dev/null

bin/annals migrate
bin/annals topics

# The auditor signs checkpoints of its hash chain with a local key, made on first use like the
# API key (.stack/audit-checkpoint.key, mode 0600), and appends them to a file beside it. A
# file whose checkpoints this database does not hold (usually: the stack's data was wiped) is
# moved aside, kept, and said so: the auditor would otherwise refuse the chain and not get
# ready.
checkpoint_dir=${ANNALS_STACK_DIR:-$ROOT/.stack}
mkdir -p "$checkpoint_dir" "$LOG_DIR"
checkpoint_name=audit-checkpoints
$secure && checkpoint_name=audit-checkpoints-secure
export AUDITOR_CHECKPOINT_KEY_FILE=$checkpoint_dir/audit-checkpoint.key
export AUDITOR_CHECKPOINT_PUBLIC_KEY_FILE=$checkpoint_dir/audit-checkpoint.pub
export AUDITOR_CHECKPOINT_FILE=$checkpoint_dir/$checkpoint_name.jsonl
if [[ ! -s $AUDITOR_CHECKPOINT_KEY_FILE ]]; then
	rm -f "$AUDITOR_CHECKPOINT_PUBLIC_KEY_FILE"
	bin/annals audit keygen -key "$AUDITOR_CHECKPOINT_KEY_FILE" -public-key "$AUDITOR_CHECKPOINT_PUBLIC_KEY_FILE" >/dev/null
fi
if [[ -s $AUDITOR_CHECKPOINT_FILE ]] && ! bin/annals audit verify -checkpoints "$AUDITOR_CHECKPOINT_FILE" >"$LOG_DIR/audit-verify.log" 2>&1; then
	aside=$AUDITOR_CHECKPOINT_FILE.$(date +%Y%m%dT%H%M%S).refused
	mv "$AUDITOR_CHECKPOINT_FILE" "$aside"
	say "the audit log does not hold the checkpoints of $AUDITOR_CHECKPOINT_FILE (see $LOG_DIR/audit-verify.log);"
	say "  moved aside to $aside: the auditor starts a new file"
fi
if $secure; then
	DATABASE_URL_REDACTED=$(printf '%s' "$DATABASE_URL" | sed -E 's#://([^:@/]*):[^@]*@#://\1:***@#')
fi

services=(writer projector notifier auditor)
declare -A ports=(
	[writer]=${ANNALS_WRITER_PORT:-8080}
	[projector]=${ANNALS_PROJECTOR_PORT:-8081}
	[notifier]=${ANNALS_NOTIFIER_PORT:-8082}
	[auditor]=${ANNALS_AUDITOR_PORT:-8083}
)
for s in "${services[@]}"; do
	if port_open "${ports[$s]}"; then
		var=ANNALS_${s^^}_PORT
		fail "port ${ports[$s]} for the $s is already in use by another process; stop it or set $var to a free port"
	fi
done

mkdir -p "$LOG_DIR"
if $prometheus; then
	# Prometheus's file_sd targets: the services of this run, each labelled with its name.
	targets=${ANNALS_STACK_DIR:-$ROOT/.stack}/prometheus/targets
	mkdir -p "$targets"
	{
		printf '['
		sep=
		for s in "${services[@]}"; do
			printf '%s{"targets":["127.0.0.1:%s"],"labels":{"service":"%s"}}' "$sep" "${ports[$s]}" "$s"
			sep=,
		done
		printf ']\n'
	} >"$targets/annals.json.tmp"
	mv "$targets/annals.json.tmp" "$targets/annals.json"
fi
declare -A pids=()
stop_services() {
	trap - INT TERM EXIT
	# Prometheus keeps running with the stack; it stops scraping the services that are gone.
	rm -f "${targets:-/nonexistent}/annals.json"
	local s
	for s in "${!pids[@]}"; do kill -TERM "${pids[$s]}" 2>/dev/null || true; done
	for s in "${!pids[@]}"; do wait "${pids[$s]}" 2>/dev/null || true; done
	say "services stopped (the stack keeps running: make down stops it)"
}
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for s in "${services[@]}"; do
	if $secure; then
		# Each service as its own Kafka identity.
		pw=ANNALS_SECURE_${s^^}_PASSWORD
		KAFKA_SASL_USERNAME=$s KAFKA_SASL_PASSWORD=${!pw} HTTP_ADDR=127.0.0.1:${ports[$s]} bin/annals-"$s" >"$LOG_DIR/$s.log" 2>&1 &
	else
		HTTP_ADDR=127.0.0.1:${ports[$s]} bin/annals-"$s" >"$LOG_DIR/$s.log" 2>&1 &
	fi
	pids[$s]=$!
done

deadline=$((SECONDS + TIMEOUT))
for s in "${services[@]}"; do
	url=http://127.0.0.1:${ports[$s]}/readyz
	until curl -fsS -o /dev/null "$url" 2>/dev/null; do
		kill -0 "${pids[$s]}" 2>/dev/null || fail "the $s exited during start-up; see $LOG_DIR/$s.log"
		((SECONDS < deadline)) || fail "the $s is not ready after ${TIMEOUT}s; see $LOG_DIR/$s.log"
		sleep 0.2
	done
	say "$(printf '%-9s ready  http://127.0.0.1:%s  (log %s)' "$s" "${ports[$s]}" "$LOG_DIR/$s.log")"
done

say "Mailpit UI      $MAILPIT_URL"
say "signing key     ${ANNALS_STACK_DIR:-$ROOT/.stack}/signing.key (EVENT_SIGNING_KEY of the four services)"
say "personal data   $personal_data_key (PERSONAL_DATA_KEY_FILE: wraps the users' data keys; losing it loses every email and name)"
key_file=${ANNALS_STACK_DIR:-$ROOT/.stack}/api-key
say "API key         $key_file (every scope; send it as Authorization: Bearer <key>)"
say "audit anchor    $AUDITOR_CHECKPOINT_FILE (check: bin/annals audit verify -checkpoints $AUDITOR_CHECKPOINT_FILE)"
if $prometheus; then
	say "Prometheus      $PROMETHEUS_URL  (alerts: $PROMETHEUS_URL/alerts)"
fi
if $tracing; then
	say "Jaeger          $JAEGER_URL  (a trace: $JAEGER_URL/api/traces/<trace id>; see Tracing in the README)"
fi
if $secure; then
	say "secured stack   PostgreSQL $DATABASE_URL_REDACTED (sslmode=verify-full), Kafka $KAFKA_BROKERS (SASL_SSL, SCRAM-SHA-512, ACLs)"
	say "identities      writer, projector, notifier, auditor: one per service; topics created as cli"
	say "the CLI         eval \"\$(ANNALS_SECURE=1 scripts/stack.sh env)\"; KAFKA_SASL_USERNAME=cli KAFKA_SASL_PASSWORD=\$ANNALS_SECURE_CLI_PASSWORD bin/annals lag"
fi
cat <<EOF
run: try it:
  curl -s -X POST http://127.0.0.1:${ports[writer]}/v1/users -H "Authorization: Bearer \$(cat $key_file)" -H 'Content-Type: application/json' -d '{"email":"ada@example.com","name":"Ada Lovelace"}'
  curl -s http://127.0.0.1:${ports[writer]}/v1/stats -H "Authorization: Bearer \$(cat $key_file)"
  curl -s http://127.0.0.1:${ports[projector]}/v1/users -H "Authorization: Bearer \$(cat $key_file)"
  curl -s http://127.0.0.1:${ports[writer]}/openapi.json
EOF
if $tracing; then
	cat <<EOF
run: one command's trace (a trace id of your own in the traceparent header; spans arrive within about a second):
  trace=\$(openssl rand -hex 16); curl -s -X POST http://127.0.0.1:${ports[writer]}/v1/users -H "traceparent: 00-\$trace-\$(openssl rand -hex 8)-01" -H "Authorization: Bearer \$(cat $key_file)" -H 'Content-Type: application/json' -d '{"email":"ada@example.com","name":"Ada Lovelace"}'
  curl -s $JAEGER_URL/api/traces/\$trace | jq -r '.data[0] as \$t | \$t.spans[] | [\$t.processes[.processID].serviceName, .operationName] | @tsv'
EOF
fi
say "all four services are ready; Ctrl-C stops them."

# Wait until Ctrl-C, or until a service exits by itself (which is an error).
set +e
wait -n "${pids[@]}"
rc=$?
set -e
for s in "${services[@]}"; do
	if ! kill -0 "${pids[$s]}" 2>/dev/null; then
		unset "pids[$s]"
		fail "the $s exited (status $rc); see $LOG_DIR/$s.log"
	fi
done
