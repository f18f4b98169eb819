package lag

import (
	"fmt"
	"time"
)

// sample is what the status needs of one poll of one group.
type sample struct {
	at      time.Time
	members int
	// parts holds the partitions that have a committed offset.
	parts map[topicPartition]partSample
}

type partSample struct{ committed, lag int64 }

func sampleOf(at time.Time, g Group) sample {
	s := sample{at: at, members: g.Members, parts: map[topicPartition]partSample{}}
	for _, p := range g.Partitions {
		if p.Committed >= 0 {
			s.parts[topicPartition{p.Topic, p.Partition}] = partSample{p.Committed, p.Lag}
		}
	}
	return s
}

// evaluate judges a group over its samples, oldest first, at most window of them; the last
// is the group's latest. order lists its partitions in the order to report them.
func evaluate(samples []sample, window int, order []topicPartition) (Status, string) {
	newest := samples[len(samples)-1]
	status, reason, evaluated := StatusOK, "", 0
	for _, tp := range order {
		if _, ok := newest.parts[tp]; !ok {
			continue
		}
		evaluated++
		if st, why := evaluatePartition(tp, samples, window, newest.members); st.severity() > status.severity() {
			status, reason = st, why
		}
	}
	switch {
	case evaluated == 0 && newest.members > 0:
		return StatusOK, "live members, no committed offset yet"
	case evaluated == 0:
		return StatusUnknown, "no committed offset on the topics and no live member"
	case status == StatusOK:
		var lag int64
		for _, p := range newest.parts {
			lag += p.lag
		}
		if lag == 0 {
			return StatusOK, "caught up"
		}
		return StatusOK, "consuming"
	}
	return status, reason
}

func evaluatePartition(tp topicPartition, samples []sample, window, members int) (Status, string) {
	n := len(samples)
	last := samples[n-1].parts[tp]
	if last.lag == 0 {
		return StatusOK, ""
	}
	if n < window {
		return StatusUnknown, fmt.Sprintf("%s/%d lags by %d; the status needs %d polls, %d so far", tp.topic, tp.partition, last.lag, window, n)
	}
	w := samples[n-window:]
	lags := make([]int64, len(w))
	for i, s := range w {
		p, ok := s.parts[tp]
		if !ok {
			return StatusUnknown, fmt.Sprintf("%s/%d lags by %d; it has had a committed offset for fewer than the %d polls the status needs", tp.topic, tp.partition, last.lag, window)
		}
		if p.lag == 0 {
			return StatusOK, ""
		}
		lags[i] = p.lag
	}
	first := w[0].parts[tp]
	span := w[len(w)-1].at.Sub(w[0].at)
	if span >= time.Second {
		span = span.Round(time.Second)
	} else {
		span = span.Round(time.Millisecond)
	}
	still := true
	for _, s := range w {
		still = still && s.parts[tp].committed == first.committed
	}
	if still {
		if members > 0 {
			return StatusStall, fmt.Sprintf("%d live member(s), but the committed offset of %s/%d stood at %d with lag %d over the last %d polls (%s)",
				members, tp.topic, tp.partition, last.committed, last.lag, window, span)
		}
		return StatusStop, fmt.Sprintf("no live member; the committed offset of %s/%d stood at %d with lag %d over the last %d polls (%s)",
			tp.topic, tp.partition, last.committed, last.lag, window, span)
	}
	rising := lags[len(lags)-1] > lags[0]
	for i := 1; i < len(lags); i++ {
		rising = rising && lags[i] >= lags[i-1]
	}
	if rising {
		return StatusWarn, fmt.Sprintf("the lag of %s/%d rose from %d to %d over the last %d polls (%s) while its committed offset moved only from %d to %d",
			tp.topic, tp.partition, lags[0], lags[len(lags)-1], window, span, first.committed, last.committed)
	}
	return StatusOK, ""
}
