// Package stack tests the local stack scripts and `make run` end to end: real processes,
// real ports. The tests start a second stack on free ports in a folder of their own, so they
// never touch the stack a developer is running; they are behind the `stack` build tag and run
// one at a time from `make test`.
package stack
