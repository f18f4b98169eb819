package lag_test

import (
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/lag"
)

// The statuses against the real broker, polls driven by the test, a window of 5 polls and
// 10 s of the monitor's clock between two polls.
func TestMonitor_Status(t *testing.T) {
	const window = 5

	// pollUntilFull polls window times, calling before ahead of each poll, and checks that
	// the status is unknown until the window is full; it returns the last poll's group.
	pollUntilFull := func(t *testing.T, f *fixture, m *lag.Monitor, group string, before func(i int)) lag.Group {
		t.Helper()
		var g lag.Group
		for i := range window {
			if i > 0 {
				f.clock.Add(10 * time.Second)
			}
			before(i)
			g = poll(t, m, group)
			if g.Samples != i+1 {
				t.Errorf("poll %d: %d samples, want %d", i+1, g.Samples, i+1)
			}
			if i < window-1 && g.Status != lag.StatusUnknown {
				t.Errorf("poll %d of %d: status %s (%s), want unknown until the window is full", i+1, window, g.Status, g.Reason)
			}
		}
		return g
	}

	t.Run("OK", func(t *testing.T) {
		// Caught up: ok from the first poll, no history needed.
		f := newFixture(t, 2)
		f.produce(t, 0, 0, 1, 2)
		f.produce(t, 1, 0)
		group := f.topic + ".g"
		f.commit(t, group, map[int]int64{0: 3, 1: 1})
		m := f.monitor(t, window, group)
		if g := poll(t, m, group); g.Status != lag.StatusOK || g.Reason != "caught up" {
			t.Errorf("status %s (%s), want ok (caught up)", g.Status, g.Reason)
		}

		// Behind but keeping up: records arrive and the group commits as fast.
		m = f.monitor(t, window, group)
		next := 3
		g := pollUntilFull(t, f, m, group, func(i int) {
			f.produce(t, 0, next)
			next++
			f.commit(t, group, map[int]int64{0: int64(next - 1)})
		})
		if g.Status != lag.StatusOK {
			t.Errorf("status %s (%s), want ok for a group that keeps pace", g.Status, g.Reason)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		// No member, committed offsets standing still, lag above 0: stop once the window
		// is full; ok again as soon as the group catches up.
		f := newFixture(t, 2)
		f.produce(t, 0, 0, 1, 2, 3)
		f.produce(t, 1, 0, 1)
		group := f.topic + ".g"
		f.commit(t, group, map[int]int64{0: 1, 1: 2})
		m := f.monitor(t, window, group)
		g := pollUntilFull(t, f, m, group, func(int) {})
		if g.Status != lag.StatusStop || !strings.Contains(g.Reason, "no live member") || !strings.Contains(g.Reason, f.topic+"/0") {
			t.Errorf("status %s (%s), want stop naming the partition and the missing members", g.Status, g.Reason)
		}
		if g.Members != 0 || g.Lag() != 3 {
			t.Errorf("%d members, lag %d; want 0 and 3", g.Members, g.Lag())
		}

		f.clock.Add(10 * time.Second)
		f.commit(t, group, map[int]int64{0: 4})
		if g := poll(t, m, group); g.Status != lag.StatusOK {
			t.Errorf("after catching up: status %s (%s), want ok", g.Status, g.Reason)
		}
	})

	t.Run("Warn", func(t *testing.T) {
		// Commits progress, but slower than records arrive: the lag rises at every poll.
		f := newFixture(t, 1)
		f.produce(t, 0, 0, 1)
		group := f.topic + ".g"
		committed := int64(0)
		f.commit(t, group, map[int]int64{0: committed})
		m := f.monitor(t, window, group)
		g := pollUntilFull(t, f, m, group, func(i int) {
			if i == 0 {
				return
			}
			f.produce(t, 0, 10*i, 10*i+1, 10*i+2)
			committed++
			f.commit(t, group, map[int]int64{0: committed})
		})
		if g.Status != lag.StatusWarn || !strings.Contains(g.Reason, "rose from 2 to 10") {
			t.Errorf("status %s (%s), want warn: lag rising from 2 to 10", g.Status, g.Reason)
		}
	})

	t.Run("Stall", func(t *testing.T) {
		// A live member that has joined but does not commit, with lag: stall.
		f := newFixture(t, 1)
		f.produce(t, 0, 0, 1, 2)
		group := f.topic + ".g"
		f.commit(t, group, map[int]int64{0: 1})
		f.member(t, group)
		m := f.monitor(t, window, group)
		g := pollUntilFull(t, f, m, group, func(int) {})
		if g.Status != lag.StatusStall || !strings.Contains(g.Reason, "1 live member") {
			t.Errorf("status %s (%s), want stall naming the live member", g.Status, g.Reason)
		}
		if g.State != "Stable" || g.Members != 1 || g.Partitions[0].ClientID != "lag-test-member" {
			t.Errorf("state %s with %d members, partition 0 owned by %q; want Stable, 1, lag-test-member", g.State, g.Members, g.Partitions[0].ClientID)
		}
	})
}
