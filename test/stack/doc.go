// Package stack tests the local stack scripts, `make run` and the relay's fault handling end
// to end: real processes, real ports. The lifecycle tests start a second stack on free ports
// in a folder of their own; the relay fault tests SIGKILL a relay process and stop and start
// the stack's own broker (scripts/stack.sh down kafka / up kafka), so nothing else may use
// that broker while they run. They are behind the `stack` build tag and run one at a time,
// last, from `make test`; `make test-faults` repeats the fault rounds (ANNALS_FAULT_ROUNDS).
package stack
