#!/usr/bin/env bash
# Local stack without Docker: a private PostgreSQL cluster, an Apache Kafka broker (KRaft,
# combined broker and controller) and Mailpit, run as plain processes on loopback.
#
#   scripts/stack.sh install   install or download what is missing (cached), start nothing
#   scripts/stack.sh up        install, start what is not running, wait for health
#   scripts/stack.sh down      stop what this stack started (pid files), nothing else
#   scripts/stack.sh up|down postgres|kafka|mailpit ...   the same for some components
#   scripts/stack.sh install|up|down prometheus   Prometheus (Debian package), not part of the
#                              default set: `make run` starts it when it is installed, with the
#                              alert rules of deploy/prometheus/rules and the scrape targets that
#                              run.sh writes to .stack/prometheus/targets/
#   scripts/stack.sh install schemathesis   Schemathesis, the OpenAPI fuzzer of the tests, in a
#                              virtualenv in the cache (pip from PyPI); never started
#   scripts/stack.sh install pyreaders   Python's msgpack, protobuf, grpcio-tools and
#                              confluent-kafka in a virtualenv in the cache: the independent
#                              readers of the relay's payloads in pkg/relay's tests
#   scripts/stack.sh install dex   Dex, the OpenID Connect provider the authentication tests
#                              start (never a server of the stack): built once from source into
#                              the cache; DEX_BIN in `env` names it
#   scripts/stack.sh install|up|down jaeger   Jaeger v2, a trace backend (OTLP in, query API
#                              out, spans in memory), not part of the default set: built once
#                              from the version tools/go.mod names into the cache (JAEGER_BIN in
#                              `env`); `ANNALS_TRACING=1 make run` starts it and sends the
#                              services' traces to it; the tracing test starts one of its own
#   scripts/stack.sh install|up|down redis   Redis (Debian's redis-server, unpacked into the
#                              cache with apt-get download: nothing system-wide changes), not part
#                              of the default set: the server of pkg/events/redis's tests, on its
#                              own loopback port with the append-only file on (REDIS_URL in `env`)
#   scripts/stack.sh install|up|down ferretdb   FerretDB, a server of MongoDB's wire protocol on an
#                              embedded SQLite backend, for pkg/events/mongodb: built once from the
#                              tools module into the cache, not part of the default set; `env`
#                              exports MONGODB_URI
#   scripts/stack.sh tool redis-benchmark|redis-cli ARGS...   Redis's own tools from the cache
#                              (REDIS_BENCHMARK in `env` names the first, for make bench)
#   scripts/stack.sh status    what runs where
#   scripts/stack.sh env       shell exports for clients (DATABASE_URL, KAFKA_BROKERS, ...,
#                              EVENT_SIGNING_KEY, the stack's own key, made in .stack/signing.key,
#                              and API_KEYS / ANNALS_API_KEY, the stack's API key with every
#                              scope, made in .stack/api-key)
#
# ANNALS_SECURE=1 switches every command to the secured stack, which runs beside the plain one
# on ports and in a folder of its own (.stack/secure): Kafka with only a SASL_SSL listener
# (SCRAM-SHA-512, an identity and least-privilege ACLs per service) and PostgreSQL with TLS only,
# both with certificates the stack makes. scripts/stack-secure.sh holds its parts and says more;
#   ANNALS_SECURE=1 scripts/stack.sh up|down|status|env   as above, for postgres and kafka
#   ANNALS_SECURE=1 scripts/stack.sh acls [--remove] PREFIX...   grant (or take back) the
#                              services' ACLs on the topics and groups of a topic prefix
#
# Everything is configurable through the environment; see the defaults below.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# BASE_DIR is the plain stack's folder; STATE_DIR the folder of the stack this run works on
# (the secured stack's is BASE_DIR/secure). The signing key and the API key are the clients' and
# live in BASE_DIR for both.
BASE_DIR=${ANNALS_STACK_DIR:-$ROOT/.stack}
STATE_DIR=$BASE_DIR
CACHE_DIR=${ANNALS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/annals}
PG_PORT=${ANNALS_PG_PORT:-55432}
PG_PORT_VAR=ANNALS_PG_PORT
PG_USER=annals
PG_PASSWORD=annals
PG_CLIENT_ENV=()
PG_SHARED_BUFFERS=256MB
PG_DB=annals
KAFKA_PORT=${ANNALS_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${ANNALS_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_PORT_VAR=ANNALS_KAFKA_PORT
KAFKA_CONTROLLER_PORT_VAR=ANNALS_KAFKA_CONTROLLER_PORT
KAFKA_VERSION=${ANNALS_KAFKA_VERSION:-4.1.1}
KAFKA_HEAP=${ANNALS_KAFKA_HEAP:--Xms256m -Xmx1g}
KAFKA_FORMAT_ARGS=() # more arguments of the storage format (the secured stack's SCRAM users)
SMTP_PORT=${ANNALS_SMTP_PORT:-1025}
MAILPIT_PORT=${ANNALS_MAILPIT_PORT:-8025}
MAILPIT_VERSION=${ANNALS_MAILPIT_VERSION:-v1.33.1}
PROMETHEUS_PORT=${ANNALS_PROMETHEUS_PORT:-9090}
REDIS_PORT=${ANNALS_REDIS_PORT:-56379}
# appendfsync always: an append the store acknowledged survives a power loss, as a PostgreSQL
# commit does (see pkg/events/redis's doc for everysec and no, and what they risk).
REDIS_APPENDFSYNC=${ANNALS_REDIS_APPENDFSYNC:-always}
# Dex v2.45.1. Its tags are v2 tags on a v0/v1 module path and its go.mod replaces a module of
# its own, so `go install ...@v2.45.1` cannot work: it is built from the tag's pseudo-version
# in a throwaway module instead (install_dex).
DEX_VERSION=${ANNALS_DEX_VERSION:-v0.0.0-20260303133905-11d2eeb52b42}
# Jaeger v2 (cmd/jaeger of github.com/jaegertracing/jaeger), at the version the tools module
# requires it: `go get -tool` there changes it.
JAEGER_VERSION=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2; exit }' "$ROOT/tools/go.mod")
JAEGER_OTLP_PORT=${ANNALS_JAEGER_OTLP_PORT:-4318}           # OTLP over HTTP
JAEGER_OTLP_GRPC_PORT=${ANNALS_JAEGER_OTLP_GRPC_PORT:-4317} # OTLP over gRPC
JAEGER_PORT=${ANNALS_JAEGER_PORT:-16686}                    # query API (and UI)
JAEGER_QUERY_GRPC_PORT=${ANNALS_JAEGER_QUERY_GRPC_PORT:-16685}
JAEGER_MAX_TRACES=${ANNALS_JAEGER_MAX_TRACES:-20000}
# FerretDB, the version that tools/go.mod pins (a tool of that module, never of the root one).
FERRETDB_VERSION=${ANNALS_FERRETDB_VERSION:-v1.24.2}
FERRETDB_PORT=${ANNALS_FERRETDB_PORT:-27117}
TIMEOUT=${ANNALS_STACK_TIMEOUT:-120}

KAFKA_LIBS=$CACHE_DIR/kafka-$KAFKA_VERSION/libs
MAILPIT_BIN=$CACHE_DIR/bin/mailpit-$MAILPIT_VERSION
DEX_BIN=$CACHE_DIR/bin/dex-$DEX_VERSION
JAEGER_BIN=$CACHE_DIR/bin/jaeger-$JAEGER_VERSION
FERRETDB_BIN=$CACHE_DIR/bin/ferretdb-$FERRETDB_VERSION

MAILPIT_DIR=$STATE_DIR/mailpit
PROMETHEUS_DIR=$STATE_DIR/prometheus
JAEGER_DIR=$STATE_DIR/jaeger
REDIS_DIR=$STATE_DIR/redis
REDIS_ROOT=$CACHE_DIR/redis
FERRETDB_DIR=$STATE_DIR/ferretdb

SECURE=false
case ${ANNALS_SECURE:-} in
1 | true | yes) SECURE=true ;;
"" | 0 | false | no) ;;
*)
	printf 'stack: error: ANNALS_SECURE=%s: want 1 (the secured stack) or 0\n' "$ANNALS_SECURE" >&2
	exit 2
	;;
esac
LABEL=stack
if $SECURE; then
	# shellcheck source=scripts/stack-secure.sh
	source "$ROOT/scripts/stack-secure.sh"
fi

PG_DIR=$STATE_DIR/postgres
KAFKA_DIR=$STATE_DIR/kafka

say() { printf '%s: %s\n' "$LABEL" "$*"; }
fail() {
	printf '%s: error: %s\n' "$LABEL" "$*" >&2
	exit 1
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for DESCRIPTION LOG COMMAND...: run COMMAND until it succeeds or the deadline passes.
wait_for() {
	local what=$1 log=$2
	shift 2
	local deadline=$((SECONDS + TIMEOUT))
	until "$@"; do
		if ((SECONDS >= deadline)); then
			fail "$what did not become healthy within ${TIMEOUT}s (ANNALS_STACK_TIMEOUT); see $log"
		fi
		sleep 0.2
	done
}

# require_free_port PORT VARIABLE COMPONENT: fail clearly when another process holds the port.
require_free_port() {
	if port_open "$1"; then
		fail "port $1 for $3 is already in use by another process; stop it or set $2 to a free port"
	fi
}

# pid_alive PIDFILE MARKER: the pid file names a live process whose command line contains
# MARKER. A pid file that fails this test is stale: it is removed and not trusted.
pid_alive() {
	local file=$1 marker=$2 pid
	[[ -f $file ]] || return 1
	pid=$(<"$file")
	if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"; then
		return 0
	fi
	say "removing stale pid file $file (pid ${pid:-?} is not $marker)"
	rm -f "$file"
	return 1
}

# started PIDFILE: the process that start_daemon just started still runs (it is not gone, nor
# a zombie). While a program starts, this is the test of its life rather than pid_alive's:
# while the shell that wrote the pid file turns into the program (exec), its command line
# reads empty for a moment, and the new pid file would look stale.
started() {
	local pid state
	pid=$(<"$1") || return 1
	state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || return 1 # after "pid (comm) "
	state=${state%% *}
	[[ -n $state && $state != Z ]]
}

# stop_pid PIDFILE MARKER NAME: SIGTERM, wait, then SIGKILL the process of a valid pid file.
stop_pid() {
	local file=$1 marker=$2 name=$3 pid
	pid_alive "$file" "$marker" || return 0
	pid=$(<"$file")
	say "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			say "$name did not stop within 30s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.1
	done
	rm -f "$file"
}

# start_daemon PIDFILE LOG COMMAND...: start COMMAND in its own session, detached from the
# terminal (Ctrl-C in the caller's shell does not reach it), recording its pid.
start_daemon() {
	local pidfile=$1 log=$2
	shift 2
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null &
	local deadline=$((SECONDS + 10))
	until [[ -s $pidfile ]]; do
		((SECONDS < deadline)) || fail "could not start $1; see $log"
		sleep 0.05
	done
}

# ---------------------------------------------------------------- PostgreSQL

pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
		[[ -x $d/initdb && -x $d/pg_ctl ]] && {
			echo "$d"
			return 0
		}
	done
	command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
	return 1
}

install_postgres() {
	pg_bindir >/dev/null && return 0
	if [[ $(id -u) -ne 0 ]]; then
		fail "PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql) and run again"
	fi
	say "installing PostgreSQL server binaries (apt-get install postgresql)"
	# Install the binaries only: no cluster of the distribution's own on port 5432.
	mkdir -p /etc/postgresql-common
	[[ -f /etc/postgresql-common/createcluster.conf ]] ||
		echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq postgresql >/dev/null
	pg_bindir >/dev/null || fail "apt-get install postgresql did not provide initdb"
}

# PostgreSQL refuses to run as root; as root, the cluster belongs to the postgres user.
pg_owner() {
	if [[ $(id -u) -ne 0 ]]; then
		id -un
	elif id postgres >/dev/null 2>&1; then
		echo postgres
	else
		useradd --system --no-create-home --shell /usr/sbin/nologin annals-pg >/dev/null 2>&1 || true
		echo annals-pg
	fi
}

as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u "$(pg_owner)" -- "$@"
	else
		"$@"
	fi
}

pg_running() {
	[[ -f $PG_DIR/data/postmaster.pid ]] || return 1
	as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1
}

# pg_client COMMAND ARGS...: run a PostgreSQL client with the stack's password (and, for the
# secured stack, its TLS settings: PG_CLIENT_ENV).
pg_client() { env PGPASSWORD="$PG_PASSWORD" "${PG_CLIENT_ENV[@]}" "$@"; }

pg_ready() {
	pg_client "$(pg_bindir)/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" \
		-XAtqc 'select 1' >/dev/null 2>&1
}

up_postgres() {
	install_postgres
	local bin owner
	bin=$(pg_bindir)
	owner=$(pg_owner)
	if pg_running; then
		wait_for "PostgreSQL" "$PG_DIR/postgres.log" pg_ready
		say "postgres already running on 127.0.0.1:$PG_PORT"
		return 0
	fi
	require_free_port "$PG_PORT" "$PG_PORT_VAR" PostgreSQL
	mkdir -p "$PG_DIR"
	if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
		say "initialising a PostgreSQL cluster in $PG_DIR/data"
		rm -rf "$PG_DIR/data"
		local pwfile=$PG_DIR/pwfile
		(umask 077 && printf '%s\n' "$PG_PASSWORD" >"$pwfile")
		[[ $(id -u) -eq 0 ]] && chown -R "$owner" "$PG_DIR"
		as_pg test -w "$PG_DIR" ||
			fail "user $owner cannot write $PG_DIR (every parent folder must be searchable by it); set ANNALS_STACK_DIR to another folder"
		as_pg "$bin/initdb" -D "$PG_DIR/data" -U "$PG_USER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
			--auth-local=trust --auth-host=scram-sha-256 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
			fail "initdb failed; see $PG_DIR/initdb.log"
		rm -f "$pwfile"
	fi
	# Settings that follow the environment are rewritten on every start.
	cat >"$PG_DIR/annals.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = $PG_SHARED_BUFFERS
log_min_messages = warning
EOF
	if $SECURE; then secure_postgres_conf >>"$PG_DIR/annals.conf"; fi
	grep -q "include_if_exists = '$PG_DIR/annals.conf'" "$PG_DIR/data/postgresql.conf" ||
		echo "include_if_exists = '$PG_DIR/annals.conf'" >>"$PG_DIR/data/postgresql.conf"
	[[ $(id -u) -eq 0 ]] && chown "$owner" "$PG_DIR" "$PG_DIR/annals.conf"
	touch "$PG_DIR/postgres.log" && [[ $(id -u) -eq 0 ]] && chown "$owner" "$PG_DIR/postgres.log"
	say "starting postgres on 127.0.0.1:$PG_PORT"
	as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -s -w -t "$TIMEOUT" start ||
		fail "PostgreSQL did not start; see $PG_DIR/postgres.log"
	wait_for "PostgreSQL" "$PG_DIR/postgres.log" port_open "$PG_PORT"
	if ! pg_client "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -XAtqc \
		"select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
		pg_client "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DB" ||
			fail "could not create database $PG_DB; see $PG_DIR/postgres.log"
	fi
	wait_for "PostgreSQL" "$PG_DIR/postgres.log" pg_ready
}

down_postgres() {
	local bin
	bin=$(pg_bindir 2>/dev/null) || return 0
	pg_running || return 0
	say "stopping postgres"
	local pid
	pid=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)
	as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -s -m fast -w -t 60 stop ||
		fail "PostgreSQL did not stop; see $PG_DIR/postgres.log"
	# pg_ctl returns once the postmaster removed its pid file, a moment before it exits.
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -n $pid && -d /proc/$pid ]] || return 0
		sleep 0.1
	done
	fail "PostgreSQL (pid $pid) still runs 10 s after it stopped; see $PG_DIR/postgres.log"
}

# ---------------------------------------------------------------- Kafka

java_ok() {
	command -v java >/dev/null 2>&1 || return 1
	local v
	v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
	[[ ${v%%.*} -ge 17 ]]
}

install_kafka() {
	java_ok || fail "Kafka $KAFKA_VERSION needs Java 17 or newer on PATH (Debian: apt-get install openjdk-17-jre-headless)"
	[[ -f $KAFKA_LIBS/.complete ]] && return 0
	command -v mvn >/dev/null 2>&1 || fail "Maven (mvn) is needed once to fetch Kafka $KAFKA_VERSION (Debian: apt-get install maven)"
	say "fetching Apache Kafka $KAFKA_VERSION and its runtime dependencies into $KAFKA_LIBS (once)"
	local tmp=$KAFKA_LIBS.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
		rm -rf "$tmp"
		fail "Maven could not fetch Kafka $KAFKA_VERSION; see $tmp.log"
	fi
	ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar "$tmp"/kafka-tools-"$KAFKA_VERSION".jar >/dev/null ||
		fail "Kafka jars missing after Maven ran; see $tmp.log"
	touch "$tmp/.complete"
	rm -rf "$KAFKA_LIBS" "$tmp.log"
	mkdir -p "$(dirname "$KAFKA_LIBS")"
	mv "$tmp" "$KAFKA_LIBS"
}

# kafka_java MAINCLASS ARGS...: the JVM command line for one of Kafka's main classes.
# A heap that suits a small machine: the broker needs little, the page cache does the rest.
kafka_java() {
	local heap
	read -r -a heap <<<"$KAFKA_HEAP"
	KAFKA_CMD=(java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
		-Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DIR"
		-Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties"
		-cp "$KAFKA_LIBS/*" "$@")
}

# kafka_ready: the broker's port is open and it has logged that it started. The log rolls by
# size (scripts/kafka/log4j2.properties: server.log.1, .2, ...), so a busy broker's line moves
# to the rolled files and at last out of them: the first time it is seen, the broker's pid
# goes into kafka.started, which says so after. A start removes both the rolled files and the
# marker, so neither speaks of an earlier broker.
kafka_ready() {
	port_open "$KAFKA_PORT" || return 1
	local pid
	pid=$(cat "$STATE_DIR/kafka.pid" 2>/dev/null) || return 1
	[[ -n $pid && $(cat "$STATE_DIR/kafka.started" 2>/dev/null) == "$pid" ]] && return 0
	grep -qs 'Kafka Server started' "$KAFKA_DIR/server.log" "$KAFKA_DIR"/server.log.[0-9]* || return 1
	echo "$pid" >"$STATE_DIR/kafka.started"
}

up_kafka() {
	install_kafka
	local pidfile=$STATE_DIR/kafka.pid
	if pid_alive "$pidfile" "$KAFKA_DIR/server.properties"; then
		wait_for "Kafka" "$KAFKA_DIR/server.log" kafka_ready
		say "kafka already running on 127.0.0.1:$KAFKA_PORT"
		if $SECURE; then secure_kafka_started; fi
		return 0
	fi
	require_free_port "$KAFKA_PORT" "$KAFKA_PORT_VAR" Kafka
	require_free_port "$KAFKA_CONTROLLER_PORT" "$KAFKA_CONTROLLER_PORT_VAR" "the Kafka controller"
	if $SECURE; then secure_kafka_ports; fi
	mkdir -p "$KAFKA_DIR/data"
	# The secured broker's file holds its own password: readable by this user only.
	: >"$KAFKA_DIR/server.properties"
	if $SECURE; then chmod 600 "$KAFKA_DIR/server.properties"; fi
	{
		echo "# Written by scripts/stack.sh on every start."
		if $SECURE; then
			secure_kafka_listeners
		else
			cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
EOF
		fi
		cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
log.dirs=$KAFKA_DIR/data
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
log.retention.hours=168
EOF
	} >"$KAFKA_DIR/server.properties"
	if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
		local id
		# A cluster id is 16 random bytes in URL-safe base64; one that starts with "-" would be
		# read as an option by the storage tool, so draw again until it does not.
		id=-
		while [[ $id == -* ]]; do
			id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		done
		say "formatting Kafka storage in $KAFKA_DIR/data (cluster $id)"
		kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$id" -c "$KAFKA_DIR/server.properties" \
			"${KAFKA_FORMAT_ARGS[@]}"
		"${KAFKA_CMD[@]}" >"$KAFKA_DIR/format.log" 2>&1 ||
			fail "formatting Kafka storage failed; see $KAFKA_DIR/format.log"
	fi
	# A fresh log per start, so readiness is read from this run only.
	[[ -f $KAFKA_DIR/server.log ]] && mv -f "$KAFKA_DIR/server.log" "$KAFKA_DIR/server.log.prev"
	rm -f "$KAFKA_DIR"/server.log.[0-9]* "$STATE_DIR/kafka.started"
	say "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT)"
	kafka_java kafka.Kafka "$KAFKA_DIR/server.properties"
	start_daemon "$pidfile" "$KAFKA_DIR/stdout.log" "${KAFKA_CMD[@]}"
	wait_for "Kafka" "$KAFKA_DIR/server.log (and stdout.log)" kafka_ready_or_dead
	if $SECURE; then secure_kafka_started; fi
}

kafka_ready_or_dead() {
	if ! started "$STATE_DIR/kafka.pid"; then
		fail "Kafka exited during start-up; see $KAFKA_DIR/server.log and $KAFKA_DIR/stdout.log"
	fi
	kafka_ready
}

down_kafka() {
	stop_pid "$STATE_DIR/kafka.pid" "$KAFKA_DIR/server.properties" kafka
}

# ---------------------------------------------------------------- Mailpit

install_mailpit() {
	[[ -x $MAILPIT_BIN ]] && return 0
	command -v go >/dev/null 2>&1 || fail "Go is needed to build Mailpit $MAILPIT_VERSION"
	say "building Mailpit $MAILPIT_VERSION into $MAILPIT_BIN (once)"
	local tmp=$CACHE_DIR/bin/.tmp.$$
	mkdir -p "$tmp"
	GOBIN=$tmp GOFLAGS=-buildvcs=false go install "github.com/axllent/mailpit@$MAILPIT_VERSION" >"$tmp.log" 2>&1 ||
		fail "go install github.com/axllent/mailpit@$MAILPIT_VERSION failed; see $tmp.log"
	mv "$tmp/mailpit" "$MAILPIT_BIN"
	rm -rf "$tmp" "$tmp.log"
}

# ---------------------------------------------------------------- Dex

# install_dex builds Dex (cmd/dex) once into the cache. The tests that verify tokens against a
# real OpenID Connect provider start it themselves, on a free port, with a static configuration.
install_dex() {
	[[ -x $DEX_BIN ]] && return 0
	command -v go >/dev/null 2>&1 || fail "Go is needed to build Dex $DEX_VERSION"
	say "building Dex $DEX_VERSION into $DEX_BIN (once; a few minutes)"
	local tmp=$CACHE_DIR/bin/.tmp-dex.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(
		cd "$tmp" &&
			go mod init annals.local/dexbuild &&
			GOFLAGS=-mod=mod go get "github.com/dexidp/dex@$DEX_VERSION" &&
			GOFLAGS=-mod=mod go build -buildvcs=false -trimpath -o dex github.com/dexidp/dex/cmd/dex
	) >"$tmp.log" 2>&1 || fail "building Dex $DEX_VERSION failed; see $tmp.log"
	mv "$tmp/dex" "$DEX_BIN"
	rm -rf "$tmp" "$tmp.log"
}

up_dex() { fail "Dex is not a server of the stack: the tests start their own; scripts/stack.sh install dex builds it"; }
down_dex() { up_dex; }

mailpit_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$MAILPIT_PORT/readyz" 2>/dev/null; }

up_mailpit() {
	install_mailpit
	local pidfile=$STATE_DIR/mailpit.pid
	if pid_alive "$pidfile" "$MAILPIT_DIR/mailpit.db"; then
		wait_for "Mailpit" "$MAILPIT_DIR/mailpit.log" mailpit_ready
		say "mailpit already running: SMTP 127.0.0.1:$SMTP_PORT, UI http://127.0.0.1:$MAILPIT_PORT"
		return 0
	fi
	require_free_port "$SMTP_PORT" ANNALS_SMTP_PORT "Mailpit SMTP"
	require_free_port "$MAILPIT_PORT" ANNALS_MAILPIT_PORT "the Mailpit UI"
	mkdir -p "$MAILPIT_DIR"
	say "starting mailpit: SMTP 127.0.0.1:$SMTP_PORT, UI http://127.0.0.1:$MAILPIT_PORT"
	start_daemon "$pidfile" "$MAILPIT_DIR/mailpit.log" "$MAILPIT_BIN" \
		--smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
		--database "$MAILPIT_DIR/mailpit.db" --max 5000
	wait_for "Mailpit" "$MAILPIT_DIR/mailpit.log" mailpit_ready
}

down_mailpit() {
	stop_pid "$STATE_DIR/mailpit.pid" "$MAILPIT_DIR/mailpit.db" mailpit
}

# ---------------------------------------------------------------- Redis

# redis_bin: ANNALS_REDIS_BIN, else the cache's unpacked Debian package, else one on the PATH.
redis_bin() {
	if [[ -n ${ANNALS_REDIS_BIN:-} ]]; then
		command -v "$ANNALS_REDIS_BIN" 2>/dev/null
	elif [[ -x $REDIS_ROOT/usr/bin/redis-server ]]; then
		echo "$REDIS_ROOT/usr/bin/redis-server"
	else
		command -v redis-server 2>/dev/null
	fi
}

# redis_run COMMAND...: run a Redis binary with the cache's libraries on the library path.
redis_run() { env LD_LIBRARY_PATH="$REDIS_ROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

# install_redis unpacks Debian's redis-server and redis-tools, with the two libraries they need
# that a base system lacks, into the cache (apt-get download and dpkg -x: no package is
# installed, no service of the distribution's own starts). The binaries find the libraries
# through LD_LIBRARY_PATH (redis_run).
install_redis() {
	redis_bin >/dev/null && return 0
	command -v apt-get >/dev/null 2>&1 ||
		fail "Redis not found and no apt-get; install redis-server and run again, or set ANNALS_REDIS_BIN"
	say "unpacking Debian's redis-server into $REDIS_ROOT (once)"
	local tmp=$CACHE_DIR/.tmp-redis.$$
	rm -rf "$tmp"
	mkdir -p "$tmp/root"
	(
		cd "$tmp" || exit 1
		get() { apt-get download redis-server redis-tools liblzf1 libjemalloc2; }
		# Package lists that are missing or stale: refresh them once, when allowed to.
		get || { [ "$(id -u)" = 0 ] && apt-get update && get; } || exit 1
		for deb in ./*.deb; do dpkg -x "$deb" root || exit 1; done
	) >"$tmp.log" 2>&1 || fail "apt-get download redis-server failed (run apt-get update first?); see $tmp.log"
	rm -rf "$REDIS_ROOT"
	mv "$tmp/root" "$REDIS_ROOT"
	rm -rf "$tmp" "$tmp.log"
	redis_run "$(redis_bin)" --version >/dev/null || fail "the unpacked redis-server does not run; see $REDIS_ROOT"
}

# Redis rewrites its command line to "redis-server 127.0.0.1:PORT": that is the pid's marker.
redis_marker() { echo "127.0.0.1:$REDIS_PORT"; }

redis_ready() {
	local reply
	reply=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
		printf 'PING\r\n' >&3
		timeout 2 head -c 5 <&3
	)
	[[ $reply == "+PONG" ]]
}

# redis_config: the server's configuration, rewritten on every start. Loopback only, no
# password (as the plain stack's PostgreSQL), the append-only file on with REDIS_APPENDFSYNC,
# no RDB snapshots, and no eviction: a store of record must refuse writes when its memory is
# full, never drop keys.
redis_config() {
	mkdir -p "$REDIS_DIR/data"
	cat >"$REDIS_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize no
dir $REDIS_DIR/data
logfile ""
appendonly yes
appendfsync $REDIS_APPENDFSYNC
aof-use-rdb-preamble yes
save ""
maxmemory-policy noeviction
EOF
}

up_redis() {
	local bin
	bin=$(redis_bin) || fail "Redis is not installed; scripts/stack.sh install redis unpacks it"
	local pidfile=$STATE_DIR/redis.pid
	if pid_alive "$pidfile" "$(redis_marker)"; then
		wait_for "Redis" "$REDIS_DIR/redis.log" redis_ready
		say "redis already running: redis://127.0.0.1:$REDIS_PORT"
		return 0
	fi
	require_free_port "$REDIS_PORT" ANNALS_REDIS_PORT Redis
	redis_config
	say "starting redis: redis://127.0.0.1:$REDIS_PORT (appendfsync $REDIS_APPENDFSYNC)"
	# env execs the server: the pid file names redis-server itself.
	start_daemon "$pidfile" "$REDIS_DIR/redis.log" \
		env LD_LIBRARY_PATH="$REDIS_ROOT/usr/lib/x86_64-linux-gnu" "$bin" "$REDIS_DIR/redis.conf"
	wait_for "Redis" "$REDIS_DIR/redis.log" redis_ready
}

down_redis() {
	stop_pid "$STATE_DIR/redis.pid" "$(redis_marker)" redis
}

# ---------------------------------------------------------------- Prometheus

prometheus_bin() { command -v "${ANNALS_PROMETHEUS_BIN:-prometheus}" 2>/dev/null; }

install_prometheus() {
	prometheus_bin >/dev/null && command -v promtool >/dev/null 2>&1 && return 0
	if [[ $(id -u) -ne 0 ]]; then
		fail "Prometheus not found; install it (Debian: apt-get install prometheus) and run again"
	fi
	say "installing Prometheus (apt-get install prometheus)"
	export DEBIAN_FRONTEND=noninteractive
	# The package's own service is not started (there is no init system to start it); the
	# stack runs a Prometheus of its own, on its own port.
	if ! apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends prometheus >/dev/null
	fi
	prometheus_bin >/dev/null || fail "apt-get install prometheus did not provide the prometheus binary"
}

prometheus_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 2>/dev/null; }

# prometheus_config: the stack's configuration, rewritten on every start. The services'
# addresses are not known here: whoever starts them (run.sh) writes them as file_sd target
# files, which Prometheus rereads when they change.
prometheus_config() {
	mkdir -p "$PROMETHEUS_DIR/targets" "$PROMETHEUS_DIR/data"
	cat >"$PROMETHEUS_DIR/prometheus.yml" <<EOF
# Written by scripts/stack.sh on every start; edits are lost.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $ROOT/deploy/prometheus/rules/*.rules.yml
scrape_configs:
  - job_name: annals
    file_sd_configs:
      - files: ["$PROMETHEUS_DIR/targets/*.json"]
        refresh_interval: 5s
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROMETHEUS_PORT"]
EOF
}

up_prometheus() {
	local bin
	bin=$(prometheus_bin) || fail "Prometheus is not installed; scripts/stack.sh install prometheus installs it"
	local pidfile=$STATE_DIR/prometheus.pid
	if pid_alive "$pidfile" "$PROMETHEUS_DIR/prometheus.yml"; then
		prometheus_config
		kill -HUP "$(<"$pidfile")" 2>/dev/null || true
		wait_for "Prometheus" "$PROMETHEUS_DIR/prometheus.log" prometheus_ready
		say "prometheus already running: http://127.0.0.1:$PROMETHEUS_PORT"
		return 0
	fi
	require_free_port "$PROMETHEUS_PORT" ANNALS_PROMETHEUS_PORT Prometheus
	prometheus_config
	if command -v promtool >/dev/null 2>&1; then
		promtool check config "$PROMETHEUS_DIR/prometheus.yml" >"$PROMETHEUS_DIR/check.log" 2>&1 ||
			fail "promtool check config failed; see $PROMETHEUS_DIR/check.log"
	fi
	say "starting prometheus: http://127.0.0.1:$PROMETHEUS_PORT"
	start_daemon "$pidfile" "$PROMETHEUS_DIR/prometheus.log" "$bin" \
		--config.file="$PROMETHEUS_DIR/prometheus.yml" --storage.tsdb.path="$PROMETHEUS_DIR/data" \
		--storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
		--web.enable-lifecycle
	wait_for "Prometheus" "$PROMETHEUS_DIR/prometheus.log" prometheus_ready
}

down_prometheus() {
	stop_pid "$STATE_DIR/prometheus.pid" "$PROMETHEUS_DIR/prometheus.yml" prometheus
}

# ---------------------------------------------------------------- Jaeger

# install_jaeger builds Jaeger v2 once into the cache, from the tools module, which requires
# it as a tool (so its many dependencies stay out of the main module).
install_jaeger() {
	[[ -n $JAEGER_VERSION ]] || fail "tools/go.mod does not require github.com/jaegertracing/jaeger"
	[[ -x $JAEGER_BIN ]] && return 0
	command -v go >/dev/null 2>&1 || fail "Go is needed to build Jaeger $JAEGER_VERSION"
	say "building Jaeger $JAEGER_VERSION into $JAEGER_BIN (once; several minutes)"
	local tmp=$CACHE_DIR/bin/.tmp-jaeger.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd "$ROOT/tools" && go build -buildvcs=false -trimpath -o "$tmp/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger) \
		>"$tmp.log" 2>&1 || fail "building Jaeger $JAEGER_VERSION failed; see $tmp.log"
	mv "$tmp/jaeger" "$JAEGER_BIN"
	rm -rf "$tmp" "$tmp.log"
}

jaeger_ready() {
	curl -fsS -o /dev/null "http://127.0.0.1:$JAEGER_PORT/api/services" 2>/dev/null && port_open "$JAEGER_OTLP_PORT"
}

# jaeger_config: Jaeger v2's configuration (an OpenTelemetry Collector's), rewritten on every
# start: OTLP receivers, spans kept in memory (the newest JAEGER_MAX_TRACES traces), the query
# service, everything on loopback, and no listener of the collector's own telemetry.
jaeger_config() {
	mkdir -p "$JAEGER_DIR"
	cat >"$JAEGER_DIR/jaeger.yaml" <<EOF
# Written by scripts/stack.sh on every start; edits are lost.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: $JAEGER_MAX_TRACES
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:$JAEGER_PORT
    grpc:
      endpoint: 127.0.0.1:$JAEGER_QUERY_GRPC_PORT
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$JAEGER_OTLP_PORT
      grpc:
        endpoint: 127.0.0.1:$JAEGER_OTLP_GRPC_PORT
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
EOF
}

up_jaeger() {
	install_jaeger
	local pidfile=$STATE_DIR/jaeger.pid
	if pid_alive "$pidfile" "$JAEGER_DIR/jaeger.yaml"; then
		wait_for "Jaeger" "$JAEGER_DIR/jaeger.log" jaeger_ready
		say "jaeger already running: OTLP http://127.0.0.1:$JAEGER_OTLP_PORT, API http://127.0.0.1:$JAEGER_PORT"
		return 0
	fi
	require_free_port "$JAEGER_OTLP_PORT" ANNALS_JAEGER_OTLP_PORT "Jaeger's OTLP/HTTP receiver"
	require_free_port "$JAEGER_OTLP_GRPC_PORT" ANNALS_JAEGER_OTLP_GRPC_PORT "Jaeger's OTLP/gRPC receiver"
	require_free_port "$JAEGER_PORT" ANNALS_JAEGER_PORT "Jaeger's query API"
	require_free_port "$JAEGER_QUERY_GRPC_PORT" ANNALS_JAEGER_QUERY_GRPC_PORT "Jaeger's query gRPC API"
	jaeger_config
	say "starting jaeger: OTLP http://127.0.0.1:$JAEGER_OTLP_PORT (gRPC :$JAEGER_OTLP_GRPC_PORT), API http://127.0.0.1:$JAEGER_PORT"
	start_daemon "$pidfile" "$JAEGER_DIR/jaeger.log" "$JAEGER_BIN" --config "$JAEGER_DIR/jaeger.yaml"
	wait_for "Jaeger" "$JAEGER_DIR/jaeger.log" jaeger_ready_or_dead
}

jaeger_ready_or_dead() {
	if ! started "$STATE_DIR/jaeger.pid"; then
		fail "Jaeger exited during start-up; see $JAEGER_DIR/jaeger.log"
	fi
	jaeger_ready
}

down_jaeger() {
	stop_pid "$STATE_DIR/jaeger.pid" "$JAEGER_DIR/jaeger.yaml" jaeger
}

# ---------------------------------------------------------------- Schemathesis

# Schemathesis, the OpenAPI fuzzer that test/stack runs over the services' documents, in a
# virtualenv of its own in the cache: $CACHE_DIR/schemathesis/bin/st.
SCHEMATHESIS_VERSION=${ANNALS_SCHEMATHESIS_VERSION:-4.32.5}
SCHEMATHESIS_DIR=$CACHE_DIR/schemathesis

install_schemathesis() {
	local st=$SCHEMATHESIS_DIR/bin/st
	if [[ -x $st ]] && "$st" --version 2>/dev/null | grep -qF " $SCHEMATHESIS_VERSION"; then
		return 0
	fi
	command -v python3 >/dev/null 2>&1 || fail "Schemathesis needs python3 with venv (Debian: apt-get install python3-venv)"
	say "installing Schemathesis $SCHEMATHESIS_VERSION (pip, into $SCHEMATHESIS_DIR)"
	rm -rf "$SCHEMATHESIS_DIR"
	mkdir -p "$CACHE_DIR"
	python3 -m venv "$SCHEMATHESIS_DIR" >/dev/null ||
		fail "python3 -m venv $SCHEMATHESIS_DIR failed (Debian: apt-get install python3-venv)"
	"$SCHEMATHESIS_DIR/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >"$SCHEMATHESIS_DIR.log" 2>&1 ||
		fail "pip install schemathesis==$SCHEMATHESIS_VERSION failed; see $SCHEMATHESIS_DIR.log"
	"$st" --version >/dev/null || fail "Schemathesis was installed but $st does not run"
}

# The independent readers of the relay's MessagePack and Protocol Buffers payloads
# (pkg/relay/testdata/read_formats.py): Python's own packages in a virtualenv of their own,
# $CACHE_DIR/pyreaders/bin/python.
PYREADERS_DIR=$CACHE_DIR/pyreaders
PYREADERS_PACKAGES="msgpack==1.2.4 protobuf==7.36.2 grpcio-tools==1.85.4 confluent-kafka==2.16.2"

install_pyreaders() {
	local py=$PYREADERS_DIR/bin/python
	if [[ -x $py && -f $PYREADERS_DIR/packages && $(cat "$PYREADERS_DIR/packages") == "$PYREADERS_PACKAGES" ]]; then
		return 0
	fi
	command -v python3 >/dev/null 2>&1 || fail "the Python readers need python3 with venv (Debian: apt-get install python3-venv)"
	say "installing the Python readers ($PYREADERS_PACKAGES; pip, into $PYREADERS_DIR)"
	rm -rf "$PYREADERS_DIR"
	mkdir -p "$CACHE_DIR"
	python3 -m venv "$PYREADERS_DIR" >/dev/null ||
		fail "python3 -m venv $PYREADERS_DIR failed (Debian: apt-get install python3-venv)"
	# shellcheck disable=SC2086 # one word per package
	"$py" -m pip install -q $PYREADERS_PACKAGES >"$PYREADERS_DIR.log" 2>&1 ||
		fail "pip install of the Python readers failed; see $PYREADERS_DIR.log"
	printf '%s' "$PYREADERS_PACKAGES" >"$PYREADERS_DIR/packages"
}

# ---------------------------------------------------------------- FerretDB

# install_ferretdb builds FerretDB (cmd/ferretdb) once into the cache, at the version that the
# tools module pins. cmd/ferretdb refuses to start without the build/version/version.txt that
# its release process writes and its module lacks, so it is built from a copy of the module's
# source with that file added.
install_ferretdb() {
	[[ -x $FERRETDB_BIN ]] && return 0
	command -v go >/dev/null 2>&1 || fail "Go is needed to build FerretDB $FERRETDB_VERSION"
	say "building FerretDB $FERRETDB_VERSION into $FERRETDB_BIN (once; a few minutes)"
	mkdir -p "$CACHE_DIR/bin"
	local tmp=$CACHE_DIR/bin/.tmp-ferretdb.$$
	rm -rf "$tmp"
	(
		src=$(cd "$ROOT/tools" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
			[[ -d $src ]] && cp -R "$src" "$tmp" && chmod -R u+w "$tmp" &&
			printf '%s\n' "$FERRETDB_VERSION" >"$tmp/build/version/version.txt" &&
			cd "$tmp" && GOFLAGS=-mod=mod go build -trimpath -o "$tmp.bin" ./cmd/ferretdb
	) >"$tmp.log" 2>&1 || fail "building FerretDB $FERRETDB_VERSION failed; see $tmp.log"
	mv "$tmp.bin" "$FERRETDB_BIN"
	rm -rf "$tmp" "$tmp.log"
}

ferretdb_ready() { port_open "$FERRETDB_PORT"; }

# ferretdb_started: ready, or a failure at once when the process has exited.
ferretdb_started() {
	ferretdb_ready && return 0
	started "$STATE_DIR/ferretdb.pid" ||
		fail "FerretDB exited at start-up; see $FERRETDB_DIR/ferretdb.log"
	return 1
}

# up_ferretdb starts FerretDB on loopback with its data in SQLite files under .stack/ferretdb
# (one file per database), telemetry off and no debug listener.
up_ferretdb() {
	[[ -x $FERRETDB_BIN ]] || fail "FerretDB is not installed; scripts/stack.sh install ferretdb builds it"
	local pidfile=$STATE_DIR/ferretdb.pid
	if pid_alive "$pidfile" "$FERRETDB_DIR/data"; then
		wait_for "FerretDB" "$FERRETDB_DIR/ferretdb.log" ferretdb_ready
		say "ferretdb already running: mongodb://127.0.0.1:$FERRETDB_PORT"
		return 0
	fi
	require_free_port "$FERRETDB_PORT" ANNALS_FERRETDB_PORT FerretDB
	mkdir -p "$FERRETDB_DIR/data"
	say "starting ferretdb: mongodb://127.0.0.1:$FERRETDB_PORT"
	start_daemon "$pidfile" "$FERRETDB_DIR/ferretdb.log" "$FERRETDB_BIN" \
		--listen-addr="127.0.0.1:$FERRETDB_PORT" --handler=sqlite \
		--sqlite-url="file:$FERRETDB_DIR/data/" --state-dir="$FERRETDB_DIR" \
		--telemetry=disable --debug-addr=- --log-level=warn
	wait_for "FerretDB" "$FERRETDB_DIR/ferretdb.log" ferretdb_started
}

down_ferretdb() { stop_pid "$STATE_DIR/ferretdb.pid" "$FERRETDB_DIR/data" ferretdb; }

# ---------------------------------------------------------------- commands

# signing_key prints the stack's event signing key (EVENT_SIGNING_KEY: the relay signs every
# record with it, the consumers accept only records signed with it), made on first use: 32
# random bytes, readable by this user only. A key for this machine's stack, never for a
# deployment.
signing_key() {
	local file=$BASE_DIR/signing.key
	if [[ ! -s $file ]]; then
		mkdir -p "$BASE_DIR"
		local tmp=$file.$$
		(umask 077 && printf 'local:%s\n' "$(head -c 32 /dev/urandom | base64)" >"$tmp")
		mv -n "$tmp" "$file" # two first uses at once keep one key
		rm -f "$tmp"
	fi
	cat "$file"
}

# The scopes of the services' routes (internal/auth.Scopes; a test keeps this list true).
API_SCOPES="commands+events:read+read-models:read+notifications:read+audit:read+personal-data+users:erase"

# api_key prints the stack's API key, made on first use: "annals_" and 32 random bytes in
# base64url, in .stack/api-key, readable by this user only. The services get only its SHA-256
# (API_KEYS); clients send it as "Authorization: Bearer <key>". A key for this machine's stack,
# never for a deployment.
api_key() {
	local file=$BASE_DIR/api-key
	if [[ ! -s $file ]]; then
		mkdir -p "$BASE_DIR"
		local tmp=$file.$$
		(umask 077 && printf 'annals_%s\n' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" >"$tmp")
		mv -n "$tmp" "$file" # two first uses at once keep one key
		rm -f "$tmp"
	fi
	chmod 600 "$file"
	head -n 1 "$file"
}

print_env() {
	local key
	key=$(api_key)
	cat <<EOF
export DATABASE_URL='postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable'
export KAFKA_BROKERS='127.0.0.1:$KAFKA_PORT'
export SMTP_ADDR='127.0.0.1:$SMTP_PORT'
export MAILPIT_URL='http://127.0.0.1:$MAILPIT_PORT'
export KAFKA_LIBS='$KAFKA_LIBS'
export PROMETHEUS_URL='http://127.0.0.1:$PROMETHEUS_PORT'
export REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'
export REDIS_BENCHMARK='$ROOT/scripts/stack.sh tool redis-benchmark'
export EVENT_SIGNING_KEY='$(signing_key)'
export DEX_BIN='$DEX_BIN'
export JAEGER_BIN='$JAEGER_BIN'
export JAEGER_URL='http://127.0.0.1:$JAEGER_PORT'
export MONGODB_URI='mongodb://127.0.0.1:$FERRETDB_PORT/'
export API_KEYS='local:$API_SCOPES:$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)'
export ANNALS_API_KEY='$key'
EOF
}

status() {
	local rc=0
	if pg_running && pg_ready; then
		say "postgres  running  127.0.0.1:$PG_PORT  db=$PG_DB  log=$PG_DIR/postgres.log"
	else
		say "postgres  stopped"
		rc=1
	fi
	if pid_alive "$STATE_DIR/kafka.pid" "$KAFKA_DIR/server.properties" && kafka_ready; then
		say "kafka     running  127.0.0.1:$KAFKA_PORT  pid=$(<"$STATE_DIR/kafka.pid")  log=$KAFKA_DIR/server.log"
	else
		say "kafka     stopped"
		rc=1
	fi
	if $SECURE; then
		return $rc # no Mailpit or Prometheus of its own: it uses the plain stack's
	fi
	if pid_alive "$STATE_DIR/mailpit.pid" "$MAILPIT_DIR/mailpit.db" && mailpit_ready; then
		say "mailpit   running  smtp 127.0.0.1:$SMTP_PORT  ui http://127.0.0.1:$MAILPIT_PORT  pid=$(<"$STATE_DIR/mailpit.pid")"
	else
		say "mailpit   stopped"
		rc=1
	fi
	# Prometheus is optional: its state does not change the status's exit code.
	if pid_alive "$STATE_DIR/prometheus.pid" "$PROMETHEUS_DIR/prometheus.yml" 2>/dev/null && prometheus_ready; then
		say "prometheus running  http://127.0.0.1:$PROMETHEUS_PORT  pid=$(<"$STATE_DIR/prometheus.pid")"
	fi
	# Jaeger too.
	if pid_alive "$STATE_DIR/jaeger.pid" "$JAEGER_DIR/jaeger.yaml" 2>/dev/null && jaeger_ready; then
		say "jaeger    running  otlp http://127.0.0.1:$JAEGER_OTLP_PORT  api http://127.0.0.1:$JAEGER_PORT  pid=$(<"$STATE_DIR/jaeger.pid")"
	fi
	# Redis is optional too.
	if pid_alive "$STATE_DIR/redis.pid" "$(redis_marker)" 2>/dev/null && redis_ready; then
		say "redis     running  redis://127.0.0.1:$REDIS_PORT  pid=$(<"$STATE_DIR/redis.pid")  appendfsync=$REDIS_APPENDFSYNC"
	fi
	if pid_alive "$STATE_DIR/ferretdb.pid" "$FERRETDB_DIR/data" 2>/dev/null && ferretdb_ready; then
		say "ferretdb  running  mongodb://127.0.0.1:$FERRETDB_PORT  pid=$(<"$STATE_DIR/ferretdb.pid")"
	fi
	return $rc
}

# preflight: before starting anything, every port of a component that is not running yet must
# be free, so that a taken port fails the whole start-up and leaves nothing half started.
preflight() {
	if ! pg_running 2>/dev/null; then
		require_free_port "$PG_PORT" "$PG_PORT_VAR" PostgreSQL
	fi
	if ! pid_alive "$STATE_DIR/kafka.pid" "$KAFKA_DIR/server.properties"; then
		require_free_port "$KAFKA_PORT" "$KAFKA_PORT_VAR" Kafka
		require_free_port "$KAFKA_CONTROLLER_PORT" "$KAFKA_CONTROLLER_PORT_VAR" "the Kafka controller"
		if $SECURE; then secure_kafka_ports; fi
	fi
	if ! $SECURE && ! pid_alive "$STATE_DIR/mailpit.pid" "$MAILPIT_DIR/mailpit.db"; then
		require_free_port "$SMTP_PORT" ANNALS_SMTP_PORT "Mailpit SMTP"
		require_free_port "$MAILPIT_PORT" ANNALS_MAILPIT_PORT "the Mailpit UI"
	fi
}

component() {
	if $SECURE && [[ $1 != postgres && $1 != kafka ]]; then
		fail "the secured stack has postgres and kafka only, not $1 (it uses the plain stack's Mailpit)"
	fi
	case $1 in
	postgres | kafka | mailpit | prometheus | dex | jaeger | redis | ferretdb) return 0 ;;
	esac
	fail "unknown component $1 (postgres, kafka, mailpit, prometheus, dex, jaeger, redis, ferretdb)"
}

main() {
	local cmd=${1:-}
	case $cmd in
	install)
		shift
		if (($# > 0)); then
			for c in "$@"; do
				if [[ $c == schemathesis ]]; then
					install_schemathesis # a tool of the tests: installed, never started
				elif [[ $c == pyreaders ]]; then
					install_pyreaders # likewise
				else
					component "$c" && "install_$c"
				fi
			done
			return
		fi
		install_postgres
		install_kafka
		install_mailpit
		;;
	up)
		shift
		if (($# > 0)); then
			for c in "$@"; do component "$c"; done
			mkdir -p "$STATE_DIR"
			if $SECURE; then secure_prepare; fi
			for c in "$@"; do "up_$c"; done
			return
		fi
		mkdir -p "$STATE_DIR"
		if $SECURE; then
			secure_prepare
			preflight
			up_postgres
			up_kafka
			status
			say "clients: eval \"\$(ANNALS_SECURE=1 scripts/stack.sh env)\""
			return
		fi
		preflight
		up_postgres
		up_kafka
		up_mailpit
		status
		say "clients: eval \"\$(scripts/stack.sh env)\""
		;;
	down)
		shift
		if (($# > 0)); then
			for c in "$@"; do component "$c" && "down_$c"; done
			return
		fi
		if ! $SECURE; then
			down_jaeger
			down_redis
			down_ferretdb
			down_prometheus
			down_mailpit
		fi
		down_kafka
		down_postgres
		say "stopped"
		;;
	status)
		if $SECURE; then secure_loaded || true; fi
		status
		;;
	env)
		if $SECURE; then
			secure_print_env
		else
			print_env
		fi
		;;
	tool)
		shift
		case ${1:-} in
		redis-benchmark | redis-cli)
			local bin
			bin=$(redis_bin) || fail "Redis is not installed; scripts/stack.sh install redis unpacks it"
			redis_run "$(dirname "$bin")/$1" "${@:2}"
			;;
		*) fail "unknown tool ${1:-} (redis-benchmark, redis-cli)" ;;
		esac
		;;
	acls)
		shift
		$SECURE || fail "acls is a command of the secured stack: ANNALS_SECURE=1 $0 acls [--remove] PREFIX..."
		secure_acls "$@"
		;;
	*)
		echo "usage: $0 install|up|down|status|env|tool  (ANNALS_SECURE=1: also acls [--remove] PREFIX...)" >&2
		exit 2
		;;
	esac
}

main "$@"
