# shellcheck shell=bash
# The secured variant of the local stack, sourced by scripts/stack.sh when ANNALS_SECURE=1; not
# a script of its own. It runs beside the plain stack, in a folder (BASE_DIR/secure, so
# .stack/secure) and on ports of its own, so that both run at once (`make test` starts both):
#
#   PostgreSQL  127.0.0.1:55433 (ANNALS_SECURE_PG_PORT): TLS only (hostssl lines, scram-sha-256),
#               database and user annals, a random password
#   Kafka       127.0.0.1:9192 (ANNALS_SECURE_KAFKA_PORT): one client listener, SASL_SSL with
#               SCRAM-SHA-512; the controller on 127.0.0.1:9193
#               (ANNALS_SECURE_KAFKA_CONTROLLER_PORT) speaks SSL and wants the broker's own
#               certificate (no password can reach it); StandardAuthorizer with
#               allow.everyone.if.no.acl.found=false. Two more SASL_SSL listeners serve bad
#               certificates, for tests of what a client does with them: EXPIRED on
#               127.0.0.1:9194 (ANNALS_SECURE_KAFKA_EXPIRED_PORT) presents tls/expired.crt,
#               WRONGHOST on 127.0.0.1:9195 (ANNALS_SECURE_KAFKA_WRONGHOST_PORT)
#               tls/wrong-host.crt; each advertises itself, so a client that bootstraps there
#               stays there
#
# It has no Mailpit or Prometheus of its own: `env` points SMTP_ADDR and MAILPIT_URL at the
# plain stack's. Files, made on the first `up` and kept (a certificate is made again only when
# it is missing or about to expire):
#
#   tls/ca.crt, ca.key           the stack's CA: the only root clients of this stack trust
#   tls/server.crt, server.key   localhost and 127.0.0.1 (SANs), served by Kafka and PostgreSQL
#   tls/client.crt, client.key   CN=annals, a client certificate of the same CA
#   tls/expired.*                localhost and 127.0.0.1, expired (2020-01-01 to 2020-01-02)
#   tls/wrong-host.*             the stack's CA, but for wrong-host.invalid only
#   tls/untrusted-ca.*, untrusted.*   a second CA that nothing trusts, and a localhost
#                                certificate it signed: for tests that serve bad certificates
#   secrets/<name>               passwords: postgres, and kafka-<identity> for each identity
#   kafka/clients/<identity>.properties   settings for Kafka's own tools (--command-config)
#
# Keys and secrets are mode 0600. Losing a secret loses what it protects: when a password is
# made again, the data that knew the old one (Kafka's storage, PostgreSQL's cluster) is made
# afresh too.
#
# Kafka's identities are SCRAM users made when its storage is formatted: admin (super user and
# the broker's own identity), writer (the relay and the lag exporter), projector, notifier,
# auditor and cli (the `annals` operator commands). ACLs are per topic prefix P (the deployment's
# KAFKA_TOPIC_PREFIX): topics are P.<category> for events and P.dlq.P-<service> for dead letters,
# consumer groups P-<service> (pkg/kafkawire, config.ConsumerGroup). For each P:
#
#   writer     Write, DescribeConfigs on the event topics; Describe on every topic P.* (the
#              relay's topic check also looks up the dead-letter topics) and every group P-*
#              (the lag exporter lists and reads the groups' offsets)
#   projector, notifier, auditor   Read, Describe on the event topics; Read on its own group;
#              Write, Describe on its own dead-letter topic
#   cli        Create, Describe, DescribeConfigs, Read on every topic P.*; Describe, Read on
#              every group P-* (annals topics, dlq, replay)
#
# Nobody but admin may create topics: the services create theirs when they start (the relay's
# EnsureTopics) only when they are missing, so they must exist first; `annals topics` run as
# admin (the default identity of `env`) or as cli creates them. The event categories are
# ANNALS_SECURE_CATEGORIES (default "user order", internal/wiring.Categories).
#
# `up` grants these ACLs for the prefixes in ANNALS_SECURE_TOPIC_PREFIXES (default
# $KAFKA_TOPIC_PREFIX, else annals), once per prefix and definition. A test with a unique prefix
# grants its own and takes them back when it ends:
#   ANNALS_SECURE=1 scripts/stack.sh acls PREFIX...
#   ANNALS_SECURE=1 scripts/stack.sh acls --remove PREFIX...

LABEL="stack (secure)"
STATE_DIR=$BASE_DIR/secure
PG_PORT=${ANNALS_SECURE_PG_PORT:-55433}
PG_PORT_VAR=ANNALS_SECURE_PG_PORT
PG_SHARED_BUFFERS=128MB
KAFKA_PORT=${ANNALS_SECURE_KAFKA_PORT:-9192}
KAFKA_CONTROLLER_PORT=${ANNALS_SECURE_KAFKA_CONTROLLER_PORT:-9193}
KAFKA_PORT_VAR=ANNALS_SECURE_KAFKA_PORT
KAFKA_CONTROLLER_PORT_VAR=ANNALS_SECURE_KAFKA_CONTROLLER_PORT
KAFKA_EXPIRED_PORT=${ANNALS_SECURE_KAFKA_EXPIRED_PORT:-9194}
KAFKA_WRONGHOST_PORT=${ANNALS_SECURE_KAFKA_WRONGHOST_PORT:-9195}
KAFKA_HEAP=${ANNALS_SECURE_KAFKA_HEAP:--Xms128m -Xmx512m}

TLS_DIR=$STATE_DIR/tls
SECRETS_DIR=$STATE_DIR/secrets
KAFKA_CLIENTS_DIR=$STATE_DIR/kafka/clients
KAFKA_IDENTITIES=(admin writer projector notifier auditor cli)
CONSUMING_SERVICES=(projector notifier auditor)
SECURE_CATEGORIES=${ANNALS_SECURE_CATEGORIES:-user order}
SECURE_PREFIXES=${ANNALS_SECURE_TOPIC_PREFIXES:-${KAFKA_TOPIC_PREFIX:-annals}}
SCRAM=SCRAM-SHA-512

# ---------------------------------------------------------------- certificates

# tls_config: the openssl configuration of the stack's certificates; ANNALS_TLS_CA_DIR and
# ANNALS_TLS_SAN (the environment of each call) say which CA's records and which names.
tls_config() {
	cat <<'EOF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ ca ]
default_ca = local
[ local ]
dir = $ENV::ANNALS_TLS_CA_DIR
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ any ]
commonName = supplied
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $ENV::ANNALS_TLS_SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
}

# tls_key NAME: a new P-256 key in PKCS#8 (what Kafka's PEM key store, PostgreSQL and Go read),
# mode 0600.
tls_key() {
	(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TLS_DIR/$1.key" 2>/dev/null)
}

# tls_ca NAME SUBJECT: a self-signed CA for ten years, with its records for `openssl ca`.
tls_ca() {
	local name=$1 subject=$2
	tls_key "$name"
	mkdir -p "$TLS_DIR/.$name/issued"
	: >"$TLS_DIR/.$name/index.txt"
	openssl rand -hex 16 >"$TLS_DIR/.$name/serial"
	ANNALS_TLS_CA_DIR=$TLS_DIR/.$name ANNALS_TLS_SAN=DNS:unused openssl req -x509 -new -config "$TLS_DIR/openssl.cnf" \
		-key "$TLS_DIR/$name.key" -subj "$subject" -days 3650 -extensions ca_ext -out "$TLS_DIR/$name.crt" 2>/dev/null
}

# tls_leaf NAME CA CN SAN [START END]: a certificate signed by the CA NAME names, for two years
# or from START to END (YYYYMMDDHHMMSSZ).
tls_leaf() {
	local name=$1 ca=$2 cn=$3 san=$4 dates
	if (($# > 4)); then
		dates=(-startdate "$5" -enddate "$6")
	else
		dates=(-days 730)
	fi
	tls_key "$name"
	ANNALS_TLS_CA_DIR=$TLS_DIR/.$ca ANNALS_TLS_SAN=$san openssl req -new -config "$TLS_DIR/openssl.cnf" \
		-key "$TLS_DIR/$name.key" -subj "/CN=$cn" -out "$TLS_DIR/$name.csr" 2>/dev/null
	ANNALS_TLS_CA_DIR=$TLS_DIR/.$ca ANNALS_TLS_SAN=$san openssl ca -batch -notext -config "$TLS_DIR/openssl.cnf" \
		-extensions leaf_ext -cert "$TLS_DIR/$ca.crt" -keyfile "$TLS_DIR/$ca.key" "${dates[@]}" \
		-in "$TLS_DIR/$name.csr" -out "$TLS_DIR/$name.crt" >"$TLS_DIR/.$ca/$name.log" 2>&1 ||
		fail "openssl could not sign $name.crt; see $TLS_DIR/.$ca/$name.log"
	rm -f "$TLS_DIR/$name.csr"
}

# secure_tls makes the certificates that are missing (all of them when the CA is), and the
# server's again when it expires within a day.
secure_tls() {
	command -v openssl >/dev/null 2>&1 || fail "the secured stack makes its certificates with openssl (Debian: apt-get install openssl)"
	mkdir -p "$TLS_DIR"
	tls_config >"$TLS_DIR/openssl.cnf"
	if [[ ! -s $TLS_DIR/ca.crt || ! -s $TLS_DIR/ca.key ]]; then
		say "making the stack's CA and certificates in $TLS_DIR"
		find "$TLS_DIR" -mindepth 1 ! -name openssl.cnf -exec rm -rf {} +
		tls_ca ca "/O=Annals local stack/CN=Annals local CA"
	fi
	local local_san="DNS:localhost,IP:127.0.0.1"
	if [[ -s $TLS_DIR/server.crt ]] && ! openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.crt" >/dev/null; then
		say "the server certificate expires within a day: making it again"
		rm -f "$TLS_DIR/server.crt" "$TLS_DIR/client.crt"
	fi
	[[ -s $TLS_DIR/server.crt && -s $TLS_DIR/server.key ]] || tls_leaf server ca localhost "$local_san"
	[[ -s $TLS_DIR/client.crt && -s $TLS_DIR/client.key ]] || tls_leaf client ca annals "DNS:annals"
	[[ -s $TLS_DIR/expired.crt && -s $TLS_DIR/expired.key ]] ||
		tls_leaf expired ca localhost "$local_san" 20200101000000Z 20200102000000Z
	[[ -s $TLS_DIR/wrong-host.crt && -s $TLS_DIR/wrong-host.key ]] ||
		tls_leaf wrong-host ca wrong-host.invalid "DNS:wrong-host.invalid"
	if [[ ! -s $TLS_DIR/untrusted-ca.crt || ! -s $TLS_DIR/untrusted-ca.key ]]; then
		rm -rf "$TLS_DIR/.untrusted-ca" "$TLS_DIR/untrusted.crt"
		tls_ca untrusted-ca "/O=Nobody/CN=Untrusted CA"
	fi
	[[ -s $TLS_DIR/untrusted.crt && -s $TLS_DIR/untrusted.key ]] || tls_leaf untrusted untrusted-ca localhost "$local_san"
	# Kafka's PEM key stores, one per listener: the key, then the chain.
	local ks
	for ks in server:kafka-keystore expired:kafka-expired-keystore wrong-host:kafka-wrong-host-keystore; do
		(umask 077 && cat "$TLS_DIR/${ks%%:*}.key" "$TLS_DIR/${ks%%:*}.crt" "$TLS_DIR/ca.crt" >"$TLS_DIR/${ks#*:}.pem")
	done
	chmod 600 "$TLS_DIR"/*.key "$TLS_DIR"/*.pem
	chmod 644 "$TLS_DIR"/*.crt
}

# ---------------------------------------------------------------- secrets

# secret_value NAME: a secret's value, or nothing when it has not been made.
secret_value() {
	local file=$SECRETS_DIR/$1
	[[ -s $file ]] && head -n 1 "$file"
	return 0
}

# new_secret NAME: make a random password of 32 letters and digits (nothing that JAAS or a URL
# would need to quote), mode 0600.
new_secret() {
	mkdir -p "$SECRETS_DIR"
	chmod 700 "$SECRETS_DIR"
	local pw
	pw=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
	(umask 077 && printf '%s\n' "${pw:0:32}" >"$SECRETS_DIR/$1")
}

# secure_loaded reads the secrets into PG_PASSWORD and the PostgreSQL client's TLS settings,
# and reports false when the stack has never been brought up; secure_load fails then.
secure_loaded() {
	PG_CLIENT_ENV=(PGSSLMODE=verify-full "PGSSLROOTCERT=$TLS_DIR/ca.crt")
	PG_PASSWORD=$(secret_value postgres)
	[[ -n $PG_PASSWORD && -s $TLS_DIR/ca.crt ]]
}

secure_load() {
	secure_loaded || fail "the secured stack has no certificates or passwords yet: ANNALS_SECURE=1 $0 up makes them"
}

# secure_prepare makes what `up` needs before starting anything: the certificates, the
# passwords, the storage formatter's SCRAM users and the Kafka tools' client settings.
secure_prepare() {
	secure_tls
	if [[ -z $(secret_value postgres) ]]; then
		if [[ -f $PG_DIR/data/PG_VERSION ]]; then
			pg_running && fail "PostgreSQL runs but its password ($SECRETS_DIR/postgres) is gone: ANNALS_SECURE=1 $0 down, then up again (which makes the cluster afresh)"
			say "PostgreSQL's password is gone: making its cluster afresh"
			rm -rf "$PG_DIR/data"
		fi
		new_secret postgres
	fi
	local id missing=false
	for id in "${KAFKA_IDENTITIES[@]}"; do
		[[ -n $(secret_value "kafka-$id") ]] && continue
		missing=true
		new_secret "kafka-$id"
	done
	if $missing && [[ -f $KAFKA_DIR/data/meta.properties ]]; then
		pid_alive "$STATE_DIR/kafka.pid" "$KAFKA_DIR/server.properties" &&
			fail "Kafka runs but a password of $SECRETS_DIR is gone: ANNALS_SECURE=1 $0 down, then up again (which formats its storage afresh)"
		say "a Kafka password is new: formatting its storage afresh"
		rm -rf "$KAFKA_DIR/data"
	fi
	secure_load
	KAFKA_FORMAT_ARGS=()
	mkdir -p "$KAFKA_CLIENTS_DIR"
	for id in "${KAFKA_IDENTITIES[@]}"; do
		KAFKA_FORMAT_ARGS+=(--add-scram "$SCRAM=[name=$id,password=$(secret_value "kafka-$id")]")
		kafka_client_properties "$id" "$(secret_value "kafka-$id")" "$KAFKA_CLIENTS_DIR/$id.properties"
	done
}

# kafka_client_properties IDENTITY PASSWORD FILE: the settings of a Kafka client of this stack
# (Kafka's tools read them with --command-config, --producer.config, --consumer.config).
kafka_client_properties() {
	(umask 077 && cat >"$3" <<EOF
# Written by scripts/stack.sh: the identity $1 on the secured stack's broker.
bootstrap.servers=127.0.0.1:$KAFKA_PORT
security.protocol=SASL_SSL
sasl.mechanism=$SCRAM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$1" password="$2";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.crt
EOF
	)
}

# ---------------------------------------------------------------- PostgreSQL

# secure_postgres_conf prints the TLS settings of the cluster, and writes what they name, a
# copy of the certificates the server user owns (it refuses a key that others can read), and
# the cluster's pg_hba.conf, which lets in TLS connections with a password only.
secure_postgres_conf() {
	local owner
	owner=$(pg_owner)
	mkdir -p "$PG_DIR/tls"
	cp "$TLS_DIR/server.crt" "$TLS_DIR/ca.crt" "$PG_DIR/tls/"
	(umask 077 && cp "$TLS_DIR/server.key" "$PG_DIR/tls/server.key")
	cat >"$PG_DIR/data/pg_hba.conf" <<EOF
# Written by scripts/stack.sh on every start: TLS and a password, or nothing.
# TYPE   DATABASE USER ADDRESS      METHOD
hostssl  all      all  127.0.0.1/32 scram-sha-256
EOF
	if [[ $(id -u) -eq 0 ]]; then chown -R "$owner" "$PG_DIR/tls" "$PG_DIR/data/pg_hba.conf"; fi
	chmod 600 "$PG_DIR/tls/server.key"
	cat <<EOF
ssl = on
ssl_cert_file = '$PG_DIR/tls/server.crt'
ssl_key_file = '$PG_DIR/tls/server.key'
ssl_ca_file = '$PG_DIR/tls/ca.crt'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
EOF
}

# ---------------------------------------------------------------- Kafka

# secure_kafka_listeners prints the broker's listeners and security settings.
secure_kafka_listeners() {
	local l
	cat <<EOF
listeners=CLIENT://127.0.0.1:$KAFKA_PORT,EXPIRED://127.0.0.1:$KAFKA_EXPIRED_PORT,WRONGHOST://127.0.0.1:$KAFKA_WRONGHOST_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=CLIENT://127.0.0.1:$KAFKA_PORT,EXPIRED://127.0.0.1:$KAFKA_EXPIRED_PORT,WRONGHOST://127.0.0.1:$KAFKA_WRONGHOST_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CLIENT:SASL_SSL,EXPIRED:SASL_SSL,WRONGHOST:SASL_SSL,CONTROLLER:SSL
sasl.enabled.mechanisms=$SCRAM
sasl.mechanism.inter.broker.protocol=$SCRAM
EOF
	for l in client expired wronghost; do
		echo "listener.name.$l.sasl.enabled.mechanisms=$SCRAM"
		echo "listener.name.$l.${SCRAM,,}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(secret_value kafka-admin)\";"
	done
	cat <<EOF
# The listeners of bad certificates, for tests: an expired certificate of the stack's CA, and
# one of the stack's CA for another host name.
listener.name.expired.ssl.keystore.type=PEM
listener.name.expired.ssl.keystore.location=$TLS_DIR/kafka-expired-keystore.pem
listener.name.wronghost.ssl.keystore.type=PEM
listener.name.wronghost.ssl.keystore.location=$TLS_DIR/kafka-wrong-host-keystore.pem
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/kafka-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.crt
ssl.endpoint.identification.algorithm=https
# The controller listener takes only the broker's own certificate (CN=localhost, of the
# stack's CA): its principal is a super user, so nothing with a password or without a
# certificate reaches it.
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=localhost
EOF
}

# secure_kafka_ports fails when a port of the listeners of bad certificates is taken.
secure_kafka_ports() {
	require_free_port "$KAFKA_EXPIRED_PORT" ANNALS_SECURE_KAFKA_EXPIRED_PORT "Kafka's EXPIRED listener"
	require_free_port "$KAFKA_WRONGHOST_PORT" ANNALS_SECURE_KAFKA_WRONGHOST_PORT "Kafka's WRONGHOST listener"
}

# kafka_tool CLASS ARGS...: one of Kafka's tools (a class under org.apache.kafka.tools) with a
# small heap.
kafka_tool() {
	java -Xms32m -Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
		-cp "$KAFKA_LIBS/*" "org.apache.kafka.tools.$1" "${@:2}"
}

# acl_runs PREFIX: the kafka-acls arguments of the identities' ACLs on the topics and groups of
# a prefix, one run per line (see the top of this file). Each run grants every operation it
# names to every principal on every resource it names, so a line holds only what belongs
# together.
acl_runs() {
	local p=$1 c s events=""
	for c in $SECURE_CATEGORIES; do events+=" --topic $p.$c"; done
	echo "--allow-principal User:writer --operation Write --operation DescribeConfigs$events"
	echo "--allow-principal User:writer --operation Describe --resource-pattern-type prefixed --topic $p. --group $p-"
	echo "--allow-principal User:projector --allow-principal User:notifier --allow-principal User:auditor --operation Read --operation Describe$events"
	for s in "${CONSUMING_SERVICES[@]}"; do
		echo "--allow-principal User:$s --operation Read --group $p-$s"
		echo "--allow-principal User:$s --operation Write --operation Describe --topic $p.dlq.$p-$s"
	done
	echo "--allow-principal User:cli --operation Create --operation Describe --operation DescribeConfigs --operation Read --resource-pattern-type prefixed --topic $p."
	echo "--allow-principal User:cli --operation Describe --operation Read --resource-pattern-type prefixed --group $p-"
}

# secure_acls [--remove] PREFIX...: grant (or remove) the ACLs of each prefix with kafka-acls,
# as admin, four runs at a time.
secure_acls() {
	local action=--add
	if [[ ${1:-} == --remove ]]; then
		action=--remove
		shift
	fi
	(($# > 0)) || fail "usage: ANNALS_SECURE=1 $0 acls [--remove] PREFIX..."
	local p
	for p in "$@"; do
		[[ $p =~ ^[A-Za-z0-9._-]+$ ]] || fail "topic prefix $p: want letters, digits, '.', '_' and '-' only"
	done
	secure_load
	kafka_ready || fail "the secured Kafka is not running: ANNALS_SECURE=1 $0 up"
	local log=$KAFKA_DIR/acls.log tmp line running=0 failed=0 args runs extra=()
	if [[ $action == --remove ]]; then extra=(--force); fi
	mapfile -t runs < <(for p in "$@"; do acl_runs "$p"; done)
	# A file of this run's own: tests grant and remove the ACLs of their prefixes at once.
	tmp=$(mktemp "$log.XXXXXX")
	for line in "${runs[@]}"; do
		read -r -a args <<<"$line"
		if ((running >= 4)); then
			wait -n || failed=1
			running=$((running - 1))
		fi
		kafka_tool AclCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
			--command-config "$KAFKA_CLIENTS_DIR/admin.properties" "$action" "${extra[@]}" "${args[@]}" >>"$tmp" 2>&1 &
		running=$((running + 1))
	done
	while ((running > 0)); do
		wait -n || failed=1
		running=$((running - 1))
	done
	cat "$tmp" >>"$log"
	rm -f "$tmp"
	((failed == 0)) || fail "kafka-acls $action failed for $*; see $log"
	if [[ $action == --add ]]; then
		say "ACLs granted for the topic prefix(es) $*"
	else
		# A prefix whose ACLs `up` granted is granted again by the next `up` that asks for it.
		for p in "$@"; do rm -f "$KAFKA_DIR/data/.acls-$p"; done
		say "ACLs removed for the topic prefix(es) $*"
	fi
}

# secure_kafka_started grants the ACLs of ANNALS_SECURE_TOPIC_PREFIXES once per prefix and
# definition: the storage remembers which (data/.acls-<prefix> holds the definition's hash).
secure_kafka_started() {
	local p want todo=()
	for p in $SECURE_PREFIXES; do
		want=$(acl_runs "$p" | sha256sum | cut -d' ' -f1)
		[[ $(cat "$KAFKA_DIR/data/.acls-$p" 2>/dev/null) == "$want" ]] || todo+=("$p")
	done
	((${#todo[@]} > 0)) || return 0
	secure_acls "${todo[@]}"
	for p in "${todo[@]}"; do
		acl_runs "$p" | sha256sum | cut -d' ' -f1 >"$KAFKA_DIR/data/.acls-$p"
	done
}

# ---------------------------------------------------------------- env

secure_print_env() {
	secure_load
	local id key ca=$TLS_DIR/ca.crt
	key=$(api_key)
	cat <<EOF
export DATABASE_URL='postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=verify-full&sslrootcert=$ca'
export EVENT_STORE_HOST='127.0.0.1'
export EVENT_STORE_PORT='$PG_PORT'
export EVENT_STORE_DATABASE='$PG_DB'
export EVENT_STORE_USERNAME='$PG_USER'
export EVENT_STORE_PASSWORD='$PG_PASSWORD'
export EVENT_STORE_SSLMODE='verify-full'
export EVENT_STORE_SSLROOTCERT='$ca'
export KAFKA_BROKERS='127.0.0.1:$KAFKA_PORT'
export KAFKA_SECURITY_PROTOCOL='SASL_SSL'
export KAFKA_SASL_MECHANISM='$SCRAM'
export KAFKA_SASL_USERNAME='admin'
export KAFKA_SASL_PASSWORD='$(secret_value kafka-admin)'
export KAFKA_TLS_CA_FILE='$ca'
EOF
	for id in "${KAFKA_IDENTITIES[@]}"; do
		echo "export ANNALS_SECURE_${id^^}_PASSWORD='$(secret_value "kafka-$id")'"
	done
	cat <<EOF
export ANNALS_SECURE_KAFKA_CLIENTS='$KAFKA_CLIENTS_DIR'
export ANNALS_SECURE_KAFKA_CONTROLLER='127.0.0.1:$KAFKA_CONTROLLER_PORT'
export ANNALS_SECURE_KAFKA_EXPIRED='127.0.0.1:$KAFKA_EXPIRED_PORT'
export ANNALS_SECURE_KAFKA_WRONGHOST='127.0.0.1:$KAFKA_WRONGHOST_PORT'
export ANNALS_SECURE_TLS_DIR='$TLS_DIR'
export SMTP_ADDR='127.0.0.1:$SMTP_PORT'
export MAILPIT_URL='http://127.0.0.1:$MAILPIT_PORT'
export KAFKA_LIBS='$KAFKA_LIBS'
export EVENT_SIGNING_KEY='$(signing_key)'
export DEX_BIN='$DEX_BIN'
export API_KEYS='local:$API_SCOPES:$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)'
export ANNALS_API_KEY='$key'
EOF
}
