package lag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

type topicPartition struct {
	topic     string
	partition int
}

type offsetKey struct {
	topicPartition
	offset int64
}

// read asks the brokers for everything one snapshot holds. It fails only when nothing can be
// read (metadata or end offsets); a group or a record that cannot be read goes to the
// snapshot's Errors.
func (m *Monitor) read(ctx context.Context, now time.Time) (*Snapshot, error) {
	s := &Snapshot{Time: now}
	partitions, err := m.readPartitions(ctx, s)
	if err != nil {
		return nil, err
	}
	end, err := m.readEnds(ctx, partitions)
	if err != nil {
		return nil, err
	}
	for _, tp := range partitions {
		s.Topics = append(s.Topics, TopicPartition{Topic: tp.topic, Partition: tp.partition, End: end[tp]})
	}
	names, err := m.groupNames(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) > 0 && len(partitions) > 0 {
		described, err := m.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: names})
		if err != nil {
			return nil, fmt.Errorf("lag: describe groups: %w", err)
		}
		for _, d := range described.Groups {
			if d.Error != nil {
				// The committed offsets may still be readable: report the lag, with the
				// state unknown and no members.
				s.Errors = append(s.Errors, fmt.Errorf("lag: describe group %q: %w", d.GroupID, d.Error))
				d = kafka.DescribeGroupsResponseGroup{GroupID: d.GroupID}
			}
			g, ok, err := m.readGroup(ctx, d, partitions, end)
			if err != nil {
				s.Errors = append(s.Errors, err)
				continue
			}
			if ok || slices.Contains(m.cfg.Groups, d.GroupID) {
				s.Groups = append(s.Groups, g)
			}
		}
	}
	slices.SortFunc(s.Groups, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	s.Errors = append(s.Errors, m.readLagSeconds(ctx, s)...)
	return s, nil
}

// readPartitions lists the partitions of the topics that exist; a missing topic is an error
// of the snapshot, not of the poll (the topics may not be created yet).
func (m *Monitor) readPartitions(ctx context.Context, s *Snapshot) ([]topicPartition, error) {
	meta, err := m.client.Metadata(ctx, &kafka.MetadataRequest{Topics: m.cfg.Topics})
	if err != nil {
		return nil, fmt.Errorf("lag: metadata of %v: %w", m.cfg.Topics, err)
	}
	var out []topicPartition
	for _, name := range m.cfg.Topics {
		i := slices.IndexFunc(meta.Topics, func(t kafka.Topic) bool { return t.Name == name })
		switch {
		case i < 0:
			s.Errors = append(s.Errors, fmt.Errorf("lag: topic %s: not in the broker's metadata", name))
			continue
		case meta.Topics[i].Error != nil:
			s.Errors = append(s.Errors, fmt.Errorf("lag: topic %s: %w", name, meta.Topics[i].Error))
			continue
		}
		var ids []int
		for _, p := range meta.Topics[i].Partitions {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		for _, id := range ids {
			out = append(out, topicPartition{name, id})
		}
	}
	return out, nil
}

// readEnds asks the partitions' leaders for their log-end offsets.
func (m *Monitor) readEnds(ctx context.Context, partitions []topicPartition) (map[topicPartition]int64, error) {
	end := make(map[topicPartition]int64, len(partitions))
	if len(partitions) == 0 {
		return end, nil
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, tp := range partitions {
		req.Topics[tp.topic] = append(req.Topics[tp.topic], kafka.LastOffsetOf(tp.partition))
	}
	resp, err := m.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("lag: end offsets: %w", err)
	}
	for _, tp := range partitions {
		j := slices.IndexFunc(resp.Topics[tp.topic], func(p kafka.PartitionOffsets) bool { return p.Partition == tp.partition })
		if j < 0 {
			return nil, fmt.Errorf("lag: end offsets: no answer for %s/%d", tp.topic, tp.partition)
		}
		p := resp.Topics[tp.topic][j]
		if p.Error != nil {
			return nil, fmt.Errorf("lag: end offset of %s/%d: %w", tp.topic, tp.partition, p.Error)
		}
		if p.LastOffset < 0 {
			return nil, fmt.Errorf("lag: end offset of %s/%d: the broker answered %d", tp.topic, tp.partition, p.LastOffset)
		}
		end[tp] = p.LastOffset
	}
	return end, nil
}

// groupNames are the configured groups, or every consumer group (and group without a
// protocol, as an administrator's commits create) the brokers list.
func (m *Monitor) groupNames(ctx context.Context) ([]string, error) {
	if len(m.cfg.Groups) > 0 {
		return m.cfg.Groups, nil
	}
	resp, err := m.client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil {
		return nil, fmt.Errorf("lag: list groups: %w", err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("lag: list groups: %w", resp.Error)
	}
	var names []string
	for _, g := range resp.Groups {
		if (g.ProtocolType == "consumer" || g.ProtocolType == "") && !slices.Contains(names, g.GroupID) {
			names = append(names, g.GroupID)
		}
	}
	slices.Sort(names)
	return names, nil
}

// readGroup reads a described group's committed offsets on the partitions. ok tells whether
// the group has a committed offset or an assigned member on any of them.
func (m *Monitor) readGroup(ctx context.Context, d kafka.DescribeGroupsResponseGroup, partitions []topicPartition, end map[topicPartition]int64) (Group, bool, error) {
	g := Group{Name: d.GroupID, State: d.GroupState, Members: len(d.Members)}
	if g.State == "" {
		g.State = "Unknown"
	}
	type owner struct{ memberID, clientID, host string }
	owners := map[topicPartition]owner{}
	for _, mb := range d.Members {
		for _, t := range mb.MemberAssignments.Topics {
			for _, p := range t.Partitions {
				owners[topicPartition{t.Topic, p}] = owner{mb.MemberID, mb.ClientID, mb.ClientHost}
			}
		}
	}
	req := &kafka.OffsetFetchRequest{GroupID: d.GroupID, Topics: map[string][]int{}}
	for _, tp := range partitions {
		req.Topics[tp.topic] = append(req.Topics[tp.topic], tp.partition)
	}
	resp, err := m.client.OffsetFetch(ctx, req)
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return g, false, fmt.Errorf("lag: committed offsets of group %q: %w", d.GroupID, err)
	}
	committed := map[topicPartition]int64{}
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return g, false, fmt.Errorf("lag: committed offset of group %q on %s/%d: %w", d.GroupID, topic, p.Partition, p.Error)
			}
			if p.CommittedOffset >= 0 {
				committed[topicPartition{topic, p.Partition}] = p.CommittedOffset
			}
		}
	}
	for _, tp := range partitions {
		c, hasOffset := committed[tp]
		o, assigned := owners[tp]
		if !hasOffset && !assigned {
			continue
		}
		p := Partition{Topic: tp.topic, Partition: tp.partition, Committed: -1, End: end[tp], Lag: -1, LagSeconds: -1,
			MemberID: o.memberID, ClientID: o.clientID, Host: o.host}
		if hasOffset {
			p.Committed, p.Lag = c, max(end[tp]-c, 0)
			if p.Lag == 0 {
				p.LagSeconds = 0
			}
		}
		g.Partitions = append(g.Partitions, p)
	}
	return g, len(g.Partitions) > 0, nil
}

// fetchers bounds the concurrent record fetches of a poll.
const fetchers = 8

// readLagSeconds fills in the lag in seconds of every lagging partition: from the cache, or
// by fetching the record at the committed offset. The cache keeps only the offsets this
// poll used.
func (m *Monitor) readLagSeconds(ctx context.Context, s *Snapshot) []error {
	old := m.cache
	used := map[offsetKey]time.Time{}
	seen := map[offsetKey]bool{}
	var missing []offsetKey
	for _, g := range s.Groups {
		for _, p := range g.Partitions {
			k := offsetKey{topicPartition{p.Topic, p.Partition}, p.Committed}
			if p.Lag <= 0 || seen[k] {
				continue
			}
			seen[k] = true
			if t, ok := old[k]; ok {
				used[k] = t
			} else {
				missing = append(missing, k)
			}
		}
	}

	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		sem  = make(chan struct{}, fetchers)
	)
	for _, k := range missing {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t, err := m.recordTime(ctx, k)
			m.fetches.Add(1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("lag: timestamp of the record at %s/%d offset %d: %w", k.topic, k.partition, k.offset, err))
				return
			}
			used[k] = t
		})
	}
	wg.Wait()

	m.cache = used
	for gi := range s.Groups {
		for pi := range s.Groups[gi].Partitions {
			p := &s.Groups[gi].Partitions[pi]
			if p.Lag <= 0 {
				continue
			}
			if t, ok := used[offsetKey{topicPartition{p.Topic, p.Partition}, p.Committed}]; ok {
				p.Oldest = t
				p.LagSeconds = max(s.Time.Sub(t).Seconds(), 0)
			}
		}
	}
	return errs
}

// errNoRecord is the error of a fetch that finds no record at or after the offset.
var errNoRecord = errors.New("no record at or after the offset")

// maxMarkerFetches bounds the fetches past batches of transaction markers alone before
// recordTime gives up on an offset.
const maxMarkerFetches = 16

// recordTime is the timestamp of the record at k's offset, or of the first record after it
// (an offset may hold no record: compaction, transaction markers), or of the first retained
// record when retention has deleted the offset.
//
// Each fetch asks for a single byte: the broker then answers with exactly one record batch,
// the one that holds the offset (it always sends the first batch whole, however small the
// limit). A larger limit would be costly: kafka-go copies every record batch of an answer into
// 64 KiB pages of its own, so that 1 MiB of the small batches a lightly loaded producer
// writes took up to 64 MiB of heap. Every record read is closed, which gives its pages back
// to kafka-go as soon as the timestamp is known.
func (m *Monitor) recordTime(ctx context.Context, k offsetKey) (time.Time, error) {
	offset := k.offset
	restarted := false // from the log start, after retention deleted the offset
	for range maxMarkerFetches {
		resp, err := m.client.Fetch(ctx, &kafka.FetchRequest{
			Topic: k.topic, Partition: k.partition, Offset: offset,
			MinBytes: 1, MaxBytes: 1, MaxWait: 250 * time.Millisecond,
		})
		if err != nil {
			return time.Time{}, err
		}
		if errors.Is(resp.Error, kafka.OffsetOutOfRange) && !restarted {
			release(resp.Records)
			// Deleted by retention: the oldest unconsumed record is the first one left.
			start, err := m.logStart(ctx, k.topicPartition)
			if err != nil {
				return time.Time{}, err
			}
			if start <= offset {
				return time.Time{}, resp.Error // past the end rather than before the start
			}
			offset, restarted = start, true
			continue
		}
		if resp.Error != nil {
			release(resp.Records)
			return time.Time{}, resp.Error
		}
		t, found, next, err := firstRecordTime(resp.Records, offset)
		switch {
		case found:
			return t, nil
		case err != nil:
			return time.Time{}, err
		case next <= offset:
			return time.Time{}, errNoRecord
		}
		offset = next // the batch held transaction markers only: read on after them
	}
	return time.Time{}, fmt.Errorf("%w: only transaction markers in the %d batches after it", errNoRecord, maxMarkerFetches)
}

// firstRecordTime reads every record of a fetch's answer and closes it, and returns the
// timestamp of the first record at or after offset that is not a transaction marker, and the
// offset after the last record of any kind.
func firstRecordTime(records kafka.RecordReader, offset int64) (t time.Time, found bool, next int64, err error) {
	// The answer is a stream of batches: read each on its own, since the stream would skip
	// the batches of transaction markers, whose offsets count too.
	batches := []kafka.RecordReader{records}
	if s, ok := records.(*protocol.RecordStream); ok {
		batches = s.Records
	}
	next = offset
	for _, b := range batches {
		_, markers := b.(*protocol.ControlBatch)
		for {
			r, rerr := b.ReadRecord()
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) && err == nil {
					err = rerr
				}
				break
			}
			closeRecord(r)
			next = max(next, r.Offset+1)
			if !markers && !found && r.Offset >= offset { // a batch may begin before the offset
				t, found = r.Time, true
			}
		}
	}
	return t, found, next, err
}

// release reads and closes every record of an answer that is not used.
func release(records kafka.RecordReader) {
	if records != nil {
		_, _, _, _ = firstRecordTime(records, 0)
	}
}

// closeRecord gives a record's key and value back to kafka-go.
func closeRecord(r *kafka.Record) {
	if r.Key != nil {
		r.Key.Close()
	}
	if r.Value != nil {
		r.Value.Close()
	}
}

// logStart is the partition's first offset that retention has kept.
func (m *Monitor) logStart(ctx context.Context, tp topicPartition) (int64, error) {
	resp, err := m.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{tp.topic: {kafka.FirstOffsetOf(tp.partition)}}})
	if err != nil {
		return 0, err
	}
	for _, p := range resp.Topics[tp.topic] {
		if p.Partition == tp.partition {
			return p.FirstOffset, p.Error
		}
	}
	return 0, fmt.Errorf("no first offset of %s/%d in the answer", tp.topic, tp.partition)
}
