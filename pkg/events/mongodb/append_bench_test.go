package mongodb_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/events"
	"github.com/annals-dev/annals/pkg/events/mongodb"
	"github.com/annals-dev/annals/pkg/relay"
)

// BenchmarkAppend: single-event appends from 4 goroutines per core, each on streams of its
// own, into one store that grows as the benchmark runs.
func BenchmarkAppend(b *testing.B) {
	s, _ := newStore(b, mongodb.Options{})
	ctx := context.Background()
	var g atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		stream := fmt.Sprintf("note-%d", g.Add(1))
		for pb.Next() {
			if _, err := s.Append(ctx, stream, events.Any(), noted(b, 1), events.AppendOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRelayDrain: the time a relay takes to publish a backlog of 1,000 events (500
// appends of 1 or 3 events on 50 streams), from its start to an empty outbox.
func BenchmarkRelayDrain(b *testing.B) {
	const appends, streams = 500, 50
	k := newKafkaTB(b)
	// Not b.Loop: each round's setup runs with the timer stopped.
	b.StopTimer()
	for range b.N {
		s, _ := newStore(b, mongodb.Options{})
		for i := range appends {
			if _, err := s.Append(context.Background(), fmt.Sprintf("note-%d", i%streams), events.Any(), noted(b, 1+2*(i%2)), events.AppendOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		o := s.Outbox()
		b.StartTimer()
		stop := k.run(b, o, relay.Config{})
		for {
			empty, err := o.Empty(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if empty {
				break
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		stop()
	}
	b.ReportMetric(float64(appends*2)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
