package relaytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/kafkawire"
	"github.com/annals-dev/annals/pkg/relay"
)

// The helpers below serve a store's own tests of its outbox beside Run: starting a relay on
// the outbox, and reading back and checking what it published.

// Record is a record a relay published: its key (the stream id), the stream version and
// event type from its headers, all its headers, and its value.
type Record struct {
	Stream  string
	Version int64
	Type    string
	Headers map[string]string
	Value   []byte
}

// newRecord returns the Record of a record's key, value and headers.
func newRecord(key, value []byte, headers []kafka.Header) Record {
	r := Record{Stream: string(key), Headers: make(map[string]string, len(headers)), Value: value}
	for _, h := range headers {
		r.Headers[h.Key] = string(h.Value)
	}
	r.Version, _ = strconv.ParseInt(r.Headers[kafkawire.HeaderStreamVersion], 10, 64)
	r.Type = r.Headers[kafkawire.HeaderEventType]
	return r
}

// Start runs a relay of o with enc and cfg until stop is called or the test ends; stop
// cancels the relay, waits until it returned and closes it, and may be called again. A relay
// that returns an error fails the test.
func Start(tb testing.TB, o relay.Outbox, enc relay.Encoder, cfg relay.Config) (r *relay.Relay, stop func()) {
	tb.Helper()
	r, err := relay.New(o, enc, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("relay: %v", err)
			}
			r.Close()
		})
	}
	tb.Cleanup(stop)
	return r, stop
}

// AppendConcurrently runs appenders goroutines at once, appender a making rounds appends: its
// i-th appends the events of next(a, i) to the stream next names, on the store next names.
// It returns the number of events appended to each stream; an append that fails fails the
// test and ends its appender.
func AppendConcurrently(tb testing.TB, appenders, rounds int, next func(a, i int) (s events.Store, stream string, evs []events.Event)) map[string]int64 {
	tb.Helper()
	var mu sync.Mutex
	want := map[string]int64{}
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for i := range rounds {
				s, stream, evs := next(a, i)
				if _, err := s.Append(context.Background(), stream, events.Any(), evs, events.AppendOptions{}); err != nil {
					tb.Errorf("appender %d: %v", a, err)
					return
				}
				mu.Lock()
				want[stream] += int64(len(evs))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return want
}

// Published reads every record of topics up to their current ends, each partition's in order
// (so each stream's in the order published). A read that fails (a topic just created whose
// partitions have no leader yet, metadata that moved on) is tried again for up to a minute.
func Published(tb testing.TB, brokers []string, topics ...string) []Record {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		recs, err := readTopics(brokers, topics)
		if err == nil {
			return recs
		}
		if time.Now().After(deadline) {
			tb.Fatalf("read %v: %v", topics, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readTopics reads every record of topics up to their current ends, once.
func readTopics(brokers, topics []string) ([]Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, topic := range meta.Topics {
		if topic.Error != nil || len(topic.Partitions) == 0 {
			return nil, fmt.Errorf("topic %s: %v", topic.Name, topic.Error)
		}
		for _, p := range topic.Partitions {
			if p.Error != nil {
				return nil, fmt.Errorf("%s[%d]: %w", topic.Name, p.ID, p.Error)
			}
			for offset := int64(0); ; {
				res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic.Name, Partition: p.ID, Offset: offset, MaxBytes: 8 << 20})
				if err == nil {
					err = res.Error
				}
				if err != nil {
					return nil, fmt.Errorf("fetch %s[%d]@%d: %w", topic.Name, p.ID, offset, err)
				}
				for {
					rec, err := res.Records.ReadRecord()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						return nil, fmt.Errorf("read %s[%d]@%d: %w", topic.Name, p.ID, offset, err)
					}
					key, _ := io.ReadAll(rec.Key)
					value, _ := io.ReadAll(rec.Value)
					out = append(out, newRecord(key, value, rec.Headers))
					offset = rec.Offset + 1
				}
				if offset >= res.HighWatermark {
					break
				}
			}
		}
	}
	return out, nil
}

// Consume reads the records of topics as a consumer group of its own, from their first
// offsets, until done holds for the records read so far; it fails the test if that takes
// longer than within.
func Consume(tb testing.TB, brokers, topics []string, within time.Duration, done func([]Record) bool) []Record {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: "relaytest-" + hex.EncodeToString(b[:]), GroupTopics: topics,
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var out []Record
	for !done(out) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			tb.Fatalf("after %d records: %v", len(out), err)
		}
		out = append(out, newRecord(m.Key, m.Value, m.Headers))
	}
	return out
}

// ByStream returns each stream's versions among recs, in the order of recs.
func ByStream(recs []Record) map[string][]int64 {
	out := map[string][]int64{}
	for _, r := range recs {
		out[r.Stream] = append(out[r.Stream], r.Version)
	}
	return out
}

// CheckOrder checks recs against want, the number of events appended to each stream: per
// stream, the first time each version is seen, versions go 0, 1, 2, ... with nothing missing
// and nothing out of order, up to want's number. It returns the number of duplicates.
func CheckOrder(tb testing.TB, recs []Record, want map[string]int64) int {
	tb.Helper()
	_, dups := checkOrder(tb, recs, want)
	return dups
}

// checkOrder is CheckOrder, and returns per stream of recs the version after the last one
// that arrived in order too.
func checkOrder(tb testing.TB, recs []Record, want map[string]int64) (next map[string]int64, dups int) {
	tb.Helper()
	next = map[string]int64{}
	for _, r := range recs {
		switch {
		case r.Version == next[r.Stream]:
			next[r.Stream]++
		case r.Version < next[r.Stream]:
			dups++
		default:
			tb.Errorf("%s: version %d arrived before %d", r.Stream, r.Version, next[r.Stream])
			next[r.Stream] = r.Version + 1
		}
	}
	for s, n := range want {
		if next[s] != n {
			tb.Errorf("%s: %d events arrived, want %d", s, next[s], n)
		}
	}
	return next, dups
}
