// Package secure tests the Kafka clients and the PostgreSQL pool against a secured stack: a
// broker listening with SASL and TLS (SASL_SSL), and PostgreSQL with TLS. The clients connect
// with the services' own settings, read from the environment as the services read them
// (KAFKA_BROKERS, KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_TLS_*, DATABASE_URL): the relay
// publishes, a consumer group reads, the lag monitor, the dead-letter scan and a replay plan
// reach the broker, and wrong settings are refused with the setting named; a service whose
// PostgreSQL settings the TLS-only server refuses stops at start, naming the setting.
//
// The secured stack is not the shared one: start it and export its settings first
// (`ANNALS_SECURE=1 scripts/stack.sh up`, then `eval "$(ANNALS_SECURE=1 scripts/stack.sh env)"`).
// Without a secured protocol in KAFKA_SECURITY_PROTOCOL every test skips, saying so. It holds
// tests only.
package secure
