//go:build race

package lag_test

// raceEnabled: the race detector makes sync.Pool drop what is put back, so kafka-go allocates
// a fresh 64 KiB page for every request and allocation counts say nothing of the code.
const raceEnabled = true
