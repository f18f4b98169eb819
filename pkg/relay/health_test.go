package relay_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/annals-dev/annals/pkg/relay"
)

// TestRelay_Health: a relay reports starting before it runs, publishing once it publishes,
// and failing, with the reason, while the brokers it publishes to are unreachable.
func TestRelay_Health(t *testing.T) {
	e := newEnv(t)
	waitHealth := func(r *relay.Relay, want relay.HealthState) relay.Health {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			h := r.Health()
			if h.State == want {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("relay health %+v after 30 s, want %s", h, want)
			}
			time.Sleep(10 * time.Millisecond) // polling with a deadline
		}
	}
	t.Run("Publishing", func(t *testing.T) {
		r := e.start(t, relay.Config{})
		e.append(t, "user-healthy", 2, "UserCreated")
		h := waitHealth(r, relay.Publishing)
		deadline := time.Now().Add(30 * time.Second)
		for h = r.Health(); h.LastPublished.IsZero(); h = r.Health() {
			if time.Now().After(deadline) {
				t.Fatalf("the relay never reported a publish: %+v", h)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !h.OK() || h.Error != "" {
			t.Errorf("health %+v, want OK without an error", h)
		}
	})
	t.Run("BrokersUnreachable", func(t *testing.T) {
		r, err := relay.New(e.store.Outbox(), jsonEncoder{}, relay.Config{
			Brokers: []string{"127.0.0.1:" + strconv.Itoa(closedPort(t))}, TopicPrefix: e.prefix,
			RetryBackoff: 20 * time.Millisecond, WriteTimeout: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if h := r.Health(); h.State != relay.Starting || h.OK() {
			t.Errorf("before Run: %+v, want starting, not OK", h)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() { cancel(); <-done }()
		e.append(t, "user-unhealthy", 1, "UserCreated")
		h := waitHealth(r, relay.Failing)
		if h.OK() || h.Error == "" {
			t.Errorf("health %+v, want not OK, with the reason", h)
		}
	})
}
