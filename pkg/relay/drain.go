package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/sourcegraph/conc/iter"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/outbox"
	"github.com/annals-dev/annals/pkg/hops"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

// errPartial: some records of a publish were not acknowledged; they are published again after
// the retry pause.
var errPartial = errors.New("some records were not acknowledged")

// Why an append is held, as the held-appends counter labels it.
const (
	causeUnencodable = "unencodable" // the encoder refuses an event (no schema for its type)
	causeTooLarge    = "too_large"   // over the topic's max.message.bytes
	causeRefused     = "refused"     // the broker refused its records for good
	causeBehind      = "behind"      // an earlier append of its stream is held
)

// firstReadEvents is the event budget of a relay's first read, before it knows how large the
// outbox's events are; minReadEvents the least it asks for after. Each read asks for about
// twice the events that the byte budget holds at the last read's bytes per event (at most
// MaxBatchEvents), so that the database sizes few more events than the read returns.
const (
	firstReadEvents = 256
	minReadEvents   = 8
)

// drain publishes one window of the outbox and reports how many appends it settled, or, when
// the broker refused some records for good, made progress on (the loop goes on at once).
//
// The round's steps: read a window (Pending), keep the appends of held streams behind their
// hold, keep each stream's appends that continue it without a gap (inOrder), encode and size
// them against the topics' limits (plan), publish each partition's share as one produce batch
// (publish), and settle in the outbox what was published and what is held (settle).
func (r *Relay) drain(ctx context.Context, sess outbox.Session) (int, error) {
	window, err := sess.Pending(ctx, r.readEvents, r.cfg.MaxReadBytes)
	if err != nil || len(window) == 0 {
		return 0, err
	}
	r.adaptReads(window)
	var behind []outbox.Append
	batch := make([]outbox.Append, 0, len(window))
	for _, a := range window {
		if a.Held {
			behind = append(behind, a)
			continue
		}
		batch = append(batch, a)
	}
	rd, err := r.plan(ctx, r.inOrder(batch))
	if err != nil {
		return 0, err
	}
	refused, writeErr := r.publish(ctx, rd)
	settled := rd.settlements(behind)
	if err := sess.Settle(ctx, settled); err != nil {
		return 0, err
	}
	r.account(rd, behind)
	if writeErr != nil {
		return len(settled), fmt.Errorf("%w (%d partitions): %w", errPartial, rd.failedRetriable, writeErr)
	}
	return len(settled) + refused, nil
}

// adaptReads sets the event budget of the next read from the bytes per event of this one.
func (r *Relay) adaptReads(window []outbox.Append) {
	var n, size int64
	for _, a := range window {
		n += int64(len(a.Events))
		size += a.Bytes
	}
	perEvent := max(size/max(n, 1), 1)
	r.readEvents = int(min(max(2*r.cfg.MaxReadBytes/perEvent, minReadEvents), int64(r.cfg.MaxBatchEvents)))
}

// round is one publish: the appends, their records, and what became of each.
type round struct {
	batch []outbox.Append
	rows  []encodedRow
	cut   int // the appends from cut on wait for the next round (the byte budget)

	msgs    []kafka.Message
	msgRow  []int          // message -> batch row
	msgPart []partitionKey // message -> partition

	perPartition map[partitionKey]int   // bytes per partition
	sentAlone    map[partitionKey]int   // partitions publishing one append alone -> its row
	failed       map[partitionKey]error // partitions whose produce failed
	held         map[string]bool        // streams held in this round

	failedRetriable int // partitions that failed for a reason that is not the records'
	// again holds the rows of the batch that settlements left to be read again.
	again map[int]bool
}

// encodedRow is an outbox row's records, or why it cannot be published.
type encodedRow struct {
	part   partitionKey
	msgs   []kafka.Message
	bytes  int
	hold   string // why the append is held ("": it is not)
	cause  string // the hold's cause (causeUnencodable, ...)
	behind bool   // an earlier append of its stream is held
	wait   bool   // its partition publishes another append alone this round
}

// plan encodes the appends a window at a time, holds those that cannot be published (and the
// appends behind them), and gathers the records of the others into the round's publish, within
// the partitions' byte budgets: an append that does not fit, and all after it, wait for the
// next round. Rows are encoded a window at a time, so that a round cut short by the budget
// does not encode the rows it leaves for the next one.
func (r *Relay) plan(ctx context.Context, batch []outbox.Append) (*round, error) {
	rd := &round{
		batch: batch, rows: make([]encodedRow, len(batch)), cut: len(batch),
		perPartition: map[partitionKey]int{}, sentAlone: map[partitionKey]int{},
		failed: map[partitionKey]error{}, held: map[string]bool{},
	}
	refreshed := map[string]bool{} // topics whose limit was read again in this round
	for start := 0; start < rd.cut; {
		end, n := start, 0
		for end < len(batch) && (n < encodingWindow || end == start) {
			n += len(batch[end].Events)
			end++
		}
		for i := start; i < end; i++ {
			part, err := r.partitionOf(ctx, kafkawire.Topic(r.cfg.TopicPrefix, batch[i].Category), batch[i].StreamID)
			if err != nil {
				return nil, err
			}
			rd.rows[i].part = part
		}
		r.encodeRows(batch[start:end], rd.rows[start:end], n)
		for i := start; i < end; i++ {
			row, a := &rd.rows[i], batch[i]
			if rd.held[a.StreamID] {
				row.behind = true
				continue
			}
			if row.hold == "" {
				if why := r.oversize(ctx, row, refreshed); why != "" {
					row.hold, row.cause = why, causeTooLarge
				}
			}
			if row.hold != "" {
				rd.held[a.StreamID] = true
				continue
			}
			p := row.part
			if r.alone[p] > 0 {
				if _, taken := rd.sentAlone[p]; taken {
					row.wait = true // as are the stream's later appends, in the same partition
					continue
				}
				rd.sentAlone[p] = i
			}
			if rd.perPartition[p]+row.bytes > r.batchBudget(p.topic) && len(rd.msgs) > 0 {
				rd.cut = i // this append and the rest wait for the next round
				if j, ok := rd.sentAlone[p]; ok && j == i {
					delete(rd.sentAlone, p)
				}
				break
			}
			rd.perPartition[p] += row.bytes
			for _, m := range row.msgs {
				rd.msgs = append(rd.msgs, m)
				rd.msgRow = append(rd.msgRow, i)
				rd.msgPart = append(rd.msgPart, p)
			}
		}
		start = end
	}
	return rd, nil
}

// oversize says why the row's append cannot be published in one produce batch under its
// topic's limit, or "" when it can. Before it holds an append for its size, it reads the
// topic's limit again, once a round, in case the limit was raised.
func (r *Relay) oversize(ctx context.Context, row *encodedRow, refreshed map[string]bool) string {
	topic := row.part.topic
	limit := r.recordLimit(topic)
	if batchOverhead+row.bytes <= limit {
		return ""
	}
	if !refreshed[topic] {
		refreshed[topic] = true
		r.readLimit(ctx, topic)
		if limit = r.recordLimit(topic); batchOverhead+row.bytes <= limit {
			return ""
		}
	}
	largest, at := 0, 0
	for j, m := range row.msgs {
		if size := recordSize(m); size > largest {
			largest, at = size, j
		}
	}
	m := row.msgs[at]
	if batchOverhead+largest > limit {
		return fmt.Sprintf("record of %d bytes (value %d) is over the limit of %d bytes of topic %s (max.message.bytes) (event %s, %s@%s)",
			largest, len(m.Value), limit, topic, header(m, kafkawire.HeaderEventID), m.Key, header(m, kafkawire.HeaderStreamVersion))
	}
	return fmt.Sprintf("the append's %d records take %d bytes, over the limit of %d bytes of topic %s (max.message.bytes); an append is published in one batch",
		len(row.msgs), row.bytes, limit, topic)
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// publish produces the round's records and sorts out the partitions that failed: a failure
// that is not the records' fault (the broker unreachable, a leader moving, too few in-sync
// replicas) is returned, and its appends are published again after the pause. A refusal of the
// records for good (refusedForGood) is confirmed by sending the partition's appends one at a
// time for a while; an append refused while sent alone holds its stream. It returns the
// number of appends whose refusal was sorted out this way, and the retriable failures.
func (r *Relay) publish(ctx context.Context, rd *round) (refused int, retriable error) {
	if len(rd.msgs) == 0 {
		return 0, nil
	}
	spans := r.stamp(ctx, rd)
	wctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	rd.failed = r.produce(wctx, rd.msgs, rd.msgPart)
	cancel()
	ackedAt := time.Now()
	defer endSpans(rd, spans, ackedAt)

	var errs []error
	for p, err := range rd.failed {
		if !refusedForGood(err) {
			rd.failedRetriable++
			errs = append(errs, fmt.Errorf("%s[%d]: %w", p.topic, p.partition, r.refusal(err, "Write", p.topic)))
			continue
		}
		refused++
		i, alone := rd.sentAlone[p]
		if sizeRefusal(err) {
			// The topic's limit may have been lowered: once read again, the next round's
			// batches and size checks keep to it, and finding the append at fault needs no
			// more.
			before := r.recordLimit(p.topic)
			r.readLimit(ctx, p.topic)
			if r.recordLimit(p.topic) < before && !alone {
				continue
			}
		}
		if !alone {
			r.alone[p] = aloneRounds
			r.log.Warn("relay: the broker refused a batch for good; publishing its partition's appends one at a time to find the one at fault",
				"topic", p.topic, "partition", p.partition, "error", err)
			continue
		}
		delete(r.alone, p)
		row := &rd.rows[i]
		row.hold, row.cause = fmt.Sprintf("the broker refused the append's records: %v", err), causeRefused
		rd.held[rd.batch[i].StreamID] = true
	}
	for p := range rd.sentAlone {
		if rd.failed[p] == nil {
			if r.alone[p]--; r.alone[p] <= 0 {
				delete(r.alone, p)
			}
		}
	}
	if rd.failedRetriable > 0 && rd.failedRetriable == len(rd.perPartition) {
		clear(r.topics) // nothing went through: the topics may have changed
	}

	published := 0
	for j, m := range rd.msgs {
		if rd.failed[rd.msgPart[j]] == nil {
			published++
			r.m.latency.Observe(ackedAt.Sub(m.Time).Seconds())
			r.m.hops.Observe(hops.CommitToAck, ackedAt.Sub(m.Time))
		}
	}
	r.m.published.Add(float64(published))
	r.m.batch.Observe(float64(len(rd.msgs)))
	return refused, errors.Join(errs...)
}

// aloneRounds is how many rounds a partition whose batch the broker refused for good publishes
// one append at a time: long enough to find the append at fault among those the batch held;
// if none is refused alone meanwhile, the refusal was not their fault for good.
const aloneRounds = 64

// settlements are what the round settles: the appends of held streams it read (behind), the
// appends it holds and those behind them, and those it published, in the batch's order. An
// append whose partition failed, that waited for its partition, or past the cut, is not
// settled: it is read again, and so are its stream's later appends in the round, a hold among
// them too. A hold settled in front of an earlier append still to be published would keep
// that append behind it: the next read finds the stream held.
func (rd *round) settlements(behind []outbox.Append) []outbox.Settlement {
	settled := make([]outbox.Settlement, 0, len(behind)+rd.cut)
	for _, a := range behind {
		settled = append(settled, outbox.Settlement{StreamID: a.StreamID, FirstVersion: a.FirstVersion, Behind: true})
	}
	rd.again = map[int]bool{}
	again := map[string]bool{} // streams with an append read again
	for i, a := range rd.batch[:rd.cut] {
		row := &rd.rows[i]
		st := outbox.Settlement{StreamID: a.StreamID, FirstVersion: a.FirstVersion}
		switch {
		case again[a.StreamID]:
			rd.again[i] = true
			continue
		case row.hold != "":
			st.Hold = row.hold
		case row.behind:
			st.Behind = true
		case row.wait, rd.failed[row.part] != nil:
			again[a.StreamID], rd.again[i] = true, true
			continue
		}
		settled = append(settled, st)
	}
	return settled
}

// account counts and logs the appends the round held, once they are settled.
func (r *Relay) account(rd *round, behind []outbox.Append) {
	r.m.held.WithLabelValues(causeBehind).Add(float64(len(behind)))
	for i, a := range rd.batch[:rd.cut] {
		row := &rd.rows[i]
		switch {
		case rd.again[i]:
		case row.hold != "":
			r.m.held.WithLabelValues(row.cause).Inc()
			r.log.Error("relay: holds a stream: an append cannot be published; its stream's later appends wait behind it (annals outbox holds, retry, skip)",
				"stream_id", a.StreamID, "first_version", a.FirstVersion, "last_version", a.LastVersion, "reason", row.hold)
		case row.behind:
			r.m.held.WithLabelValues(causeBehind).Inc()
		}
	}
}

// parallelEncoding is the number of events from which a window's encoding is spread over
// the cores. Encoding is most of a large round's CPU, and the database and the broker wait
// meanwhile; a round of a few events is not worth the goroutines. encodingWindow is how many
// events are encoded before the byte budget is checked again.
const (
	parallelEncoding = 256
	encodingWindow   = 1024
)

// encodeRows encodes the events of each batch row, n in all, into rows[i].msgs, or says in
// rows[i].hold why the row cannot be encoded.
func (r *Relay) encodeRows(batch []outbox.Append, rows []encodedRow, n int) {
	encode := func(i int) {
		row := &rows[i]
		for _, e := range batch[i].Events {
			value, contentType, fp, err := r.enc.Encode(e)
			if err != nil {
				row.hold, row.cause, row.msgs, row.bytes = err.Error(), causeUnencodable, nil, 0
				return
			}
			m := r.message(e, value, contentType, fp)
			row.msgs = append(row.msgs, m)
			row.bytes += recordSize(m)
		}
	}
	if n < parallelEncoding {
		for i := range batch {
			encode(i)
		}
		return
	}
	iter.ForEachIdx(rows, func(i int, _ *encodedRow) { encode(i) })
}

// recordSize is what a record counts against the broker's limits: value, key, headers (those
// stamp adds as it sends the record included) and the record's own overhead (at most about 30
// bytes of varints and attributes).
func recordSize(m kafka.Message) int {
	n := len(m.Value) + len(m.Key) + 32 + stampBytes
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}

// inOrder keeps, for each stream, the appends that continue it without a gap from its oldest
// pending append, in version order (the batch comes sorted by stream and version), within the
// batch's event budget.
//
// A committed append's earlier versions are always committed too (an append of version v+1
// needs version v to exist, and the unique (stream_id, version) index makes a racing append
// wait for the other's commit), so the oldest pending append this relay can see is the
// stream's next one. A stream's later append can still be older by transaction id than an
// earlier one (a transaction that wrote elsewhere first, then waited for the earlier
// version); it waits here until the earlier one is published.
func (r *Relay) inOrder(batch []outbox.Append) []outbox.Append {
	out := batch[:0]
	next := map[string]int64{}
	n := 0
	for _, a := range batch {
		want, seen := next[a.StreamID]
		if !seen {
			want = a.Head
		}
		if a.FirstVersion != want || int64(len(a.Events)) != a.LastVersion-a.FirstVersion+1 {
			next[a.StreamID] = -1 // a gap: the rest of this stream waits
			continue
		}
		if n+len(a.Events) > r.cfg.MaxBatchEvents && n > 0 {
			next[a.StreamID] = -1
			continue
		}
		n += len(a.Events)
		next[a.StreamID] = a.LastVersion + 1
		out = append(out, a)
	}
	return out
}

func (r *Relay) message(e events.Envelope, value []byte, contentType string, fp uint64) kafka.Message {
	m := kafka.Message{
		Topic: kafkawire.Topic(r.cfg.TopicPrefix, e.Category),
		Key:   []byte(e.StreamID),
		Value: value,
		Time:  e.RecordedAt,
		Headers: []kafka.Header{
			{Key: kafkawire.HeaderEventID, Value: []byte(e.EventID.String())},
			{Key: kafkawire.HeaderEventType, Value: []byte(e.Type)},
			{Key: kafkawire.HeaderStreamVersion, Value: strconv.AppendInt(nil, e.Version, 10)},
			{Key: kafkawire.HeaderGlobalPosition, Value: strconv.AppendInt(nil, e.GlobalPosition, 10)},
			{Key: kafkawire.HeaderCorrelationID, Value: []byte(e.CorrelationID)},
			{Key: kafkawire.HeaderCausationID, Value: []byte(e.CausationID)},
			{Key: kafkawire.HeaderRecordedAt, Value: []byte(e.RecordedAt.Format(time.RFC3339Nano))},
			{Key: kafkawire.HeaderContentType, Value: []byte(contentType)},
			{Key: kafkawire.HeaderFingerprint, Value: fmt.Appendf(nil, "%016x", fp)},
		},
	}
	if len(e.Metadata) > 0 {
		md, _ := json.Marshal(e.Metadata) // a map of strings always marshals
		m.Headers = append(m.Headers, kafka.Header{Key: kafkawire.HeaderMetadata, Value: md})
	}
	if r.cfg.Signer != nil {
		r.cfg.Signer.Sign(&m) // last: it signs the headers above
	}
	return m
}
