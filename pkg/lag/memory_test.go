package lag_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
)

// A poll learns the age of a lagging partition's oldest unconsumed record from a read of the
// one record batch that holds it, whatever the backlog behind it: the heap stays flat while a
// group falls thousands of records behind. A fetch of 1 MiB would cost up to 64 MiB of
// heap here, since kafka-go gives every record batch of an answer 64 KiB pages of its own, and
// the relay publishes small batches whenever the load is light.
func TestMonitor_PollMemory(t *testing.T) {
	const (
		partitions = 4
		batches    = 1000 // per partition, one record of 1 KiB each, as a lightly loaded relay writes them
		polls      = 10
	)
	f := newFixture(t, partitions)
	for p := range partitions {
		f.produce(t, p, 0) // waits until the partition has a leader
	}
	value := make([]byte, 1024)
	var wg sync.WaitGroup
	for p := range partitions {
		wg.Go(func() {
			for b := range batches {
				resp, err := f.client.Produce(context.Background(), &kafka.ProduceRequest{
					Topic: f.topic, Partition: p, RequiredAcks: kafka.RequireAll,
					Records: kafka.NewRecordReader(kafka.Record{Time: f.at(b + 1), Value: kafka.NewBytes(value)}),
				})
				if err == nil {
					err = resp.Error
				}
				if err != nil {
					t.Errorf("produce to %s/%d: %v", f.topic, p, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// One group stopped at the start of the backlog, one moving through it at every poll, so
	// that every poll reads the oldest record of each partition anew.
	stopped, moving := f.topic+".stopped", f.topic+".moving"
	offsets := func(o int64) map[int]int64 {
		m := map[int]int64{}
		for p := range partitions {
			m[p] = o
		}
		return m
	}
	f.commit(t, stopped, offsets(0))
	m := f.monitor(t, 5)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, allocated := ms.HeapInuse, ms.TotalAlloc
	var peak uint64
	for i := 1; i <= polls; i++ {
		f.commit(t, moving, offsets(int64(10*i)))
		s, err := m.Poll(context.Background())
		if err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		for _, err := range s.Errors {
			t.Errorf("poll %d: %v", i, err)
		}
		for _, name := range []string{stopped, moving} {
			g, ok := s.Group(name)
			if !ok || len(g.Partitions) != partitions {
				t.Fatalf("poll %d: group %s: %+v, want it on %d partitions", i, name, g, partitions)
			}
			for _, p := range g.Partitions {
				if p.LagSeconds <= 0 {
					t.Errorf("poll %d: group %s on partition %d: lag seconds %v, want above 0", i, name, p.Partition, p.LagSeconds)
				}
			}
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	reads := m.TimestampFetches()
	perPoll := (ms.TotalAlloc - allocated) / polls
	t.Logf("%d polls of 2 groups over %d partitions with %d records behind: %d timestamp reads, %d KiB allocated per poll, heap in use at most %d KiB above the start",
		polls, partitions, partitions*batches, reads, perPoll>>10, (int64(peak)-int64(base))>>10)
	if want := int64(partitions * (polls + 1)); reads != want {
		t.Errorf("%d timestamp reads, want %d (the stopped group once per partition, the moving one at every poll)", reads, want)
	}
	if perPoll > 4<<20 && !raceEnabled {
		t.Errorf("%d KiB allocated per poll, want at most 4 MiB", perPoll>>10)
	}
	if peak > base+32<<20 {
		t.Errorf("heap in use reached %d MiB above the start, want at most 32 MiB", (peak-base)>>20)
	}
}
