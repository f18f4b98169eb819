package lag

import (
	"strings"
	"testing"
	"time"
)

// The status rules on made-up windows; monitor tests check them against the broker.
func TestEvaluate(t *testing.T) {
	a, b := topicPartition{"t", 0}, topicPartition{"t", 1}
	order := []topicPartition{a, b}
	// window builds samples of partition a (committed, lag pairs), 10 s apart.
	window := func(members int, pairs ...[2]int64) []sample {
		var out []sample
		for i, p := range pairs {
			out = append(out, sample{at: time.Unix(int64(10*i), 0), members: members,
				parts: map[topicPartition]partSample{a: {p[0], p[1]}}})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		samples []sample
		want    Status
		reason  string
	}{
		{"CaughtUpAtOnce", window(0, [2]int64{5, 0}), StatusOK, "caught up"},
		{"LaggingWindowNotFull", window(0, [2]int64{5, 1}, [2]int64{5, 1}), StatusUnknown, "needs 4 polls, 2 so far"},
		{"Stop", window(0, [2]int64{5, 1}, [2]int64{5, 1}, [2]int64{5, 2}, [2]int64{5, 3}), StatusStop, "stood at 5 with lag 3 over the last 4 polls (30s)"},
		{"Stall", window(2, [2]int64{5, 1}, [2]int64{5, 1}, [2]int64{5, 1}, [2]int64{5, 1}), StatusStall, "2 live member(s)"},
		{"LagZeroOnceInWindow", window(0, [2]int64{5, 0}, [2]int64{5, 1}, [2]int64{5, 1}, [2]int64{5, 1}), StatusOK, "consuming"},
		{"Warn", window(1, [2]int64{5, 1}, [2]int64{6, 3}, [2]int64{7, 3}, [2]int64{8, 6}), StatusWarn, "rose from 1 to 6"},
		{"WarnNeedsARise", window(1, [2]int64{5, 3}, [2]int64{6, 3}, [2]int64{7, 3}, [2]int64{8, 3}), StatusOK, "consuming"},
		{"FallingIsOK", window(1, [2]int64{5, 9}, [2]int64{6, 10}, [2]int64{9, 8}, [2]int64{12, 10}), StatusOK, "consuming"},
		{"MovedBackAndStill", window(0, [2]int64{9, 1}, [2]int64{2, 8}, [2]int64{2, 8}, [2]int64{2, 8}), StatusWarn, "rose from 1 to 8"},
		{"NoOffsetsNoMembers", []sample{{members: 0, parts: map[topicPartition]partSample{}}}, StatusUnknown, "no committed offset"},
		{"NoOffsetsButMembers", []sample{{members: 1, parts: map[topicPartition]partSample{}}}, StatusOK, "no committed offset yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := evaluate(tc.samples, 4, order)
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Errorf("%s (%s), want %s (%s)", got, reason, tc.want, tc.reason)
			}
		})
	}

	t.Run("WorstPartitionWins", func(t *testing.T) {
		// Partition a keeps up; partition b stands still with lag: the group stalls.
		var s []sample
		for i := range 4 {
			s = append(s, sample{at: time.Unix(int64(i), 0), members: 1, parts: map[topicPartition]partSample{
				a: {int64(10 + i), 1}, b: {3, 2},
			}})
		}
		if got, reason := evaluate(s, 4, order); got != StatusStall || !strings.Contains(reason, "t/1") {
			t.Errorf("%s (%s), want stall of t/1", got, reason)
		}
	})

	t.Run("NewPartition", func(t *testing.T) {
		// Partition b got its first committed offset within the window: unknown, not stop.
		var s []sample
		for i := range 4 {
			parts := map[topicPartition]partSample{a: {int64(10 + i), 0}}
			if i >= 2 {
				parts[b] = partSample{3, 2}
			}
			s = append(s, sample{at: time.Unix(int64(i), 0), parts: parts})
		}
		if got, reason := evaluate(s, 4, order); got != StatusUnknown || !strings.Contains(reason, "t/1") {
			t.Errorf("%s (%s), want unknown for t/1", got, reason)
		}
	})
}
