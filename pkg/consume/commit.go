package consume

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"
)

// commitQuiet is how long a consumer with offsets to commit waits for another message before
// it takes itself to be idle and commits them: the group's lag reaches zero that soon after
// traffic stops, while a steady flow of messages, however slow, is committed once per
// Config.CommitInterval.
const commitQuiet = 100 * time.Millisecond

// commitRetry is the least time between a failed commit and the next attempt, but for the one
// a session makes before it ends.
const commitRetry = time.Second

// committer gathers the offsets of a session's processed batches and commits them to the
// group (Config.CommitInterval): when the interval has passed since the last commit, when the
// consumer is idle, and before the session ends. One commit is in flight at a time, so that
// the broker receives them in order. It belongs to the session's goroutine.
type committer struct {
	c        *Consumer
	gen      *kafka.Generation
	pms      map[topicPartition]*partitionMetrics
	commits  prometheus.Counter
	pending  map[topicPartition]int64 // processed, not committed yet
	last     time.Time                // when the last commit started
	retryAt  time.Time                // no commit before, after one failed
	inflight chan struct{}            // closed when the commit in flight has finished
	failed   map[topicPartition]int64 // the commit in flight's offsets if it failed; read once inflight is closed
}

// committer starts with the offsets an earlier session of the generation left uncommitted
// (unsettled), which it takes over.
func (c *Consumer) committer(gen *kafka.Generation, pms map[topicPartition]*partitionMetrics, unsettled map[topicPartition]int64) *committer {
	pending := map[topicPartition]int64{}
	for tp, off := range unsettled {
		if pms[tp] != nil {
			pending[tp] = off
		}
		delete(unsettled, tp)
	}
	return &committer{c: c, gen: gen, pms: pms, commits: c.cfg.Metrics.commits.WithLabelValues(c.cfg.Group),
		pending: pending, last: time.Now()}
}

// add takes the offsets committable returned for a batch, later than those pending.
func (k *committer) add(next map[topicPartition]int64) {
	for tp, off := range next {
		k.pending[tp] = off
	}
}

// due reports whether the pending offsets are to be committed now, at the end of a batch.
func (k *committer) due() bool {
	k.settle(false)
	if len(k.pending) == 0 || time.Now().Before(k.retryAt) {
		return false
	}
	return k.c.cfg.CommitInterval < 0 || time.Since(k.last) >= k.c.cfg.CommitInterval
}

// idle returns how long the session may wait for a message before it commits the pending
// offsets, and false when none are pending.
func (k *committer) idle() (time.Duration, bool) {
	k.settle(false)
	if len(k.pending) == 0 {
		return 0, false
	}
	if !k.retryAt.IsZero() {
		return max(time.Until(k.retryAt), 0), true
	}
	return max(min(commitQuiet, time.Until(k.last.Add(k.c.cfg.CommitInterval))), 0), true
}

// flush commits the pending offsets, after the commit in flight: at once when sync (or
// Config.Sequential) and otherwise while the session goes on, and calls then (if not nil)
// when the commit has finished. It does nothing but call then when no offset is pending.
func (k *committer) flush(sync bool, then func()) {
	k.settle(true)
	if len(k.pending) == 0 {
		if then != nil {
			then()
		}
		return
	}
	next := k.pending
	k.pending = map[topicPartition]int64{}
	k.last = time.Now()
	done := make(chan struct{})
	k.inflight = done
	commit := func() {
		defer close(done)
		if !k.c.commit(k.gen, next, k.pms) {
			k.failed = next
		}
		k.commits.Inc()
		if then != nil {
			then()
		}
	}
	if sync || k.c.cfg.Sequential {
		commit()
		return
	}
	go commit()
}

// settle takes the outcome of the commit in flight once it has finished, waiting for it when
// wait is set: the offsets of a failed commit are pending again, unless later ones are, and
// no commit is due before commitRetry has passed.
func (k *committer) settle(wait bool) {
	if k.inflight == nil {
		return
	}
	if wait {
		<-k.inflight
	} else {
		select {
		case <-k.inflight:
		default:
			return
		}
	}
	k.inflight = nil
	if k.failed == nil {
		k.retryAt = time.Time{}
		return
	}
	for tp, off := range k.failed {
		if _, later := k.pending[tp]; !later {
			k.pending[tp] = off
		}
	}
	k.failed = nil
	k.retryAt = time.Now().Add(max(commitRetry, k.c.cfg.CommitInterval))
}

// close commits what is pending, the session's last commit, and waits for it: nothing the
// session processed is left uncommitted that the generation still accepts. What that commit
// could not commit goes to unsettled, for the generation's next session to commit.
func (k *committer) close(unsettled map[topicPartition]int64) {
	k.flush(true, nil)
	k.settle(true)
	for tp, off := range k.pending {
		unsettled[tp] = off
	}
}

// commit commits the offsets of committable to the group, and reports whether the broker
// took them.
func (c *Consumer) commit(gen *kafka.Generation, next map[topicPartition]int64, pms map[topicPartition]*partitionMetrics) bool {
	req := map[string]map[int]int64{}
	for tp, off := range next {
		if req[tp.topic] == nil {
			req[tp.topic] = map[int]int64{}
		}
		req[tp.topic][tp.partition] = off
	}
	if err := gen.CommitOffsets(req); err != nil {
		if !c.refuse(err, kafkasec.Access{Operation: "Read", Group: c.cfg.Group}) {
			c.log.Warn("consume: commit failed; the messages will be delivered again unless a later commit succeeds", "error", err)
		}
		return false
	}
	for tp, off := range next {
		pms[tp].committed.Set(float64(off))
	}
	return true
}
