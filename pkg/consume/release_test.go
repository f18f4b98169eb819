package consume_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/consume"
)

// A block deleted by an operator releases its stream in the running consumer: the stream's
// next event is applied without a restart.
func TestConsumer_ReleasedBlockTakesEffectWithoutRestart(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	topic, dlq := testenv.Topic(t, 3), testenv.Topic(t, 2)
	recs := streams("rl", 6, 4)
	publish(t, topic, recs)
	const stream = "user-rl-2"
	var broken atomic.Bool
	broken.Store(true)
	h := newRecorder()
	h.fail = func(m *consume.Message) error {
		if broken.Load() && m.Event.StreamID == stream && m.Event.Version == 1 {
			return consume.Permanent(errors.New("broken on purpose"))
		}
		return nil
	}
	group := testenv.UniqueName(t)
	cfg := config(t, []string{topic}, dlq, group)
	cfg.Blocks = consume.PostgresBlocks(pool)
	cfg.BlockRefresh = 200 * time.Millisecond
	r := start(t, cfg, h)
	waitFor(t, 60*time.Second, "the other streams and the commits", func() bool {
		return h.count() == len(recs)-3 && caughtUp(t, group, topic, 3)
	})
	if got := r.c.Blocked(); !slices.Equal(got, []string{stream}) {
		t.Fatalf("the consumer holds %v blocked, want [%s]", got, stream)
	}
	broken.Store(false)
	if _, err := pool.Exec(ctx, `delete from annals_consumer_blocks where group_name = $1 and stream_id = $2`, group, stream); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the consumer to read the release", func() bool { return !slices.Contains(r.c.Blocked(), stream) })
	next := rec{stream, 4}
	publish(t, topic, []rec{next})
	waitFor(t, 30*time.Second, "the released stream's next event, in the same consumer", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.seen[next] == 1
	})
	r.halt(t)
	for v := int64(1); v < 4; v++ {
		if n := h.seen[rec{stream, v}]; n != 0 {
			t.Errorf("%s v%d, dead-lettered or parked before the release, was applied %d times", stream, v, n)
		}
	}
}
