package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/annals-dev/annals/internal/testenv"
	"github.com/annals-dev/annals/pkg/events/redis"
	"github.com/annals-dev/annals/pkg/relay/relaytest"
)

// TestOutbox_Contract runs the relay's contract of an outbox against the store's. An append
// is visible the moment its script runs, so there is no late append to test.
func TestOutbox_Contract(t *testing.T) {
	relaytest.Run(t, relaytest.Harness{Brokers: testenv.KafkaBrokers(t), New: outboxSubject})
}

func outboxSubject(t *testing.T) relaytest.Subject {
	s, prefix := newNamedStore(t, redis.Options{})
	rdb := client(t)
	return relaytest.Subject{
		Store: s, Outbox: s.Outbox(), Operator: s.Outbox(),
		// The dead appends are a hash by "stream@firstVersion" of JSON records whose hold is
		// "firstVersion lastVersion µs reason".
		Skipped: func(ctx context.Context) ([]relaytest.SkippedAppend, error) {
			dead, err := rdb.HGetAll(ctx, "{"+prefix+"}:outbox-dead").Result()
			if err != nil {
				return nil, err
			}
			var out []relaytest.SkippedAppend
			for key, raw := range dead {
				var rec struct {
					Hold       string `json:"hold"`
					SkippedBy  string `json:"skipped_by"`
					SkipReason string `json:"skip_reason"`
				}
				if err := json.Unmarshal([]byte(raw), &rec); err != nil {
					return nil, err
				}
				i := strings.LastIndexByte(key, '@')
				fv, err := strconv.ParseInt(key[i+1:], 10, 64)
				hold := strings.SplitN(rec.Hold, " ", 4)
				if i < 0 || err != nil || len(hold) != 4 {
					return nil, fmt.Errorf("dead append %q: %q", key, raw)
				}
				out = append(out, relaytest.SkippedAppend{StreamID: key[:i], FirstVersion: fv, Reason: hold[3], By: rec.SkippedBy, Why: rec.SkipReason})
			}
			return out, nil
		},
	}
}
