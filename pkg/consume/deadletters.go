package consume

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/kafkasec"
	"github.com/annals-dev/annals/pkg/kafkawire"
)

// A DeadLetter is a record of a group's dead-letter topic, with what its headers say of the
// record it stands for.
type DeadLetter struct {
	// Partition and Offset place the dead letter in its topic; Time is the original record's.
	Partition int
	Offset    int64
	Time      time.Time
	// StreamID is the record's key: the stream it belongs to, or "" for a record without one.
	StreamID string
	// Error is why it was dead-lettered; Parked says it was set aside because an earlier event
	// of its stream was ("parked: ..."), not for a fault of its own.
	Error  string
	Parked bool
	// Where the original record is, and how many times the group tried it (0: never, as for
	// a parked record or one that could not be decoded).
	OriginalTopic     string
	OriginalPartition int
	OriginalOffset    int64
	Attempts          int
	// What the relay's headers say of the event, when the record has them; StreamVersion is
	// -1 when it has none.
	EventID       string
	EventType     string
	StreamVersion int64

	msg kafka.Message
}

// Original returns the record the dead letter stands for, as the group read it: its own
// topic, partition, offset, key, value and headers, without those the group added.
func (d DeadLetter) Original() kafka.Message {
	m := d.msg
	m.Topic, m.Partition, m.Offset = d.OriginalTopic, d.OriginalPartition, d.OriginalOffset
	m.Headers = slices.DeleteFunc(slices.Clone(m.Headers), func(h kafka.Header) bool {
		switch h.Key {
		case kafkawire.HeaderError, kafkawire.HeaderOriginalTopic, kafkawire.HeaderOriginalPartition,
			kafkawire.HeaderOriginalOffset, kafkawire.HeaderAttempts:
			return true
		}
		return false
	})
	return m
}

const parkedPrefix = "parked: "

func deadLetterOf(m kafka.Message) DeadLetter {
	d := DeadLetter{Partition: m.Partition, Offset: m.Offset, Time: m.Time, StreamID: string(m.Key),
		OriginalPartition: -1, OriginalOffset: -1, StreamVersion: -1, msg: m}
	for _, h := range m.Headers {
		v := string(h.Value)
		switch h.Key {
		case kafkawire.HeaderError:
			d.Error = v
		case kafkawire.HeaderOriginalTopic:
			d.OriginalTopic = v
		case kafkawire.HeaderOriginalPartition:
			d.OriginalPartition = atoi(v, -1)
		case kafkawire.HeaderOriginalOffset:
			d.OriginalOffset = int64(atoi(v, -1))
		case kafkawire.HeaderAttempts:
			d.Attempts = atoi(v, 0)
		case kafkawire.HeaderEventID:
			d.EventID = v
		case kafkawire.HeaderEventType:
			d.EventType = v
		case kafkawire.HeaderStreamVersion:
			d.StreamVersion = int64(atoi(v, -1))
		}
	}
	d.Parked = strings.HasPrefix(d.Error, parkedPrefix)
	return d
}

func atoi(s string, otherwise int) int {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return otherwise
	}
	return int(n)
}

// DeadLetterScan says which dead letters ScanDeadLetters reads.
type DeadLetterScan struct {
	Brokers []string
	// Security is how to connect to the brokers; the zero value is plaintext.
	Security kafkasec.Security
	Topic    string // the group's dead-letter topic
	// StreamID, when set, reads only that stream's dead letters: the one partition that its
	// key goes to (the dead-letter topic is keyed by stream id, murmur2, like the event topics).
	StreamID string
	// Progress, when set, is called now and then with the records read so far and how many
	// the partitions hold in all (from their start to their end when the scan began).
	Progress func(read, total int64)
}

// ScanDeadLetters reads the dead-letter topic from its start to where it ends when the scan
// begins, partition by partition, and calls fn with each dead letter (of s.StreamID only, when
// set), until fn returns an error, which it returns.
func ScanDeadLetters(ctx context.Context, s DeadLetterScan, fn func(DeadLetter) error) error {
	if len(s.Brokers) == 0 || s.Topic == "" {
		return errors.New("scan dead letters: no brokers or no topic")
	}
	transport, release, err := s.Security.RoundTripper()
	if err != nil {
		return fmt.Errorf("scan dead letters: %w", err)
	}
	defer release()
	dialer, err := s.Security.Dialer()
	if err != nil {
		return fmt.Errorf("scan dead letters: %w", err)
	}
	refusal := func(err error) error {
		return kafkasec.Classify(kafkasec.Denied(err, kafkasec.Access{Operation: "Describe", Topic: s.Topic}, s.Security), s.Security)
	}
	client := &kafka.Client{Addr: kafka.TCP(s.Brokers...), Timeout: 10 * time.Second, Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.Topic}})
	if err != nil {
		return fmt.Errorf("scan dead letters of %s: %w", s.Topic, refusal(err))
	}
	var parts []int
	for _, t := range meta.Topics {
		if t.Name != s.Topic {
			continue
		}
		if t.Error != nil {
			return fmt.Errorf("scan dead letters of %s: %w", s.Topic, refusal(t.Error))
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return fmt.Errorf("scan dead letters: topic %s does not exist", s.Topic)
	}
	slices.Sort(parts)
	if s.StreamID != "" {
		parts = []int{(&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(s.StreamID)}, parts...)}
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range parts {
		req[s.Topic] = append(req[s.Topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return fmt.Errorf("scan dead letters of %s: %w", s.Topic, err)
	}
	type span struct{ first, end int64 }
	spans := map[int]span{}
	var total int64
	for _, p := range offs.Topics[s.Topic] {
		if p.Error != nil {
			return fmt.Errorf("scan dead letters of %s/%d: %w", s.Topic, p.Partition, p.Error)
		}
		spans[p.Partition] = span{p.FirstOffset, p.LastOffset}
		total += max(p.LastOffset-p.FirstOffset, 0)
	}
	var read int64
	progress := func() {
		if s.Progress != nil {
			s.Progress(read, total)
		}
	}
	progress()
	last := time.Now()
	for _, p := range parts {
		sp := spans[p]
		if sp.end <= sp.first {
			continue
		}
		err := readPartition(ctx, s.Brokers, dialer, s.Topic, p, sp.first, sp.end, func(m kafka.Message) error {
			read++
			if time.Since(last) >= time.Second {
				progress()
				last = time.Now()
			}
			if s.StreamID != "" && string(m.Key) != s.StreamID {
				return nil
			}
			return fn(deadLetterOf(m))
		})
		if err != nil {
			return err
		}
	}
	progress()
	return nil
}

// readPartition calls fn with each record of topic/partition from first up to end.
func readPartition(ctx context.Context, brokers []string, dialer *kafka.Dialer, topic string, partition int, first, end int64, fn func(kafka.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Dialer: dialer, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return fmt.Errorf("read %s/%d: %w", topic, partition, err)
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		if m.Offset >= end {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset+1 >= end {
			return nil
		}
	}
}

// Parked returns, of a stream's dead letters, those a redrive of its block b applies: the
// records of b's partition from b's offset up to before upTo (upTo < 0: no bound), each once
// (a dead letter may have been written more than once), in their order on the partition. A
// record set aside for not being an event of the stream ("quarantined: ...") is no part of it.
// It returns an error when they cannot be all of the stream's events from b's on: the first
// is not b's own record, or the stream versions they carry leave a gap (the dead-letter
// topic's retention deleted some, say).
func Parked(letters []DeadLetter, b Block, upTo int64) ([]DeadLetter, error) {
	var out []DeadLetter
	seen := map[int64]bool{}
	for _, d := range letters {
		if d.StreamID != b.StreamID || d.OriginalTopic != b.Topic || d.OriginalPartition != b.Partition ||
			d.OriginalOffset < b.Offset || (upTo >= 0 && d.OriginalOffset >= upTo) ||
			strings.HasPrefix(d.Error, "quarantined") || seen[d.OriginalOffset] {
			continue
		}
		seen[d.OriginalOffset] = true
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b DeadLetter) int { return cmp.Compare(a.OriginalOffset, b.OriginalOffset) })
	if len(out) == 0 || out[0].OriginalOffset != b.Offset {
		return out, fmt.Errorf("the dead-letter topic lacks the record the stream is blocked at (%s/%d@%d): its retention may have deleted it",
			b.Topic, b.Partition, b.Offset)
	}
	// A stream's versions follow one another on its partition; a relay that publishes an
	// append again after a crash repeats versions, which is no gap.
	high := int64(-1)
	for i, d := range out {
		v := d.StreamVersion
		if high >= 0 && v > high+1 {
			return out, fmt.Errorf("the dead-letter topic lacks versions %d to %d of the stream (between %s/%d@%d and @%d): its retention may have deleted them",
				high+1, v-1, b.Topic, b.Partition, out[i-1].OriginalOffset, d.OriginalOffset)
		}
		high = max(high, v)
	}
	return out, nil
}
