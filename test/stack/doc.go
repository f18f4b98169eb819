// Package stack tests the pipeline end to end with real processes on real ports: the local
// stack scripts and `make run`; the relay killed or cut off from its broker; the writer's
// memory while a backlog of large orders waits out a broker outage and drains; the notifier's
// broker killed under load; the projector, notifier and auditor driven through the writer's
// HTTP API, SIGKILLed and restarted, run as two instances of one group, fed a poison event,
// rebuilt while live, fed records the relay did not publish (Kafka's own console producer);
// the writer's lag
// exporter read while the notifier is stopped, and checked against Kafka's own
// kafka-consumer-groups; the secured stack (ANNALS_SECURE=1) probed with Kafka's console tools
// and psql, the whole pipeline run on it with each service as its own identity (and
// `ANNALS_SECURE=1 make run`), and settings it refuses stopping a service at start with one
// line, the expired and misnamed certificates served by listeners of their own; one command
// traced across the four services into a real Jaeger v2, which the test starts through
// scripts/stack.sh on ports and in a folder of its own. Each test runs in a fresh PostgreSQL
// schema with a topic prefix (and so consumer
// groups) of its own; on the secured stack, it grants that prefix the services' ACLs
// (ANNALS_SECURE=1 scripts/stack.sh acls PREFIX) and removes them when it ends.
//
// The lifecycle tests start a second stack (plain or secured) on free ports in a folder of
// their own; so do the
// outage memory test, for a broker it stops and starts, and the notifier's broker test, for a
// broker it kills with SIGKILL while the writer and the notifier run on it. The relay's broker
// test stops and starts the stack's own broker (scripts/stack.sh down kafka / up kafka), so
// nothing else may use that broker while it runs. The tests are behind the `stack` build tag
// and run one at a time, last, from `make test`; `make test-faults` repeats the fault rounds
// (ANNALS_FAULT_ROUNDS).
package stack
